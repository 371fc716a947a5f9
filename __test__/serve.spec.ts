// `serve` on 127.0.0.1 with the tiny fixture model: the Inference API and /ner shapes, health,
// info and Prometheus metrics, the limits (429, 413, 400), a bounded load test of 64
// concurrent clients with every answer checked, and SIGTERM draining in-flight requests.
// Also the dynamic batching of ner() itself.
import { spawn } from 'node:child_process'
import * as path from 'node:path'

import test from 'ava'

import { Entity, pipeline, serve } from '..'
import { expected, SLOWDOWN, TINY_MODEL } from './helpers/fixtures'

const TEXTS = expected().batch.texts
const CLI = path.join(__dirname, '..', 'dist', 'cli', 'index.js')

async function post(url: string, body: unknown, raw?: string): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ?? JSON.stringify(body) })
  return { status: res.status, headers: res.headers, json: await res.json() }
}

/** Python's string indices (code points) of a UTF-16 offset. */
function codePoints(text: string, units: number): number {
  return [...text.slice(0, units)].length
}

test('dynamic batching: concurrent calls share forward passes and get their own results', async (t) => {
  const batches: number[] = []
  const ner = await pipeline(TINY_MODEL, { threads: 2, maxWaitMs: 5, onBatch: (texts) => batches.push(texts) })
  const alone = await Promise.all(TEXTS.map(async (x) => JSON.stringify(await ner(x, { aggregationStrategy: 'simple' }))))
  batches.length = 0
  const callers = Array.from({ length: 64 }, (_, i) => TEXTS[i % TEXTS.length])
  const together = await Promise.all(callers.map(async (x) => JSON.stringify(await ner(x, { aggregationStrategy: 'simple' }))))
  callers.forEach((x, i) => t.is(together[i], alone[TEXTS.indexOf(x)], `caller ${i} got its own result`))
  t.true(batches.length < 64 / 4, `64 calls ran in ${batches.length} batches`)
  t.is(batches.reduce((a, b) => a + b, 0), 64)
  // A call that fails fails only itself: a stride the core refuses, between two good calls.
  const mixed = await Promise.allSettled([ner(TEXTS[0]), ner(TEXTS[1], { stride: 10_000 }), ner(TEXTS[2])])
  t.deepEqual(mixed.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  t.regex(String((mixed[1] as PromiseRejectedResult).reason), /stride must be less than the \d+ text tokens a window holds, got 10000/)
  ner.dispose()
})

test('POST / speaks the Inference API: inputs and parameters in, transformers-shaped entities out', async (t) => {
  const server = await serve({ model: TINY_MODEL, threads: 2, port: 0 })
  t.teardown(() => server.close())
  const ner = await pipeline(TINY_MODEL, { threads: 1 })
  const text = TEXTS[3] // has an emoji: offsets must become Python's code points
  const one = await post(`${server.url}/`, { inputs: text, parameters: { aggregation_strategy: 'first' } })
  t.is(one.status, 200)
  const want = (await ner(text, { aggregationStrategy: 'first', output: 'transformers' })) as Entity[]
  t.deepEqual(one.json, want.map((e) => ({ ...e, start: codePoints(text, e.start), end: codePoints(text, e.end) })))
  const many = await post(`${server.url}/`, { inputs: TEXTS.slice(0, 3) })
  t.is(many.json.length, 3)
  t.true(many.json.every((l: unknown) => Array.isArray(l)))
  t.true(many.json.flat().every((e: { entity_group: string }) => typeof e.entity_group === 'string'), 'default strategy simple')
  const camel = await post(`${server.url}/ner`, { text, options: { aggregationStrategy: 'first' } })
  t.deepEqual(camel.json, await ner(text, { aggregationStrategy: 'first' }))
  ner.dispose()
})

test('health, info and Prometheus metrics', async (t) => {
  const server = await serve({ model: TINY_MODEL, threads: 2, port: 0 })
  t.teardown(() => server.close())
  t.deepEqual(await (await fetch(`${server.url}/health`)).json(), { status: 'ok' })
  const info = await (await fetch(`${server.url}/info`)).json()
  t.is(info.labels.length, 19)
  t.like(info, { model_dtype: 'f32', device: 'cpu', model_id: 'tiny-eurobert' })
  t.regex(info.version, /^\d+\.\d+\.\d+/)
  await post(`${server.url}/`, { inputs: TEXTS.slice(0, 4) })
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  t.regex(metrics, /eurobert_ner_requests_total\{route="POST \/",status="200"\} 1/)
  t.regex(metrics, /eurobert_ner_request_duration_seconds_bucket\{le="[\d.+Inf]+",route="POST \/"\}/)
  t.regex(metrics, /eurobert_ner_batch_texts_sum 4/)
  t.regex(metrics, /eurobert_ner_tokens_total [1-9]\d*/)
  t.regex(metrics, /eurobert_ner_queue_depth 0/)
  t.regex(metrics, /eurobert_ner_requests_in_flight 0/)
})

test('stride: the server takes at most half a window\'s text (bounded work per character); the library takes what transformers takes', async (t) => {
  const server = await serve({ model: TINY_MODEL, threads: 1, port: 0 })
  t.teardown(() => server.close())
  const half = Math.floor((server.ner.model.modelMaxLength - server.ner.model.specialTokens) / 2)
  const long = 'Oslo og Bergen. '.repeat(150)
  t.is((await post(`${server.url}/`, { inputs: long, parameters: { stride: half } })).status, 200)
  const over = await post(`${server.url}/`, { inputs: long, parameters: { stride: half + 1 } })
  t.is(over.status, 400)
  t.regex(over.json.error, new RegExp(`parameters.stride may be at most ${half} on this server`))
  const ner = await post(`${server.url}/ner`, { text: long, options: { stride: half + 1 } })
  t.is(ner.status, 400)
  t.regex(ner.json.error, /options.stride may be at most/)
  t.true(Array.isArray(await server.ner(long, { stride: half + 1 })), 'the library itself takes it')
})

test('limits: 413 over the payload limit, 400 for bad JSON or options, 404 for unknown routes, 429 over the concurrency limit', async (t) => {
  const server = await serve({ model: TINY_MODEL, threads: 1, port: 0, payloadLimit: 1000 })
  t.teardown(() => server.close())
  t.is((await post(`${server.url}/`, { inputs: 'x'.repeat(2000) })).status, 413)
  const bad = await post(`${server.url}/`, undefined, '{"inputs": ')
  t.is(bad.status, 400)
  t.regex(bad.json.error, /not JSON/)
  t.regex((await post(`${server.url}/`, { inputs: 'Oslo', parameters: { aggregation_strategy: 'nope' } })).json.error, /aggregation_strategy must be one of/)
  t.regex((await post(`${server.url}/`, { inputs: 42 })).json.error, /"inputs" must be a string/)
  t.regex((await post(`${server.url}/`, { inputs: 'Oslo', parameters: { top_k: 3 } })).json.error, /unknown parameters: top_k/)
  t.regex((await post(`${server.url}/ner`, { text: 'a', texts: ['b'] })).json.error, /exactly one of/)
  t.is((await fetch(`${server.url}/nope`)).status, 404)
  t.is((await post(`${server.url}/`, { inputs: 'Oslo' })).status, 200, 'the server serves on after errors')
  // Eight requests at once against a limit of two: some are turned away, with Retry-After.
  const busy = await serve({ model: TINY_MODEL, threads: 1, port: 0, maxConcurrentRequests: 2 })
  t.teardown(() => busy.close())
  const long = TEXTS.join(' ').repeat(3)
  const answers = await Promise.all(Array.from({ length: 8 }, () => post(`${busy.url}/`, { inputs: [long, long, long] })))
  const refused = answers.filter((a) => a.status === 429)
  t.true(refused.length > 0 && refused.length < 8, `${refused.length} of 8 refused`)
  t.true(refused.every((a) => a.headers.get('retry-after') === '1'))
  t.true(answers.filter((a) => a.status !== 429).every((a) => a.status === 200))
  t.is((await post(`${busy.url}/`, { inputs: 'Oslo' })).status, 200, 'the server serves on afterwards')
})

test('load: 64 concurrent clients, 640 requests, every answer right, none lost', async (t) => {
  const server = await serve({ model: TINY_MODEL, threads: 2, port: 0 })
  t.teardown(() => server.close())
  const ner = await pipeline(TINY_MODEL, { threads: 1 })
  const want = await Promise.all(TEXTS.map(async (x) => JSON.stringify((await ner(x, { aggregationStrategy: 'simple', output: 'transformers' })).map((e) => ({ ...e, start: codePoints(x, e.start), end: codePoints(x, e.end) })))))
  ner.dispose()
  const latencies: number[] = []
  let next = 0
  let wrong = 0
  const start = performance.now()
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let i = next++; i < 640; i = next++) {
        const k = i % TEXTS.length
        const t0 = performance.now()
        // A failed connection is counted with its cause (undici's "fetch failed" hides it).
        const r = await post(`${server.url}/`, { inputs: TEXTS[k] }).catch((e: Error) => ({ status: 0, json: `${e.message}: ${String(e.cause)}` }))
        latencies.push(performance.now() - t0)
        if (r.status !== 200 || JSON.stringify(r.json) !== want[k]) {
          if (wrong++ === 0) t.log(`first wrong answer: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`)
        }
      }
    }),
  )
  const secs = (performance.now() - start) / 1000
  latencies.sort((a, b) => a - b)
  t.is(latencies.length, 640, 'every request answered')
  t.is(wrong, 0, 'every answer equals the pipeline run alone')
  t.log(`${(640 / secs).toFixed(0)} requests/s; p50 ${latencies[320].toFixed(1)} ms, p99 ${latencies[633].toFixed(1)} ms`)
})

test('SIGTERM drains: an in-flight request completes, then the process exits 0', async (t) => {
  const child = spawn(process.execPath, [CLI, 'serve', '-m', TINY_MODEL, '--threads', '1', '--port', '0', '--drain-timeout-ms', String(10_000 * SLOWDOWN)])
  // Listened for from the start: the process may exit before the answer is read.
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  const lines: string[] = []
  child.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.trim().split('\n')))
  const url = await new Promise<string>((resolve) => {
    const poll = setInterval(() => {
      const l = lines.find((x) => x.includes('listening'))
      if (l) {
        clearInterval(poll)
        resolve(JSON.parse(l).url)
      }
    }, 20)
  })
  // A request long enough to be running when the signal arrives; the server's draining line
  // says how many requests it was answering, so a request that ended first fails the test.
  const big = TEXTS.join(' ').repeat(8)
  // (Two texts under emulation: sixteen would outlast the drain deadline there.)
  const inFlight = post(`${url}/`, { inputs: Array(SLOWDOWN > 1 ? 2 : 16).fill(big) })
  // The signal goes once the server has taken the request (a fixed pause lost the race on a
  // loaded machine, and the request met the drain's 503 instead).
  while (!/eurobert_ner_requests_in_flight 1/.test(await (await fetch(`${url}/metrics`)).text())) await new Promise((r) => setTimeout(r, 20))
  child.kill('SIGTERM')
  const answer = await inFlight
  const code = await exited
  t.is(answer.status, 200)
  t.is(answer.json.length, SLOWDOWN > 1 ? 2 : 16)
  t.is(code, 0)
  const draining = lines.map((l) => JSON.parse(l)).find((l) => l.event === 'draining')
  t.is(draining?.in_flight, 1, 'the request was still running when SIGTERM arrived')
  t.true(lines.some((l) => l.includes('"stopped"')))
  await t.throwsAsync(fetch(`${url}/health`), undefined, 'no longer accepting')
})
