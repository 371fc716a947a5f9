// A loaded token classifier: per-token logits and the tokenization they belong to.
// All model work happens in the native addon, off the JavaScript thread.
import { abortable, abortError, throwIfAborted } from './abort'
import { checkOptions, describe, textList } from './args'
import { absolute, folderFiles, HubOptions, remoteModel, resolveModel } from './hub'
import { architectureProblem, fetchModelFiles, isModelFiles, isModelUrl, ModelFiles, readModelFiles } from './model-files'
import { argumentError, call, native, NativeModel, NativePrepared, NativeScoredText, NativeTokens, nativeFor } from './native'
import type { Addon } from './calls'
import { ProgressCallback, ProgressEvents } from './progress'
import { warn } from './runtime'

/** A call's texts tokenized into windows, no forward pass yet (the batcher's unit of work). */
export type NativePreparedCall = NativePrepared

export type DType = 'f32' | 'q8' | 'f16' | 'bf16'
export type Device = 'cpu' | 'cuda' | `cuda:${number}` | 'metal' | 'auto'

export interface LoadOptions extends Omit<HubOptions, 'onProgress'> {
  /**
   * Loading events, as transformers.js sends them to `progress_callback`: per file `initiate`,
   * `download`, `progress` (each after a `progress_total` over all files) and `done`; Hub
   * transfers as their bytes arrive, files already on disk complete at once.
   */
  onProgress?: ProgressCallback
  /** CPU threads for this model's computations (default: all available cores). */
  threads?: number
  /**
   * Compute dtype: 'f32' (default; exact), 'q8' (CPU: int8 projections quantized at load, the
   * rest f32), 'bf16' or 'f16' (16-bit weights; on the CPU with f32 arithmetic, half the
   * memory, bf16 about twice f32's speed with AVX512-BF16; on GPUs half precision throughout).
   */
  dtype?: DType
  /**
   * 'cpu' (default), 'cuda' / 'cuda:N' (needs the CUDA build, eurobert-ner-linux-x64-gnu-cuda),
   * 'metal' (Apple silicon), or 'auto': a usable GPU, else the CPU.
   */
  device?: Device
  /**
   * For a model fetched into memory (a URL; in a browser, a Hub id): the most bytes its files
   * may take together (default 4 GiB, what a WebAssembly page can address at all). Each file's
   * declared size is checked before its body is read, and its bytes as they arrive.
   */
  maxBytes?: number
}

export interface RunOptions {
  /**
   * Cancels the call: it rejects at once with an AbortError, and its native work stops (a
   * forward pass already running stops at its next layer).
   */
  signal?: AbortSignal
  /** Most texts in one forward pass (default 32). Texts are sorted by length into batches. */
  batchSize?: number
  /**
   * Most tokens in one forward pass (default 16384; on GPUs, padded tokens). Activation
   * memory grows linearly with it: attention never holds a tokens × tokens matrix.
   */
  maxBatchTokens?: number
}

export interface WindowOptions extends RunOptions {
  /** Tokens per window, special tokens included (default: `modelMaxLength`). */
  maxLength?: number
  /** Tokens shared by consecutive windows (default: a quarter of a window's text). */
  stride?: number
  /** Also return the token strings (default false). */
  tokens?: boolean
  /**
   * Most tokens the call's windows may run, special tokens included (what a request really
   * costs); over it, the call fails with a RangeError after tokenizing, before any forward pass.
   */
  maxTokens?: number
}

/** One window of a text: its content tokens `[from, to)` and their logits. */
export interface ScoredWindow {
  from: number
  to: number
  /** Token positions `[owns[0], owns[1])` this window is the reference for where windows overlap. */
  owns: [number, number]
  /** `(to - from) × numLabels`: row r holds the logits of token `from + r`. */
  logits: Float32Array
}

/** @internal A window as the pipeline reads it: softmax scores instead of logits. */
export interface PreparedWindow extends Omit<ScoredWindow, 'logits'> {
  /** `(to - from) × numLabels`: row r holds the softmax scores of token `from + r`. */
  probabilities: Float32Array
}

/** @internal A text as the pipeline reads it (`takeScored`). */
export interface PreparedText extends Omit<ScoredText, 'windows'> {
  windows: PreparedWindow[]
}

/** A text's tokenization (offsets, and token strings when asked) with its scored windows. */
export interface ScoredText {
  ids: Uint32Array
  offsets: Uint32Array
  tokens?: string[]
  windows: ScoredWindow[]
}

/** One text's tokens; offsets index the JavaScript string (UTF-16 code units). */
export interface Tokenization {
  text: string
  ids: Uint32Array
  /** Vocabulary strings, e.g. `ĠOslo` for byte-level BPE. */
  tokens: string[]
  /** `[start0, end0, start1, end1, ...]`: token i covers `text.slice(offsets[2i], offsets[2i+1])`. */
  offsets: Uint32Array
  /** 1 for tokens the tokenizer's post-processor added (BOS/EOS). */
  specialTokensMask: Uint8Array
  attentionMask: Uint8Array
  /** Pre-tokenizer word of each token; -1 for special tokens. */
  wordIds: Int32Array
}

export interface TokenLogits extends Tokenization {
  /** `tokens × numLabels`, row-major: logits of token i are `logits.subarray(i * numLabels, (i + 1) * numLabels)`. */
  logits: Float32Array
  numLabels: number
}

/**
 * The CPU kernels this machine runs, for diagnosing speed or results:
 * `{ elementwise: 'avx512' | 'avx2+fma' | 'baseline' | 'neon', gemm_f32, gemm_int8, gemm_bf16 }`
 * (`gemm_int8: 'x86_64-u8i8i32-amx'` and `gemm_bf16: 'amx-bf16'` where the CPU's AMX tiles run them).
 */
export function cpuKernels(): Record<string, string> {
  return native().cpuKernels()
}

/**
 * Checks `threads`, `dtype` and `device` as the native load will (before any download), and
 * `maxBytes`; a RangeError names the bad option. The core's rules, stated there once.
 */
export function checkLoadOptions(method: string, options: Pick<LoadOptions, 'threads' | 'dtype' | 'device' | 'maxBytes'>): void {
  checkOptions(method, options, { threads: 'int' })
  if (options.maxBytes !== undefined && !(Number.isSafeInteger(options.maxBytes) && options.maxBytes >= 1)) {
    throw new RangeError(`${method}: maxBytes must be a positive integer, got ${describe(options.maxBytes)}`)
  }
  for (const key of ['dtype', 'device'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'string') throw new TypeError(`${method}: ${key} must be a string, got ${describe(options[key])}`)
  }
  // 'auto' picks a binary here (nativeFor); its checks are those of the device it may pick.
  const device = options.device === 'auto' ? (options.dtype === 'q8' ? 'cpu' : 'cuda') : options.device
  try {
    native().NativeModel.checkLoadOptions({ threads: options.threads, dtype: options.dtype, device })
  } catch (e) {
    throw argumentError(e, method)
  }
}

/**
 * A loaded token classifier of any supported architecture (EuroBERT, BERT, RoBERTa, XLM-R,
 * CamemBERT, ELECTRA, DistilBERT): per-token logits and the tokenization they belong to.
 */
export class TokenClassifierModel {
  /** Label names by class id (`id2label`). */
  readonly labels: readonly string[]
  /** Longest sequence, in tokens (special tokens included), the model accepts. */
  readonly maxLength: number
  /** Absolute path of the model folder. */
  readonly path: string
  readonly threads: number
  /**
   * The tokenizer's `model_max_length` (tokenizer_config.json) where it is set and smaller
   * than `maxLength`; the window length of the NER pipeline.
   */
  readonly modelMaxLength: number
  /** Bytes of weights held in memory. */
  readonly weightBytes: number
  /** What runs the model: 'cpu', 'cuda:N' or 'metal:N'. */
  readonly device: string
  /** The tokenizer's continuing-subword prefix (`##`), if it has one (not byte-level BPE). */
  readonly continuingSubwordPrefix?: string
  /** The tokenizer's unknown-token id, if it has one. */
  readonly unkTokenId?: number
  /** Special tokens the tokenizer adds around each window (BOS and EOS, or CLS and SEP: 2). */
  readonly specialTokens: number
  /** transformers' `model_type` of the checkpoint (`eurobert`, `bert`, `xlm-roberta`, ...). */
  readonly modelType: string
  /** The transformers class it computes as (`BertForTokenClassification`). */
  readonly architecture: string

  private constructor(
    private handle: NativeModel,
    private addon: Addon,
  ) {
    const info = handle.info
    this.labels = Object.freeze([...info.labels])
    this.maxLength = info.maxPositionEmbeddings
    this.path = info.dir
    this.threads = info.threads
    this.modelMaxLength = info.modelMaxLength
    this.weightBytes = info.weightBytes
    this.device = info.device
    this.continuingSubwordPrefix = info.continuingSubwordPrefix ?? undefined
    this.unkTokenId = info.unkTokenId ?? undefined
    this.specialTokens = info.specialTokens
    this.modelType = info.modelType
    this.architecture = info.architecture
    for (const w of info.warnings) warn(`${info.dir}: ${w}`)
  }

  /**
   * Loads a Hugging Face model folder (`config.json`, `model.safetensors` or a sharded index,
   * `tokenizer.json`), or a Hub repo `owner/name[@revision]`, downloaded once into the cache
   * Python's huggingface_hub shares. Safetensors only: pickled checkpoints are refused.
   *
   * Without a filesystem (a browser), the same files given as bytes,
   * `{ 'config.json': ArrayBuffer | typed array | Blob, ... }`, or the URL of a folder served as
   * static files (`https://example.com/models/ner/`), fetched with a size cap per file.
   */
  static async load(model: string | URL | ModelFiles, options: LoadOptions = {}): Promise<TokenClassifierModel> {
    const method = `${this.name}.load`
    const url = isModelUrl(model)
    if (!url && !isModelFiles(model) && !(typeof model === 'string' && model.length > 0)) {
      throw new TypeError(`${method}: model must be a folder, a Hub id, a URL or an object of files, got ${describe(model)}`)
    }
    checkLoadOptions(method, options)
    throwIfAborted(options.signal)
    const { addon, device } = nativeFor(options.device ?? 'cpu')
    const nativeOptions = { threads: options.threads, dtype: options.dtype, device }
    let loading: Promise<NativeModel>
    // A URL, or in a browser a Hub id (its files on the Hub), is fetched into memory.
    const remote = url ? String(model) : typeof model === 'string' ? remoteModel(model, options) : undefined
    if (remote !== undefined || isModelFiles(model)) {
      const name = typeof model === 'string' || url ? String(model) : 'files'
      const events = options.onProgress ? new ProgressEvents(options.onProgress, name) : undefined
      const supported = addon.supportedModelTypes()
      const files = remote !== undefined
        ? await fetchModelFiles(remote, {
            timeoutMs: options.timeoutMs,
            maxBytes: options.maxBytes,
            signal: options.signal,
            onProgress: events?.download,
            checkConfig: (config) => {
              const problem = architectureProblem(config, name, supported)
              if (problem) throw new Error(problem)
            },
          })
        : await readModelFiles(model as ModelFiles, method)
      if (remote === undefined) events?.present(files.names.map((file, i) => ({ file, size: files.contents[i].byteLength })))
      throwIfAborted(options.signal)
      loading = call(cancellable(addon, options.signal, (id) => addon.NativeModel.loadFiles(files.names, files.contents, nativeOptions, id)))
    } else {
      const events = options.onProgress ? new ProgressEvents(options.onProgress, model as string) : undefined
      const dir = await resolveModel(model as string, { ...options, onProgress: events?.download })
      events?.present(folderFiles(dir))
      throwIfAborted(options.signal)
      loading = call(cancellable(addon, options.signal, (id) => addon.NativeModel.load(absolute(dir), nativeOptions, id)))
    }
    const handle = await loading
    // An abort during the native load frees what it loaded.
    if (options.signal?.aborted) {
      handle.dispose()
      throw abortError(options.signal)
    }
    return new TokenClassifierModel(handle, addon)
  }

  /** Per-token logits for each text, in input order. */
  async logits(texts: string | readonly string[], options: RunOptions = {}): Promise<TokenLogits[]> {
    const list = textList('logits', texts)
    checkOptions('logits', options, { batchSize: 'int', maxBatchTokens: 'int' })
    throwIfAborted(options.signal)
    const out = await abortable(call(this.native(options.signal, (id) => this.handle.logits(wellFormed(list), {
      batchSize: options.batchSize,
      maxBatchTokens: options.maxBatchTokens,
    }, id))), options.signal)
    const numLabels = this.labels.length
    return out.map((t, i) => ({ ...tokenization(list[i], t), logits: t.logits!, numLabels }))
  }

  /**
   * Logits for token id sequences that already hold their special tokens (windows of a long
   * text, say), `tokens × numLabels` each, in input order.
   */
  async logitsForIds(sequences: readonly Uint32Array[], options: RunOptions = {}): Promise<Float32Array[]> {
    checkOptions('logitsForIds', options, { batchSize: 'int', maxBatchTokens: 'int' })
    throwIfAborted(options.signal)
    const native = { batchSize: options.batchSize, maxBatchTokens: options.maxBatchTokens }
    return abortable(call(this.native(options.signal, (id) => this.handle.logitsForIds([...sequences], native, id))), options.signal)
  }

  /**
   * The NER pipeline's native half in one call: tokenizes each text, cuts it into windows
   * of `maxLength` tokens sharing `stride` (one window when it fits) and scores every window
   * of every text together. Logits cover each window's content tokens only.
   */
  async scoreWindows(texts: string | readonly string[], options: WindowOptions = {}): Promise<ScoredText[]> {
    const list = textList('scoreWindows', texts)
    checkOptions('scoreWindows', options, { batchSize: 'int', maxBatchTokens: 'int', maxLength: 'int', maxTokens: 'int' })
    if (options.stride !== undefined && !(Number.isInteger(options.stride) && options.stride >= 0 && options.stride <= 0xffffffff)) {
      throw new RangeError(`scoreWindows: stride must be a non-negative integer, got ${describe(options.stride)}`)
    }
    throwIfAborted(options.signal)
    const { signal, ...native } = options
    const out = await abortable(call(this.native(signal, (id) => this.handle.scoreWindows(wellFormed(list), native, id))), signal)
    return out.map(scoredText)
  }

  /**
   * The batcher's first half of `scoreWindows`: tokenizes and cuts windows, no forward pass.
   * @internal
   */
  prepareCall(texts: string[], options: WindowOptions, signal?: AbortSignal): Promise<NativePreparedCall> {
    return call(this.native(signal, (id) => this.handle.prepare(wellFormed(texts), { maxLength: options.maxLength, stride: options.stride, probabilities: true }, id)))
  }

  /** `prepareCall` and `runWindows` of all its windows in one native call (one hop less). */
  prepareAndRun(texts: string[], options: WindowOptions, signal?: AbortSignal): Promise<NativePreparedCall> {
    const { maxLength, stride, batchSize, maxBatchTokens } = options
    return call(this.native(signal, (id) => this.handle.prepareAndRun(wellFormed(texts), { maxLength, stride, batchSize, maxBatchTokens, probabilities: true }, id)))
  }

  /**
   * Runs windows of prepared calls in shared forward passes; resolves with the tokens run.
   * @internal
   */
  runWindows(parts: { prepared: NativePreparedCall; from: number; to: number }[], options: Pick<RunOptions, 'batchSize' | 'maxBatchTokens'>, signal?: AbortSignal): Promise<number> {
    return call(this.native(signal, (id) => this.handle.runWindows(parts.map((p) => p.prepared), parts.map((p) => p.from), parts.map((p) => p.to), options, id)))
  }

  /**
   * The scored texts `[from, to)` of a prepared call whose windows have all run, with each
   * window's softmax scores (`prepareCall` keeps probabilities): views into the few arrays
   * one native call hands over.
   * @internal
   */
  takeScored(prepared: NativePreparedCall, from: number, to: number, tokens: boolean): PreparedText[] {
    const { data, tokens: strings } = prepared.take(from, to, tokens)
    // The parts of `data` (NativeScoredBatch): 3 lengths, then 32-bit words, then floats.
    const words = new Uint32Array(data.buffer, data.byteOffset, data.length)
    const [n, w, s] = words
    const texts = to - from
    const ids = words.subarray(3, 3 + n)
    const offsets = words.subarray(3 + n, 3 + 3 * n)
    const starts = words.subarray(3 + 3 * n, 4 + 3 * n + texts)
    const windows = words.subarray(4 + 3 * n + texts, 4 + 3 * n + texts + w)
    const scores = data.subarray(4 + 3 * n + texts + w, 4 + 3 * n + texts + w + s)
    const out: PreparedText[] = []
    for (let t = 0; t < texts; t++) {
      const [a, z] = [starts[t], starts[t + 1]]
      out.push({ ids: ids.subarray(a, z), offsets: offsets.subarray(2 * a, 2 * z), tokens: strings?.slice(a, z), windows: [] })
    }
    const numLabels = this.labels.length
    for (let i = 0; i < w; i += 6) {
      const rows = (windows[i + 2] - windows[i + 1]) * numLabels
      out[windows[i]].windows.push({
        from: windows[i + 1],
        to: windows[i + 2],
        owns: [windows[i + 3], windows[i + 4]],
        probabilities: scores.subarray(windows[i + 5], windows[i + 5] + rows),
      })
    }
    return out
  }

  /** Tokenizes without running the model. */
  async tokenize(texts: string | readonly string[], options: { signal?: AbortSignal } = {}): Promise<Tokenization[]> {
    const list = textList('tokenize', texts)
    throwIfAborted(options.signal)
    const out = await abortable(call(this.native(options.signal, (id) => this.handle.tokenize(wellFormed(list), id))), options.signal)
    return out.map((t, i) => tokenization(list[i], t))
  }

  /** A native call of this model that `signal` cancels down to the native pool. */
  private native<T>(signal: AbortSignal | undefined, start: (call?: number) => Promise<T>): Promise<T> {
    return cancellable(this.addon, signal, start)
  }

  /** Joins token strings with the tokenizer's decoder, e.g. `['ĠOslo']` → `' Oslo'`. */
  decodeTokens(tokens: readonly string[]): string {
    return this.handle.decodeTokens([...tokens])
  }

  /** Frees the weights now rather than at garbage collection; the model is unusable after. */
  dispose(): void {
    this.handle.dispose()
  }
}

function scoredText(t: NativeScoredText): ScoredText {
  return {
    ids: t.ids,
    offsets: t.offsets,
    tokens: t.tokens ?? undefined,
    windows: t.windows.map((w) => ({ from: w.from, to: w.to, owns: [w.ownsFrom, w.ownsTo], logits: w.logits })),
  }
}

function tokenization(text: string, t: NativeTokens): Tokenization {
  return {
    text,
    ids: t.ids,
    tokens: t.tokens,
    offsets: t.offsets,
    specialTokensMask: t.specialTokensMask,
    // Unpadded: every token attends (built here rather than sent across the boundary).
    attentionMask: new Uint8Array(t.ids.length).fill(1),
    wordIds: t.wordIds,
  }
}

/** The former name of `TokenClassifierModel`, kept for code written against it. */
export const EuroBertModel = TokenClassifierModel
/** The former name of `TokenClassifierModel`. */
export type EuroBertModel = TokenClassifierModel

/**
 * Starts a native call registered under a fresh id, which `signal` cancels (`cancelCall`): a
 * task not yet started rejects as it starts, a running one stops at its next layer. The
 * caller's signal only gets a listener, removed when the call settles. The addon numbers the
 * calls: worker threads and every copy of this module a test runner loads share it.
 */
function cancellable<T>(addon: Addon, signal: AbortSignal | undefined, start: (call?: number) => Promise<T>): Promise<T> {
  if (!signal) return start(undefined)
  const id = addon.newCallId()
  const promise = start(id)
  if (signal.aborted) {
    addon.cancelCall(id)
    return promise
  }
  const onAbort = () => addon.cancelCall(id)
  signal.addEventListener('abort', onAbort, { once: true })
  return promise.finally(() => signal.removeEventListener('abort', onAbort))
}

/**
 * Texts as they cross into native code: a lone surrogate becomes U+FFFD, as V8 turns it when a
 * string crosses Node-API. The WebAssembly binding copies strings with its own encoder (emnapi),
 * which would pass the surrogate on as bytes that Rust reads as other characters; the same
 * replacement here gives both bindings the same text, and keeps every UTF-16 offset.
 */
function wellFormed(texts: readonly string[]): string[] {
  // `toWellFormed` is ES2024 (Node 20+); the project's lib is ES2022.
  return texts.map((t) => (t as string & { toWellFormed(): string }).toWellFormed())
}
