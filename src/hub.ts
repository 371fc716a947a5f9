// Models by Hugging Face Hub id, cached in Python's layout so one download serves both
// ecosystems: `<cache>/models--owner--name/{blobs/<etag>, snapshots/<commit>/<file>,
// refs/<revision>}`. `@huggingface/hub` gives the repo metadata, the cache root and the folder
// names; this file adds what it lacks: the environment variables Python users set, only the
// files a safetensors model needs, `refs/` for every revision, offline mode, progress,
// resumable downloads checked against the Hub's sha256 before they enter `blobs/`, and a lock
// so that two processes end with one good copy.
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'

import { getHFHubCachePath, getRepoFolderName, HubApiError, modelInfo } from '@huggingface/hub'
import * as lockfile from 'proper-lockfile'

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
}

export interface DownloadProgress {
  file: string
  loaded: number
  total: number
}

const REQUIRED = ['config.json', 'tokenizer.json']
const OPTIONAL = ['tokenizer_config.json', 'special_tokens_map.json']
const SINGLE = 'model.safetensors'
const INDEX = 'model.safetensors.index.json'
const PICKLES = /\.(bin|pt|pth|ckpt|pkl)$/
const COMMIT = /^[0-9a-f]{40}$/
const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+)(?:@(.+))?$/
const RETRIES = 5
/** The tag huggingface_hub puts at the cache root so backup tools skip it (bford.info/cachedir). */
const CACHEDIR_TAG =
  'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by huggingface_hub.\n# For information about cache directory tags, see:\n#\thttps://bford.info/cachedir/\n'

/** `owner/name` and the revision named with `@`, or undefined when `s` is not a Hub id. */
export function parseHubId(s: string): { repo: string; revision?: string } | undefined {
  const m = HUB_ID.exec(s)
  if (!m || m[1].includes('..') || m[2].includes('..') || m[2].startsWith('.')) return undefined
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] }
}

/**
 * The local folder of a model: `model` itself when it is an existing folder, otherwise the
 * snapshot of Hub repo `owner/name[@revision]`, downloaded on first use.
 */
export async function resolveModel(model: string, options: HubOptions = {}): Promise<string> {
  if (isDirectory(model)) return path.resolve(model)
  const id = parseHubId(model)
  if (!id) {
    throw new Error(`model folder not found: ${model} (nor is it a Hub id of the form owner/name)`)
  }
  if (id.revision && options.revision && id.revision !== options.revision) {
    throw new RangeError(`model '${model}' names revision '${id.revision}' but the revision option is '${options.revision}'`)
  }
  const repo = new CachedRepo(id.repo, id.revision ?? options.revision ?? 'main', options)
  return repo.snapshot()
}

class CachedRepo {
  readonly cacheDir: string
  readonly storage: string
  readonly endpoint: string
  readonly token: string | undefined
  readonly offline: boolean

  constructor(
    readonly repo: string,
    readonly revision: string,
    readonly options: HubOptions,
  ) {
    this.cacheDir = options.cacheDir ?? getHFHubCachePath()
    this.storage = path.join(this.cacheDir, getRepoFolderName({ name: repo, type: 'model' }))
    this.endpoint = (options.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '')
    if (!URL.canParse(this.endpoint)) throw new TypeError(`the Hub endpoint '${this.endpoint}' (HF_ENDPOINT or the endpoint option) is not a URL`)
    this.token = options.token ?? envToken()
    this.offline = options.localFilesOnly ?? isTrue(process.env.HF_HUB_OFFLINE)
  }

  async snapshot(): Promise<string> {
    if (this.offline) return this.cachedSnapshot('HF_HUB_OFFLINE is set (or localFilesOnly)')
    let info: { sha: string; filePaths: string[] }
    let errorCode: string | null = null
    try {
      info = (await modelInfo({
        name: this.repo,
        revision: this.revision,
        hubUrl: this.endpoint,
        accessToken: this.token,
        additionalFields: ['sha', 'filePaths'],
        // The Hub says which of repo or revision is missing in a header the client drops.
        fetch: async (input, init) => {
          const res = await fetch(input, init)
          errorCode = res.headers.get('x-error-code')
          return res
        },
      })) as unknown as typeof info
    } catch (e) {
      if (e instanceof HubApiError) throw this.apiError(e.statusCode, e.message, `the repo at revision '${this.revision}'`, errorCode)
      // No network: fall back on the cache, as Python's huggingface_hub does.
      const why = `cannot reach ${this.endpoint} (${(e as Error).cause ?? (e as Error).message})`
      return this.cachedSnapshot(why)
    }
    const commit = info.sha
    if (!COMMIT.test(commit ?? '')) throw new Error(`${this.endpoint}: the Hub gave no commit for ${this.repo}@${this.revision}`)
    const files = new Set(info.filePaths ?? [])
    await fsp.mkdir(this.storage, { recursive: true })
    await fsp.writeFile(path.join(this.cacheDir, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' }).catch(() => undefined)
    if (this.revision !== commit) await this.writeRef(commit)
    for (const f of REQUIRED) {
      if (!files.has(f)) throw new Error(`${this.repo}@${this.revision} has no ${f}: it is not a transformers token-classification model`)
    }
    const wanted = [...REQUIRED, ...OPTIONAL.filter((f) => files.has(f))]
    for (const f of wanted) await this.ensure(commit, f)
    for (const f of await this.weightFiles(commit, files)) await this.ensure(commit, f)
    return path.join(this.storage, 'snapshots', commit)
  }

  /** The safetensors the model needs; a repo with only pickles is refused. */
  private async weightFiles(commit: string, files: Set<string>): Promise<string[]> {
    if (files.has(SINGLE)) return [SINGLE]
    if (files.has(INDEX)) {
      const index = JSON.parse(await fsp.readFile(await this.ensure(commit, INDEX), 'utf8'))
      const shards = [...new Set(Object.values(index.weight_map ?? {}) as string[])]
      for (const s of shards) {
        if (typeof s !== 'string' || !files.has(s) || s.includes('/') || s.includes('\\')) {
          throw new Error(`${this.repo}@${this.revision}: ${INDEX} names shard '${s}', which the repo does not have`)
        }
      }
      return shards
    }
    const pickles = [...files].filter((f) => PICKLES.test(f))
    const found = pickles.length > 0 ? ` It has ${pickles.join(', ')}: pickled checkpoints can run code and are never loaded; ask the owner for safetensors, or convert it with the safetensors library.` : ''
    throw new Error(`${this.repo}@${this.revision} has no ${SINGLE} or ${INDEX}.${found}`)
  }

  /** A complete cached snapshot of this revision, or an error that says what is missing. */
  private async cachedSnapshot(why: string): Promise<string> {
    const commit = COMMIT.test(this.revision) ? this.revision : readIfExists(path.join(this.storage, 'refs', this.revision))?.trim()
    if (!commit) {
      throw new Error(`${why}, and ${this.repo}@${this.revision} is not in the cache (${this.storage}). Download it once online; then HF_HUB_OFFLINE=1 keeps it offline.`)
    }
    const dir = path.join(this.storage, 'snapshots', commit)
    const missing = REQUIRED.filter((f) => !fs.existsSync(path.join(dir, f)))
    if (fs.existsSync(path.join(dir, SINGLE))) {
      // complete
    } else if (fs.existsSync(path.join(dir, INDEX))) {
      const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX), 'utf8'))
      for (const s of new Set(Object.values(index.weight_map ?? {}) as string[])) if (!fs.existsSync(path.join(dir, s))) missing.push(s)
    } else {
      missing.push(SINGLE)
    }
    if (missing.length > 0) {
      throw new Error(`${why}, and the cached ${this.repo}@${this.revision} (${dir}) lacks ${missing.join(', ')}. Download it once online; then HF_HUB_OFFLINE=1 keeps it offline.`)
    }
    return dir
  }

  private async writeRef(commit: string): Promise<void> {
    const ref = path.join(this.storage, 'refs', this.revision)
    if (readIfExists(ref) === commit) return
    await fsp.mkdir(path.dirname(ref), { recursive: true })
    const tmp = `${ref}.${process.pid}.tmp`
    await fsp.writeFile(tmp, commit)
    await fsp.rename(tmp, ref)
  }

  /** `snapshots/<commit>/<file>`, downloaded into `blobs/` first if needed. */
  private async ensure(commit: string, file: string): Promise<string> {
    const pointer = path.join(this.storage, 'snapshots', commit, file)
    if (fs.existsSync(pointer)) return pointer
    const meta = await this.metadata(commit, file)
    const blob = path.join(this.storage, 'blobs', meta.etag)
    await fsp.mkdir(path.dirname(blob), { recursive: true })
    if (!fs.existsSync(blob)) {
      const lockDir = path.join(this.cacheDir, '.locks', path.basename(this.storage))
      await fsp.mkdir(lockDir, { recursive: true })
      const release = await lockfile.lock(blob, {
        realpath: false,
        lockfilePath: path.join(lockDir, `${meta.etag}.lock`),
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

  /** What the Hub says of a file at `commit`: its etag (sha256 for LFS files), size and where to get it. */
  private async metadata(commit: string, file: string): Promise<{ etag: string; size: number; url: string }> {
    let url = `${this.endpoint}/${this.repo}/resolve/${commit}/${file.split('/').map(encodeURIComponent).join('/')}`
    for (let hop = 0; ; hop++) {
      const res = await this.request(url, { method: 'HEAD' }, file)
      const location = res.headers.get('location')
      const linkedEtag = res.headers.get('x-linked-etag')
      // Relative redirects (a renamed repo) lead to the same Hub; LFS files redirect elsewhere.
      if (res.status >= 300 && res.status < 400 && location && !linkedEtag && hop < 5) {
        url = new URL(location, url).href
        continue
      }
      if (!(res.status < 400)) throw this.apiError(res.status, res.headers.get('x-error-message') ?? res.statusText, file, res.headers.get('x-error-code'))
      const etag = normalizeEtag(linkedEtag ?? res.headers.get('etag'))
      const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length'))
      if (!etag || !Number.isSafeInteger(size)) throw new Error(`${url}: the server sent no ETag or size; is HF_ENDPOINT (${this.endpoint}) a Hugging Face Hub?`)
      return { etag, size, url: location ? new URL(location, url).href : url }
    }
  }

  /** Downloads into `<blob>.incomplete`, resuming what an earlier try left, then checks and renames. */
  private async download(file: string, meta: { etag: string; size: number; url: string }, blob: string): Promise<void> {
    const partial = `${blob}.incomplete`
    for (let attempt = 0; ; attempt++) {
      try {
        await this.transfer(file, meta, partial)
        break
      } catch (e) {
        const err = e as NodeJS.ErrnoException
        if (err.code === 'ENOSPC') throw new Error(`the disk is full while writing ${partial} (${file}, ${meta.size} bytes); free space and load again to resume`)
        if (err instanceof HubError || attempt >= RETRIES) throw e
      }
    }
    const size = fs.statSync(partial).size
    if (size !== meta.size) throw new Error(`${file}: got ${size} bytes, the Hub says ${meta.size}`)
    if (/^[0-9a-f]{64}$/.test(meta.etag)) {
      const digest = await sha256(partial)
      if (digest !== meta.etag) {
        await fsp.rm(partial, { force: true })
        throw new Error(`${file}: sha256 ${digest} does not match the Hub's ${meta.etag}; the download was corrupted and was discarded`)
      }
    }
    await fsp.rename(partial, blob)
  }

  private async transfer(file: string, meta: { size: number; url: string }, partial: string): Promise<void> {
    let have = fs.existsSync(partial) ? fs.statSync(partial).size : 0
    if (have > meta.size) {
      await fsp.rm(partial)
      have = 0
    }
    const report = this.options.onProgress
    report?.({ file, loaded: have, total: meta.size })
    if (have === meta.size) return
    const res = await this.request(meta.url, { method: 'GET', headers: have > 0 ? { Range: `bytes=${have}-` } : {} }, file)
    if (res.status >= 400) throw this.apiError(res.status, res.headers.get('x-error-message') ?? res.statusText, file, res.headers.get('x-error-code'))
    // A server that ignores Range sends everything again: start over.
    if (res.status !== 206) have = 0
    const out = fs.createWriteStream(partial, { flags: have > 0 ? 'a' : 'w' })
    const done = new Promise<void>((resolve, reject) => {
      out.on('error', reject)
      out.on('finish', resolve)
    })
    let loaded = have
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()))
        loaded += chunk.length
        report?.({ file, loaded, total: meta.size })
      }
    } finally {
      out.end()
      await done
    }
  }

  /** `fetch` that sends the token only to the Hub's own address and follows redirects itself. */
  private async request(url: string, init: { method: string; headers?: Record<string, string> }, file: string): Promise<Response> {
    const hub = new URL(this.endpoint).origin
    for (let hop = 0; hop < 10; hop++) {
      const headers: Record<string, string> = { ...init.headers, 'user-agent': 'eurobert-ner' }
      if (this.token && new URL(url).origin === hub) headers.authorization = `Bearer ${this.token}`
      let res: Response
      try {
        res = await fetch(url, { method: init.method, headers, redirect: 'manual' })
      } catch (e) {
        throw new Error(`cannot download ${file} from ${new URL(url).origin}: ${(e as Error).cause ?? (e as Error).message}`)
      }
      const location = res.headers.get('location')
      // HEAD requests report redirects (metadata reads the LFS headers on them).
      if (init.method === 'GET' && res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel()
        url = new URL(location, url).href
        continue
      }
      return res
    }
    throw new Error(`${file}: too many redirects`)
  }

  private apiError(status: number, message: string, what: string, code?: string | null): Error {
    const id = `${this.repo}@${this.revision}`
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

function isDirectory(p: string): boolean {
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
