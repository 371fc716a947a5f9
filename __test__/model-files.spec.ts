// Models without a filesystem: files given as bytes (ArrayBuffer, typed arrays, Blob) or fetched
// from a URL of static files (a server on 127.0.0.1 here), against transformers' pipeline
// outputs (tools/make_fixtures.py), and a hostile server's ways to fail.
import * as fs from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as path from 'node:path'

import test from 'ava'

import { pipeline, TokenClassifierModel } from '..'
import { FIXTURES, PyEntity, SLOWDOWN, TINY_MODEL } from './helpers/fixtures'
import { shardedFiles } from './helpers/safetensors'

const fx: { batch: { texts: string[]; entities: PyEntity[][] } } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'tiny-eurobert.pipeline.json'), 'utf8'))

function folder(dir: string): Record<string, Buffer> {
  return Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]))
}

/** transformers' entities for the batch texts, in our `output: 'transformers'` shape without scores. */
function expectedBatch(): unknown[][] {
  return fx.batch.entities.map((es) => es.map(({ score: _s, start_utf16, end_utf16, ...rest }) => ({ ...rest, start: start_utf16, end: end_utf16 })))
}

async function batchOf(model: Parameters<typeof pipeline>[0], options: { maxBytes?: number } = {}): Promise<unknown[][]> {
  const ner = await pipeline(model, { threads: 1, ...options })
  const got = await ner(fx.batch.texts, { aggregationStrategy: 'simple', output: 'transformers' })
  return got.map((es) => es.map(({ score: _s, ...rest }) => rest))
}

/** The tiny model as shards behind an index. */
const sharded = () => shardedFiles(folder(TINY_MODEL))

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, name: string) => boolean | void

/** A static file server on 127.0.0.1 for `files` under /model/; `handler` may answer first. */
async function serveFiles(t: import('ava').ExecutionContext, files: Record<string, Buffer>, handler?: Handler): Promise<{ url: string; requested: string[] }> {
  const requested: string[] = []
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url!, 'http://x').pathname.replace(/^\/model\//, ''))
    requested.push(name)
    if (handler?.(req, res, name)) return
    const body = files[name]
    if (!body) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-length': body.length }).end(body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/model/`, requested }
}

test('files as Buffers, ArrayBuffers, typed arrays or Blobs: the entities of transformers', async (t) => {
  const files = folder(TINY_MODEL)
  const want = expectedBatch()
  t.deepEqual(await batchOf(files), want)
  const kinds = [
    (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.length),
    (b: Buffer) => new Uint8Array(b),
    (b: Buffer) => new Blob([new Uint8Array(b)]),
    // A view into a larger buffer: only its own bytes count.
    (b: Buffer) => {
      const c = Buffer.concat([Buffer.from('junk'), b, Buffer.from('junk')])
      return new Uint8Array(c.buffer, c.byteOffset + 4, b.length)
    },
  ]
  for (const kind of kinds) t.deepEqual(await batchOf(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, kind(v)]))), want)
})

test('files of a sharded checkpoint load as its folder does; the model reports no path on disk', async (t) => {
  t.deepEqual(await batchOf(sharded()), expectedBatch())
  const model = await TokenClassifierModel.load(folder(TINY_MODEL), { threads: 1 })
  t.is(model.path, '(in memory)')
  model.dispose()
})

test('bad files fail with clear errors and leave nothing behind', async (t) => {
  const files = folder(TINY_MODEL)
  await t.throwsAsync(pipeline({ ...files, '../config.json': files['config.json'] }), { instanceOf: TypeError, message: /'..\/config.json' is not a file name/ })
  await t.throwsAsync(pipeline({ 'tokenizer.json': files['tokenizer.json'] }), { instanceOf: TypeError, message: /no config.json/ })
  await t.throwsAsync(pipeline({ ...files, 'model.safetensors': 'weights' as unknown as Buffer }), { instanceOf: TypeError, message: /files\['model.safetensors'\] must be an ArrayBuffer/ })
  const { 'model.safetensors': _w, ...noWeights } = files
  await t.throwsAsync(pipeline(noWeights), { message: /\(in memory\)\/model.safetensors/ })
  await t.throwsAsync(pipeline({ ...files, 'model.safetensors': files['model.safetensors'].subarray(0, 1000) }), { message: /not a valid safetensors file/ })
  // A name the loader would read from disk, were it a path, is only ever looked up in memory.
  await t.throwsAsync(pipeline({ ...files, 'config.json': Buffer.from('{"model_type": "bert"') }), { message: /config.json/ })
  // And the files still load afterwards.
  t.deepEqual(await batchOf(files), expectedBatch())
})

test('a URL of static files: config first, then the tokenizer, then the weights; progress as transformers.js reports it', async (t) => {
  const server = await serveFiles(t, folder(TINY_MODEL))
  const events: { status: string; file?: string }[] = []
  const ner = await pipeline(server.url, { threads: 1, onProgress: (e) => events.push(e as { status: string; file?: string }) })
  const got = await ner(fx.batch.texts, { aggregationStrategy: 'simple', output: 'transformers' })
  t.deepEqual(
    got.map((es) => es.map(({ score: _s, ...rest }) => rest)),
    expectedBatch(),
  )
  t.deepEqual(server.requested, ['config.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.json', 'model.safetensors'])
  t.deepEqual(events.filter((e) => e.status === 'done').map((e) => e.file), ['config.json', 'tokenizer_config.json', 'tokenizer.json', 'model.safetensors'])
  t.is(events.at(-1)?.status, 'ready')
  // A URL object, without the trailing slash, and a sharded checkpoint.
  const shards = await serveFiles(t, sharded())
  t.deepEqual(await batchOf(new URL(shards.url.slice(0, -1))), expectedBatch())
  t.true(shards.requested.includes('model-00002-of-00002.safetensors'))
})

test('a hostile server: every misbehaviour ends in a clear error within the timeout, and an unsupported model moves no weights', async (t) => {
  const files = folder(TINY_MODEL)
  const timeoutMs = 500 * SLOWDOWN
  const cases: [string, Record<string, Buffer>, Handler | undefined, RegExp][] = [
    ['unsupported model_type', { ...files, 'config.json': Buffer.from('{"model_type": "gpt2"}') }, undefined, /unsupported model_type 'gpt2'/],
    ['config.json not JSON', { ...files, 'config.json': Buffer.from('<html>') }, undefined, /config.json is not JSON/],
    ['no weights', { ...files, 'model.safetensors': undefined as unknown as Buffer }, undefined, /neither model.safetensors nor model.safetensors.index.json/],
    ['no tokenizer', { ...files, 'tokenizer.json': undefined as unknown as Buffer }, undefined, /no tokenizer/],
    ['an index naming a path', { ...files, 'model.safetensors': undefined as unknown as Buffer, 'model.safetensors.index.json': Buffer.from('{"weight_map": {"a": "../x.safetensors"}}') }, undefined, /not a .safetensors file name/],
    ['a 500', files, (_q, s, n) => n === 'model.safetensors' && !!s.writeHead(500).end(), /answered 500/],
    ['declared over the cap', files, (_q, s, n) => n === 'config.json' && !!s.writeHead(200, { 'content-length': String(5 << 20) }).end(), /over the 4194304 allowed for config.json/],
    ['more than the cap without a length', files, (_q, s, n) => {
      if (n !== 'config.json') return false
      s.writeHead(200)
      const chunk = Buffer.alloc(1 << 20, 32)
      for (let i = 0; i < 5; i++) s.write(chunk)
      s.end()
      return true
    }, /more than the 4194304 bytes allowed for config.json/],
    ['shorter than declared', files, (_q, s, n) => {
      if (n !== 'tokenizer.json') return false
      s.writeHead(200, { 'content-length': String(files[n].length + 10) })
      s.write(files[n])
      s.destroy()
      return true
    }, /tokenizer.json/],
    ['never answers', files, (_q, _s, n) => n === 'model.safetensors', /no answer within/],
    ['stalls mid-file', files, (_q, s, n) => {
      if (n !== 'model.safetensors') return false
      s.writeHead(200, { 'content-length': String(files[n].length) })
      s.write(files[n].subarray(0, 100))
      return true
    }, /no data within/],
  ]
  for (const [what, served, handler, message] of cases) {
    const server = await serveFiles(t, Object.fromEntries(Object.entries(served).filter(([, v]) => v !== undefined)), handler)
    const started = Date.now()
    await t.throwsAsync(pipeline(server.url, { threads: 1, timeoutMs }), { message }, what)
    t.true(Date.now() - started < timeoutMs + 5000 * SLOWDOWN, `${what}: ${Date.now() - started} ms`)
    if (/model_type|not JSON/.test(what)) t.deepEqual(server.requested, ['config.json'], what)
  }
})

test('an abort stops a URL load: the transfer ends and the call rejects with an AbortError', async (t) => {
  let stalled!: () => void
  const reached = new Promise<void>((r) => (stalled = r))
  const files = folder(TINY_MODEL)
  const server = await serveFiles(t, files, (_q, s, n) => {
    if (n !== 'model.safetensors') return false
    s.writeHead(200, { 'content-length': String(files[n].length) })
    s.write(files[n].subarray(0, 100))
    stalled()
    return true
  })
  const controller = new AbortController()
  const loading = pipeline(server.url, { threads: 1, signal: controller.signal })
  await reached
  controller.abort()
  await t.throwsAsync(loading, { name: 'AbortError' })
})

test('maxBytes bounds what a URL load holds in memory: the files together, declared or streamed, checked before anything loads', async (t) => {
  const files = folder(TINY_MODEL)
  const plain = await serveFiles(t, files)
  await TokenClassifierModel.load(plain.url, { threads: 1 })
  // Exactly what the loader fetched.
  const total = plain.requested.filter((n) => files[n]).reduce((sum, n) => sum + files[n].length, 0)
  const weights = files['model.safetensors'].length
  t.true(total > weights)
  // At the limit it loads; a byte less and the weights are refused from their declared size.
  t.deepEqual(await batchOf(plain.url, { maxBytes: total }), expectedBatch())
  const refused = await t.throwsAsync(pipeline(plain.url, { threads: 1, max_bytes: total - 1 } as never))
  t.regex(refused!.message, new RegExp(`model.safetensors is ${weights} bytes, and the model's files would take more than maxBytes \\(${total - 1}\\)`))
  // Without a declared size, the transfer stops where the limit is passed.
  const chunked = await serveFiles(t, files, (_q, s, n) => {
    if (n !== 'model.safetensors') return false
    s.writeHead(200)
    s.end(files[n])
    return true
  })
  await t.throwsAsync(pipeline(chunked.url, { threads: 1, maxBytes: total - 1 }), { message: /model.safetensors runs past \d+ bytes, and the model's files would take more than maxBytes/ })
  // Bad values fail before any request.
  const unused = await serveFiles(t, files)
  for (const maxBytes of [0, -1, 1.5, Number.NaN, '100', 2 ** 60]) {
    await t.throwsAsync(pipeline(unused.url, { threads: 1, maxBytes: maxBytes as number }), { instanceOf: RangeError, message: /maxBytes must be a positive integer/ }, String(maxBytes))
  }
  t.deepEqual(unused.requested, [])
})
