// A model without a filesystem: its files given as bytes, or fetched from a URL (a browser's
// static files, a CDN). What a model folder holds is stated here once, for the Hub loader too.
// No Node modules: this file runs in browsers.
import { abortError } from './abort'

/** A model's files by name: `{ 'config.json': ..., 'tokenizer.json': ..., 'model.safetensors': ... }`. */
export type ModelFiles = Record<string, ArrayBuffer | ArrayBufferView | Blob>

/**
 * The tokenizer a model needs: `tokenizer.json`, else what older repos ship instead (BERT's
 * vocab.txt, RoBERTa's vocab.json + merges.txt, XLM-R's and CamemBERT's SentencePiece model,
 * DeBERTa's spm.model).
 */
export const TOKENIZERS = [['tokenizer.json'], ['vocab.txt'], ['vocab.json', 'merges.txt'], ['sentencepiece.bpe.model'], ['spm.model']]
export const OPTIONAL = ['tokenizer_config.json', 'special_tokens_map.json']
export const SINGLE = 'model.safetensors'
export const INDEX = 'model.safetensors.index.json'
/** A shard file name: one path component, no leading dot. */
export const SHARD = /^[A-Za-z0-9_-][\w.-]*\.safetensors$/
/** A file name a model may have: one path component, no leading dot (the native rule too). */
export const FILE_NAME = /^[A-Za-z0-9_-][\w.-]{0,254}$/
const MiB = 1 << 20
/** The largest size each file may have before anything is read of it. */
export const SIZE_CAPS: Record<string, number> = {
  'config.json': 4 * MiB,
  'tokenizer_config.json': 8 * MiB,
  'special_tokens_map.json': 1 * MiB,
  'tokenizer.json': 128 * MiB,
  'vocab.txt': 64 * MiB,
  'vocab.json': 64 * MiB,
  'merges.txt': 64 * MiB,
  'sentencepiece.bpe.model': 64 * MiB,
  'spm.model': 64 * MiB,
  [INDEX]: 16 * MiB,
}
export const WEIGHTS_CAP = 256 * 1024 * MiB

/** Files as the native loader takes them: names and bytes, in the same order. */
export interface FileList {
  names: string[]
  contents: Uint8Array[]
}

/**
 * Why config.json's `model_type` cannot run here (not JSON, missing, or not in `supported`),
 * or undefined: checked before any weight moves.
 */
export function architectureProblem(config: string, where: string, supported: readonly string[]): string | undefined {
  let type: unknown
  try {
    type = (JSON.parse(config) as { model_type?: unknown } | null)?.model_type
  } catch (e) {
    return `${where}: config.json is not JSON (${(e as Error).message})`
  }
  if (typeof type !== 'string') return `${where}: config.json has no string field 'model_type'`
  if (!supported.includes(type)) return `${where}: unsupported model_type '${type}': this runtime implements ${supported.join(', ')}; nothing else was downloaded`
  return undefined
}

/** Whether `model` is given as files (an object of buffers) rather than a name. */
export function isModelFiles(model: unknown): model is ModelFiles {
  return typeof model === 'object' && model !== null && !(model instanceof URL) && !Array.isArray(model)
}

/** Whether `model` names a model on the web: a URL, or a string starting `http(s)://`. */
export function isModelUrl(model: unknown): boolean {
  return model instanceof URL || (typeof model === 'string' && /^https?:\/\//i.test(model))
}

/** The given files' bytes (a Blob is read), each name checked; a TypeError names a bad entry. */
export async function readModelFiles(files: ModelFiles, method: string): Promise<FileList> {
  const names: string[] = []
  const contents: Uint8Array[] = []
  for (const [name, value] of Object.entries(files)) {
    if (!FILE_NAME.test(name)) throw new TypeError(`${method}: '${name.slice(0, 100)}' is not a file name (one path component of [A-Za-z0-9_.-], not starting with '.')`)
    let bytes: Uint8Array
    if (value instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer)) bytes = new Uint8Array(value)
    else if (ArrayBuffer.isView(value)) bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
    else if (typeof Blob !== 'undefined' && value instanceof Blob) bytes = new Uint8Array(await value.arrayBuffer())
    else throw new TypeError(`${method}: files['${name}'] must be an ArrayBuffer, a typed array or a Blob`)
    names.push(name)
    contents.push(bytes)
  }
  if (!names.includes('config.json')) throw new TypeError(`${method}: the files have no config.json (given: ${names.join(', ') || 'none'})`)
  return { names, contents }
}

/** The default of `maxBytes`: what a WebAssembly page (32-bit memory) can hold at all. */
export const MAX_BYTES = 4 * 1024 * MiB

export interface FetchOptions {
  /** How long a request may wait for an answer, or a transfer for its next bytes, in ms (default 10 s). */
  timeoutMs?: number
  /** The most bytes all the files may take together (default `MAX_BYTES`): they are held in memory. */
  maxBytes?: number
  signal?: AbortSignal
  /** Bytes as they arrive; `total` is the file's declared size (0 when unknown). */
  onProgress?: (progress: { file: string; loaded: number; total: number }) => void
  /** Called with config.json's text before any weights are fetched: throws to refuse the model. */
  checkConfig?: (config: string) => void
}

/** The Cache API's cache that fetched files are kept in, where the runtime has one (browsers, Deno). */
export const CACHE_NAME = 'eurobert-ner'

/** Minimal Cache API types (the project's lib has no DOM). */
interface FileCache {
  match(url: string): Promise<Response | undefined>
  put(url: string, response: Response): Promise<void>
}

async function openCache(): Promise<FileCache | undefined> {
  const caches = (globalThis as { caches?: { open(name: string): Promise<FileCache> } }).caches
  if (!caches) return undefined
  try {
    return await caches.open(CACHE_NAME)
  } catch {
    // No cache (an insecure context, private browsing): fetch every time.
    return undefined
  }
}

/**
 * Fetches a model folder served as static files at `base`: config.json first (checked by
 * `checkConfig` before anything else moves), the tokenizer's files, then `model.safetensors`
 * or the shards its index names. Every file has a size cap and an idle timeout.
 */
export async function fetchModelFiles(base: URL | string, options: FetchOptions = {}): Promise<FileList> {
  const root = new URL(String(base).endsWith('/') ? String(base) : `${String(base)}/`)
  if (root.protocol !== 'http:' && root.protocol !== 'https:') throw new TypeError(`a model URL must be http(s), got ${root.protocol}`)
  const timeoutMs = options.timeoutMs ?? 10_000
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new RangeError(`timeoutMs must be a positive number, got ${options.timeoutMs}`)
  const maxBytes = options.maxBytes ?? MAX_BYTES
  const out: FileList = { names: [], contents: [] }
  const cache = await openCache()
  let total = 0
  const get = async (name: string, cap: number, optional: boolean): Promise<Uint8Array | undefined> => {
    const bytes = await fetchBounded(new URL(name, root), name, { cap, left: maxBytes - total, maxBytes }, optional, timeoutMs, options, cache)
    if (bytes) {
      out.names.push(name)
      out.contents.push(bytes)
      total += bytes.length
    }
    return bytes
  }
  const config = (await get('config.json', SIZE_CAPS['config.json'], false))!
  options.checkConfig?.(new TextDecoder().decode(config))
  for (const name of OPTIONAL) await get(name, SIZE_CAPS[name], true)
  let tokenizer = false
  for (const set of TOKENIZERS) {
    if (!(await get(set[0], SIZE_CAPS[set[0]], true))) continue
    for (const name of set.slice(1)) await get(name, SIZE_CAPS[name], false)
    tokenizer = true
    break
  }
  if (!tokenizer) throw new Error(`${root.href}: no tokenizer (${TOKENIZERS.map((s) => s.join(' + ')).join(', ')})`)
  if (await get(SINGLE, WEIGHTS_CAP, true)) return out
  const index = await get(INDEX, SIZE_CAPS[INDEX], true)
  if (!index) throw new Error(`${root.href}: neither ${SINGLE} nor ${INDEX} (only safetensors are loaded)`)
  for (const shard of shardNames(new TextDecoder().decode(index), root.href)) await get(shard, WEIGHTS_CAP, false)
  return out
}

/** The distinct shard names an index lists, each a plain `.safetensors` file name. */
export function shardNames(index: string, where: string): string[] {
  let map: unknown
  try {
    map = (JSON.parse(index) as { weight_map?: unknown }).weight_map
  } catch (e) {
    throw new Error(`${where}: ${INDEX} is not JSON (${(e as Error).message})`)
  }
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${where}: ${INDEX} has no object 'weight_map'`)
  const shards = [...new Set(Object.values(map as Record<string, unknown>))]
  for (const s of shards) if (typeof s !== 'string' || !SHARD.test(s)) throw new Error(`${where}: ${INDEX} names '${String(s).slice(0, 100)}', which is not a .safetensors file name`)
  return shards as string[]
}

/** A file's size bounds: its own cap, and what is `left` of `maxBytes` for all the files. */
interface Limit {
  cap: number
  left: number
  maxBytes: number
}

/**
 * GET `url`, at most `limit`'s bytes, no pause over `timeoutMs`; `undefined` for a 404 when
 * optional. A file kept in `cache` by an earlier load is read from there (with the same cap),
 * and one fetched whole is kept.
 */
async function fetchBounded(url: URL, file: string, limit: Limit, optional: boolean, timeoutMs: number, options: FetchOptions, cache?: FileCache): Promise<Uint8Array | undefined> {
  const cap = Math.min(limit.cap, limit.left)
  // `declared`: the size the server gave; without it, the body ran past the limit.
  const tooBig = (declared?: number) =>
    cap < limit.cap
      ? new Error(`${url.href}: ${declared === undefined ? `${file} runs past ${cap} bytes` : `${file} is ${declared} bytes`}, and the model's files would take more than maxBytes (${limit.maxBytes}) in memory; raise maxBytes to load it`)
      : declared === undefined
        ? new Error(`${url.href}: the server sent more than the ${cap} bytes allowed for ${file}`)
        : new Error(`${url.href}: the server says it is ${declared} bytes, over the ${cap} allowed for ${file}`)
  const controller = new AbortController()
  const onAbort = () => controller.abort(abortError(options.signal!))
  if (options.signal?.aborted) throw abortError(options.signal)
  options.signal?.addEventListener('abort', onAbort, { once: true })
  let timer: ReturnType<typeof setTimeout> | undefined
  const arm = (what: string) => {
    clearTimeout(timer)
    timer = setTimeout(() => controller.abort(new Error(`${url.href}: ${what} within ${timeoutMs} ms`)), timeoutMs)
  }
  const failure = (e: unknown) => (controller.signal.aborted ? controller.signal.reason : new Error(`${url.href}: ${(e as Error).message}`))
  try {
    arm('no answer')
    let res: Response | undefined = await cache?.match(url.href).catch(() => undefined)
    const cached = res !== undefined
    try {
      res ??= await fetch(url, { signal: controller.signal, headers: { 'accept-encoding': 'identity' } })
    } catch (e) {
      throw failure(e)
    }
    if (res.status === 404 && optional) {
      await res.body?.cancel().catch(() => undefined)
      return undefined
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined)
      throw new Error(`${url.href}: the server answered ${res.status}`)
    }
    const declared = Number(res.headers.get('content-length') ?? 0)
    if (declared > cap) {
      await res.body?.cancel().catch(() => undefined)
      throw tooBig(declared)
    }
    // The buffer grows as bytes come: a declared size is a claim, not a promise, and is
    // trusted for at most 64 MiB up front.
    let buf = new Uint8Array(Math.min(declared || 1 << 16, 64 * MiB, cap))
    let size = 0
    const reader = res.body!.getReader()
    for (;;) {
      arm('no data')
      let step: { done: boolean; value?: Uint8Array }
      try {
        step = await reader.read()
      } catch (e) {
        throw failure(e)
      }
      if (step.done) break
      const chunk = step.value!
      if (size + chunk.length > cap) {
        await reader.cancel().catch(() => undefined)
        throw tooBig()
      }
      if (size + chunk.length > buf.length) {
        const grown = new Uint8Array(Math.min(cap, Math.max(buf.length * 2, size + chunk.length)))
        grown.set(buf.subarray(0, size))
        buf = grown
      }
      buf.set(chunk, size)
      size += chunk.length
      if (declared) options.onProgress?.({ file, loaded: size, total: declared })
    }
    if (declared && size !== declared) throw new Error(`${url.href}: ${size} bytes arrived of the ${declared} declared`)
    // An empty file, or one of unknown size, ends with its final count.
    if (size === 0 || !declared) options.onProgress?.({ file, loaded: size, total: size })
    const bytes = buf.length === size ? buf : buf.slice(0, size)
    if (cache && !cached) await cache.put(url.href, new Response(bytes, { headers: { 'content-length': String(size) } })).catch(() => undefined)
    return bytes
  } finally {
    clearTimeout(timer)
    options.signal?.removeEventListener('abort', onAbort)
  }
}
