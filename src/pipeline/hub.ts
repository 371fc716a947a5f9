// Models by Hugging Face Hub id, cached in Python's layout so one download serves both
// ecosystems: `<cache>/models--owner--name/{blobs/<etag>, snapshots/<commit>/<file>,
// refs/<revision>}`. `@huggingface/hub` gives the repo metadata, the cache root and the folder
// names; this file adds what it lacks: the environment variables Python users set, only the
// files a safetensors model needs, `refs/` for every revision, offline mode, progress,
// resumable downloads checked against the Hub's sha256 before they enter `blobs/`, and a lock
// so that two processes end with one good copy.
import { createHash } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'

import { getHFHubCachePath, getRepoFolderName } from '@huggingface/hub'
import { abortError, isAbort, throwIfAborted } from './abort'
import { insideArchive, unpacked } from './asar'
import { checkRevision, parseHubId } from './hub-id'
import { architectureProblem, INDEX, OPTIONAL, SHARD, SINGLE, SIZE_CAPS, TOKENIZERS, WEIGHTS_CAP } from './model-files'
import { native } from './native'
import * as lockfile from 'proper-lockfile'

export { checkRevision, parseHubId } from './hub-id'

export interface HubOptions {
  /** Branch, tag or commit hash (default `main`, or the `@revision` of the id). */
  revision?: string
  /** Access token for private or gated repos (default `HF_TOKEN`, then the token file `huggingface-cli login` writes). */
  token?: string
  /** Hub address (default `HF_ENDPOINT`, then https://huggingface.co). */
  endpoint?: string
  /** Cache root (default `HF_HUB_CACHE`, `HF_HOME/hub`, then ~/.cache/huggingface/hub). */
  cacheDir?: string
  /** Never touch the network; use the cache only (default: `HF_HUB_OFFLINE=1`). */
  localFilesOnly?: boolean
  /** Called as bytes arrive: `total` is the file's size. */
  onProgress?: (progress: DownloadProgress) => void
  /**
   * How long one request may wait for an answer, or a transfer for its next bytes, in ms
   * (default: `HF_HUB_DOWNLOAD_TIMEOUT` seconds, as in Python, else 10 s).
   */
  timeoutMs?: number
  /** Cancels the load: requests and transfers stop, and the call rejects with an AbortError. */
  signal?: AbortSignal
}

export interface DownloadProgress {
  file: string
  loaded: number
  total: number
}

const CONVERSION_PR = 'Adding `safetensors` variant of this model'
/** Pages of discussions read at most while looking for a conversion PR. */
const DISCUSSION_PAGES = 20
const PICKLES = /\.(bin|pt|pth|ckpt|pkl)$/
const COMMIT = /^[0-9a-f]{40}$/
/** What a Hub ETag is: a git blob sha1 (regular files) or a sha256 (LFS and Xet files). */
const ETAG = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/
const SHA256 = /^[0-9a-f]{64}$/
const RETRIES = 5
const MiB = 1 << 20
/** The largest repo description `/api/models` may send. */
const API_CAP = 32 * MiB
/** The tag huggingface_hub puts at the cache root so backup tools skip it (bford.info/cachedir). */
const CACHEDIR_TAG =
  'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by huggingface_hub.\n# For information about cache directory tags, see:\n#\thttps://bford.info/cachedir/\n'

/**
 * The local folder of a model: `model` itself when it is an existing folder, otherwise the
 * snapshot of Hub repo `owner/name[@revision]`, downloaded on first use.
 */
export async function resolveModel(model: string, options: HubOptions = {}): Promise<string> {
  model = unpacked(model)
  if (insideArchive(model)) {
    throw new Error(`model folder ${model} lies inside an asar archive, which the native core cannot read: unpack it (electron-builder: "asarUnpack"; Electron Forge: packagerConfig.asar.unpack)`)
  }
  if (isDirectory(model)) return path.resolve(model)
  const id = parseHubId(model)
  if (!id) {
    throw new Error(`model folder not found: ${model} (nor is it a Hub id of the form owner/name)`)
  }
  if (id.revision && options.revision && id.revision !== options.revision) {
    throw new RangeError(`model '${model}' names revision '${id.revision}' but the revision option is '${options.revision}'`)
  }
  const revision = id.revision ?? options.revision ?? 'main'
  checkRevision(revision)
  // One listener on the caller's signal per load (not one per request), removed when the load ends.
  const load = new AbortController()
  setMaxListeners(0, load.signal)
  const outer = options.signal
  throwIfAborted(outer)
  const onAbort = () => load.abort(abortError(outer!))
  outer?.addEventListener('abort', onAbort, { once: true })
  try {
    return await new CachedRepo(id.repo, revision, options, load.signal).snapshot()
  } finally {
    outer?.removeEventListener('abort', onAbort)
  }
}

class CachedRepo {
  readonly cacheDir: string
  readonly storage: string
  readonly endpoint: string
  readonly token: string | undefined
  private readonly basicAuth: string | undefined
  readonly offline: boolean
  readonly timeoutMs: number

  constructor(
    readonly repo: string,
    readonly revision: string,
    readonly options: HubOptions,
    /** Aborts with the caller's signal, for the duration of one load. */
    private readonly signal: AbortSignal,
  ) {
    this.cacheDir = path.resolve(options.cacheDir ?? getHFHubCachePath())
    this.storage = path.join(this.cacheDir, getRepoFolderName({ name: repo, type: 'model' }))
    const given = (options.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '')
    if (!URL.canParse(given) || !/^https?:$/.test(new URL(given).protocol)) {
      throw new TypeError(`the Hub endpoint '${redact(given)}' (HF_ENDPOINT or the endpoint option) is not an http(s) URL`)
    }
    // Credentials in the endpoint (a mirror behind basic auth) go in a header, as Python's
    // requests sends them, and never into a message.
    const u = new URL(given)
    this.basicAuth = u.username || u.password ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}` : undefined
    u.username = ''
    u.password = ''
    this.endpoint = u.href.replace(/\/+$/, '')
    this.token = options.token ?? envToken()
    this.offline = options.localFilesOnly ?? isTrue(process.env.HF_HUB_OFFLINE)
    const envTimeout = Number(process.env.HF_HUB_DOWNLOAD_TIMEOUT) * 1000
    this.timeoutMs = options.timeoutMs ?? (envTimeout > 0 ? envTimeout : 10_000)
    if (!(Number.isFinite(this.timeoutMs) && this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be a positive number, got ${options.timeoutMs}`)
  }

  /** `p` under the repo's cache folder (or the lock folder), or an Error: the last guard before a write. */
  private inside(p: string): string {
    const abs = path.resolve(p)
    if (!abs.startsWith(this.storage + path.sep) && !abs.startsWith(path.join(this.cacheDir, '.locks') + path.sep)) {
      throw new HubError(`${this.repo}@${this.revision}: refusing to write ${abs}, outside the cache folder ${this.storage}`, 0)
    }
    return abs
  }

  async snapshot(): Promise<string> {
    if (this.offline) return this.cachedSnapshot('HF_HUB_OFFLINE is set (or localFilesOnly)')
    let info: { commit: string; files: Set<string>; private: boolean }
    try {
      info = await this.repoInfo()
    } catch (e) {
      if (e instanceof HubError || isAbort(e)) throw e
      // No network: fall back on the cache, as Python's huggingface_hub does.
      return this.cachedSnapshot((e as Error).message)
    }
    const { commit, files } = info
    await fsp.mkdir(this.storage, { recursive: true })
    await fsp.writeFile(path.join(this.cacheDir, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' }).catch(() => undefined)
    if (this.revision !== commit) await this.writeRef(commit)
    if (!files.has('config.json')) throw new HubError(`${this.repo}@${this.revision} has no config.json: it is not a transformers token-classification model`, 0)
    // config.json first: an architecture this runtime does not run is refused before any
    // tokenizer or weight byte moves.
    checkArchitecture(await this.ensure(commit, 'config.json'), `${this.repo}@${this.revision}`)
    const tokenizer = TOKENIZERS.find((group) => group.every((f) => files.has(f)))
    if (!tokenizer) throw new HubError(`${this.repo}@${this.revision} has no tokenizer.json (nor ${TOKENIZERS.slice(1).map((g) => g.join(' + ')).join(', ')} to build one from)`, 0)
    const weights = await this.weightFiles(commit, files)
    if (weights === 'convert') {
      // Only pickles on this revision: the Hub's safetensors conversion PR, as transformers uses it.
      const pr = await this.conversionRevision(commit, info.private)
      if (!pr) throw this.noSafetensors(files)
      return new CachedRepo(this.repo, pr, this.options, this.signal).snapshot()
    }
    for (const f of [...tokenizer, ...OPTIONAL.filter((f) => files.has(f))]) await this.ensure(commit, f)
    for (const f of weights) await this.ensure(commit, f)
    return path.join(this.storage, 'snapshots', commit)
  }

  /**
   * The revision (`refs/pr/N`) of an open safetensors conversion PR whose parent is `commit`,
   * found as transformers finds it (`get_conversion_pr_reference`): titled as SFconvertbot
   * titles them, opened by SFconvertbot (by anyone on a private repo), and made from this very
   * commit, so its weights are this revision's.
   */
  private async conversionRevision(commit: string, isPrivate: boolean): Promise<string | undefined> {
    const what = `the discussions of ${this.repo}`
    for (let page = 0; page < DISCUSSION_PAGES; page++) {
      const body = await this.apiJson(`${this.endpoint}/api/models/${this.repo}/discussions?p=${page}`, what)
      const list = Array.isArray(body?.discussions) ? (body.discussions as Record<string, unknown>[]) : []
      for (const d of list) {
        const author = (d.author as { name?: unknown } | undefined)?.name
        if (d.title !== CONVERSION_PR || d.status !== 'open' || d.isPullRequest !== true || !Number.isSafeInteger(d.num)) continue
        if (!isPrivate && author !== 'SFconvertbot') continue
        const revision = `refs/pr/${d.num as number}`
        const commits = await this.apiJson(`${this.endpoint}/api/models/${this.repo}/commits/${encodeURIComponent(revision)}`, `the commits of ${revision}`)
        if (Array.isArray(commits) && (commits[1] as { id?: unknown } | undefined)?.id === commit) return revision
      }
      const count = Number(body?.count)
      const start = Number(body?.start)
      if (!(start + list.length < count) || list.length === 0) break
    }
    return undefined
  }

  /** A small JSON answer of the Hub's API, within the size and time limits. */
  private async apiJson(url: string, what: string): Promise<Record<string, unknown> & unknown[]> {
    const controller = new AbortController()
    const res = await this.request(url, { method: 'GET' }, what, controller)
    if (res.status >= 400) {
      await discard(res)
      throw this.apiError(res.status, res.headers.get('x-error-message') ?? res.statusText, what, res.headers.get('x-error-code'))
    }
    const text = (await this.readBounded(res, controller, API_CAP, what)).toString('utf8')
    try {
      return JSON.parse(text)
    } catch (e) {
      throw new HubError(`${url}: ${what} is not JSON (${(e as Error).message})`, res.status)
    }
  }

  /** The commit a revision points at, the repo's file names and whether it is private, from `/api/models`. */
  private async repoInfo(): Promise<{ commit: string; files: Set<string>; private: boolean }> {
    const what = `the repo description of ${this.repo}@${this.revision}`
    const url = `${this.endpoint}/api/models/${this.repo}/revision/${encodeURIComponent(this.revision)}`
    const controller = new AbortController()
    const res = await this.request(url, { method: 'GET' }, what, controller)
    if (res.status >= 400) {
      await discard(res)
      throw this.apiError(res.status, res.headers.get('x-error-message') ?? res.statusText, `the repo at revision '${this.revision}'`, res.headers.get('x-error-code'))
    }
    const text = (await this.readBounded(res, controller, API_CAP, what)).toString('utf8')
    let body: { sha?: unknown; siblings?: unknown; private?: unknown }
    try {
      body = JSON.parse(text)
    } catch (e) {
      throw new HubError(`${url}: ${what} is not JSON (${(e as Error).message}); is HF_ENDPOINT (${this.endpoint}) a Hugging Face Hub?`, res.status)
    }
    const commit = body?.sha
    if (typeof commit !== 'string' || !COMMIT.test(commit)) throw new HubError(`${this.endpoint}: the Hub gave no commit (40 hex digits) for ${this.repo}@${this.revision}`, res.status)
    const files = new Set<string>()
    if (Array.isArray(body.siblings)) for (const s of body.siblings) if (typeof s?.rfilename === 'string') files.add(s.rfilename)
    return { commit, files, private: (body as { private?: unknown }).private === true }
  }

  /** The safetensors the model needs; `'convert'` when the revision has only pickles (a conversion PR may have them). */
  private async weightFiles(commit: string, files: Set<string>): Promise<string[] | 'convert'> {
    if (files.has(SINGLE)) return [SINGLE]
    if (files.has(INDEX)) {
      const shards = shardsOf(await this.ensure(commit, INDEX), `${this.repo}@${this.revision}`)
      for (const s of shards) {
        if (!files.has(s)) throw new HubError(`${this.repo}@${this.revision}: ${INDEX} names shard '${s}', which the repo does not have`, 0)
      }
      return shards
    }
    if ([...files].some((f) => PICKLES.test(f)) && !this.revision.startsWith('refs/pr/')) return 'convert'
    throw this.noSafetensors(files)
  }

  private noSafetensors(files: Set<string>): HubError {
    const pickles = [...files].filter((f) => PICKLES.test(f))
    const found = pickles.length > 0 ? ` It has ${pickles.join(', ')}: pickled checkpoints can run code and are never loaded, and no open safetensors conversion PR (SFconvertbot's "${CONVERSION_PR}") was made from this commit; ask the owner for safetensors, or convert it with the safetensors library.` : ''
    return new HubError(`${this.repo}@${this.revision} has no ${SINGLE} or ${INDEX}.${found}`, 0)
  }

  /** A complete cached snapshot of this revision, or an error that says what is missing. */
  private async cachedSnapshot(why: string): Promise<string> {
    const ref = COMMIT.test(this.revision) ? this.revision : readIfExists(path.join(this.storage, 'refs', this.revision))?.trim()
    const commit = ref && COMMIT.test(ref) ? ref : undefined
    if (!commit) {
      throw new Error(`${why}, and ${this.repo}@${this.revision} is not in the cache (${this.storage}). Download it once online; then HF_HUB_OFFLINE=1 keeps it offline.`)
    }
    const dir = path.join(this.storage, 'snapshots', commit)
    const hasWeights = fs.existsSync(path.join(dir, SINGLE)) || fs.existsSync(path.join(dir, INDEX))
    if (!hasWeights) {
      // Loaded online through a conversion PR: its snapshot is the complete one.
      const prs = path.join(this.storage, 'refs', 'refs', 'pr')
      for (const n of fs.existsSync(prs) ? fs.readdirSync(prs) : []) {
        const pr = readIfExists(path.join(prs, n))?.trim()
        if (pr && COMMIT.test(pr) && fs.existsSync(path.join(this.storage, 'snapshots', pr, SINGLE))) return path.join(this.storage, 'snapshots', pr)
      }
    }
    const missing = ['config.json'].filter((f) => !fs.existsSync(path.join(dir, f)))
    if (!TOKENIZERS.some((group) => group.every((f) => fs.existsSync(path.join(dir, f))))) missing.push('tokenizer.json')
    if (fs.existsSync(path.join(dir, SINGLE))) {
      // complete
    } else if (fs.existsSync(path.join(dir, INDEX))) {
      for (const s of shardsOf(path.join(dir, INDEX), `${this.repo}@${this.revision}`)) if (!fs.existsSync(path.join(dir, s))) missing.push(s)
    } else {
      missing.push(SINGLE)
    }
    if (missing.length > 0) {
      throw new Error(`${why}, and the cached ${this.repo}@${this.revision} (${dir}) lacks ${missing.join(', ')}. Download it once online; then HF_HUB_OFFLINE=1 keeps it offline.`)
    }
    return dir
  }

  private async writeRef(commit: string): Promise<void> {
    const ref = this.inside(path.join(this.storage, 'refs', this.revision))
    if (readIfExists(ref) === commit) return
    await fsp.mkdir(path.dirname(ref), { recursive: true })
    const tmp = `${ref}.${process.pid}.tmp`
    await fsp.writeFile(tmp, commit)
    await fsp.rename(tmp, ref)
  }

  /** `snapshots/<commit>/<file>`, downloaded into `blobs/` first if needed. */
  private async ensure(commit: string, file: string): Promise<string> {
    const pointer = this.inside(path.join(this.storage, 'snapshots', commit, file))
    if (fs.existsSync(pointer)) return pointer
    const meta = await this.metadata(commit, file)
    const blob = this.inside(path.join(this.storage, 'blobs', meta.etag))
    await fsp.mkdir(path.dirname(blob), { recursive: true })
    if (!fs.existsSync(blob)) {
      const lockDir = path.join(this.cacheDir, '.locks', path.basename(this.storage))
      await fsp.mkdir(lockDir, { recursive: true })
      const release = await lockfile.lock(blob, {
        realpath: false,
        lockfilePath: this.inside(path.join(lockDir, `${meta.etag}.lock`)),
        stale: 30_000,
        update: 5_000,
        retries: { retries: 1_000_000, minTimeout: 100, maxTimeout: 1_000 },
      })
      try {
        // Another process may have finished it while we waited for the lock.
        if (!fs.existsSync(blob)) await this.download(file, meta, blob)
      } finally {
        await release()
      }
    }
    await link(blob, pointer)
    return pointer
  }

  /**
   * What the Hub says of a file at `commit`: its etag (sha256 for LFS files, the git blob sha1
   * otherwise), size and where to get it; both names and sizes are checked before use.
   */
  private async metadata(commit: string, file: string): Promise<{ etag: string; size: number; url: string }> {
    let url = `${this.endpoint}/${this.repo}/resolve/${commit}/${file.split('/').map(encodeURIComponent).join('/')}`
    for (let hop = 0; ; hop++) {
      const res = await this.request(url, { method: 'HEAD' }, file)
      await discard(res)
      const location = res.headers.get('location')
      const linkedEtag = res.headers.get('x-linked-etag')
      // Relative redirects (a renamed repo) lead to the same Hub; LFS files redirect elsewhere.
      if (res.status >= 300 && res.status < 400 && location && !linkedEtag) {
        if (hop >= 5) throw new HubError(`${file}: too many redirects (last to ${location})`, res.status)
        url = this.follow(location, url, file)
        continue
      }
      if (!(res.status < 400)) throw this.apiError(res.status, res.headers.get('x-error-message') ?? res.statusText, file, res.headers.get('x-error-code'))
      const etag = normalizeEtag(linkedEtag ?? res.headers.get('etag'))
      const sizeHeader = res.headers.get('x-linked-size') ?? res.headers.get('content-length')
      if (!etag || sizeHeader === null) throw new HubError(`${file}: the server sent no ETag or size; is HF_ENDPOINT (${this.endpoint}) a Hugging Face Hub?`, res.status)
      if (!ETAG.test(etag)) throw new HubError(`${file}: the server's ETag ${JSON.stringify(etag.slice(0, 80))} is not a sha1 or sha256 hex digest; refusing to use it as a cache name`, res.status)
      if (linkedEtag && !SHA256.test(etag)) throw new HubError(`${file}: the server's X-Linked-Etag ${etag} is not a sha256, so the download could not be checked`, res.status)
      const size = /^\d{1,16}$/.test(sizeHeader.trim()) ? Number(sizeHeader) : NaN
      if (!Number.isSafeInteger(size)) throw new HubError(`${file}: the server's size ${JSON.stringify(sizeHeader.slice(0, 40))} is not a byte count`, res.status)
      const cap = SIZE_CAPS[file] ?? (file.endsWith('.safetensors') ? WEIGHTS_CAP : 16 * MiB)
      if (size > cap) throw new HubError(`${file}: the server says it is ${size} bytes, over the ${cap} bytes such a file may have; nothing was downloaded`, res.status)
      return { etag, size, url: location ? this.follow(location, url, file) : url }
    }
  }

  /** An absolute http(s) URL for a redirect, or an Error naming the file. */
  private follow(location: string, base: string, file: string): string {
    let next: URL
    try {
      next = new URL(location, base)
    } catch {
      throw new HubError(`${file}: the server redirected to ${JSON.stringify(location.slice(0, 200))}, which is not a URL`, 0)
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new HubError(`${file}: the server redirected to a ${next.protocol} URL; only http(s) is followed`, 0)
    return next.href
  }

  /** Downloads into `<blob>.incomplete`, resuming what an earlier try left, then checks and renames. */
  private async download(file: string, meta: { etag: string; size: number; url: string }, blob: string): Promise<void> {
    const partial = this.inside(`${blob}.incomplete`)
    for (let attempt = 0; ; attempt++) {
      const before = partialSize(partial)
      try {
        await this.transfer(file, meta, partial)
        break
      } catch (e) {
        const err = e as NodeJS.ErrnoException
        if (err.code === 'ENOSPC') throw new Error(`the disk is full while writing ${partial} (${file}, ${meta.size} bytes); free space and load again to resume`)
        const after = partialSize(partial)
        // A transfer that moved forward is resumed; one that got nothing is not retried, so a
        // dead server costs one timeout, not RETRIES of them.
        if (err instanceof HubError || isAbort(err) || attempt >= RETRIES || after <= before) throw e
      }
    }
    const size = partialSize(partial)
    if (size !== meta.size) {
      await fsp.rm(partial, { force: true })
      throw new HubError(`${file}: got ${size} bytes, the Hub says ${meta.size}`, 0)
    }
    const digest = await (SHA256.test(meta.etag) ? sha256(partial) : gitBlobSha1(partial, size))
    if (digest !== meta.etag) {
      await fsp.rm(partial, { force: true })
      throw new HubError(`${file}: ${SHA256.test(meta.etag) ? 'sha256' : 'git blob sha1'} ${digest} does not match the Hub's ${meta.etag}; the download was corrupted and was discarded`, 0)
    }
    await fsp.rename(partial, blob)
  }

  /** One GET into `partial`, appending to what it has; never more than the declared size. */
  private async transfer(file: string, meta: { size: number; url: string }, partial: string): Promise<void> {
    let have = partialSize(partial)
    if (have > meta.size) {
      await fsp.rm(partial)
      have = 0
    }
    const report = this.options.onProgress
    report?.({ file, loaded: have, total: meta.size })
    if (have === meta.size) return
    const controller = new AbortController()
    let res = await this.request(meta.url, { method: 'GET', headers: have > 0 ? { Range: `bytes=${have}-` } : {} }, file, controller)
    if (res.status === 416 && have > 0) {
      // The server will not resume from there (the file changed, or a bad partial): start over.
      await discard(res)
      await fsp.rm(partial, { force: true })
      have = 0
      report?.({ file, loaded: 0, total: meta.size })
      res = await this.request(meta.url, { method: 'GET' }, file, controller)
    }
    if (res.status >= 400) {
      await discard(res)
      throw this.apiError(res.status, res.headers.get('x-error-message') ?? res.statusText, file, res.headers.get('x-error-code'))
    }
    // A 206 must continue where the partial file ends; anything else starts over.
    if (res.status === 206) {
      const range = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')
      if (!range || Number(range[1]) !== have) {
        await discard(res)
        await fsp.rm(partial, { force: true })
        throw new Error(`${file}: the server answered a request for bytes ${have}- with ${res.headers.get('content-range') ?? 'no Content-Range'}; starting over`)
      }
    } else have = 0
    // Never through a link planted in the cache: O_NOFOLLOW where the system has it, and
    // partialSize() already removed anything at that path that is not a regular file.
    const flags = (have > 0 ? fs.constants.O_APPEND : fs.constants.O_TRUNC) | fs.constants.O_WRONLY | fs.constants.O_CREAT | (fs.constants.O_NOFOLLOW ?? 0)
    const out = fs.createWriteStream(partial, { flags: flags as unknown as string })
    const done = new Promise<void>((resolve, reject) => {
      out.on('error', reject)
      out.on('finish', resolve)
    })
    let loaded = have
    try {
      await this.readBody(res, controller, file, (chunk) => {
        if (loaded + chunk.length > meta.size) {
          throw new HubError(`${file}: the server sent more than the ${meta.size} bytes it declared; the download was discarded`, res.status)
        }
        loaded += chunk.length
        report?.({ file, loaded, total: meta.size })
        return out.write(chunk) ? undefined : new Promise<void>((r) => out.once('drain', () => r()))
      })
    } catch (e) {
      out.end()
      await done.catch(() => undefined)
      if (e instanceof HubError) await fsp.rm(partial, { force: true })
      throw e
    }
    out.end()
    await done
  }

  /**
   * Streams a response body to `onChunk`, aborting when no bytes arrive for `timeoutMs`; any
   * failure is an Error that names the file.
   */
  private async readBody(res: Response, controller: AbortController, file: string, onChunk: (chunk: Uint8Array) => void | Promise<void>): Promise<void> {
    if (!res.body) return
    const reader = res.body.getReader()
    let timer: NodeJS.Timeout | undefined
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(() => controller.abort(new TimeoutError(`${file}: no data from ${new URL(res.url || this.endpoint).origin} for ${this.timeoutMs} ms`)), this.timeoutMs)
    }
    try {
      for (;;) {
        arm()
        let step: { done: boolean; value?: Uint8Array }
        try {
          step = await reader.read()
        } catch (e) {
          if (controller.signal.aborted && controller.signal.reason instanceof Error) throw controller.signal.reason
          throw new Error(`${file}: the transfer from ${new URL(res.url || this.endpoint).origin} broke off (${(e as Error).message})`)
        }
        if (step.done) return
        const wait = onChunk(step.value!)
        if (wait) await wait
      }
    } catch (e) {
      controller.abort()
      await reader.cancel().catch(() => undefined)
      throw e
    } finally {
      clearTimeout(timer)
    }
  }

  /** A whole (small) body, at most `cap` bytes, within the idle timeout. */
  private async readBounded(res: Response, controller: AbortController, cap: number, what: string): Promise<Buffer> {
    const declared = Number(res.headers.get('content-length'))
    if (declared > cap) {
      await discard(res)
      throw new HubError(`${what}: the server says it is ${declared} bytes, over the ${cap} allowed`, res.status)
    }
    const chunks: Uint8Array[] = []
    let size = 0
    await this.readBody(res, controller, what, (c) => {
      size += c.length
      if (size > cap) throw new HubError(`${what}: the server sent more than the ${cap} bytes allowed`, res.status)
      chunks.push(c)
    })
    return Buffer.concat(chunks)
  }

  /**
   * `fetch` with a time limit on the answer, that sends the token only to the Hub's own address
   * and follows redirects itself (GET only: HEAD reports them, metadata reads their headers).
   */
  private async request(url: string, init: { method: string; headers?: Record<string, string> }, file: string, controller = new AbortController()): Promise<Response> {
    const hub = new URL(this.endpoint).origin
    // The caller's signal aborts this request (and the body read that follows it).
    throwIfAborted(this.signal)
    this.signal.addEventListener('abort', () => controller.abort(this.signal.reason), { once: true })
    for (let hop = 0; hop < 10; hop++) {
      // identity: sizes and hashes are those of the stored bytes (a mirror that gzips JSON
      // would otherwise fail the size check), as huggingface_hub asks.
      const headers: Record<string, string> = { ...init.headers, 'user-agent': 'eurobert-ner', 'accept-encoding': 'identity' }
      if (new URL(url).origin === hub) {
        const auth = this.token ? `Bearer ${this.token}` : this.basicAuth
        if (auth) headers.authorization = auth
      }
      let res: Response
      // Each connection attempt gets the whole time limit: a retry is a fresh wait for an answer.
      const arm = () => setTimeout(() => controller.abort(new TimeoutError(`${file}: ${new URL(url).origin} did not answer within ${this.timeoutMs} ms`)), this.timeoutMs)
      let timer = arm()
      try {
        // A connection that fails before any answer (a kept-alive socket the server had just
        // closed: ECONNRESET) is tried again on a fresh one, twice at most.
        for (let attempt = 0; ; attempt++) {
          try {
            res = await fetch(url, { method: init.method, headers, redirect: 'manual', signal: controller.signal })
            break
          } catch (e) {
            if (controller.signal.aborted && controller.signal.reason instanceof Error) throw controller.signal.reason
            const code = ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code
            if (attempt < 2 && (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE')) {
              clearTimeout(timer)
              await new Promise((r) => setTimeout(r, 50 * (attempt + 1)))
              throwIfAborted(controller.signal)
              timer = arm()
              continue
            }
            throw new Error(`cannot reach ${new URL(url).origin} for ${file} (${(e as Error).cause ?? (e as Error).message})`)
          }
        }
      } finally {
        clearTimeout(timer)
      }
      const location = res.headers.get('location')
      if (init.method === 'GET' && res.status >= 300 && res.status < 400 && location) {
        await discard(res)
        url = this.follow(location, url, file)
        continue
      }
      return res
    }
    throw new HubError(`${file}: too many redirects`, 0)
  }

  private apiError(status: number, message: string, what: string, code?: string | null): Error {
    const id = `${this.repo}@${this.revision}`
    message = message.slice(0, 500)
    if (status === 401 || status === 403) {
      const auth = this.token ? 'the token given (HF_TOKEN or the token option) has no access to it' : 'set HF_TOKEN (or the token option) to a token with access to it'
      return new HubError(`${id}: ${status === 403 ? 'access denied (gated or private repo)' : 'authentication required (private or gated repo)'}; ${auth}. Hub said: ${message}`, status)
    }
    if (status === 404) {
      const kind = code === 'RevisionNotFound' ? `revision '${this.revision}' not found` : code === 'EntryNotFound' ? `${what} not found in the repo` : code === 'RepoNotFound' ? 'repo not found (or private: set HF_TOKEN)' : `${what} not found`
      return new HubError(`${id}: ${kind} on ${this.endpoint}`, status)
    }
    return new HubError(`${id}: the Hub answered ${status} for ${what}: ${message}`, status)
  }
}

/** A request or transfer that waited longer than `timeoutMs`. */
class TimeoutError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TimeoutError'
  }
}

/** The shard files a `model.safetensors.index.json` names, each a plain `.safetensors` file name. */
function shardsOf(indexPath: string, id: string): string[] {
  let index: { weight_map?: unknown }
  try {
    index = JSON.parse(fs.readFileSync(indexPath, 'utf8'))
  } catch (e) {
    throw new HubError(`${id}: ${INDEX} is not JSON (${(e as Error).message})`, 0)
  }
  const map = index?.weight_map
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new HubError(`${id}: ${INDEX} has no "weight_map" object`, 0)
  const shards = [...new Set(Object.values(map as Record<string, unknown>))]
  for (const s of shards) {
    if (typeof s !== 'string' || !SHARD.test(s)) throw new HubError(`${id}: ${INDEX} names shard ${JSON.stringify(s)}, which is not a .safetensors file name`, 0)
  }
  return shards as string[]
}

/**
 * Bytes of a partial download, judged without following links: anything at the path that is
 * not a regular file (a planted symlink, a folder) is removed first, so a download can only
 * ever write inside the cache.
 */
function partialSize(partial: string): number {
  let st: fs.Stats
  try {
    st = fs.lstatSync(partial)
  } catch {
    return 0
  }
  if (st.isFile()) return st.size
  fs.rmSync(partial, { recursive: true, force: true })
  return 0
}

/** A URL with any credentials in it masked, for messages. */
function redact(url: string): string {
  return url.replace(/^([a-z]+:\/\/)[^/@]*@/i, '$1***@')
}

/**
 * Refuses a config.json whose `model_type` this runtime does not run (the core's own list and
 * message), before anything else of the repo is downloaded.
 */
function checkArchitecture(configPath: string, id: string): void {
  const problem = architectureProblem(fs.readFileSync(configPath, 'utf8'), id, native().supportedModelTypes())
  if (problem) throw new HubError(problem, 0)
}

/** Drops a response's body so its connection is freed. */
async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined)
}

/** An answer from the Hub that retrying will not change. */
export class HubError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message)
    this.name = 'HubError'
  }
}

/** `snapshots/.../file` → `../../blobs/<etag>` as a relative symlink, or a copy where links are not allowed. */
async function link(blob: string, pointer: string): Promise<void> {
  await fsp.mkdir(path.dirname(pointer), { recursive: true })
  const tmp = `${pointer}.${process.pid}.tmp`
  await fsp.rm(tmp, { force: true })
  try {
    await fsp.symlink(path.relative(path.dirname(pointer), blob), tmp)
  } catch {
    await fsp.copyFile(blob, tmp)
  }
  await fsp.rename(tmp, pointer)
}

/** Git's blob id: sha1 of `blob <size>\0` and the bytes, the Hub's ETag of a regular file. */
async function gitBlobSha1(file: string, size: number): Promise<string> {
  const hash = createHash('sha1').update(`blob ${size}\0`)
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

function normalizeEtag(etag: string | null): string | undefined {
  return etag?.replace(/^W\//, '').replace(/^"(.*)"$/, '$1') || undefined
}

function envToken(): string | undefined {
  const env = process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN
  if (env) return env.trim()
  const home = process.env.HF_HOME ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface')
  return readIfExists(process.env.HF_TOKEN_PATH ?? path.join(home, 'token'))?.trim() || undefined
}

function isTrue(v: string | undefined): boolean {
  return ['1', 'on', 'yes', 'true'].includes((v ?? '').toLowerCase())
}

/** Whether `p` is an existing folder (a model given by path rather than by Hub id). */
/** The tokenizer files a model folder may hold, in the order transformers.js reads its own. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.txt', 'vocab.json', 'merges.txt', 'sentencepiece.bpe.model', 'spm.model']

/** The files a model folder's load reads: config, tokenizer, weights (one file or shards). */
function modelFiles(dir: string): string[] {
  const has = (f: string) => fs.existsSync(path.join(dir, f))
  const files = ['config.json', ...TOKENIZER_FILES].filter(has)
  if (has('model.safetensors')) return [...files, 'model.safetensors']
  const index = 'model.safetensors.index.json'
  if (!has(index)) return files
  try {
    const map = (JSON.parse(fs.readFileSync(path.join(dir, index), 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {}
    return [...files, index, ...[...new Set(Object.values(map))].sort().filter((f) => typeof f === 'string' && has(f))]
  } catch {
    return [...files, index]
  }
}

/** The files a folder's load reads, with their sizes (for progress events). */
export function folderFiles(dir: string): { file: string; size: number }[] {
  const size = (f: string) => {
    try {
      return fs.statSync(path.join(dir, f)).size
    } catch {
      return 0
    }
  }
  return modelFiles(dir).map((file) => ({ file, size: size(file) }))
}

/**
 * The URL to fetch `model` from, when it is to be fetched rather than cached on disk: never in
 * Node, where folders and Hub ids go through `resolveModel`. (The browser's twin of this
 * module gives a Hub id's URL on the Hub.)
 */
export function remoteModel(_model: string, _options: Pick<HubOptions, 'revision' | 'endpoint'>): string | undefined {
  return undefined
}

/** `p` as an absolute path (the native loader's folder). */
export function absolute(p: string): string {
  return path.resolve(p)
}

export function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory()
  } catch {
    return false
  }
}

function readIfExists(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8')
  } catch {
    return undefined
  }
}
