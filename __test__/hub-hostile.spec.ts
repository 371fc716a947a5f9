// A hostile Hub: the stand-in taught to misbehave in each way a mirror, a proxy or a
// compromised endpoint could. Every call must end within its timeout with an error that names
// the file, and nothing may be written outside the cache folder: a sandbox root holding the
// cache and a decoy home is listed before and after each case.
import { createHash } from 'node:crypto'
import { getEventListeners } from 'node:events'
import * as fs from 'node:fs'
import type * as http from 'node:http'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { resolveModel } from '..'
import { SLOWDOWN, TINY_MODEL } from './helpers/fixtures'
import { commitOf, Faults, folderRepo, readFolder, startHub } from './helpers/hub-server'

// Long enough that a loaded 2-core machine answers every request that should succeed in time
// (400 ms failed 2–3 cases per run at a load average of 8); the stalled cases wait it out.
const TIMEOUT = 2000 * SLOWDOWN
/** The longest a hostile case may take: a few timeouts (a resumed transfer may stall again). */
const DEADLINE = 8 * TIMEOUT + 3000 * SLOWDOWN

type Intercept = NonNullable<Faults['intercept']>
interface Case {
  name: string
  /** What the error must say (the file it concerns, and why). */
  error: RegExp
  faults?: Faults
  revision?: string
  repo?: () => ReturnType<typeof folderRepo>
}

/** Every file, folder and link under `root` except the cache, with sizes and link targets. */
function listing(root: string): string[] {
  const out: string[] = []
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name)
      const rel = path.relative(root, p)
      if (rel === 'cache') continue
      const st = fs.lstatSync(p)
      out.push(`${rel} ${st.isSymbolicLink() ? 'link ' + fs.readlinkSync(p) : st.isDirectory() ? 'dir' : st.size}`)
      if (st.isDirectory()) walk(p)
    }
  }
  walk(root)
  return out
}

/** Links in the cache that point outside it, or nowhere; names in blobs/ that are not digests. */
function cacheProblems(cache: string): string[] {
  const problems: string[] = []
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name)
      const st = fs.lstatSync(p)
      if (st.isSymbolicLink()) {
        const target = path.resolve(path.dirname(p), fs.readlinkSync(p))
        if (!target.startsWith(cache + path.sep)) problems.push(`${p} → outside: ${target}`)
        else if (!fs.existsSync(target)) problems.push(`${p} → broken: ${target}`)
      } else if (st.isDirectory()) walk(p)
      if (path.basename(dir) === 'blobs' && !/^[0-9a-f]{40}(?:[0-9a-f]{24})?(\.incomplete)?$/.test(name)) problems.push(`blob named ${name}`)
    }
  }
  walk(cache)
  return problems
}

const sha256Of = (f: string) => createHash('sha256').update(fs.readFileSync(path.join(TINY_MODEL, f))).digest('hex')

/** Rewrites one header of the ordinary answer for `file` on `server`. */
function header(server: 'hub' | 'cdn', file: string, name: string, value: string | undefined): Faults {
  return {
    headers: (s, f, h) => {
      if (s !== server || f !== file) return h
      const out = { ...h }
      if (value === undefined) delete out[name]
      else out[name] = value
      return out
    },
  }
}

/** Answers requests for `file` (HEAD and GET, on `server`) with `answer`. */
function answer(server: 'hub' | 'cdn', file: string, method: 'HEAD' | 'GET' | 'any', fn: (req: http.IncomingMessage, res: http.ServerResponse) => void): Faults {
  const intercept: Intercept = (s, req, res, f) => {
    if (s !== server || f !== file || (method !== 'any' && req.method !== method)) return false
    fn(req, res)
    return true
  }
  return { intercept }
}

const stall = (): void => undefined // never answers; the client's timeout must end it

const CONFIG = fs.readFileSync(path.join(TINY_MODEL, 'config.json'))
const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex')

const cases: Case[] = [
  // Names from the network that must not become paths.
  { name: 'ETag climbing out of blobs/ for tokenizer.json', faults: header('hub', 'tokenizer.json', 'etag', '"../../../../../../../../../../home/.bashrc"'), error: /tokenizer\.json: .*ETag.*not a sha1 or sha256/ },
  { name: 'ETag climbing to the sandbox root', faults: header('hub', 'config.json', 'etag', '"../../../w"'), error: /config\.json: .*ETag/ },
  { name: 'X-Linked-Etag climbing out on the weights', faults: header('hub', 'model.safetensors', 'x-linked-etag', '"../../../w"'), error: /model\.safetensors: .*ETag/ },
  { name: 'ETag with a slash', faults: header('hub', 'config.json', 'etag', '"abc/def"'), error: /config\.json: .*ETag/ },
  { name: 'ETag of ..', faults: header('hub', 'config.json', 'etag', '".."'), error: /config\.json: .*ETag/ },
  { name: 'ETag of .', faults: header('hub', 'config.json', 'etag', '"."'), error: /config\.json: .*ETag/ },
  { name: 'absolute ETag', faults: header('hub', 'config.json', 'etag', '"/tmp/eurobert-owned"'), error: /config\.json: .*ETag/ },
  { name: 'ETag with a backslash', faults: header('hub', 'config.json', 'etag', '"..\\\\..\\\\w"'), error: /config\.json: .*ETag/ },
  { name: 'empty ETag', faults: header('hub', 'config.json', 'etag', '""'), error: /config\.json: the server sent no ETag/ },
  { name: 'no ETag at all', faults: header('hub', 'config.json', 'etag', undefined), error: /config\.json: the server sent no ETag/ },
  { name: 'LFS X-Linked-Etag that is a sha1, so the sha256 cannot be checked', faults: header('hub', 'model.safetensors', 'x-linked-etag', `"${'a'.repeat(40)}"`), error: /model\.safetensors: .*not a sha256/ },
  { name: 'user revision climbing out of refs/', revision: '../../../x', error: /revision "\.\.\/\.\.\/\.\.\/x" is not a branch/ },
  { name: 'user revision with .. inside', revision: 'a/../../b', error: /revision "a\/\.\.\/\.\.\/b" is not/ },
  { name: 'user revision that is absolute', revision: '/etc/x', error: /revision "\/etc\/x" is not/ },
  {
    name: 'API commit that is a path',
    faults: answer('hub', 'api', 'any', (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sha: '../../../x', siblings: [{ rfilename: 'config.json' }] }))),
    error: /gave no commit \(40 hex digits\) for test\/tiny@main/,
  },
  {
    name: 'index naming a shard outside the snapshot',
    repo: () => indexRepo({ 'a.weight': '../../../../evil.safetensors' }),
    error: /model\.safetensors\.index\.json names shard "\.\.\/\.\.\/\.\.\/\.\.\/evil\.safetensors"/,
  },
  { name: 'index naming an absolute shard', repo: () => indexRepo({ 'a.weight': '/tmp/evil.safetensors' }), error: /model\.safetensors\.index\.json names shard "\/tmp\/evil\.safetensors"/ },
  { name: 'index that is not JSON', repo: () => indexRepo('not json {'), error: /model\.safetensors\.index\.json is not JSON/ },
  { name: 'index whose weight_map is a list', repo: () => indexRepo(['x.safetensors']), error: /model\.safetensors\.index\.json has no "weight_map" object/ },
  // Sizes: declared caps and the declared size itself.
  { name: 'config.json declared at 2 GB', faults: header('hub', 'config.json', 'content-length', String(2 ** 31)), error: /config\.json: the server says it is 2147483648 bytes, over the/ },
  { name: 'weights declared larger than any checkpoint', faults: header('hub', 'model.safetensors', 'x-linked-size', String(2 ** 52)), error: /model\.safetensors: the server says it is \d+ bytes, over/ },
  { name: 'a size that is not a number', faults: header('hub', 'model.safetensors', 'x-linked-size', '12abc'), error: /model\.safetensors: the server's size "12abc" is not a byte count/ },
  {
    name: 'body far longer than declared (300 MB for 1,000 bytes)',
    faults: {
      intercept: (s, req, res, f) => {
        if (s !== 'hub' || f !== 'config.json') return false
        const etag = `"${gitSha1(CONFIG)}"`
        if (req.method === 'HEAD') return res.writeHead(200, { etag, 'content-length': '1000' }).end(), true
        res.writeHead(200, { etag })
        const chunk = Buffer.alloc(1 << 20, 0x61)
        let sent = 0
        const pump = () => {
          while (sent < 300) {
            sent++
            if (!res.write(chunk)) return void res.once('drain', pump)
          }
          res.end()
        }
        res.on('close', () => (sent = 300))
        pump()
        return true
      },
    },
    error: /config\.json: the server sent more than the 1000 bytes it declared/,
  },
  {
    name: 'body shorter than declared, then closed, every time',
    faults: answer('hub', 'config.json', 'any', (req, res) => {
      const etag = `"${gitSha1(CONFIG)}"`
      if (req.method === 'HEAD') return void res.writeHead(200, { etag, 'content-length': String(CONFIG.length) }).end()
      res.writeHead(200, { etag, 'content-length': String(CONFIG.length) })
      res.write(CONFIG.subarray(0, 10), () => res.socket?.destroy())
    }),
    error: /config\.json: (got \d+ bytes|the transfer .* broke off)/,
  },
  { name: 'content that does not match the git blob ETag', faults: header('hub', 'config.json', 'etag', `"${'0'.repeat(40)}"`), error: /config\.json: git blob sha1 [0-9a-f]{40} does not match the Hub's 0{40}/ },
  { name: 'weights that do not match the sha256', faults: { corrupt: { file: 'model.safetensors' } }, error: /model\.safetensors: sha256 .* does not match/ },
  {
    name: 'a resumed transfer answered from the wrong offset',
    faults: {
      dropAfter: { file: 'model.safetensors', bytes: 1000 },
      headers: (s, f, h) => (s === 'cdn' && h['content-range'] ? { ...h, 'content-range': h['content-range'].replace(/^bytes \d+/, 'bytes 7') } : h),
    },
    error: /model\.safetensors: the server answered a request for bytes 1000- with bytes 7-/,
  },
  // Time: every wait has an end.
  { name: 'the API never answers', faults: answer('hub', 'api', 'any', stall), error: /repo description of test\/tiny@main: http:\/\/127\.0\.0\.1:\d+ did not answer within \d+ ms/ },
  {
    name: 'the API sends headers, then nothing',
    faults: answer('hub', 'api', 'any', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"sha": "')
    }),
    error: /repo description of test\/tiny@main: no data from http:\/\/127\.0\.0\.1:\d+ for \d+ ms/,
  },
  { name: 'HEAD never answers', faults: answer('hub', 'tokenizer.json', 'HEAD', stall), error: /tokenizer\.json: http:\/\/127\.0\.0\.1:\d+ did not answer within \d+ ms/ },
  {
    name: 'the CDN stalls mid-file',
    faults: answer('cdn', 'model.safetensors', 'GET', (_req, res) => {
      res.writeHead(200, { 'content-length': String(fs.statSync(path.join(TINY_MODEL, 'model.safetensors')).size) })
      res.write(Buffer.alloc(100))
    }),
    error: /model\.safetensors: no data from http:\/\/127\.0\.0\.1:\d+ for \d+ ms/,
  },
  {
    name: 'the API description is endless',
    faults: answer('hub', 'api', 'any', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      const chunk = Buffer.alloc(1 << 20, 0x20)
      let n = 0
      const pump = () => {
        while (n++ < 64) if (!res.write(chunk)) return void res.once('drain', pump)
        res.end()
      }
      res.on('close', () => (n = 64))
      pump()
    }),
    error: /repo description of test\/tiny@main: the server sent more than the 33554432 bytes allowed/,
  },
  { name: 'the API answers HTML', faults: answer('hub', 'api', 'any', (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>')), error: /repo description of test\/tiny@main is not JSON/ },
  // Redirects.
  { name: 'a redirect to a file: URL', faults: header('hub', 'model.safetensors', 'location', 'file:///etc/passwd'), error: /model\.safetensors: the server redirected to a file: URL/ },
  { name: 'a redirect loop on the metadata', faults: answer('hub', 'config.json', 'any', (req, res) => res.writeHead(302, { location: req.url! }).end()), error: /config\.json: too many redirects/ },
  {
    name: 'a redirect loop on the CDN',
    faults: answer('cdn', 'model.safetensors', 'GET', (req, res) => res.writeHead(302, { location: req.url! }).end()),
    error: /model\.safetensors: too many redirects/,
  },
  { name: 'a 500 on the weights', faults: answer('cdn', 'model.safetensors', 'GET', (_req, res) => res.writeHead(500, { 'x-error-message': 'boom' }).end()), error: /the Hub answered 500 for model\.safetensors: boom/ },
]

/** The tiny model with its weights behind a sharded index whose content is `weightMap`. */
function indexRepo(weightMap: unknown): ReturnType<typeof folderRepo> {
  const files: Record<string, Buffer> = readFolder(TINY_MODEL)
  delete files['model.safetensors']
  const index = typeof weightMap === 'string' ? weightMap : JSON.stringify({ metadata: {}, weight_map: weightMap })
  files['model.safetensors.index.json'] = Buffer.from(index)
  files['evil.safetensors'] = Buffer.from('x')
  const sha = commitOf(files)
  return { id: 'test/tiny', commits: { [sha]: files }, refs: { main: sha } }
}

for (const c of cases) {
  test.serial(`hostile Hub: ${c.name}`, async (t) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-hostile-'))
    fs.mkdirSync(path.join(root, 'home'))
    fs.writeFileSync(path.join(root, 'home', '.bashrc'), 'echo hello\n')
    const cache = path.join(root, 'cache')
    const hub = await startHub([c.repo ? c.repo() : folderRepo('test/tiny', TINY_MODEL)], c.faults ?? {})
    t.teardown(() => hub.close())
    const before = listing(root)
    const started = Date.now()
    const err = await t.throwsAsync(resolveModel('test/tiny', { endpoint: hub.url, cacheDir: cache, revision: c.revision, timeoutMs: TIMEOUT, token: undefined }))
    const ms = Date.now() - started
    t.regex(err!.message, c.error)
    t.true(ms < DEADLINE, `took ${ms} ms`)
    t.deepEqual(listing(root), before, 'nothing written outside the cache')
    t.deepEqual(cacheProblems(cache), [])
    t.false(fs.existsSync('/tmp/eurobert-owned'))
    fs.rmSync(root, { recursive: true, force: true })
  })
}

test('hostile Hub: the suite covers at least 30 misbehaviours, and a well-behaved Hub still works with the same settings', async (t) => {
  t.true(cases.length >= 30, `${cases.length} cases`)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-hostile-'))
  const hub = await startHub([folderRepo('test/tiny', TINY_MODEL)])
  t.teardown(() => hub.close())
  // A long-lived signal (a server's shutdown signal) is left as it was found: no listener per request.
  const shutdown = new AbortController()
  const dir = await resolveModel('test/tiny', { endpoint: hub.url, cacheDir: path.join(root, 'cache'), timeoutMs: TIMEOUT, signal: shutdown.signal })
  t.is(getEventListeners(shutdown.signal, 'abort').length, 0)
  t.is(fs.readFileSync(path.join(dir, 'model.safetensors')).length, fs.statSync(path.join(TINY_MODEL, 'model.safetensors')).size)
  t.is(sha256Of('model.safetensors'), createHash('sha256').update(fs.readFileSync(path.join(dir, 'model.safetensors'))).digest('hex'))
  t.deepEqual(cacheProblems(path.join(root, 'cache')), [])
  fs.rmSync(root, { recursive: true, force: true })
})

test('hostile Hub: a stalled transfer that made progress is resumed, and HF_HUB_DOWNLOAD_TIMEOUT sets the timeout', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-hostile-'))
  let stalls = 1
  const size = fs.statSync(path.join(TINY_MODEL, 'model.safetensors')).size
  const hub = await startHub([folderRepo('test/tiny', TINY_MODEL)], {
    intercept: (s, req, res, f) => {
      if (s !== 'cdn' || f !== 'model.safetensors' || req.method !== 'GET' || stalls-- <= 0) return false
      res.writeHead(200, { 'content-length': String(size) })
      res.write(fs.readFileSync(path.join(TINY_MODEL, 'model.safetensors')).subarray(0, 5000))
      return true
    },
  })
  t.teardown(() => hub.close())
  // 2 s, not the default 10 s: the stall ends well before the default would end it (and 2 s
  // is enough for every request that should succeed on a loaded machine).
  process.env.HF_HUB_DOWNLOAD_TIMEOUT = String(2 * SLOWDOWN)
  t.teardown(() => delete process.env.HF_HUB_DOWNLOAD_TIMEOUT)
  const dir = await resolveModel('test/tiny', { endpoint: hub.url, cacheDir: path.join(root, 'cache') })
  t.is(fs.statSync(path.join(dir, 'model.safetensors')).size, size)
  const stalled = hub.requests.find((r) => r.server === 'cdn' && r.url.endsWith('model.safetensors') && r.method === 'GET')
  const resumed = hub.requests.find((r) => r.server === 'cdn' && r.range === 'bytes=5000-')
  t.truthy(resumed, 'resumed from byte 5000')
  // The stall is what the timeout governs: it lasts the 2 s we set (a little more on a busy
  // machine), never the 10 s default.
  const stall = resumed!.at - stalled!.at
  t.true(stall >= 1900 && stall < 9000 * SLOWDOWN, `stalled for ${stall} ms`)
  fs.rmSync(root, { recursive: true, force: true })
})

test('hostile Hub: the CLI reports a dropped transfer as a failure naming the file (exit 1), not a usage error', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-hostile-'))
  const hub = await startHub([folderRepo('test/tiny', TINY_MODEL)], {
    intercept: (s, req, res, f) => {
      if (s !== 'cdn' || f !== 'model.safetensors' || req.method !== 'GET') return false
      res.writeHead(200, { 'content-length': '708244' })
      res.write(Buffer.alloc(10), () => res.socket?.destroy())
      return true
    },
  })
  t.teardown(() => hub.close())
  const { spawn } = await import('node:child_process')
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'cli', 'index.js'), '-m', 'test/tiny', 'Oslo'], {
    env: { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: path.join(root, 'cache'), HF_HUB_DOWNLOAD_TIMEOUT: String(5 * SLOWDOWN) },
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  t.is(code, 1, stderr)
  t.regex(stderr, /^eurobert-ner: error: model\.safetensors: the transfer from http:\/\/127\.0\.0\.1:\d+ broke off/)
  t.notRegex(stderr, /--help/)
  fs.rmSync(root, { recursive: true, force: true })
})

test('hostile Hub: a connection reset before any answer (a stale kept-alive socket) is tried again on a fresh one', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-hostile-'))
  let resets = 0
  const hub = await startHub([folderRepo('test/tiny', TINY_MODEL)], {
    intercept: (s, req, res, f) => {
      // The first request for each of these files dies without an answer.
      if (!((s === 'cdn' && f === 'model.safetensors') || (s === 'hub' && f === 'config.json' && req.method === 'HEAD')) || resets >= 2) return false
      if (s === 'cdn' ? resets === 1 : resets === 0) {
        resets++
        res.socket?.destroy()
        return true
      }
      return false
    },
  })
  t.teardown(() => hub.close())
  const dir = await resolveModel('test/tiny', { endpoint: hub.url, cacheDir: path.join(root, 'cache'), timeoutMs: TIMEOUT })
  t.is(resets, 2)
  t.is(fs.statSync(path.join(dir, 'model.safetensors')).size, fs.statSync(path.join(TINY_MODEL, 'model.safetensors')).size)
  fs.rmSync(root, { recursive: true, force: true })
})

test('hostile Hub: every request asks for identity encoding, so a mirror that gzips JSON cannot skew sizes or hashes', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-hostile-'))
  const seen: string[] = []
  const record: Intercept = (_s, req) => (seen.push(`${req.method} ${String(req.headers['accept-encoding'])}`), false)
  const hub = await startHub([folderRepo('test/tiny', TINY_MODEL)], { intercept: record })
  t.teardown(() => hub.close())
  await resolveModel('test/tiny', { endpoint: hub.url, cacheDir: path.join(root, 'cache'), timeoutMs: TIMEOUT })
  t.true(seen.some((s) => s.startsWith('HEAD')) && seen.some((s) => s.startsWith('GET')))
  t.deepEqual([...new Set(seen.map((s) => s.split(' ')[1]))], ['identity'], seen.join('; '))
  fs.rmSync(root, { recursive: true, force: true })
})

test('hostile Hub: a 416 to a resumed download starts over instead of leaving a partial file that blocks every load', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-hostile-'))
  const cache = path.join(root, 'cache')
  const blobs = path.join(cache, 'models--test--tiny', 'blobs')
  fs.mkdirSync(blobs, { recursive: true })
  // A partial left by an earlier try of a file that has since changed on the server.
  fs.writeFileSync(path.join(blobs, `${sha256Of('model.safetensors')}.incomplete`), Buffer.alloc(100, 7))
  let refused = 0
  const noResume: Intercept = (s, req, res) => {
    if (s !== 'cdn' || !req.headers.range) return false
    refused++
    res.writeHead(416, { 'content-range': 'bytes */0' }).end()
    return true
  }
  const hub = await startHub([folderRepo('test/tiny', TINY_MODEL)], { intercept: noResume })
  t.teardown(() => hub.close())
  const dir = await resolveModel('test/tiny', { endpoint: hub.url, cacheDir: cache, timeoutMs: TIMEOUT })
  t.is(refused, 1)
  t.is(createHash('sha256').update(fs.readFileSync(path.join(dir, 'model.safetensors'))).digest('hex'), sha256Of('model.safetensors'))
  t.deepEqual(cacheProblems(cache), [])
  fs.rmSync(root, { recursive: true, force: true })
})

test('hostile Hub: credentials in HF_ENDPOINT go in a header to the Hub only and never into a message', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-hostile-'))
  const auth: string[] = []
  const record: Intercept = (s, req) => (auth.push(`${s} ${String(req.headers.authorization)}`), false)
  const hub = await startHub([folderRepo('test/tiny', TINY_MODEL)], { intercept: record })
  t.teardown(() => hub.close())
  const endpoint = hub.url.replace('http://', 'http://mirror-user:s3cret-pass@')
  const dir = await resolveModel('test/tiny', { endpoint, cacheDir: path.join(root, 'cache'), timeoutMs: TIMEOUT })
  t.true(fs.existsSync(path.join(dir, 'config.json')))
  const basic = `Basic ${Buffer.from('mirror-user:s3cret-pass').toString('base64')}`
  t.true(auth.filter((a) => a.startsWith('hub')).every((a) => a === `hub ${basic}`), auth.join('; '))
  t.true(auth.filter((a) => a.startsWith('cdn')).every((a) => a === 'cdn undefined'), 'not to the CDN')
  for (const bad of [endpoint, `${endpoint.replace('http://', 'ftp://')}`]) {
    const err = await t.throwsAsync(resolveModel('test/missing', { endpoint: bad, cacheDir: path.join(root, 'cache'), timeoutMs: TIMEOUT }))
    t.notRegex(err!.message, /s3cret/, err!.message)
  }
  fs.rmSync(root, { recursive: true, force: true })
})

test('hostile Hub: a symlink planted at the partial download is never written through', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-hostile-'))
  const victim = path.join(root, 'home', '.bashrc')
  fs.mkdirSync(path.dirname(victim))
  fs.writeFileSync(victim, 'echo hello\n')
  const cache = path.join(root, 'cache')
  const blobs = path.join(cache, 'models--test--tiny', 'blobs')
  fs.mkdirSync(blobs, { recursive: true })
  for (const f of ['model.safetensors', 'config.json']) {
    const name = f === 'config.json' ? gitSha1(CONFIG) : sha256Of(f)
    fs.symlinkSync(victim, path.join(blobs, `${name}.incomplete`))
  }
  const hub = await startHub([folderRepo('test/tiny', TINY_MODEL)])
  t.teardown(() => hub.close())
  const dir = await resolveModel('test/tiny', { endpoint: hub.url, cacheDir: cache, timeoutMs: TIMEOUT })
  t.is(fs.readFileSync(victim, 'utf8'), 'echo hello\n', 'the link target is untouched')
  t.is(createHash('sha256').update(fs.readFileSync(path.join(dir, 'model.safetensors'))).digest('hex'), sha256Of('model.safetensors'))
  t.deepEqual(cacheProblems(cache), [])
  fs.rmSync(root, { recursive: true, force: true })
})
