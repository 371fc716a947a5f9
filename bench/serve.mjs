#!/usr/bin/env node
// `node bench/serve.mjs [--norne DIR] [--model DIR] [--requests N]`: serving figures on the
// bundled model with NorNE dev sentences. Writes bench/SERVING.md.
//  1. dynamic batching: 64 concurrent callers with one sentence each, against the same
//     sentences in one call (throughput ratio, p50/p99 latency of the callers);
//  2. `eurobert-ner serve` in its own process, 64 concurrent HTTP clients (throughput, p50/p99);
//  3. BullMQ workers on a local redis-server: 1 worker (2 threads), then 2 workers (1 thread each).
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.dirname(here)
const require = createRequire(import.meta.url)
const { pipeline, readConllu, BUNDLED_MODEL } = require('../dist/index.js')
const { nerQueue } = require('../dist/queue/index.js')
const CLI = path.join(root, 'dist', 'cli', 'index.js')

const { values } = parseArgs({
  options: {
    norne: { type: 'string', default: path.join(root, '..', 'shared', 'norne') },
    model: { type: 'string', default: BUNDLED_MODEL },
    requests: { type: 'string', default: '2000' },
  },
})
const N = Number(values.requests)
const sentences = readConllu(['nob', 'nno'].map((l) => path.join(values.norne, l, 'dev.conllu'))).map((s) => s.text)
const pick = (i) => sentences[i % sentences.length]
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]
const out = { machine: `${os.cpus()[0]?.model}, ${os.cpus().length} cores`, node: process.version, model: values.model, requests: N }

// 1. Dynamic batching.
{
  const ner = await pipeline(values.model, { threads: 2 })
  await ner(sentences.slice(0, 64))
  const rounds = Math.ceil(N / 64)
  let t = performance.now()
  for (let r = 0; r < rounds; r++) await ner(Array.from({ length: 64 }, (_, i) => pick(r * 64 + i)), { aggregationStrategy: 'simple' })
  const oneCall = (rounds * 64) / ((performance.now() - t) / 1000)
  const lat = []
  t = performance.now()
  for (let r = 0; r < rounds; r++) {
    await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const t0 = performance.now()
        await ner(pick(r * 64 + i), { aggregationStrategy: 'simple' })
        lat.push(performance.now() - t0)
      }),
    )
  }
  const concurrent = (rounds * 64) / ((performance.now() - t) / 1000)
  // Without merging: each caller's sentence as its own forward pass, one after another.
  t = performance.now()
  for (let i = 0; i < 640; i++) await ner(pick(i), { aggregationStrategy: 'simple' })
  const sequential = 640 / ((performance.now() - t) / 1000)
  out.batching = { oneCallPerSecond: oneCall, concurrentPerSecond: concurrent, ratio: concurrent / oneCall, p50: pct(lat, 50), p99: pct(lat, 99), sequentialPerSecond: sequential }
  ner.dispose()
  console.error(JSON.stringify(out.batching))
}

// 2. The HTTP server.
{
  const child = spawn(process.execPath, [CLI, 'serve', '-m', values.model, '--threads', '2', '--port', '0'])
  const url = await new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d) => {
      const l = d.split('\n').find((x) => x.includes('listening'))
      if (l) resolve(JSON.parse(l).url)
    })
    child.on('exit', (c) => reject(new Error(`serve exited ${c}`)))
  })
  const post = (text) => fetch(`${url}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: text }) }).then((r) => r.json())
  await Promise.all(sentences.slice(0, 64).map(post))
  const lat = []
  let next = 0
  let errors = 0
  const t = performance.now()
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let i = next++; i < N; i = next++) {
        const t0 = performance.now()
        const r = await post(pick(i))
        if (!Array.isArray(r)) errors++
        lat.push(performance.now() - t0)
      }
    }),
  )
  out.server = { clients: 64, requestsPerSecond: N / ((performance.now() - t) / 1000), p50: pct(lat, 50), p99: pct(lat, 99), errors }
  child.kill('SIGTERM')
  await new Promise((r) => child.on('exit', r))
  console.error(JSON.stringify(out.server))
}

// 3. BullMQ workers.
if (spawnSync('redis-server', ['--version']).status === 0) {
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', os.tmpdir()])
  await new Promise((r) => setTimeout(r, 500))
  const redisUrl = `redis://127.0.0.1:${port}`
  const run = async (workers, threads, queue) => {
    const children = await Promise.all(
      Array.from({ length: workers }, () => {
        const c = spawn(process.execPath, [CLI, 'worker', '--redis', redisUrl, '--queue', queue, '-m', values.model, '--threads', String(threads), '--concurrency', '32'])
        return new Promise((resolve) => c.stdout.setEncoding('utf8').on('data', (d) => d.includes('"ready"') && resolve(c)))
      }),
    )
    const q = await nerQueue({ redis: redisUrl, queue })
    const t = performance.now()
    await Promise.all(Array.from({ length: N }, (_, i) => q.ner(pick(i), { aggregationStrategy: 'simple' })))
    const perSecond = N / ((performance.now() - t) / 1000)
    await q.close()
    for (const c of children) c.kill('SIGTERM')
    await Promise.all(children.map((c) => new Promise((r) => c.on('exit', r))))
    return perSecond
  }
  out.workers = { one: await run(1, 2, 'w1'), two: await run(2, 1, 'w2') }
  redis.kill()
  console.error(JSON.stringify(out.workers))
}

const f = (x, d = 1) => (x === undefined ? '–' : Number(x).toFixed(d))
let md = `# Serving figures\n\nCommand: \`node bench/serve.mjs\` (${new Date().toISOString().slice(0, 10)}); ${out.machine}, Node ${out.node}; model ${path.relative(root, out.model)}; NorNE dev sentences, ${N} per measurement.\n\n`
const b = out.batching
md += `## Dynamic batching in ner()\n\n| calls | sentences/s | caller p50 ms | caller p99 ms |\n|---|---:|---:|---:|\n`
md += `| one call of 64 sentences | ${f(b.oneCallPerSecond)} | – | – |\n| 64 concurrent calls of one sentence | ${f(b.concurrentPerSecond)} | ${f(b.p50)} | ${f(b.p99)} |\n| one sentence at a time | ${f(b.sequentialPerSecond)} | – | – |\n\n`
md += `Concurrent single-sentence calls reach ${f(100 * b.ratio, 0)}% of the one-call throughput, ${f(b.concurrentPerSecond / b.sequentialPerSecond, 1)}× what the same calls get one at a time.\n\n`
md += `## eurobert-ner serve\n\n64 concurrent HTTP clients, one sentence per request (POST /): ${f(out.server.requestsPerSecond)} requests/s, p50 ${f(out.server.p50)} ms, p99 ${f(out.server.p99)} ms, ${out.server.errors} errors.\n\n`
if (out.workers) md += `## BullMQ workers\n\nOne job per sentence, one producer: 1 worker (2 threads) ${f(out.workers.one)} jobs/s; 2 workers on the same 2 cores (1 thread each) ${f(out.workers.two)} jobs/s.\n`
fs.writeFileSync(path.join(here, 'SERVING.md'), md)
console.log(md)
