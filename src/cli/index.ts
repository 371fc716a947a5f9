#!/usr/bin/env node
// The `eurobert-ner` command: NER over arguments, stdin or files, and `evaluate` on CoNLL-U.
import * as fs from 'node:fs'
import { parseArgs } from 'node:util'

import type { Entity } from '../pipeline/aggregate'
import { BUNDLED_MODEL } from '../pipeline/bundled'
import { parseConllu } from '../evaluate/conllu'
import { evaluate, readConllu } from '../evaluate/evaluate'
import { common, int as intOption, service, serveCommand, workerCommand } from './commands'
import { parseHubId } from '../pipeline/hub'
import type { ProgressInfo } from '../pipeline/progress'
import { colors, redraws } from './terminal'
import { entityTypes, pageEnd, pageStart, renderHtml } from '../serve/html'
import { boundedLines, checkInputFile, MAX_DOCUMENT_BYTES, readWhole, readWholeFile } from './input'
import { checkLoadOptions, DType, Device } from '../pipeline/model'
import { pipeline } from '../pipeline/pipeline'
import { cliNerOptions, cliOptionHelp, cliOptionFlags, withReaderDefaults } from './options'
import { VERSION } from '../version'
import { formatReport } from '../evaluate/seqeval'

const EXIT_USAGE = 2
const EXIT_FAILURE = 1

const HELP = `Usage:
  eurobert-ner [options] [TEXT...]         tag texts, stdin or files
  eurobert-ner evaluate [options] FILE...  score a model on CoNLL-U files with name= tags
  eurobert-ner serve [options]             HTTP server (see eurobert-ner serve --help)
  eurobert-ner worker [options]            BullMQ queue worker (see eurobert-ner worker --help)

Input (one document per TEXT argument; without TEXT or --file, stdin, one document per line):
  -f, --file PATH           read documents from PATH (repeatable): .txt one per line,
                            .jsonl one JSON object per line, .conllu one per sentence;
                            - is stdin (one per line, or one with --whole)
      --whole               a .txt file or stdin is one document, not one per line
      --field NAME          the text field of .jsonl records (default: text)

Output:
      --format FORMAT       pretty (default), json, jsonl, conll, tsv or html
      --progress / --no-progress
                            progress bar on stderr (default: on for files when stderr is a TTY)

Model and pipeline:
  -m, --model MODEL         model folder, or Hub id owner/name[@revision], downloaded once
                            into the Hugging Face cache (default: the bundled NorNE model)
      --revision REV        Hub branch, tag or commit (default: main)
      --offline             use the Hugging Face cache only (same as HF_HUB_OFFLINE=1)
${cliOptionHelp({ aggregationStrategy: 'first', words: 'unicode', decode: 'viterbi (word strategies), else argmax' })}
      --threads N           CPU threads (default: all cores)
      --device D            cpu (default), cuda, cuda:N, metal or auto
      --dtype T             f32 (default, exact), q8 (int8 on the CPU: faster, within
                            0.3 F1 points), bf16 or f16 (16-bit weights:
                            half the memory)

evaluate:
      --json                print the scores as JSON
      --mode M              default (conlleval, seqeval's default) or strict (IOB2)
      --digits N            decimals in the report (default: 4)

  -h, --help                this help
  -v, --version             the package version

Formats:
  pretty  the text with entities marked: colored when stdout is a terminal (not with
          NO_COLOR or TERM=dumb; FORCE_COLOR=1 forces it), else [text](LABEL)
  json    one JSON array of {text, entities} for all documents
  jsonl   one {text, entities} object per line, written as soon as each document is done
  conll   one word per line with its IOB2 tag, a blank line after each document
  tsv     doc, start, end, label, score, word: one row per entity, with a header row
  html    one self-contained page (inline CSS, no network): entities highlighted, a legend
Entities have transformers' fields (entity_group, score, word, start, end); start and end
index the document's JavaScript string.

Exit codes: 0 success; 1 the model or a document failed; 2 bad usage (unknown option,
missing file, empty input).`

class UsageError extends Error {}

const FORMATS = ['pretty', 'json', 'jsonl', 'conll', 'tsv', 'html'] as const
type Format = (typeof FORMATS)[number]

interface Doc {
  text: string
  /** CoNLL-U tokens, used by --format conll. */
  words?: { start: number; end: number }[]
}

async function main(argv: string[]): Promise<number | undefined> {
  if (argv[0] === 'serve') return serveCommand(argv.slice(1), (m) => new UsageError(m))
  if (argv[0] === 'worker') return workerCommand(argv.slice(1), (m) => new UsageError(m))
  const evaluating = argv[0] === 'evaluate'
  const { values, positionals } = parseArgs({
    args: evaluating ? argv.slice(1) : argv,
    allowPositionals: true,
    strict: true,
    options: {
      file: { type: 'string', short: 'f', multiple: true },
      whole: { type: 'boolean' },
      field: { type: 'string' },
      format: { type: 'string' },
      progress: { type: 'boolean' },
      'no-progress': { type: 'boolean' },
      ...common,
      ...cliOptionFlags(),
      json: { type: 'boolean' },
      mode: { type: 'string' },
      digits: { type: 'string' },
      version: { type: 'boolean', short: 'v' },
    },
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return 0
  }
  if (values.version) {
    process.stdout.write(VERSION + '\n')
    return 0
  }
  const threads = int(values.threads, '--threads')
  try {
    checkLoadOptions('eurobert-ner', { threads, dtype: values.dtype as DType | undefined, device: values.device as Device | undefined })
  } catch (e) {
    // A bad flag is a usage error; anything else (no native binary here) is a failure.
    if (!(e instanceof RangeError || e instanceof TypeError)) throw e
    throw new UsageError(`--${e.message.replace(/^eurobert-ner: /, '')}`)
  }
  const modelPath = values.model ?? BUNDLED_MODEL
  if (!fs.existsSync(modelPath) && !parseHubId(modelPath)) {
    throw new UsageError(`model folder not found: ${modelPath} (nor is it a Hub id of the form owner/name)`)
  }
  const download = redraws(process.stderr) && !values['no-progress'] ? new DownloadBar() : undefined
  const load = {
    threads: int(values.threads, '--threads'),
    device: values.device as Device | undefined,
    dtype: values.dtype as DType | undefined,
    revision: values.revision,
    localFilesOnly: values.offline ? true : undefined,
    onProgress: download?.update.bind(download),
  }

  // The NER options from their flags, checked as ner() checks them (a bad one is a usage error).
  const given = cliNerOptions(values as Record<string, string | undefined>, (m) => new UsageError(m))
  const decode = given.decode
  if (evaluating) {
    if (positionals.length === 0) throw new UsageError('evaluate needs at least one CoNLL-U file')
    for (const f of positionals) checkInputFile(f, (m) => new UsageError(m))
    const mode = values.mode ?? 'default'
    if (mode !== 'default' && mode !== 'strict') throw new UsageError(`--mode must be default or strict, got ${mode}`)
    const sentences = readConllu(positionals)
    if (sentences.length === 0) throw new UsageError('the CoNLL-U files hold no sentences')
    const ner = await pipeline(modelPath, load)
    const ev = await evaluate(ner.model, sentences, { mode, decode, batchSize: given.batchSize })
    if (values.json) {
      process.stdout.write(JSON.stringify({ sentences: ev.sentences, tokens: ev.tokens, mode, ...ev.report }, null, 2) + '\n')
    } else {
      process.stdout.write(formatReport(ev.report, int(values.digits, '--digits') ?? 4))
    }
    return 0
  }

  const format = (values.format ?? 'pretty') as Format
  if (!FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}, got ${values.format}`)
  const files = values.file ?? []
  // `-f -` is standard input, which can be read once.
  if (files.filter((f) => f === STDIN).length > 1) throw new UsageError('-f - (standard input) can be given once')
  for (const f of files) if (f !== STDIN) checkInputFile(f, (m) => new UsageError(m))
  if (positionals.length > 0 && files.length > 0) throw new UsageError('give texts as arguments or with --file, not both')
  const options = withReaderDefaults(given)
  const batchSize = options.batchSize ?? 32

  const docs: AsyncIterable<Doc> =
    positionals.length > 0 ? fromArray(positionals) : files.length > 0 ? fromFiles(files, values) : fromStdin(values.whole ?? false)
  const wantProgress = values['no-progress'] ? false : (values.progress ?? files.length > 0)
  const showProgress = wantProgress && redraws(process.stderr)
  // Counting documents for the ETA reads the files once more: only when a bar is shown.
  const total = showProgress && files.length > 0 ? await countDocs(files, values) : undefined
  const progress = showProgress ? new Progress(total) : undefined

  const ner = await pipeline(modelPath, { ...load, ...options })
  const writer = new Writer(format, colors(process.stdout), entityTypes(ner.model.labels))
  let seen = 0
  // ner.stream batches documents across one another with a bounded number in flight.
  for await (const { entities, ...doc } of ner.stream(docs, { highWaterMark: Math.max(64, 2 * batchSize) })) {
    writer.write(doc as Doc, entities, seen)
    seen++
    if (seen % 32 === 0) progress?.update(seen)
  }
  progress?.update(seen)
  progress?.done()
  if (seen === 0) throw new UsageError('no input: give texts as arguments, --file, or lines on stdin')
  writer.end()
  return 0
}

function int(v: string | undefined, flag: string, min = 1): number | undefined {
  return intOption(v, flag, (m) => new UsageError(m), min)
}

async function* fromArray(texts: string[]): AsyncIterable<Doc> {
  for (const text of texts) yield { text }
}

/** What `-f` takes for standard input. */
const STDIN = '-'

/** A file's, a pipe's or standard input's lines, each at most one document's size. */
function lines(file: string): AsyncIterable<string> {
  return file === STDIN ? boundedLines(process.stdin, 'stdin') : boundedLines(fs.createReadStream(file), file)
}


async function* fromStdin(whole: boolean): AsyncIterable<Doc> {
  // Bytes are decoded as a stream: a character split across two chunks stays one character.
  if (whole) {
    const text = await readWhole(process.stdin, 'stdin')
    if (text.length > 0) yield { text }
    return
  }
  for await (const line of boundedLines(process.stdin, 'stdin')) if (line.trim() !== '') yield { text: line }
}

type Values = { whole?: boolean; field?: string }

/** The documents of the files, in order; a file that cannot be read is an error naming it. */
async function* fromFiles(files: string[], values: Values): AsyncIterable<Doc> {
  for (const file of files) {
    try {
      yield* fromFile(file, values)
    } catch (e) {
      const err = e as NodeJS.ErrnoException
      if (err instanceof UsageError || err.message.startsWith(file)) throw e
      throw new Error(`${file}: ${err.message}`, { cause: e })
    }
  }
}

async function* fromFile(file: string, values: Values): AsyncIterable<Doc> {
  {
    if (file === STDIN) {
      yield* fromStdin(values.whole ?? false)
    } else if (file.endsWith('.conllu')) {
      for (const s of parseConllu(readWholeFile(file, 4 * MAX_DOCUMENT_BYTES), file)) yield { text: s.text, words: s.tokens }
    } else if (file.endsWith('.jsonl')) {
      const field = values.field ?? 'text'
      let n = 0
      for await (const line of lines(file)) {
        n++
        if (line.trim() === '') continue
        let record: unknown
        try {
          record = JSON.parse(line)
        } catch (e) {
          throw new UsageError(`${file}:${n}: invalid JSON (${(e as Error).message})`)
        }
        const text = (record as Record<string, unknown> | null)?.[field]
        if (typeof text !== 'string') throw new UsageError(`${file}:${n}: no string field "${field}"`)
        yield { text }
      }
    } else if (values.whole) {
      yield { text: fs.statSync(file).isFile() ? readWholeFile(file) : await readWhole(fs.createReadStream(file), file) }
    } else {
      for await (const line of lines(file)) if (line.trim() !== '') yield { text: line }
    }
  }
}

/** Documents in the files, for the progress bar's ETA (a quick pass that holds no text). */
async function countDocs(files: string[], values: Values): Promise<number | undefined> {
  // A pipe can be read only once: no count, no ETA.
  if (files.some((f) => f === STDIN || fs.statSync(f).isFIFO())) return undefined
  let n = 0
  for (const f of files) {
    if (f.endsWith('.conllu')) n += parseConllu(readWholeFile(f, 4 * MAX_DOCUMENT_BYTES), f).length
    else if (values.whole && !f.endsWith('.jsonl')) n += 1
    else for await (const line of lines(f)) if (line.trim() !== '') n++
  }
  return n
}

class Progress {
  private start = Date.now()
  constructor(private total?: number) {}
  update(done: number): void {
    const secs = (Date.now() - this.start) / 1000
    const rate = done / Math.max(secs, 1e-3)
    const width = 30
    const frac = this.total ? Math.min(1, done / this.total) : 0
    const bar = this.total ? '█'.repeat(Math.round(frac * width)).padEnd(width, '░') : ''
    const eta = this.total ? ` ETA ${fmtTime((this.total - done) / Math.max(rate, 1e-9))}` : ''
    process.stderr.write(`\r${bar} ${done}${this.total ? '/' + this.total : ''} docs ${rate.toFixed(1)} docs/s${eta}   `)
  }
  done(): void {
    process.stderr.write('\n')
  }
}

/** Bytes, rate and ETA of the file being downloaded, on one stderr line. */
class DownloadBar {
  private start = Date.now()
  private file = ''
  /** Files reported complete by their first event: on disk already, nothing to show. */
  private readonly present = new Set<string>()
  update(info: ProgressInfo): void {
    if (info.status !== 'progress') return
    const p = info
    if (p.file !== this.file && (this.present.has(p.file) || p.loaded >= p.total)) {
      this.present.add(p.file)
      return
    }
    if (p.file !== this.file) {
      if (this.file) process.stderr.write('\n')
      this.file = p.file
      this.start = Date.now()
    }
    const secs = Math.max((Date.now() - this.start) / 1000, 1e-3)
    const rate = p.loaded / secs
    const frac = p.total > 0 ? p.loaded / p.total : 1
    const bar = '█'.repeat(Math.round(frac * 30)).padEnd(30, '░')
    const eta = rate > 0 ? fmtTime((p.total - p.loaded) / rate) : '?'
    process.stderr.write(`\r${p.file} ${bar} ${mb(p.loaded)}/${mb(p.total)} MB ${mb(rate)} MB/s ETA ${eta}   `)
    if (p.loaded >= p.total) {
      process.stderr.write('\n')
      this.file = ''
    }
  }
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1)

function fmtTime(s: number): string {
  const m = Math.floor(s / 60)
  return `${m}:${String(Math.round(s % 60)).padStart(2, '0')}`
}

const COLORS: Record<string, string> = { PER: '31', ORG: '34', LOC: '32', GPE_LOC: '36', GPE_ORG: '35', PROD: '33', EVT: '91', DRV: '94', MISC: '90' }

class Writer {
  private all: unknown[] = []
  constructor(
    private format: Format,
    private tty: boolean,
    types: string[],
  ) {
    if (format === 'tsv') this.out('doc\tstart\tend\tlabel\tscore\tword')
    // The page streams: head and legend now, each document as it is done, the end last.
    if (format === 'html') process.stdout.write(pageStart('eurobert-ner', types))
  }

  write(doc: Doc, entities: Entity[], index: number): void {
    switch (this.format) {
      case 'json':
        this.all.push({ text: doc.text, entities })
        break
      case 'html':
        this.out(renderHtml(doc.text, entities))
        break
      case 'jsonl':
        this.out(JSON.stringify({ text: doc.text, entities }))
        break
      case 'tsv':
        for (const e of entities) this.out([index, e.start, e.end, label(e), e.score.toFixed(4), e.word.replace(/[\t\r\n]/g, ' ')].join('\t'))
        break
      case 'conll':
        this.out(conll(doc, entities) + '\n')
        break
      default:
        this.out(this.pretty(doc.text, entities))
    }
  }

  end(): void {
    if (this.format === 'json') this.out(JSON.stringify(this.all, null, 2))
    if (this.format === 'html') process.stdout.write(pageEnd())
  }

  private pretty(text: string, entities: Entity[]): string {
    let out = ''
    let at = 0
    for (const e of [...entities].sort((a, b) => a.start - b.start)) {
      if (e.start < at) continue
      const span = text.slice(e.start, e.end)
      out += text.slice(at, e.start)
      out += this.tty ? `\x1b[1;${COLORS[label(e)] ?? '35'}m${span}\x1b[0m\x1b[2m ${label(e)}\x1b[0m` : `[${span}](${label(e)})`
      at = e.end
    }
    return out + text.slice(at)
  }

  private out(line: string): void {
    process.stdout.write(line + '\n')
  }
}

function label(e: Entity): string {
  return 'entity_group' in e ? e.entity_group : e.entity
}

/**
 * One word per line with IOB2 tags from the entities; words are the CoNLL-U tokens or
 * whitespace-separated. Each entity finds its first word by binary search, so a document
 * costs O((words + entities) · log words), not words × entities.
 */
function conll(doc: Doc, entities: Entity[]): string {
  const words = doc.words ?? [...doc.text.matchAll(/\S+/g)].map((m) => ({ start: m.index!, end: m.index! + m[0].length }))
  const tags = words.map(() => 'O')
  for (const e of entities) {
    const type = 'entity_group' in e ? e.entity_group : e.entity.replace(/^[BI]-/, '')
    // The first word that ends after the entity starts (words are in text order).
    let lo = 0
    let hi = words.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (words[mid].end > e.start) hi = mid
      else lo = mid + 1
    }
    let first = true
    for (let i = lo; i < words.length && words[i].start < e.end; i++) {
      if (tags[i] === 'O') {
        tags[i] = `${first ? 'B' : 'I'}-${type}`
        first = false
      }
    }
  }
  return words.map((w, i) => `${doc.text.slice(w.start, w.end)}\t${tags[i]}`).join('\n')
}

// A closed stderr loses messages, never the process.
process.stderr.on('error', () => undefined)

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE' && service.running) {
    // serve or worker: the log's reader went away; the service goes on, and says so once.
    if (!service.stdoutBroken) process.stderr.write('eurobert-ner: stdout was closed (EPIPE): the event log is lost from here on; still running\n')
    service.stdoutBroken = true
    return
  }
  if (e.code === 'EPIPE') process.exit(0) // `eurobert-ner … | head` closed the pipe
  // Any other failure to write (a full disk, /dev/full) loses output: say so and fail.
  process.stderr.write(`eurobert-ner: error: cannot write the output: ${e.message}\n`)
  process.exit(EXIT_FAILURE)
})

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code
  },
  (e: Error & { code?: string }) => {
    const usage = e instanceof UsageError || e.code?.startsWith('ERR_PARSE_ARGS') || e instanceof RangeError || e instanceof TypeError
    const hint = usage && !(e instanceof UsageError) ? ' (see eurobert-ner --help)' : ''
    const message = e.message.split('\n')[0].replace(/^eurobert-ner: /, '')
    process.stderr.write(`eurobert-ner: ${usage ? '' : 'error: '}${message}${hint}\n`)
    process.exitCode = usage ? EXIT_USAGE : EXIT_FAILURE
  },
)
