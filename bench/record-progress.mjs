// Records the loading events transformers.js sends to `progress_callback` when its
// token-classification pipeline loads a model from a local folder and from a Hub (a static
// stand-in on 127.0.0.1), for __test__/progress.spec.ts to hold ours to:
//   node bench/record-progress.mjs   (after `npm run bench` made bench/out/norne-compact)
// Numbers (sizes, percentages) vary with the files; what is kept is each event's status, file
// and field names, in order.
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { env, pipeline } from '@huggingface/transformers'

const here = path.dirname(fileURLToPath(import.meta.url))
const model = path.join(here, 'out', 'norne-compact')
const out = path.join(here, '..', '__test__', 'fixtures', 'progress-events.json')
const FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx']

/** An event as the fixture keeps it: its status, file and field names. */
const shape = (e) => ({ status: e.status, ...(e.file !== undefined && { file: e.file }), fields: Object.keys(e).sort() })

async function record(id) {
  const events = []
  const ner = await pipeline('token-classification', id, { dtype: 'fp32', progress_callback: (e) => events.push(structuredClone(e)) })
  await ner.dispose()
  const last = events.filter((e) => e.status === 'progress_total').pop()
  return { events: events.map(shape), finalTotal: last && { loaded: last.loaded, total: last.total, progress: last.progress }, name: events[0]?.name }
}

// A local folder.
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tjs-progress-'))
const local = path.join(root, 'local', 'norne-compact')
for (const f of FILES) {
  fs.mkdirSync(path.dirname(path.join(local, f)), { recursive: true })
  fs.copyFileSync(path.join(model, f), path.join(local, f))
}
env.allowRemoteModels = false
env.allowLocalModels = true
env.localModelPath = path.join(root, 'local') + '/'
env.useBrowserCache = false
env.useFSCache = false
const folder = await record('norne-compact')

// A Hub: files under /{repo}/resolve/{revision}/, with sizes, ETags and Range support enough for
// transformers.js' metadata requests.
const server = http.createServer((req, res) => {
  const m = /^\/test\/norne-compact\/resolve\/main\/(.+)$/.exec(decodeURIComponent(new URL(req.url, 'http://x').pathname))
  const file = m && FILES.includes(m[1]) ? path.join(local, m[1]) : undefined
  if (!file) return res.writeHead(404).end()
  const body = fs.readFileSync(file)
  res.writeHead(200, { 'content-length': String(body.length), 'content-type': 'application/octet-stream', etag: `"${body.length}"`, 'accept-ranges': 'bytes' })
  res.end(req.method === 'HEAD' ? undefined : body)
})
await new Promise((r) => server.listen(0, '127.0.0.1', r))
env.allowLocalModels = false
env.allowRemoteModels = true
env.remoteHost = `http://127.0.0.1:${server.address().port}/`
env.cacheDir = path.join(root, 'cache')
env.useFSCache = true
const hub = await record('test/norne-compact')
// A second load of the same id: from transformers.js' cache.
const cached = await record('test/norne-compact')
server.close()
fs.rmSync(root, { recursive: true, force: true })

const { version } = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', '@huggingface', 'transformers', 'package.json'), 'utf8'))
fs.writeFileSync(out, JSON.stringify({ generator: 'bench/record-progress.mjs', transformersJs: version, weights: 'onnx/model.onnx', folder, hub, cached }, null, 1) + '\n')
console.log(`wrote ${out}: ${folder.events.length} + ${hub.events.length} + ${cached.events.length} events`)
