// A loaded EuroBERT token classifier: per-token logits and the tokenization they belong to.
// All model work happens in the native addon, off the JavaScript thread.
import * as path from 'node:path'

import { native, NativeModel, NativeTokens } from './native'

export type DType = 'f32' | 'f16' | 'bf16'
export type Device = 'cpu' | 'cuda' | `cuda:${number}` | 'metal'

export interface LoadOptions {
  /** CPU threads for this model's computations (default: all available cores). */
  threads?: number
  /** Compute dtype: 'f32' (default; exact), 'f16', or 'bf16' (GPU only). */
  dtype?: DType
  /** 'cpu' (default), 'cuda', 'cuda:N' or 'metal', where the binary was built with it. */
  device?: Device
}

export interface RunOptions {
  /** Most texts in one forward pass (default 32). Texts are sorted by length into batches. */
  batchSize?: number
  /** Most padded tokens in one forward pass (default 16384); bounds attention memory. */
  maxBatchTokens?: number
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

export class EuroBertModel {
  /** Label names by class id (`id2label`). */
  readonly labels: readonly string[]
  /** Longest sequence, in tokens (special tokens included), the model accepts. */
  readonly maxLength: number
  /** Absolute path of the model folder. */
  readonly path: string
  readonly threads: number

  private constructor(private handle: NativeModel) {
    const info = handle.info
    this.labels = Object.freeze([...info.labels])
    this.maxLength = info.maxPositionEmbeddings
    this.path = info.dir
    this.threads = info.threads
  }

  /**
   * Loads a Hugging Face model folder: `config.json`, `model.safetensors` (or a sharded
   * index) and `tokenizer.json`. Safetensors only: pickled checkpoints are refused.
   */
  static async load(modelPath: string, options: LoadOptions = {}): Promise<EuroBertModel> {
    if (typeof modelPath !== 'string' || modelPath.length === 0) {
      throw new TypeError('EuroBertModel.load: modelPath must be a non-empty string')
    }
    checkOptions('EuroBertModel.load', options, { threads: 'int' })
    const handle = await native().NativeModel.load(path.resolve(modelPath), {
      threads: options.threads,
      dtype: options.dtype,
      device: options.device,
    })
    return new EuroBertModel(handle)
  }

  /** Per-token logits for each text, in input order. */
  async logits(texts: string | readonly string[], options: RunOptions = {}): Promise<TokenLogits[]> {
    const list = textList('logits', texts)
    checkOptions('logits', options, { batchSize: 'int', maxBatchTokens: 'int' })
    const out = await this.handle.classify(list, {
      batchSize: options.batchSize,
      maxBatchTokens: options.maxBatchTokens,
    })
    const numLabels = this.labels.length
    return out.map((t, i) => ({ ...tokenization(list[i], t), logits: t.logits!, numLabels }))
  }

  /** Tokenizes without running the model. */
  async tokenize(texts: string | readonly string[]): Promise<Tokenization[]> {
    const list = textList('tokenize', texts)
    const out = await this.handle.tokenize(list)
    return out.map((t, i) => tokenization(list[i], t))
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

function tokenization(text: string, t: NativeTokens): Tokenization {
  return {
    text,
    ids: t.ids,
    tokens: t.tokens,
    offsets: t.offsets,
    specialTokensMask: t.specialTokensMask,
    attentionMask: t.attentionMask,
    wordIds: t.wordIds,
  }
}

function textList(method: string, texts: string | readonly string[]): string[] {
  const list = typeof texts === 'string' ? [texts] : texts
  if (!Array.isArray(list)) {
    throw new TypeError(`${method}: expected a string or an array of strings, got ${describe(texts)}`)
  }
  list.forEach((t, i) => {
    if (typeof t !== 'string') {
      throw new TypeError(`${method}: texts[${i}] is ${describe(t)}, expected a string`)
    }
  })
  return [...list]
}

function checkOptions(method: string, options: object, ints: Record<string, 'int'>): void {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${method}: options must be an object, got ${describe(options)}`)
  }
  for (const key of Object.keys(ints)) {
    const v = (options as Record<string, unknown>)[key]
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 0xffffffff)) {
      throw new RangeError(`${method}: ${key} must be a positive integer, got ${describe(v)}`)
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}
