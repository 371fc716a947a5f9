// A Hugging Face Hub stand-in on 127.0.0.1 with the Hub's download semantics, for tests and
// for tools/record_hub_cache.py: `/api/models/{repo}[/revision/{rev}]` with `sha` and
// `siblings`; `HEAD`/`GET /{repo}/resolve/{rev}/{file}` with `ETag`, `X-Repo-Commit`, and for
// LFS files (safetensors) `X-Linked-Etag` (sha256), `X-Linked-Size` and a 302 to a separate
// "CDN" server on another port that serves `Range` requests; errors with `X-Error-Code`.
// Faults can be injected: a connection dropped mid-file, a corrupted byte, no Range support.
//
// As a program: `node --import tsx __test__/helpers/hub-server.ts REPO_ID=FOLDER ...` serves
// each folder as one commit on `main` and prints `{"url": ...}`.
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as path from 'node:path'

/** A file's content, or the path of a file on disk to stream (for checkpoints over 2 GB). */
export type Content = Buffer | { path: string }

export interface HubRepo {
  id: string
  /** commit sha → file path → content */
  commits: Record<string, Record<string, Content>>
  /** branch or tag → commit sha */
  refs: Record<string, string>
  /** Tokens that may read the repo; when set, the repo is gated/private. */
  tokens?: string[]
  /** Discussions and pull requests (`/api/models/{repo}/discussions`); a PR's branch is `refs/pr/{num}` in `refs`. */
  discussions?: { num: number; title: string; status: 'open' | 'closed' | 'merged'; isPullRequest: boolean; author: string }[]
  /** commit → its parent, for `/api/models/{repo}/commits/{rev}` (newest first). */
  parents?: Record<string, string>
}

export interface Faults {
  /** Close the connection after this many bytes of the next CDN response for `file`. */
  dropAfter?: { file: string; bytes: number }
  /** Flip one byte in the next CDN response for `file`. */
  corrupt?: { file: string }
  /** Answer Range requests with the whole file (200). */
  noRange?: boolean
  /**
   * A hostile Hub: called before each request is served; returning true means it answered
   * (or dropped) the request itself. `file` is the path after `resolve/<rev>/`, or the
   * `?file=` of a CDN request.
   */
  intercept?: (server: 'hub' | 'cdn', req: http.IncomingMessage, res: http.ServerResponse, file: string | undefined) => boolean
  /** Rewrites the headers of an ordinary answer (e.g. a hostile ETag). */
  headers?: (server: 'hub' | 'cdn', file: string | undefined, headers: Record<string, string>) => Record<string, string>
}

export interface Request {
  server: 'hub' | 'cdn'
  method: string
  url: string
  authorization?: string
  range?: string
  /** When it arrived (Date.now()). */
  at: number
}

export interface Hub {
  url: string
  cdnUrl: string
  requests: Request[]
  faults: Faults
  /** Stops both servers (open connections are destroyed). */
  close(): Promise<void>
}

const isLfs = (file: string) => file.endsWith('.safetensors')
const size = (c: Content) => (Buffer.isBuffer(c) ? c.length : fs.statSync(c.path).size)

function digest(algo: string, c: Content, prefix = ''): string {
  const h = createHash(algo).update(prefix)
  if (Buffer.isBuffer(c)) return h.update(c).digest('hex')
  const fd = fs.openSync(c.path, 'r')
  const buf = Buffer.alloc(1 << 22)
  for (let n; (n = fs.readSync(fd, buf)) > 0; ) h.update(buf.subarray(0, n))
  fs.closeSync(fd)
  return h.digest('hex')
}
const hashes = new WeakMap<object, { sha256: string; sha1: string }>()
function hashesOf(c: Content) {
  let h = hashes.get(c)
  if (!h) hashes.set(c, (h = { sha256: digest('sha256', c), sha1: digest('sha1', c, `blob ${size(c)}\0`) }))
  return h
}
const sha256 = (c: Content) => hashesOf(c).sha256
const gitSha1 = (c: Content) => hashesOf(c).sha1

/** Bytes `[start, end]` of a content. */
function slice(c: Content, start: number, end: number): Buffer {
  if (Buffer.isBuffer(c)) return c.subarray(start, end + 1)
  const buf = Buffer.alloc(end + 1 - start)
  const fd = fs.openSync(c.path, 'r')
  fs.readSync(fd, buf, 0, buf.length, start)
  fs.closeSync(fd)
  return buf
}

/** A commit sha for a folder's content, stable across runs. */
export function commitOf(files: Record<string, Content>): string {
  const h = createHash('sha1')
  for (const name of Object.keys(files).sort()) h.update(name).update(gitSha1(files[name]))
  return h.digest('hex')
}

/** The top-level files of a folder; files over 64 MB are streamed from disk when served. */
export function readFolder(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {}
  for (const f of fs.readdirSync(dir)) {
    const p = path.join(dir, f)
    if (fs.statSync(p).isFile()) out[f] = fs.statSync(p).size > 64 << 20 ? ({ path: p } as unknown as Buffer) : fs.readFileSync(p)
  }
  return out
}

export async function startHub(repos: HubRepo[], faults: Faults = {}): Promise<Hub> {
  const requests: Request[] = []
  const blobs = new Map<string, { file: string; data: Content }>()
  for (const r of repos) for (const files of Object.values(r.commits)) for (const [f, d] of Object.entries(files)) if (isLfs(f)) blobs.set(sha256(d), { file: f, data: d })

  const log = (server: Request['server'], req: http.IncomingMessage) =>
    requests.push({ server, method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, range: req.headers.range, at: Date.now() })

  const fail = (res: http.ServerResponse, status: number, code: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-error-code': code, 'x-error-message': message })
    res.end(JSON.stringify({ error: message }))
  }

  let cdnUrl = ''
  const hub = http.createServer((req, res) => {
    log('hub', req)
    const url = new URL(req.url ?? '/', 'http://x')
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent)
    const target = parts[2] === 'resolve' ? parts.slice(4).join('/') : parts[0] === 'api' ? 'api' : undefined
    if (faults.intercept?.('hub', req, res, target)) return
    const writeHead = res.writeHead.bind(res) as (status: number, headers?: Record<string, string>) => void
    ;(res as unknown as { writeHead: typeof writeHead }).writeHead = (status, headers = {}) => writeHead(status, faults.headers ? faults.headers('hub', target, headers) : headers)
    const api = parts[0] === 'api' && parts[1] === 'models'
    const [owner, name] = api ? parts.slice(2, 4) : parts.slice(0, 2)
    const repo = repos.find((r) => r.id === `${owner}/${name}`)
    if (!repo) return fail(res, 404, 'RepoNotFound', `Repository Not Found for url: ${req.url}.`)
    if (repo.tokens) {
      const auth = req.headers.authorization?.replace(/^Bearer /, '')
      if (!auth) return fail(res, 401, 'GatedRepo', `Access to model ${repo.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`)
      if (!repo.tokens.includes(auth)) return fail(res, 403, 'GatedRepo', `Access to model ${repo.id} is restricted and you are not in the authorized list.`)
    }
    const resolveRev = (rev: string) => repo.refs[rev] ?? (repo.commits[rev] ? rev : undefined)
    if (api && parts[4] === 'discussions') {
      // One page of 50, as the Hub pages them (huggingface_hub reads `count` and `start`).
      const all = (repo.discussions ?? []).map((d) => ({ ...d, author: { name: d.author }, repo: { name: repo.id, type: 'model' }, createdAt: '2026-01-01T00:00:00.000Z' }))
      const start = 50 * Number(url.searchParams.get('p') ?? 0)
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify({ discussions: all.slice(start, start + 50), count: all.length, start }))
    }
    if (api && parts[4] === 'commits') {
      const sha = resolveRev(parts.slice(5).join('/'))
      if (!sha) return fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${parts.slice(5).join('/')}`)
      const chain: { id: string; title: string }[] = []
      for (let c: string | undefined = sha; c && chain.length < 100; c = repo.parents?.[c]) chain.push({ id: c, title: `commit ${c.slice(0, 7)}` })
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify(chain))
    }
    if (api && parts[4] === 'tree') {
      // huggingface_hub's snapshot_download lists files here (recursive, one page).
      const sha = resolveRev(parts[5])
      if (!sha) return fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${parts[5]}`)
      const entries = Object.entries(repo.commits[sha])
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([p, d]) => ({
          type: 'file',
          path: p,
          size: size(d),
          oid: gitSha1(d),
          ...(isLfs(p) ? { lfs: { oid: sha256(d), size: size(d), pointerSize: 134 } } : {}),
        }))
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify(entries))
    }
    if (api) {
      const rev = parts[4] === 'revision' ? parts.slice(5).join('/') : 'main'
      const sha = resolveRev(rev)
      if (!sha) return fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`)
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify({ _id: sha.slice(0, 24), id: repo.id, modelId: repo.id, sha, private: !!repo.tokens, siblings: Object.keys(repo.commits[sha]).sort().map((rfilename) => ({ rfilename })), tags: [] }))
    }
    if (parts[2] !== 'resolve') return fail(res, 404, 'EntryNotFound', 'not found')
    const rev = parts[3]
    const file = parts.slice(4).join('/')
    const sha = resolveRev(rev)
    if (!sha) return fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`)
    const data = repo.commits[sha][file]
    if (!data) return fail(res, 404, 'EntryNotFound', `Entry not found: ${file}`)
    const common = { 'x-repo-commit': sha, 'accept-ranges': 'bytes' }
    if (isLfs(file)) {
      const oid = sha256(data)
      res.writeHead(302, {
        ...common,
        etag: `"${gitSha1(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${size(data)}\n`))}"`,
        'x-linked-etag': `"${oid}"`,
        'x-linked-size': String(size(data)),
        location: `${cdnUrl}/lfs/${oid}?file=${encodeURIComponent(file)}`,
        'content-length': '0',
      })
      return res.end()
    }
    res.writeHead(200, { ...common, etag: `"${gitSha1(data)}"`, 'content-length': String(size(data)), 'content-type': 'application/octet-stream' })
    res.end(req.method === 'HEAD' ? undefined : slice(data, 0, size(data) - 1))
  })

  const cdn = http.createServer((req, res) => {
    log('cdn', req)
    const url = new URL(req.url ?? '/', 'http://x')
    const target = url.searchParams.get('file') ?? undefined
    if (faults.intercept?.('cdn', req, res, target)) return
    const writeHead = res.writeHead.bind(res) as (status: number, headers?: Record<string, string>) => void
    ;(res as unknown as { writeHead: typeof writeHead }).writeHead = (status, headers = {}) => writeHead(status, faults.headers ? faults.headers('cdn', target, headers) : headers)
    const blob = blobs.get(url.pathname.replace(/^\/lfs\//, ''))
    if (!blob) {
      res.writeHead(404)
      return res.end()
    }
    const total = size(blob.data)
    let [start, end] = [0, total - 1]
    let status = 200
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: `"${sha256(blob.data)}"` }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '')
    if (m && !faults.noRange) {
      start = Number(m[1])
      end = m[2] ? Number(m[2]) : total - 1
      if (start >= total) {
        res.writeHead(416, { 'content-range': `bytes */${total}` })
        return res.end()
      }
      status = 206
      headers['content-range'] = `bytes ${start}-${end}/${total}`
    }
    headers['content-length'] = String(end + 1 - start)
    res.writeHead(status, headers)
    if (req.method === 'HEAD') return res.end()
    const corrupt = faults.corrupt?.file === blob.file
    if (corrupt) faults.corrupt = undefined
    const drop = faults.dropAfter?.file === blob.file ? faults.dropAfter.bytes : undefined
    if (drop !== undefined) faults.dropAfter = undefined
    // Stream in 1 MB pieces so multi-GB files never sit in memory.
    const piece = 1 << 20
    let at = start
    const next = () => {
      while (at <= end) {
        const chunk = Buffer.from(slice(blob.data, at, Math.min(end, at + piece - 1)))
        if (corrupt && at <= start + ((end - start) >> 1) && start + ((end - start) >> 1) < at + chunk.length) chunk[start + ((end - start) >> 1) - at] ^= 0xff
        if (drop !== undefined && at - start + chunk.length >= drop) {
          res.write(chunk.subarray(0, drop - (at - start)), () => res.socket?.destroy())
          return
        }
        at += chunk.length
        if (!res.write(chunk)) return void res.once('drain', next)
      }
      res.end()
    }
    next()
  })

  const listen = (s: http.Server) => new Promise<string>((resolve) => s.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)))
  const url = await listen(hub)
  cdnUrl = await listen(cdn)
  const close = (s: http.Server) => new Promise<void>((resolve) => {
    s.closeAllConnections()
    s.close(() => resolve())
  })
  return { url, cdnUrl, requests, faults, close: async () => void (await Promise.all([close(hub), close(cdn)])) }
}

/** One repo whose `main` is the content of `dir`, plus a tag `v1.0` on the same commit. */
export function folderRepo(id: string, dir: string, tokens?: string[]): HubRepo {
  const files = readFolder(dir)
  const sha = commitOf(files)
  return { id, commits: { [sha]: files }, refs: { main: sha, 'v1.0': sha }, tokens }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(__filename)) {
  const repos = process.argv.slice(2).map((a) => {
    const [id, dir] = a.split('=')
    return folderRepo(id, dir)
  })
  startHub(repos).then((h) => console.log(JSON.stringify({ url: h.url, cdnUrl: h.cdnUrl })))
}
