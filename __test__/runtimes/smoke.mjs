// Every entry point on one runtime (Bun and Deno run this; Node lines run the ava suite, see
// scripts/test-runtimes.mjs): pipeline() against transformers' fixture, stream(), abort,
// worker_threads, serve, the queue worker (with redis-server) and the CLI. Prints TAP-like
// lines and a closing `N passed, N failed, N skipped`; exits 1 on any failure.
//   bun __test__/runtimes/smoke.mjs    deno run -A __test__/runtimes/smoke.mjs
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

const require = createRequire(import.meta.url)
const here = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.join(here, '..', '..')
const TINY = path.join(ROOT, '__test__', 'fixtures', 'tiny-eurobert')
const CLI = path.join(ROOT, 'dist', 'cli', 'index.js')
const { pipeline } = require(path.join(ROOT, 'dist', 'index.js'))
const fixture = JSON.parse(fs.readFileSync(path.join(ROOT, '__test__', 'fixtures', 'tiny-eurobert.pipeline.json'), 'utf8'))
const runtime = globalThis.Bun ? `bun ${globalThis.Bun.version}` : globalThis.Deno ? `deno ${globalThis.Deno.version.deno}` : `node ${process.version}`
/** How this runtime runs a script: the CLI and child processes use the same one. */
const self = globalThis.Deno ? [process.execPath, 'run', '-A'] : [process.execPath]

let passed = 0
let failed = 0
let skipped = 0
let n = 0
async function check(name, fn) {
  n++
  try {
    const skip = await fn()
    if (typeof skip === 'string') {
      skipped++
      console.log(`ok ${n} - ${name} # SKIP ${skip}`)
    } else {
      passed++
      console.log(`ok ${n} - ${name}`)
    }
  } catch (e) {
    failed++
    console.log(`not ok ${n} - ${name}\n  # ${String(e?.stack ?? e).split('\n').slice(0, 4).join('\n  # ')}`)
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message)
}
const same = (ours, theirs) => {
  assert(ours.length === theirs.length, `${ours.length} entities, transformers ${theirs.length}`)
  ours.forEach((e, i) => {
    const w = theirs[i]
    assert(e.entity_group === w.entity_group && e.word === w.word && e.start === w.start_utf16 && e.end === w.end_utf16, `entity ${i}: ${JSON.stringify(e)} vs ${JSON.stringify(w)}`)
    assert(Math.abs(e.score - w.score) < 1e-5, `entity ${i}: score ${e.score} vs ${w.score}`)
  })
}
const all = fixture.cases.filter((c) => c.aggregation_strategy === 'simple')
const simple = all.filter((c) => !c.ignore_labels)

console.log(`# ${runtime}`)
const ner = await pipeline(TINY, { threads: 2, aggregationStrategy: 'simple', output: 'transformers' })

await check('pipeline(): entities equal transformers\' on every fixture text', async () => {
  for (const c of all) same(await ner(c.text, { ignoreLabels: c.ignore_labels }), c.entities)
})

await check('a batch and stream() give the same, in input order', async () => {
  const texts = simple.map((c) => c.text)
  const batch = await ner(texts)
  batch.forEach((r, i) => same(r, simple[i].entities))
  let i = 0
  for await (const r of ner.stream(texts.map((text, id) => ({ text, id })))) {
    assert(r.id === i, `stream order: ${r.id} at ${i}`)
    same(r.entities, simple[i].entities)
    i++
  }
  assert(i === texts.length, `stream gave ${i} of ${texts.length}`)
})

await check('abort: an aborted signal rejects with an AbortError; the model stays usable', async () => {
  const controller = new AbortController()
  const long = simple[0].text.repeat(400)
  const pending = ner(long, { signal: controller.signal })
  controller.abort()
  const e = await pending.then(() => undefined, (err) => err)
  assert(e?.name === 'AbortError', `got ${e}`)
  same(await ner(simple[0].text), simple[0].entities)
})

await check('worker_threads: a worker loads its own model and answers the same', async () => {
  const code = `const { parentPort } = require('node:worker_threads')
require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))}).pipeline(${JSON.stringify(TINY)}, { threads: 1, aggregationStrategy: 'simple', output: 'transformers' })
  .then((ner) => ner(${JSON.stringify(simple[0].text)}).then((r) => { parentPort.postMessage(r); ner.dispose() }))`
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-rt-')), 'worker.cjs')
  fs.writeFileSync(file, code)
  const result = await new Promise((resolve, reject) => {
    const w = new Worker(file)
    w.once('message', (m) => (resolve(m), w.terminate()))
    w.once('error', reject)
  })
  same(result, simple[0].entities)
})

await check('serve: POST / answers as transformers\' pipeline', async () => {
  const { serve } = require(path.join(ROOT, 'dist', 'serve', 'index.js'))
  const server = await serve({ model: TINY, threads: 1, port: 0 })
  try {
    const r = await fetch(`${server.url}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: simple[0].text, parameters: { aggregation_strategy: 'simple' } }) })
    assert(r.status === 200, `status ${r.status}`)
    same(await r.json(), simple[0].entities)
  } finally {
    await server.close()
  }
})

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const port = s.address().port
    s.close(() => resolve(port))
  })
})

await check('the queue worker runs a job against redis-server', async () => {
  if (spawnSync('redis-server', ['--version']).status !== 0) return 'redis-server is not installed'
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', os.tmpdir()], { stdio: 'ignore' })
  try {
    for (let i = 0; ; i++) {
      const up = await new Promise((resolve) => {
        const c = net.connect(port, '127.0.0.1', () => (c.end(), resolve(true))).on('error', () => resolve(false))
      })
      if (up) break
      if (i > 100) throw new Error('redis-server did not start')
      await new Promise((r) => setTimeout(r, 50))
    }
    const { nerQueue, startWorker } = require(path.join(ROOT, 'dist', 'queue', 'index.js'))
    const url = `redis://127.0.0.1:${port}`
    const worker = await startWorker({ redis: url, queue: 'smoke', model: TINY, threads: 1 })
    const q = await nerQueue({ redis: url, queue: 'smoke' })
    try {
      same(await q.ner(simple[0].text, { aggregationStrategy: 'simple', output: 'transformers' }), simple[0].entities)
    } finally {
      await q.close()
      await worker.close(5000)
    }
  } finally {
    redis.kill('SIGKILL')
  }
})

await check('the CLI tags a text (exit 0) and a bad flag is a usage error (exit 2)', async () => {
  const ok = spawnSync(self[0], [...self.slice(1), CLI, '-m', TINY, '--threads', '1', '--format', 'jsonl', simple[0].text], { encoding: 'utf8' })
  assert(ok.status === 0, `exit ${ok.status}: ${ok.stderr}`)
  assert(JSON.parse(ok.stdout).text === simple[0].text, ok.stdout)
  const bad = spawnSync(self[0], [...self.slice(1), CLI, '--no-such-flag'], { encoding: 'utf8' })
  assert(bad.status === 2, `exit ${bad.status}: ${bad.stderr}`)
})

ner.dispose()
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(failed > 0 ? 1 : 0)
