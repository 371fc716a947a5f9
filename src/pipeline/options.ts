// Option names, in one place: every option has its camelCase name and the name transformers
// and transformers.js give it (`aggregation_strategy`, `ignore_labels`, `batch_size`, ...).
// Either spelling is accepted; an unknown name is a TypeError naming the nearest known one,
// and both spellings at once with different values are an error. Nothing is silently ignored.
import { AGGREGATION_STRATEGIES } from './aggregate'
import { describe } from './args'
import { DECODINGS } from './viterbi'
import type { NerOptions } from './pipeline'

/** How an option's value is checked: its type and range, nothing the core decides. */
export type OptionKind =
  | { type: 'enum'; values: readonly string[] }
  | { type: 'int'; min: number }
  | { type: 'strings' }
  | { type: 'signal' }

export interface OptionSpec {
  /** transformers' (and transformers.js') name. */
  snake: string
  kind: OptionKind
  /** One line for the API docs, OpenAPI and the CLI help. */
  doc: string
  /** Whether a client of `serve` or a producer of worker jobs may set it. */
  served: boolean
  /** The CLI flag for it, where there is one. */
  cli?: { flag: string; short?: string; arg: string }
}

/**
 * Every per-call NER option, once: the type `NerOptions` documents them; `NER_OPTIONS`, the
 * checks (`checkNerOptions`), serve's OpenAPI schema and the CLI's flags and help are made
 * from this table. The rules that need the model (stride against the window, maxLength
 * against the positions) are the core's, and its errors come back as RangeErrors.
 */
export const NER_OPTION_SPECS = {
  aggregationStrategy: { snake: 'aggregation_strategy', kind: { type: 'enum', values: AGGREGATION_STRATEGIES }, served: true, doc: 'how tokens are grouped into entities: none (one result per token), simple, first, average or max', cli: { flag: 'aggregation-strategy', short: 'a', arg: 'S' } },
  ignoreLabels: { snake: 'ignore_labels', kind: { type: 'strings' }, served: true, doc: 'labels or entity groups to leave out (default: O)', cli: { flag: 'ignore-labels', arg: 'L,L' } },
  stride: { snake: 'stride', kind: { type: 'int', min: 0 }, served: true, doc: 'tokens shared by the windows of a long text (default: a quarter of a window)', cli: { flag: 'stride', arg: 'N' } },
  batchSize: { snake: 'batch_size', kind: { type: 'int', min: 1 }, served: false, doc: 'most windows per forward pass (default 32)', cli: { flag: 'batch-size', arg: 'N' } },
  maxBatchTokens: { snake: 'max_batch_tokens', kind: { type: 'int', min: 1 }, served: false, doc: 'most tokens per forward pass (default 16384); memory grows with it' },
  output: { snake: 'output', kind: { type: 'enum', values: ['clean', 'transformers'] }, served: true, doc: "clean spans (default), or transformers' own fields for diffing against Python", cli: { flag: 'output', arg: 'O' } },
  words: { snake: 'words', kind: { type: 'enum', values: ['transformers', 'unicode'] }, served: true, doc: "how first/average/max find words: transformers' space rule, or Unicode word boundaries", cli: { flag: 'words', arg: 'W' } },
  decode: { snake: 'decode', kind: { type: 'enum', values: DECODINGS }, served: true, doc: 'argmax (as transformers) or viterbi (IOB2-valid label sequences)', cli: { flag: 'decode', arg: 'D' } },
  maxLength: { snake: 'max_length', kind: { type: 'int', min: 1 }, served: true, doc: "tokens per window, special tokens included (default: the tokenizer's model_max_length)", cli: { flag: 'max-length', arg: 'N' } },
  maxTokens: { snake: 'max_tokens', kind: { type: 'int', min: 1 }, served: false, doc: "most tokens the call's windows may run; over it, a TooLargeError before any forward pass", cli: { flag: 'max-tokens', arg: 'N' } },
  signal: { snake: 'signal', kind: { type: 'signal' }, served: false, doc: 'an AbortSignal that cancels the call, down to the native pool' },
} as const satisfies Record<string, OptionSpec>

export type NerOptionName = keyof typeof NER_OPTION_SPECS

/** Per-call NER options: camelCase → transformers' name. */
export const NER_OPTIONS = Object.fromEntries(Object.entries(NER_OPTION_SPECS).map(([k, v]) => [k, v.snake])) as { [K in NerOptionName]: (typeof NER_OPTION_SPECS)[K]['snake'] }

/** Options a client of serve or a producer of worker jobs may not set: batch sizes and budgets are the operator's. */
export const SERVER_SET: readonly string[] = Object.entries(NER_OPTION_SPECS as Record<string, OptionSpec>).filter(([, v]) => !v.served).map(([k]) => k)

/** Checks each NER option's type and range as the table states them; a TypeError or RangeError names it. */
export function checkNerOptions(method: string, o: object): void {
  for (const [name, spec] of Object.entries(NER_OPTION_SPECS as Record<string, OptionSpec>)) {
    const v = (o as Record<string, unknown>)[name]
    if (v === undefined) continue
    const k = spec.kind
    if (k.type === 'enum' && !(typeof v === 'string' && k.values.includes(v))) {
      throw new RangeError(`${method}: ${name} must be one of ${k.values.join(', ')}, got ${describe(v)}`)
    }
    // Integers travel to the core as u32.
    if (k.type === 'int' && !(Number.isInteger(v) && (v as number) >= k.min && (v as number) <= 0xffffffff)) {
      throw new RangeError(`${method}: ${name} must be ${k.min === 0 ? 'a non-negative' : 'a positive'} integer, got ${describe(v)}`)
    }
    if (k.type === 'strings' && !(Array.isArray(v) && v.every((l) => typeof l === 'string'))) {
      throw new TypeError(`${method}: ${name} must be an array of strings, got ${describe(v)}`)
    }
    if (k.type === 'signal' && !(v instanceof AbortSignal)) throw new TypeError(`${method}: ${name} must be an AbortSignal, got ${describe(v)}`)
  }
}

/** The JSON Schema of the NER options a client may send (serve's OpenAPI document). */
export function servedOptionsSchema(): { type: 'object'; additionalProperties: false; properties: Record<string, object> } {
  const properties: Record<string, object> = {}
  for (const [name, spec] of Object.entries(NER_OPTION_SPECS as Record<string, OptionSpec>)) {
    if (!spec.served) continue
    const k = spec.kind
    const schema = k.type === 'enum' ? { enum: [...k.values] } : k.type === 'int' ? { type: 'integer', minimum: k.min } : { type: 'array', items: { type: 'string' } }
    properties[name] = { ...schema, description: spec.doc }
  }
  return { type: 'object', additionalProperties: false, properties }
}

/** The CLI's help lines for the NER options that have a flag; `defaults` names the CLI's own. */
export function cliOptionHelp(defaults: Partial<Record<NerOptionName, string>> = {}): string {
  const lines: string[] = []
  for (const [name, spec] of Object.entries(NER_OPTION_SPECS as Record<string, OptionSpec>)) {
    if (!spec.cli) continue
    const left = `  ${spec.cli.short ? `-${spec.cli.short}, ` : '    '}--${spec.cli.flag} ${spec.cli.arg}`
    const d = defaults[name as NerOptionName]
    const doc = d ? `${spec.doc.replace(/ \(default[^)]*\)/, '')} (default: ${d})` : spec.doc
    lines.push(left.length < 28 ? `${left.padEnd(28)}${doc}` : `${left}\n${' '.repeat(28)}${doc}`)
  }
  return lines.join('\n')
}

/** Load options (the model and the Hub): camelCase → Python's / transformers.js' name. */
export const LOAD_OPTIONS = {
  threads: 'threads',
  dtype: 'dtype',
  device: 'device',
  revision: 'revision',
  token: 'token',
  endpoint: 'endpoint',
  cacheDir: 'cache_dir',
  localFilesOnly: 'local_files_only',
  onProgress: 'on_progress',
  // transformers.js' progress callback, with its own argument shape (see pipeline.ts).
  progress_callback: 'progress_callback',
  timeoutMs: 'timeout_ms',
  maxBytes: 'max_bytes',
  signal: 'signal',
} as const

/** Options of the pipeline itself. */
export const PIPELINE_OPTIONS = {
  maxWaitMs: 'max_wait_ms',
  onBatch: 'on_batch',
} as const

type Names = Record<string, string>

/**
 * `options` with every key in its camelCase spelling, checked against `known` (one or more
 * name tables). `method` prefixes the messages. Values are not checked here.
 */
export function normalize<T extends object>(method: string, options: unknown, ...known: Names[]): T {
  if (options === undefined || options === null) return {} as T
  if (typeof options !== 'object' || Array.isArray(options)) throw new TypeError(`${method}: options must be an object, got ${describe(options)}`)
  const camelOf = new Map<string, string>()
  for (const table of known) {
    for (const [camel, snake] of Object.entries(table)) {
      camelOf.set(camel, camel)
      camelOf.set(snake, camel)
    }
  }
  const out: Record<string, unknown> = {}
  const from: Record<string, string> = {}
  for (const [key, value] of Object.entries(options)) {
    const camel = camelOf.get(key)
    if (!camel) {
      const near = nearest(key, [...camelOf.keys()])
      // The echo is bounded too: a megabyte key is not repeated back in full.
      const shown = key.length > MAX_SUGGESTED_KEY ? `${key.slice(0, MAX_SUGGESTED_KEY)}…' (${key.length} characters` : `${key}'`
      throw new TypeError(`${method}: unknown option '${shown}${key.length > MAX_SUGGESTED_KEY ? ')' : ''}${near ? ` (did you mean '${near}'?)` : ''}`)
    }
    if (value === undefined) continue
    if (camel in out && out[camel] !== value && JSON.stringify(out[camel]) !== JSON.stringify(value)) {
      throw new TypeError(`${method}: '${from[camel]}' and '${key}' are the same option with different values`)
    }
    out[camel] = value
    from[camel] = key
  }
  // transformers takes strategy names in any case ('SIMPLE').
  if (typeof out.aggregationStrategy === 'string') out.aggregationStrategy = out.aggregationStrategy.toLowerCase()
  return out as T
}

/** Longest key the suggestion looks at: a typo is short, and the edit distance is quadratic. */
const MAX_SUGGESTED_KEY = 64

/** The name closest to `key` by edit distance (case-insensitive), if close enough to be a typo. */
function nearest(key: string, names: string[]): string | undefined {
  if (key.length > MAX_SUGGESTED_KEY) return undefined
  let best: string | undefined
  let bestDistance = Infinity
  for (const name of names) {
    const d = distance(key.toLowerCase(), name.toLowerCase())
    if (d < bestDistance) [best, bestDistance] = [name, d]
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]
}

/**
 * What the CLI and the page of `serve` ask for where the reader does not say: whole words by
 * Unicode rules, each word's first token, and IOB2-valid (Viterbi) labels where words are
 * labelled, which gave the bundled model 1.3–1.7 more dev F1 points than argmax in every run
 * (models/norne-compact/README.md). ner() itself keeps transformers' defaults.
 */
export function withReaderDefaults(given: NerOptions): NerOptions {
  const options: NerOptions = { aggregationStrategy: 'first', words: 'unicode', ...given }
  const labelsWords = options.aggregationStrategy !== 'none' && options.aggregationStrategy !== 'simple'
  return options.decode === undefined && labelsWords ? { ...options, decode: 'viterbi' } : options
}
