// What the model routes take and give: the Inference API's `{inputs, parameters}` mapped to
// ner() and back (offsets in code points), `/ner`'s own shape, `/info`, and the per-request
// bounds (texts, characters, stride).
import type { Entity } from '../pipeline/aggregate'
import { checkServedStride, TooLargeError, windowOf } from '../pipeline/cost'
import type { DType } from '../pipeline/model'
import { NER_OPTIONS, normalize, SERVER_SET } from '../pipeline/options'
import type { Ner, NerOptions } from '../pipeline/pipeline'
import { VERSION } from '../version'
import { HttpError } from './http'

/** What runs, in text-embeddings-inference's snake_case: the model's Hub id or folder name (not its path on this machine), and the limits. */
export function info(ner: Ner, model: string, dtype: DType, l: { maxConcurrent: number; maxBatchTokens: number; maxAnswerBytes: number } & Limits) {
  const m = ner.model
  return {
    model_id: model,
    model_dtype: dtype,
    model_type: { token_classifier: { id2label: Object.fromEntries(m.labels.map((label, i) => [String(i), label])) } },
    // TEI's model_type is the task; the architecture is transformers' class and model_type.
    architecture: m.architecture,
    config_model_type: m.modelType,
    labels: m.labels,
    device: m.device,
    version: VERSION,
    max_input_length: m.maxLength,
    window_length: m.modelMaxLength,
    max_concurrent_requests: l.maxConcurrent,
    max_batch_tokens: l.maxBatchTokens,
    max_client_batch_size: l.maxTexts,
    max_client_chars: l.maxChars,
    max_request_tokens: l.maxTokens,
    max_answer_bytes: l.maxAnswerBytes,
    threads: m.threads,
  }
}

export interface Limits {
  maxTexts: number
  maxChars: number
  /** Most tokens a request's windows may run (its real cost). */
  maxTokens: number
}

/** The texts of a request, within the per-request caps (each request's work is linear in its size). */
export function checkTexts(texts: readonly string[], limits: Limits): void {
  if (texts.length > limits.maxTexts) throw new HttpError(413, `${texts.length} texts in one request; the limit is ${limits.maxTexts}`)
  let chars = 0
  for (const t of texts) chars += t.length
  if (chars > limits.maxChars) throw new HttpError(413, `${chars} characters in one request; the limit is ${limits.maxChars}`)
}

/** `{inputs, parameters}` as the Hugging Face Inference API takes it; its answer, too. */
export async function inferenceApi(ner: Ner, body: unknown, limits: Limits, signal: AbortSignal): Promise<unknown> {
  const { inputs, parameters = {} } = (body !== null && typeof body === 'object' ? body : {}) as { inputs?: unknown; parameters?: Record<string, unknown> }
  if (typeof inputs !== 'string' && !(Array.isArray(inputs) && inputs.every((t) => typeof t === 'string'))) {
    throw new HttpError(400, '"inputs" must be a string or an array of strings')
  }
  if (parameters === null || typeof parameters !== 'object') throw new HttpError(400, '"parameters" must be an object')
  const known = ['aggregation_strategy', 'ignore_labels', 'stride']
  const unknown = Object.keys(parameters).filter((k) => !known.includes(k))
  if (unknown.length > 0) throw new HttpError(400, `unknown parameters: ${unknown.join(', ')} (known: ${known.join(', ')})`)
  const strategy = parameters.aggregation_strategy
  const options: NerOptions = {
    // transformers takes any case ('SIMPLE' too).
    aggregationStrategy: ((typeof strategy === 'string' ? strategy.toLowerCase() : strategy) as NerOptions['aggregationStrategy']) ?? 'simple',
    ignoreLabels: parameters.ignore_labels as string[] | undefined,
    stride: parameters.stride as number | undefined,
    output: 'transformers',
    signal,
  }
  const texts = typeof inputs === 'string' ? [inputs] : inputs
  checkTexts(texts, limits)
  checkServedStride(options.stride, ner.model.modelMaxLength, ner.model.specialTokens, 'parameters.stride', 'this server')
  options.maxTokens = limits.maxTokens
  let out: Entity[][]
  try {
    out = (await ner(texts, options)) as Entity[][]
  } catch (e) {
    // The client sent snake_case names: its errors use them.
    if ((e instanceof TypeError || e instanceof RangeError) && !(e instanceof TooLargeError)) {
      const message = e.message.replace(/\baggregationStrategy\b/g, 'aggregation_strategy').replace(/\bignoreLabels\b/g, 'ignore_labels').replace(/^ner: /, '')
      throw new HttpError(400, message)
    }
    throw e
  }
  // Python indexes strings by code point; so does the Inference API.
  const answer = out.map((entities, i) => toCodePoints(texts[i], entities))
  return typeof inputs === 'string' ? answer[0] : answer
}



export async function nerRoute(ner: Ner, body: unknown, limits: Limits, signal: AbortSignal): Promise<unknown> {
  const { text, texts, options: raw = {} } = (body !== null && typeof body === 'object' ? body : {}) as { text?: unknown; texts?: unknown; options?: unknown }
  if ((text === undefined) === (texts === undefined)) throw new HttpError(400, 'give exactly one of "text" (a string) or "texts" (an array of strings)')
  if (typeof text !== 'string' && !(Array.isArray(texts) && texts.every((t) => typeof t === 'string'))) {
    throw new HttpError(400, '"text" must be a string, or "texts" an array of strings')
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new HttpError(400, '"options" must be an object')
  const refused = Object.keys(raw).filter((k) => SERVER_SET.includes(k) || SERVER_SET.includes(k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())))
  if (refused.length > 0) throw new HttpError(400, `options ${refused.join(', ')} cannot be set per request (the server sets them)`)
  const options = normalize<NerOptions>('options', raw, NER_OPTIONS)
  checkTexts(typeof text === 'string' ? [text] : (texts as string[]), limits)
  // The stride against the window this request asks for, not the model's: a short window
  // with a large stride is the costliest request of all.
  checkServedStride(options.stride, windowOf(options.maxLength, ner.model), ner.model.specialTokens, 'options.stride', 'this server')
  return ner((text ?? texts) as string, { ...options, maxTokens: limits.maxTokens, signal })
}

/**
 * UTF-16 offsets → code points (Python's string indices), for all of a text's entities in one
 * pass over the text: linear, whatever the number of entities.
 */
function toCodePoints(text: string, entities: Entity[]): Entity[] {
  if (!/[\uD800-\uDFFF]/.test(text)) return entities
  const cp = new Uint32Array(text.length + 1)
  let n = 0
  for (let i = 0; i < text.length; i++) {
    cp[i] = n
    const c = text.charCodeAt(i)
    // A high surrogate followed by a low one is one code point; its second unit maps inside it.
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) cp[++i] = n + 1
    n++
  }
  cp[text.length] = n
  return entities.map((e) => ({ ...e, start: cp[e.start], end: cp[e.end] }))
}

