// The NER pipeline: transformers' token-classification semantics over our runtime, with
// clean spans by default, windows over long texts and optional Unicode word grouping.
import * as fs from 'node:fs'

import {
  AGGREGATION_STRATEGIES,
  aggregate,
  AggregationStrategy,
  dropIgnored,
  Entity,
  gatherPreEntities,
  GroupedEntity,
  mergeOverlapping,
  SubwordRule,
  TokenEntity,
  transformersSubword,
  wordAwareSubword,
} from './aggregate'
import { checkOptions, describe, textList } from './args'
import { Batcher } from './batcher'
import { BUNDLED_MODEL } from './bundled'
import { Decoding, DECODINGS } from './viterbi'
import { Label, parseLabels } from './labels'
import { DType, EuroBertModel, LoadOptions, ScoredWindow } from './model'
import { trimSpan, unicodeSubwordRule } from './words'

export type { AggregationStrategy, Entity, GroupedEntity, TokenEntity }

export interface NerOptions {
  /** 'none' (default, one result per token, as transformers), 'simple', 'first', 'average' or 'max'. */
  aggregationStrategy?: AggregationStrategy
  /** Labels (strategy none) or entity groups to leave out; default `['O']`. */
  ignoreLabels?: readonly string[]
  /**
   * Tokens shared by consecutive windows when a text is longer than one window. Default: a
   * quarter of the window. Long texts are always windowed, never truncated.
   */
  stride?: number
  /** Most windows per forward pass (default 32). */
  batchSize?: number
  /** Most tokens per forward pass (default 16384); memory grows linearly with it. */
  maxBatchTokens?: number
  /**
   * 'clean' (default): spans trimmed of surrounding whitespace and `word === text.slice(start, end)`.
   * 'transformers': transformers' own fields (leading spaces in spans and words, raw token
   * strings for strategy none), for diffing against Python.
   */
  output?: 'clean' | 'transformers'
  /**
   * How first/average/max find words. 'transformers' (default): a token continues a word
   * unless an ASCII space precedes it. 'unicode': Unicode word boundaries, so words after a
   * newline, tab, NBSP, bracket or quote stand alone and punctuation is its own word; clean
   * spans are then also trimmed of punctuation at their edges.
   */
  words?: 'transformers' | 'unicode'
  /**
   * 'argmax' (default, as transformers): each word's own best label. 'viterbi': the best
   * label sequence in which `I-X` only follows `B-X` or `I-X`, over the words of strategies
   * first, average and max.
   */
  decode?: Decoding
  /** Tokens per window, special tokens included (default: the tokenizer's model_max_length). */
  maxLength?: number
}

/** Options of the pipeline itself (not of each call). */
export interface PipelineOptions {
  /**
   * How long a call waits for others to share its forward pass (default 2 ms). Calls that
   * arrive while a batch runs always join the next one.
   */
  maxWaitMs?: number
  /** Called with the texts, calls and tokens of each merged batch (for metrics). */
  onBatch?: (texts: number, calls: number, tokens: number) => void
}

export interface Ner {
  (text: string, options?: NerOptions): Promise<Entity[]>
  (texts: readonly string[], options?: NerOptions): Promise<Entity[][]>
  readonly model: EuroBertModel
  /** Texts waiting for the next batch. */
  readonly queueDepth: number
  /** Frees the model's weights now. */
  dispose(): void
}

/** transformers.js' load options, accepted so code ported from it keeps working. */
export interface TransformersJsOptions {
  dtype?: 'fp32' | 'fp16' | DType
  revision?: string
  cache_dir?: string
  local_files_only?: boolean
  progress_callback?: (info: { status: string; name: string; file: string; progress: number; loaded: number; total: number }) => void
}

type PortedOptions = Omit<LoadOptions, 'dtype'> & NerOptions & TransformersJsOptions

const TASKS = ['token-classification', 'ner']
/** Tokens decoded between two yields to the event loop. */
const YIELD_TOKENS = 4096

/**
 * Loads a model (default: the bundled compact NorNE model) and returns the NER function,
 * like transformers' `pipeline("token-classification", model)`. `model` is a folder or a Hub
 * id `owner/name[@revision]`. Options given here are defaults for every call. The call shape
 * of transformers.js, `pipeline('token-classification', model, options)`, works too.
 */
export async function pipeline(model?: string, options?: LoadOptions & NerOptions & PipelineOptions): Promise<Ner>
export async function pipeline(task: 'token-classification' | 'ner', model?: string, options?: PortedOptions): Promise<Ner>
export async function pipeline(...args: unknown[]): Promise<Ner> {
  let [model, options] = args as [string | undefined, (LoadOptions & NerOptions & PipelineOptions) | undefined]
  if (typeof model === 'string' && TASKS.includes(model) && !isFolder(model)) {
    model = args[1] as string | undefined
    options = fromTransformersJs(model, (args[2] as PortedOptions | undefined) ?? {})
  }
  const { threads, dtype, device, revision, token, endpoint, cacheDir, localFilesOnly, onProgress, maxWaitMs, onBatch, ...defaults } = options ?? {}
  if (maxWaitMs !== undefined && !(Number.isFinite(maxWaitMs) && maxWaitMs >= 0)) {
    throw new RangeError(`pipeline: maxWaitMs must be a non-negative number, got ${describe(maxWaitMs)}`)
  }
  const model_ = await EuroBertModel.load(model ?? BUNDLED_MODEL, { threads, dtype, device, revision, token, endpoint, cacheDir, localFilesOnly, onProgress })
  checkNerOptions(defaults)
  const labels = parseLabels(model_.labels)
  const batcher = new Batcher(model_, maxWaitMs ?? 2, { onBatch })
  const run = async (texts: string | readonly string[], callOptions: NerOptions = {}) => {
    checkNerOptions(callOptions)
    return recognize(model_, labels, texts, { ...defaults, ...callOptions }, batcher)
  }
  return Object.defineProperties(Object.assign(run, { model: model_, dispose: () => model_.dispose() }), {
    queueDepth: { get: () => batcher.depth },
  }) as unknown as Ner
}

function fromTransformersJs(model: string | undefined, o: PortedOptions): LoadOptions & NerOptions {
  const { dtype, revision, cache_dir, local_files_only, progress_callback, ...rest } = o
  const mapped: LoadOptions = { ...rest }
  if (dtype !== undefined) mapped.dtype = ({ fp32: 'f32', fp16: 'f16' } as Record<string, DType>)[dtype] ?? (dtype as DType)
  mapped.revision = revision ?? o.revision
  mapped.cacheDir = cache_dir ?? o.cacheDir
  mapped.localFilesOnly = local_files_only ?? o.localFilesOnly
  if (progress_callback) {
    mapped.onProgress = ({ file, loaded, total }) =>
      progress_callback({ status: 'progress', name: model ?? '', file, progress: total > 0 ? (100 * loaded) / total : 100, loaded, total })
  }
  for (const k of Object.keys(mapped) as (keyof LoadOptions)[]) if (mapped[k] === undefined) delete mapped[k]
  return mapped
}

function isFolder(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory()
  } catch {
    return false
  }
}

async function recognize(
  model: EuroBertModel,
  labels: Label[],
  texts: string | readonly string[],
  options: NerOptions,
  batcher: Batcher,
): Promise<Entity[] | Entity[][]> {
  const list = textList('ner', texts)
  const strategy = options.aggregationStrategy ?? 'none'
  if (options.decode === 'viterbi' && (strategy === 'none' || strategy === 'simple')) {
    throw new RangeError(`ner: decode 'viterbi' labels words; use aggregationStrategy 'first', 'average' or 'max'`)
  }
  const clean = (options.output ?? 'clean') === 'clean'
  const unicodeWords = options.words === 'unicode'
  const maxLength = options.maxLength ?? model.modelMaxLength
  if (maxLength > model.maxLength) {
    throw new RangeError(`ner: maxLength ${maxLength} exceeds the model's ${model.maxLength} positions`)
  }
  if (options.stride !== undefined && options.stride >= maxLength) {
    throw new RangeError(`ner: stride ${options.stride} must be less than the window length ${maxLength}`)
  }

  const scored = await batcher.score(list, {
    maxLength,
    stride: options.stride,
    batchSize: options.batchSize,
    maxBatchTokens: options.maxBatchTokens,
    // Word-aware tokenizers decide subwords from token strings, even for clean output.
    tokens: !clean || model.continuingSubwordPrefix !== undefined,
  })

  // In clean output, words come from the text, so transformers' decoding is skipped.
  const decode = clean ? () => '' : (tokens: string[]) => model.decodeTokens(tokens)
  const results: Entity[][] = []
  // Post-processing runs on the JavaScript thread: a large request yields to the event loop
  // every YIELD_TOKENS tokens, so a server stays responsive while it is decoded.
  let sinceYield = 0
  for (let t = 0; t < list.length; t++) {
    const text = list[t]
    const rule: SubwordRule = unicodeWords ? unicodeSubwordRule(text) : model.continuingSubwordPrefix !== undefined ? wordAwareSubword : transformersSubword
    const { ids, offsets, tokens, windows } = scored[t]
    const perWindow: Entity[][] = []
    for (const w of windows) {
      const pre = gatherPreEntities(text, { ...w, ids, offsets, tokens }, labels.length, rule, model.unkTokenId)
      const entities = dropIgnored(aggregate(pre, strategy, labels, decode, options.decode), options.ignoreLabels ?? ['O'])
      perWindow.push(windows.length > 1 && strategy === 'none' ? ownTokens(entities as TokenEntity[], w) : entities)
      sinceYield += w.to - w.from
      if (sinceYield >= YIELD_TOKENS) {
        sinceYield = 0
        await new Promise<void>((resolve) => setImmediate(resolve))
      }
    }
    let entities = perWindow.flat()
    if (perWindow.length > 1 && strategy !== 'none') entities = mergeOverlapping(entities)
    results.push(clean ? cleanSpans(text, entities, unicodeWords) : entities)
  }
  return typeof texts === 'string' ? results[0] : results
}

/** Strategy none over windows: each token is taken from the window where it has most context. */
function ownTokens(entities: TokenEntity[], w: ScoredWindow): TokenEntity[] {
  return entities.filter((e) => e.index >= w.owns[0] && e.index < w.owns[1])
}

function cleanSpans(text: string, entities: Entity[], punctuation: boolean): Entity[] {
  const out: Entity[] = []
  for (const e of entities) {
    const [start, end] = trimSpan(text, e.start, e.end, punctuation)
    if (start < end) out.push({ ...e, word: text.slice(start, end), start, end })
  }
  return out
}

function checkNerOptions(o: NerOptions): void {
  checkOptions('ner', o, { batchSize: 'int', maxBatchTokens: 'int', maxLength: 'int' })
  if (o.aggregationStrategy !== undefined && !AGGREGATION_STRATEGIES.includes(o.aggregationStrategy)) {
    throw new RangeError(`ner: aggregationStrategy must be one of ${AGGREGATION_STRATEGIES.join(', ')}, got ${describe(o.aggregationStrategy)}`)
  }
  if (o.stride !== undefined && !(Number.isInteger(o.stride) && o.stride >= 0)) {
    throw new RangeError(`ner: stride must be a non-negative integer, got ${describe(o.stride)}`)
  }
  if (o.ignoreLabels !== undefined && !(Array.isArray(o.ignoreLabels) && o.ignoreLabels.every((l) => typeof l === 'string'))) {
    throw new TypeError(`ner: ignoreLabels must be an array of strings, got ${describe(o.ignoreLabels)}`)
  }
  if (o.output !== undefined && o.output !== 'clean' && o.output !== 'transformers') {
    throw new RangeError(`ner: output must be 'clean' or 'transformers', got ${describe(o.output)}`)
  }
  if (o.decode !== undefined && !DECODINGS.includes(o.decode)) {
    throw new RangeError(`ner: decode must be 'argmax' or 'viterbi', got ${describe(o.decode)}`)
  }
  if (o.words !== undefined && o.words !== 'transformers' && o.words !== 'unicode') {
    throw new RangeError(`ner: words must be 'transformers' or 'unicode', got ${describe(o.words)}`)
  }
}
