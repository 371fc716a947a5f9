// A loaded EuroBERT token classifier: per-token logits and the tokenization they belong to.
// All model work happens in the native addon, off the JavaScript thread.
import * as fs from 'node:fs'
import * as path from 'node:path'

import { checkOptions, textList } from './args'
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
  /**
   * The tokenizer's `model_max_length` (tokenizer_config.json) where it is set and smaller
   * than `maxLength`; the window length of the NER pipeline.
   */
  readonly modelMaxLength: number

  private constructor(private handle: NativeModel) {
    const info = handle.info
    this.labels = Object.freeze([...info.labels])
    this.maxLength = info.maxPositionEmbeddings
    this.path = info.dir
    this.threads = info.threads
    this.modelMaxLength = Math.min(this.maxLength, tokenizerMaxLength(this.path) ?? Infinity)
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

  /**
   * Logits for token id sequences that already hold their special tokens (windows of a long
   * text, say), `tokens × numLabels` each, in input order.
   */
  async logitsForIds(sequences: readonly Uint32Array[], options: RunOptions = {}): Promise<Float32Array[]> {
    checkOptions('logitsForIds', options, { batchSize: 'int', maxBatchTokens: 'int' })
    return this.handle.forwardIds([...sequences], { batchSize: options.batchSize, maxBatchTokens: options.maxBatchTokens })
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

/** `model_max_length` from tokenizer_config.json, if the file sets a usable one. */
function tokenizerMaxLength(dir: string): number | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')).model_max_length
    // transformers writes ~1e30 for "unset".
    return Number.isInteger(v) && v > 0 && v < 1e9 ? v : undefined
  } catch {
    return undefined
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
