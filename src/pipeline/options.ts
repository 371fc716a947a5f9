// Option names, in one place: every option has its camelCase name and the name transformers
// and transformers.js give it (`aggregation_strategy`, `ignore_labels`, `batch_size`, ...).
// Either spelling is accepted; an unknown name is a TypeError naming the nearest known one,
// and both spellings at once with different values are an error. Nothing is silently ignored.
import { describe } from './args'

/** Per-call NER options: camelCase → transformers' name. */
export const NER_OPTIONS = {
  aggregationStrategy: 'aggregation_strategy',
  ignoreLabels: 'ignore_labels',
  stride: 'stride',
  batchSize: 'batch_size',
  maxBatchTokens: 'max_batch_tokens',
  output: 'output',
  words: 'words',
  decode: 'decode',
  maxLength: 'max_length',
  maxTokens: 'max_tokens',
  signal: 'signal',
} as const

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
      throw new TypeError(`${method}: unknown option '${key}'${near ? ` (did you mean '${near}'?)` : ''}`)
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

/** The name closest to `key` by edit distance (case-insensitive), if close enough to be a typo. */
function nearest(key: string, names: string[]): string | undefined {
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
