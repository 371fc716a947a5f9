// The NER pipeline: transformers' token-classification semantics over our runtime, with
// clean spans by default, windows over long texts and optional Unicode word grouping.
import type { Duplex } from 'node:stream'

import {
  aggregate,
  AggregationStrategy,
  Entity,
  gatherPreEntities,
  GroupedEntity,
  mergeOverlapping,
  SubwordRule,
  TokenEntity,
  transformersSubword,
  wordAwareSubword,
} from './aggregate'
import { abortError, AbortError, throwIfAborted } from './abort'
import { describe, textList } from './args'
import { Batcher } from './batcher'
import { BUNDLED_MODEL } from './bundled'
import { duplexFrom, nextTurn, unlimitedListeners } from './runtime'
import { Decoding } from './viterbi'
import { isDirectory } from './hub'
import { Label, parseLabels } from './labels'
import { checkNerOptions, LOAD_OPTIONS, NER_OPTIONS, normalize, PIPELINE_OPTIONS } from './options'
import { DType, TokenClassifierModel, LoadOptions, PreparedWindow } from './model'
import type { ModelFiles } from './model-files'
import type { ProgressCallback, ProgressInfo } from './progress'
import { trimSpan, unicodeSubwordRule } from './words'

export type { AggregationStrategy, Entity, GroupedEntity, TokenEntity }

/** The strategies that group tokens into entities. */
export type GroupingStrategy = Exclude<AggregationStrategy, 'none'>
/** A strategy name in any case, as transformers accepts them (`'SIMPLE'`). */
export type StrategyName = AggregationStrategy | Uppercase<AggregationStrategy>
/** The entity type a strategy gives: tokens for 'none', grouped entities for the others. */
export type EntityFor<S> = Lowercase<S & string> extends 'none' ? TokenEntity : Lowercase<S & string> extends GroupingStrategy ? GroupedEntity : Entity

export interface NerOptions {
  /**
   * 'none' (default, one result per token, as transformers), 'simple', 'first', 'average' or
   * 'max', in any case. Also spelled `aggregation_strategy`, like every option here has its
   * transformers name (`ignore_labels`, `batch_size`, `max_batch_tokens`, `max_length`).
   */
  aggregationStrategy?: StrategyName
  aggregation_strategy?: StrategyName
  /**
   * Labels (strategy none) or entity groups to leave out; default `['O']`. Applied after
   * grouping, as transformers does (transformers.js drops tokens before grouping).
   */
  ignoreLabels?: readonly string[]
  ignore_labels?: readonly string[]
  /**
   * Tokens shared by consecutive windows when a text is longer than one window. Default: a
   * quarter of the window. Long texts are always windowed, never truncated.
   */
  stride?: number
  /** Most windows per forward pass (default 32). */
  batchSize?: number
  batch_size?: number
  /** Most tokens per forward pass (default 16384); memory grows linearly with it. */
  maxBatchTokens?: number
  max_batch_tokens?: number
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
  max_length?: number
  /**
   * Most tokens the call's windows may run, special tokens included: what the call really
   * costs, which a smaller `maxLength` or a larger `stride` multiplies. Over it, the call fails
   * with a `TooLargeError` (a RangeError) after tokenizing, before any forward pass.
   */
  maxTokens?: number
  max_tokens?: number
  /**
   * Cancels the call: it rejects at once with an AbortError; its windows that have not run
   * never do, and a forward pass that only it still needed stops in the native pool.
   */
  signal?: AbortSignal
}

/** Options of the pipeline itself (not of each call). */
export interface PipelineOptions {
  /**
   * How long a call to an idle pipeline waits for others to share its forward pass (default
   * 0: it runs at once, merged only with the calls made in the same tick). Calls that arrive
   * while a batch runs always join the next one, so batches grow under load either way.
   */
  maxWaitMs?: number
  /** Called with the texts, calls and tokens of each merged batch (for metrics). */
  onBatch?: (texts: number, calls: number, tokens: number) => void
}

/** A document for `stream()`: a text, or an object with `text` and any fields to pass through. */
export type StreamInput = string | { readonly text: string }
/** What `stream()` yields for each document, in input order: its fields and its entities. */
export type StreamResult<I, E> = (I extends string ? { text: string } : I) & { entities: E[] }

export interface StreamOptions extends NerOptions {
  /** Documents read ahead of the consumer at most (default 64): memory stays bounded by it. */
  highWaterMark?: number
}

/** The NER function; `D` is the pipeline's default strategy, which calls may override. */
export interface Ner<D extends StrategyName = 'none'> {
  <S extends StrategyName = D>(text: string, options?: NerOptions & { aggregationStrategy?: S; aggregation_strategy?: S }): Promise<EntityFor<S>[]>
  <S extends StrategyName = D>(texts: readonly string[], options?: NerOptions & { aggregationStrategy?: S; aggregation_strategy?: S }): Promise<EntityFor<S>[][]>
  /**
   * Entities for a stream of documents (an iterable or async iterable of texts or `{text,
   * ...}` objects), yielded in input order as `{...document, entities}`; documents are
   * batched across one another, and at most `highWaterMark` are read ahead of the consumer.
   */
  stream<I extends StreamInput, S extends StrategyName = D>(source: Iterable<I> | AsyncIterable<I>, options?: StreamOptions & { aggregationStrategy?: S; aggregation_strategy?: S }): AsyncGenerator<StreamResult<I, EntityFor<S>>>
  /** `stream()` as a Node object-mode Duplex: `pipeline(readable, ner.createStream(), writable)`. */
  createStream(options?: StreamOptions): Duplex
  /**
   * What a call would cost, without running the model: the tokens its windows would run
   * (special tokens included) and how many windows, for these texts and window options.
   */
  cost(texts: string | readonly string[], options?: NerOptions): Promise<{ tokens: number; windows: number }>
  readonly model: TokenClassifierModel
  /** Texts of calls that have not finished. */
  readonly queueDepth: number
  /**
   * Ends every call in progress with `reason` (an AbortError by default) and stops the
   * forward pass that runs, for a shutdown's deadline; later calls fail the same way.
   */
  cancel(reason?: Error): void
  /** Ends calls in progress (as `cancel()`) and frees the model's weights now. */
  dispose(): void
}

/** transformers.js' load options, accepted so code ported from it keeps working. */
export interface TransformersJsOptions {
  dtype?: 'fp32' | 'fp16' | DType
  revision?: string
  cache_dir?: string
  local_files_only?: boolean
  progress_callback?: ProgressCallback
}

type AllOptions = Omit<LoadOptions, 'dtype'> & NerOptions & PipelineOptions & TransformersJsOptions

const TASKS = ['token-classification', 'ner']
/** Tokens decoded between two yields to the event loop. */
const YIELD_TOKENS = 4096

/** A model folder, a Hub id `owner/name[@revision]`, a URL of a folder served as static files, or the files as bytes. */
export type ModelSource = string | URL | ModelFiles

/**
 * Loads a model (default: the bundled compact NorNE model) and returns the NER function,
 * like transformers' `pipeline("token-classification", model)`. `model` is a folder, a Hub
 * id `owner/name[@revision]`, the URL of a folder served as static files, or the files
 * themselves, `{ 'config.json': ArrayBuffer | typed array | Blob, ... }` (a browser's way).
 * Options given here are defaults for every call, in camelCase or transformers' spelling.
 * The call shape of transformers.js, `pipeline('token-classification', model, options)`,
 * works too. `signal` cancels the load (a download included).
 */
export async function pipeline<D extends StrategyName = 'none'>(model?: ModelSource, options?: AllOptions & { aggregationStrategy?: D; aggregation_strategy?: D }): Promise<Ner<D>>
export async function pipeline<D extends StrategyName = 'none'>(task: 'token-classification' | 'ner', model?: ModelSource, options?: AllOptions & { aggregationStrategy?: D; aggregation_strategy?: D }): Promise<Ner<D>>
export async function pipeline(...args: unknown[]): Promise<Ner<StrategyName>> {
  let [model, raw] = args as [ModelSource | undefined, unknown]
  if (typeof model === 'string' && TASKS.includes(model) && !isDirectory(model)) {
    model = args[1] as ModelSource | undefined
    raw = args[2]
  }
  // Options are checked before the model loads: a typo costs nothing.
  const options = normalize<AllOptions>('pipeline', raw, NER_OPTIONS, LOAD_OPTIONS, PIPELINE_OPTIONS)
  const { threads, dtype, device, revision, token, endpoint, cacheDir, localFilesOnly, onProgress, progress_callback, timeoutMs, maxBytes, maxWaitMs, onBatch, signal, ...defaults } = options
  if (maxWaitMs !== undefined && !(Number.isFinite(maxWaitMs) && maxWaitMs >= 0)) {
    throw new RangeError(`pipeline: maxWaitMs must be a non-negative number, got ${describe(maxWaitMs)}`)
  }
  checkNerOptions('pipeline', defaults)
  // Either spelling gets transformers.js' events (both, if both are given).
  const callbacks = [onProgress, progress_callback].filter((f): f is ProgressCallback => typeof f === 'function')
  const progress = callbacks.length > 0 ? (info: ProgressInfo) => callbacks.forEach((f) => f(info)) : undefined
  const load: LoadOptions = { threads, dtype: dtype === undefined ? undefined : (({ fp32: 'f32', fp16: 'f16' } as Record<string, DType>)[dtype] ?? (dtype as DType)), device, revision, token, endpoint, cacheDir, localFilesOnly, onProgress: progress, timeoutMs, maxBytes, signal }
  for (const k of Object.keys(load) as (keyof LoadOptions)[]) if (load[k] === undefined) delete load[k]
  const model_ = await TokenClassifierModel.load(model ?? BUNDLED_MODEL, load)
  try {
    progress?.({ status: 'ready', task: 'token-classification', model: typeof model === 'string' || model instanceof URL ? String(model) : model === undefined ? BUNDLED_MODEL : 'files' })
  } catch {
    // A throwing callback must not fail a load that succeeded.
  }
  const labels = parseLabels(model_.labels)
  const batcher = new Batcher(model_, maxWaitMs ?? 0, { onBatch })
  const run = async (texts: string | readonly string[], callOptions?: NerOptions) => {
    const call = normalize<NerOptions>('ner', callOptions, NER_OPTIONS)
    checkNerOptions('ner', call)
    return recognize(model_, labels, texts, { ...defaults, ...call }, batcher)
  }
  const stream = (source: Iterable<StreamInput> | AsyncIterable<StreamInput>, options?: StreamOptions) => streamEntities(run as (text: string, options?: NerOptions) => Promise<Entity[]>, source, options)
  return Object.defineProperties(
    Object.assign(run, {
      model: model_,
      cancel: (reason?: Error) => batcher.cancel(reason),
      cost: async (texts: string | readonly string[], callOptions?: NerOptions) => {
        const o = { ...defaults, ...normalize<NerOptions>('cost', callOptions, NER_OPTIONS) }
        checkNerOptions('cost', o)
        throwIfAborted(o.signal)
        const prepared = await model_.prepareCall(textList('cost', texts), { maxLength: o.maxLength, stride: o.stride }, o.signal)
        let tokens = 0
        for (const n of prepared.windowLengths) tokens += n
        return { tokens, windows: prepared.windowLengths.length }
      },
      dispose: () => {
        batcher.cancel(new Error('ner: the pipeline was disposed'))
        model_.dispose()
      },
      stream,
      createStream: (options?: StreamOptions) => duplexFrom(async function* (source: AsyncIterable<StreamInput>) {
        yield* stream(source, options)
      }),
    }),
    { queueDepth: { get: () => batcher.depth } },
  ) as unknown as Ner<StrategyName>
}

/**
 * The body of `ner.stream()`: reads documents ahead of the consumer (at most highWaterMark),
 * each one a `ner()` call, so the batcher merges them into shared forward passes; yields in
 * input order. Memory is bounded by the documents in flight, whatever the source's length.
 */
async function* streamEntities(
  run: (texts: string, options?: NerOptions) => Promise<Entity[]>,
  source: Iterable<StreamInput> | AsyncIterable<StreamInput>,
  options: StreamOptions = {},
): AsyncGenerator<Record<string, unknown>> {
  const { highWaterMark = 64, ...rest } = options
  if (!(Number.isInteger(highWaterMark) && highWaterMark >= 1)) throw new RangeError(`stream: highWaterMark must be a positive integer, got ${describe(highWaterMark)}`)
  const call = normalize<NerOptions>('stream', rest, NER_OPTIONS)
  const signal = call.signal
  // One signal of our own for the documents in flight (each call listens to it), linked once
  // to the caller's (which gets one listener, not highWaterMark), and aborted when the
  // consumer stops early, so their work stops too.
  const inner = new AbortController()
  unlimitedListeners(inner.signal)
  const onAbort = () => inner.abort(signal!.reason)
  if (signal?.aborted) inner.abort(signal.reason)
  else signal?.addEventListener('abort', onAbort, { once: true })
  call.signal = inner.signal
  const it = (Symbol.asyncIterator in Object(source) ? (source as AsyncIterable<StreamInput>)[Symbol.asyncIterator]() : (source as Iterable<StreamInput>)[Symbol.iterator]()) as AsyncIterator<StreamInput> | Iterator<StreamInput>
  const inFlight: { doc: Record<string, unknown>; entities: Promise<Entity[]>; settled: boolean }[] = []
  let done = false
  // The source's next document, asked for ahead of time; the head document is yielded as soon
  // as it is done, without waiting for the source (a slow stdin must not hold back output).
  let next: Promise<IteratorResult<StreamInput>> | undefined
  try {
    for (;;) {
      if (signal?.aborted) throw abortError(signal)
      if (!done && !next && inFlight.length < highWaterMark) next = Promise.resolve(it.next())
      const head = inFlight[0]
      if (head?.settled || (head && !next)) {
        inFlight.shift()
        yield { ...head.doc, entities: await head.entities }
        continue
      }
      if (!next) return
      const winner = await (head ? Promise.race([next.then(() => 'source' as const), head.entities.then(() => 'head' as const, () => 'head' as const)]) : next.then(() => 'source' as const))
      if (winner === 'head') continue
      const step = await next
      next = undefined
      if (step.done) {
        done = true
        continue
      }
      const item = step.value
      const doc = typeof item === 'string' ? { text: item } : item
      if (doc === null || typeof doc !== 'object' || typeof (doc as { text?: unknown }).text !== 'string') {
        throw new TypeError(`stream: each document must be a string or an object with a string "text", got ${describe(item)}`)
      }
      const entry = { doc: doc as Record<string, unknown>, entities: run(doc.text as string, call), settled: false }
      entry.entities.then(
        () => (entry.settled = true),
        () => (entry.settled = true), // awaited in order when yielded; no unhandled rejection meanwhile
      )
      inFlight.push(entry)
    }
  } finally {
    signal?.removeEventListener('abort', onAbort)
    // A consumer that stops early (break, an error): the documents in flight stop in the
    // native pool, and the source is closed too.
    if (inFlight.length > 0) inner.abort(new AbortError('the stream was closed'))
    if (!done) await (it as AsyncIterator<StreamInput>).return?.()
  }
}

async function recognize(
  model: TokenClassifierModel,
  labels: Label[],
  texts: string | readonly string[],
  options: NerOptions,
  batcher: Batcher,
): Promise<Entity[] | Entity[][]> {
  const list = textList('ner', texts)
  const strategy = (options.aggregationStrategy ?? 'none') as AggregationStrategy
  if (options.decode === 'viterbi' && (strategy === 'none' || strategy === 'simple')) {
    throw new RangeError(`ner: decode 'viterbi' labels words; use aggregationStrategy 'first', 'average' or 'max'`)
  }
  const clean = (options.output ?? 'clean') === 'clean'
  const unicodeWords = options.words === 'unicode'
  const scored = await batcher.score(list, {
    maxLength: options.maxLength,
    stride: options.stride,
    batchSize: options.batchSize,
    maxBatchTokens: options.maxBatchTokens,
    maxTokens: options.maxTokens,
    // Word-aware tokenizers decide subwords from token strings, even for clean output.
    tokens: !clean || model.continuingSubwordPrefix !== undefined,
  }, options.signal)

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
      const entities = aggregate(pre, strategy, labels, decode, options.decode, options.ignoreLabels ?? ['O'])
      perWindow.push(windows.length > 1 && strategy === 'none' ? ownTokens(entities as TokenEntity[], w) : entities)
      sinceYield += w.to - w.from
      if (sinceYield >= YIELD_TOKENS) {
        sinceYield = 0
        await new Promise<void>((resolve) => nextTurn(resolve))
      }
    }
    let entities = perWindow.flat()
    if (perWindow.length > 1 && strategy !== 'none') entities = mergeOverlapping(entities)
    results.push(clean ? cleanSpans(text, entities, unicodeWords) : entities)
  }
  return typeof texts === 'string' ? results[0] : results
}

/** Strategy none over windows: each token is taken from the window where it has most context. */
function ownTokens(entities: TokenEntity[], w: PreparedWindow): TokenEntity[] {
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
