// The `eurobert-ner` command as a subprocess: every input and output mode, streaming, errors.
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { readConllu } from '..'
import { FIXTURES, SLOWDOWN, TINY_MODEL } from './helpers/fixtures'

const CLI = path.join(__dirname, '..', 'dist', 'cli', 'index.js')
const MODEL = ['--model', TINY_MODEL, '--threads', '1']
const TEXTS = ['Erna Solberg besøkte Universitetet i Oslo.', 'Eg budde i Bergen då NRK sende «Nytt på nytt».', 'Kari 😀 jobber hos DNB i Trondheim.']

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', maxBuffer: 256 << 20 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

function tmp(name: string, content: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-cli-'))
  const file = path.join(dir, name)
  fs.writeFileSync(file, content)
  return file
}

function jsonl(stdout: string): { text: string; entities: { entity_group: string; start: number; end: number; word: string }[] }[] {
  return stdout.trim().split('\n').map((l) => JSON.parse(l))
}

test('a text argument prints the text with entities marked (plain when not a TTY)', (t) => {
  const r = cli([...MODEL, TEXTS[0]])
  t.is(r.code, 0, r.stderr)
  const line = r.stdout.trimEnd()
  t.regex(line, /\[[^\]]+\]\([A-Z_]+\)/)
  t.is(line.replace(/\[([^\]]+)\]\([A-Z_]+\)/g, '$1'), TEXTS[0], 'removing the marks gives the text back')
  t.false(line.includes('\x1b['), 'no color codes in a pipe')
})

test('jsonl: one record per input line from stdin, in input order, entities sliced from the text', (t) => {
  const r = cli([...MODEL, '--format', 'jsonl'], TEXTS.join('\n') + '\n\n')
  t.is(r.code, 0, r.stderr)
  const recs = jsonl(r.stdout)
  t.deepEqual(recs.map((x) => x.text), TEXTS)
  for (const rec of recs) for (const e of rec.entities) t.is(e.word, rec.text.slice(e.start, e.end))
})

test('--whole reads stdin or a .txt file as one document', (t) => {
  const input = TEXTS.join('\n')
  const r = cli([...MODEL, '--format', 'jsonl', '--whole'], input)
  t.deepEqual(jsonl(r.stdout).map((x) => x.text), [input])
  const file = tmp('doc.txt', input)
  t.deepEqual(jsonl(cli([...MODEL, '--format', 'jsonl', '--whole', '-f', file]).stdout).map((x) => x.text), [input])
  t.deepEqual(jsonl(cli([...MODEL, '--format', 'jsonl', '-f', file]).stdout).map((x) => x.text), TEXTS)
})

test('.jsonl files: the text field (or --field)', (t) => {
  const file = tmp('docs.jsonl', TEXTS.map((text, i) => JSON.stringify({ id: i, body: text })).join('\n') + '\n')
  const r = cli([...MODEL, '--format', 'jsonl', '--field', 'body', '-f', file])
  t.is(r.code, 0, r.stderr)
  t.deepEqual(jsonl(r.stdout).map((x) => x.text), TEXTS)
  const bad = cli([...MODEL, '-f', file])
  t.is(bad.code, 2)
  t.regex(bad.stderr, /docs\.jsonl:1: no string field "text"/)
})

test('json: one array for all documents; tsv: a header and one row per entity', (t) => {
  const json = JSON.parse(cli([...MODEL, '--format', 'json', ...TEXTS]).stdout)
  t.is(json.length, 3)
  const tsv = cli([...MODEL, '--format', 'tsv', ...TEXTS]).stdout.trim().split('\n')
  t.is(tsv[0], 'doc\tstart\tend\tlabel\tscore\tword')
  const entities = json.reduce((n: number, d: { entities: unknown[] }) => n + d.entities.length, 0)
  t.is(tsv.length - 1, entities)
  for (const row of tsv.slice(1)) {
    const [doc, start, end, label, score, word] = row.split('\t')
    t.is(TEXTS[Number(doc)].slice(Number(start), Number(end)), word)
    t.regex(label, /^[A-Z_]+$/)
    t.regex(score, /^\d\.\d{4}$/)
  }
})

test('CoNLL-U input with --format conll: one line per CoNLL-U token, in order', (t) => {
  const r = cli([...MODEL, '--format', 'conll', '-f', path.join(FIXTURES, 'sample.conllu')])
  t.is(r.code, 0, r.stderr)
  const blocks = r.stdout.trim().split('\n\n')
  const sentences = readConllu(path.join(FIXTURES, 'sample.conllu'))
  t.is(blocks.length, sentences.length)
  blocks.forEach((b, i) => {
    const rows = b.split('\n').map((l) => l.split('\t'))
    t.deepEqual(rows.map((x) => x[0]), sentences[i].tokens.map((x) => x.form))
  })
})

test('the CLI decodes with Viterbi by default where words are labelled (strategies first, average, max), argmax elsewhere', (t) => {
  const text = 'Vi besøkte Castillo de San Marcos i Florida.'
  const run = (...flags: string[]) => {
    const r = cli(['--threads', '2', '--format', 'json', ...flags, text])
    t.is(r.code, 0, r.stderr)
    return JSON.parse(r.stdout)
  }
  const byDefault = run()
  t.deepEqual(byDefault, run('--decode', 'viterbi'))
  // On this sentence the bundled model's two decodings differ (argmax splits the fort's name).
  t.notDeepEqual(byDefault, run('--decode', 'argmax'))
  // 'simple' labels tokens: Viterbi does not apply, and asking for it is an error.
  t.deepEqual(run('-a', 'simple'), run('-a', 'simple', '--decode', 'argmax'))
})

test("--format conll: each word's IOB2 tag from transformers' entities (bundled model, strategy first)", (t) => {
  const fx: { sentences: { text: string; first: { entity_group: string; start: number; end: number }[] }[] } = JSON.parse(
    fs.readFileSync(path.join(FIXTURES, 'norne-compact.expected.json'), 'utf8'),
  )
  for (const s of fx.sentences) {
    // Expected: whitespace words, B- on the first word an entity of transformers touches, I- after.
    const words = [...s.text.matchAll(/\S+/g)].map((m) => ({ form: m[0], start: m.index!, end: m.index! + m[0].length }))
    const tags = words.map(() => 'O')
    for (const e of s.first) {
      let first = true
      words.forEach((w, i) => {
        if (w.start < e.end && w.end > e.start) {
          tags[i] = `${first ? 'B' : 'I'}-${e.entity_group}`
          first = false
        }
      })
    }
    const r = cli(['--threads', '2', '-a', 'first', '--decode', 'argmax', '--format', 'conll', s.text])
    t.is(r.code, 0, r.stderr)
    t.deepEqual(
      r.stdout.trim().split('\n').map((l) => l.split('\t')),
      words.map((w, i) => [w.form, tags[i]]),
      s.text,
    )
  }
})

test('evaluate prints the report seqeval printed (tools/evaluate_seqeval.py), and --json the numbers', (t) => {
  const rec = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'eval.seqeval.json'), 'utf8'))
  const file = path.join(FIXTURES, 'eval.conllu')
  const r = cli(['evaluate', '--threads', '2', file])
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, rec.report.default_4)
  t.is(cli(['evaluate', '--threads', '2', '--digits', '2', file]).stdout, rec.report.default_2)
  t.is(cli(['evaluate', '--threads', '2', '--mode', 'strict', file]).stdout, rec.report.strict_4)
  const j = JSON.parse(cli(['evaluate', '--threads', '2', '--json', file]).stdout)
  t.is(j.sentences, 12)
  t.is(j.mode, 'default')
  t.is(j.micro.f1, rec.micro.f1)
  t.is(j.micro.precision, rec.micro.precision)
})

test('jsonl streams: the first record comes out before the last input line goes in', async (t) => {
  t.timeout(120_000 * SLOWDOWN)
  const child = spawn(process.execPath, [CLI, ...MODEL, '--format', 'jsonl', '--batch-size', '16'])
  child.stdout.setEncoding('utf8') // a character may straddle two chunks
  const lines = Array.from({ length: 10_000 }, (_, i) => `${TEXTS[i % 3]} ${i}`)
  let out = ''
  const firstOutput = new Promise<void>((resolve) => child.stdout.on('data', (d) => ((out += d), resolve())))
  child.stdin.write(lines.slice(0, 5000).join('\n') + '\n')
  await firstOutput
  const before = out.split('\n').filter(Boolean).length
  child.stdin.end(lines.slice(5000).join('\n') + '\n')
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  t.is(code, 0)
  t.true(before > 0 && before < 10_000, `${before} records before the input ended`)
  const recs = out.trim().split('\n').map((l) => JSON.parse(l).text)
  t.deepEqual(recs, lines)
})

test('user errors: one line on stderr, exit code 2, no stack trace', (t) => {
  const cases: [string[], string | undefined, RegExp][] = [
    [['--frobnicate', 'x'], undefined, /Unknown option '--frobnicate'/],
    [[...MODEL, '-f', '/no/such/file.txt'], undefined, /file not found: \/no\/such\/file\.txt/],
    [[...MODEL], '', /no input/],
    [[...MODEL, '--format', 'xml', 'x'], undefined, /--format must be one of/],
    [[...MODEL, '--batch-size', '0', 'x'], undefined, /--batch-size must be an integer/],
    [['--model', '/no/such/model', 'x'], undefined, /model folder not found/],
    [['evaluate', ...MODEL], undefined, /evaluate needs at least one CoNLL-U file/],
    [[...MODEL, '--threads', '100000', 'x'], undefined, /threads must be at most/],
    // Each names its flag once, with its range.
    [[...MODEL, '--threads', '0', 'x'], undefined, /^eurobert-ner: --threads must be an integer from 1 to/],
    [[...MODEL, '--aggregation-strategy', 'nope', 'x'], undefined, /^eurobert-ner: --aggregation-strategy must be one of none, simple, first, average, max/],
    [[...MODEL, '--max-tokens=-3', 'x'], undefined, /--max-tokens must be an integer/],
    [['serve', ...MODEL, '--port', '99999'], undefined, /--port must be an integer from 0 to 65535, got 99999/],
    [['serve', ...MODEL, '--payload-limit', '0'], undefined, /--payload-limit must be a size from 1 byte/],
    [['serve', ...MODEL, '--keep-alive-timeout-ms', '99999999999'], undefined, /--keep-alive-timeout-ms must be an integer from 0 to 2147483647/],
    [['worker', ...MODEL, '--drain-timeout-ms', '1e99'], undefined, /--drain-timeout-ms must be an integer/],
  ]
  for (const [args, input, message] of cases) {
    const r = cli(args, input)
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    t.false(r.stderr.includes('----'), r.stderr)
    t.regex(r.stderr, message)
    t.is(r.stderr.trimEnd().split('\n').length, 1, `one line: ${r.stderr}`)
    t.false(/\n\s+at /.test(r.stderr), 'no stack trace')
  }
})

// /dev/full exists on Linux and the BSDs; elsewhere the test is reported as skipped.
const withDevFull = fs.existsSync('/dev/full') ? test : test.skip
withDevFull('output that cannot be written (/dev/full) fails with exit code 1 and one line', (t) => {
  const full = fs.openSync('/dev/full', 'w')
  const r = spawnSync(process.execPath, [CLI, ...MODEL, '--format', 'jsonl', TEXTS[0]], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8' })
  fs.closeSync(full)
  t.is(r.status, 1)
  t.regex(r.stderr, /^eurobert-ner: error: cannot write the output: .*ENOSPC/)
  t.is(r.stderr.trimEnd().split('\n').length, 1)
})

// /proc/self/mem is a "regular file" that cannot be read from offset 0.
const withProcMem = fs.existsSync('/proc/self/mem') ? test : test.skip
withProcMem('a file that fails while read is named in the error', (t) => {
  const r = cli([...MODEL, '-f', '/proc/self/mem'])
  t.is(r.code, 1)
  t.regex(r.stderr, /^eurobert-ner: error: \/proc\/self\/mem: /)
  t.is(r.stderr.trimEnd().split('\n').length, 1)
})

test('--format conll is linear: a large document with many entities takes about as long as jsonl', (t) => {
  // 60,000 words, each an entity under strategy none with no labels ignored.
  const doc = tmp('big.txt', 'Oslo '.repeat(60_000).trim() + '\n')
  const args = [...MODEL, '-f', doc, '--whole', '-a', 'none', '--ignore-labels', ',']
  const time = (format: string) => {
    const started = process.hrtime.bigint()
    const r = cli([...args, '--format', format])
    t.is(r.code, 0, r.stderr)
    return { ms: Number(process.hrtime.bigint() - started) / 1e6, out: r.stdout }
  }
  const jsonl = time('jsonl')
  const conll = time('conll')
  t.is(conll.out.trim().split('\n').length, 60_000)
  // Quadratic (words × entities), it took ten times jsonl's time; the bound leaves room for a loaded machine.
  t.true(conll.ms < 3 * jsonl.ms + 3000, `conll ${Math.round(conll.ms)} ms, jsonl ${Math.round(jsonl.ms)} ms`)
})

test('an unreadable model: one line on stderr, exit code 1', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-cli-model-'))
  fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "gpt2"}')
  const r = cli(['--model', dir, 'Oslo'])
  t.is(r.code, 1)
  t.is(r.stderr.trim().split('\n').length, 1)
  t.regex(r.stderr, /config\.json: unsupported model_type 'gpt2'/)
})

test('--help and --version', (t) => {
  const help = cli(['--help'])
  t.is(help.code, 0)
  t.regex(help.stdout, /Exit codes:/)
  t.regex(help.stdout, /--format FORMAT/)
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'))
  t.is(cli(['--version']).stdout.trim(), pkg.version)
})

test('without --model the bundled NorNE model tags the sentence', (t) => {
  const r = cli(['Erna Solberg besøkte Universitetet i Oslo forrige uke.'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /\[Erna Solberg\]\(PER\)/)
})

test('inputs are checked like model files: a link to /dev/zero is refused, an endless line from a pipe ends in a clear error', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-cli-'))
  const zero = path.join(dir, 'zero.txt')
  fs.symlinkSync('/dev/zero', zero)
  for (const args of [[...MODEL, '-f', zero, '--whole'], [...MODEL, '-f', zero], ['evaluate', ...MODEL, zero]]) {
    const r = cli(args)
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    t.regex(r.stderr, /zero\.txt is not a regular file \(a device or socket\)/)
  }
  t.regex(cli([...MODEL, '-f', dir]).stderr, /is a folder, not a file/)
  // stdin from /dev/zero: one line that never ends; the bound stops it at 64 MB.
  const child = spawn(process.execPath, [CLI, ...MODEL], { stdio: [fs.openSync('/dev/zero', 'r'), 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  t.is(code, 1)
  t.regex(stderr, /stdin:1: a line over the 67108864-byte limit of one document/)
})

test('Unicode word grouping is linear in the text: ICU is given pieces, with the same words as the whole text', (t) => {
  const { unicodeSubwordRule, pieces } = require('../dist/pipeline/words') as typeof import('../src/pipeline/words')
  // Random code points of the BMP (what binary input decodes to): ICU alone is superlinear on them.
  let seed = 7
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
  const text = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(random() * 0xd700))).join('')
  const time = (s: string) => {
    const t0 = process.hrtime.bigint()
    unicodeSubwordRule(s)
    return Number(process.hrtime.bigint() - t0) / 1e6
  }
  const small = text(20_000)
  const large = text(160_000)
  time(small)
  const ratio = time(large) / Math.max(time(small), 1)
  t.true(ratio < 30, `8× the text took ${ratio.toFixed(1)}× the time`)
  // The pieces cut after whitespace, so ordinary text groups exactly as when segmented whole.
  const norwegian = fs.readFileSync(path.join(FIXTURES, 'sample.conllu'), 'utf8').split('\n').filter((l) => l.startsWith('# text = ')).map((l) => l.slice(9)).join(' ').repeat(200)
  const cuts = pieces(norwegian)
  t.true(cuts.length > 3)
  t.true(cuts.every(([, end]) => end === norwegian.length || /\s/.test(norwegian[end - 1])))
  const rule = unicodeSubwordRule(norwegian)
  const whole = [...new Intl.Segmenter(undefined, { granularity: 'word' }).segment(norwegian)]
  const starts = new Set(whole.map((s) => s.index))
  for (let i = 1; i < norwegian.length; i += 7) {
    if (/\s/.test(norwegian[i])) continue
    t.is(rule(norwegian, i, i + 1, { end: i } as never, ''), !starts.has(i), `at ${i}`)
  }
})

/** The CLI under a pseudo-terminal (util-linux `script`), with `env` added. */
function inTerminal(args: string[], env: Record<string, string | undefined>) {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env: { ...process.env, TERM: 'xterm', NO_COLOR: undefined, FORCE_COLOR: undefined, ...env } })
  return r.stdout
}
const withScript = spawnSync('script', ['--version']).status === 0 ? test : test.skip

withScript('color: on in a terminal; NO_COLOR and TERM=dumb turn it off; FORCE_COLOR turns it on in a pipe', (t) => {
  t.true(inTerminal([...MODEL, TEXTS[0]], {}).includes('\x1b['), 'a terminal gets color')
  t.false(inTerminal([...MODEL, TEXTS[0]], { NO_COLOR: '1' }).includes('\x1b['), 'NO_COLOR')
  t.false(inTerminal([...MODEL, TEXTS[0]], { TERM: 'dumb' }).includes('\x1b['), 'TERM=dumb')
  const forced = spawnSync(process.execPath, [CLI, ...MODEL, TEXTS[0]], { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '1' } })
  t.true(forced.stdout.includes('\x1b['), 'FORCE_COLOR in a pipe')
})

test('-f - is standard input, among files or alone; twice is a usage error', (t) => {
  const file = tmp('one.txt', TEXTS[0] + '\n')
  const r = cli([...MODEL, '--format', 'jsonl', '-f', file, '-f', '-'], TEXTS.slice(1).join('\n') + '\n')
  t.is(r.code, 0, r.stderr)
  t.deepEqual(jsonl(r.stdout).map((x) => x.text), TEXTS)
  t.deepEqual(jsonl(cli([...MODEL, '--format', 'jsonl', '--whole', '-f', '-'], TEXTS.join('\n')).stdout).map((x) => x.text), [TEXTS.join('\n')])
  const twice = cli([...MODEL, '-f', '-', '-f', '-'], 'Oslo\n')
  t.is(twice.code, 2)
  t.regex(twice.stderr, /^eurobert-ner: -f - \(standard input\) can be given once\n$/)
})

test('no native binary for this platform: exit 1 (a failure, not a usage error) with one clear line', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-cli-'))
  const hook = path.join(dir, 'hook.js')
  fs.writeFileSync(hook, `const M = require('module'); const r = M._resolveFilename; M._resolveFilename = function (q, ...a) { if (/binding\\.js$/.test(q)) throw new Error('no binary in this test'); return r.call(this, q, ...a) }\n`)
  const run = spawnSync(process.execPath, ['-r', hook, CLI, ...MODEL, 'Oslo'], { encoding: 'utf8' })
  t.is(run.status, 1, run.stderr)
  t.true(run.stderr.startsWith(`eurobert-ner: error: no native binary for ${process.platform}-${process.arch} could be loaded.`), run.stderr)
  t.is(run.stderr.trim().split('\n').length, 1)
  fs.rmSync(dir, { recursive: true, force: true })
})

test('the built bin is executable, so `npx eurobert-ner` works in the checkout after npm run build', (t) => {
  t.true((fs.statSync(CLI).mode & 0o111) !== 0, (fs.statSync(CLI).mode & 0o777).toString(8))
})
