// `serve` as the services people already run: CORS checked by a real browser on another
// origin, an OpenAPI document that validates and lists every route, request ids, TEI's error
// bodies in the client's own option names, standard process metrics, and a drain that
// answers 503 with Retry-After instead of refusing connections.
import { spawn, spawnSync } from 'node:child_process'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'

import { Validator } from '@seriousme/openapi-schema-validator'
import test from 'ava'

import { serve } from '..'
import { startCliServer } from './helpers/cli-server'
import { SLOWDOWN, TINY_MODEL } from './helpers/fixtures'

const browser = ['chromium', 'chromium-browser', 'google-chrome'].find((c) => spawnSync(c, ['--version']).status === 0)
const withBrowser = browser ? test : test.skip

async function server(t: { teardown: (f: () => Promise<void>) => void }, options: Parameters<typeof serve>[0] = {}) {
  const s = await serve({ model: TINY_MODEL, threads: 1, port: 0, ...options })
  t.teardown(() => s.close())
  return s
}

const postJson = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

/** A page on its own origin whose script POSTs to `target` and writes the outcome into the DOM. */
async function pageServer(target: () => string): Promise<{ origin: string; close: () => void }> {
  const page = () => `<!doctype html><html><body><pre id="out">pending</pre><script>
fetch(${JSON.stringify(target())}, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'from-the-page' },
  body: JSON.stringify({ inputs: 'Erna Solberg besøkte Oslo.', parameters: { aggregation_strategy: 'simple' } }) })
  .then(async (r) => { document.getElementById('out').textContent = 'OK ' + r.status + ' ' + r.headers.get('x-request-id') + ' ' + JSON.stringify(await r.json()) })
  .catch((e) => { document.getElementById('out').textContent = 'FAILED ' + e })
</script></body></html>`
  const s = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(page()))
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return { origin: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, close: () => s.close() }
}

/** What the page says after headless Chromium ran it (async: the servers live in this process). */
async function runInBrowser(url: string): Promise<string> {
  const child = spawn(browser!, ['--headless', '--no-sandbox', '--disable-gpu', '--virtual-time-budget=15000', '--dump-dom', url])
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  await new Promise((resolve) => child.on('close', resolve))
  clearTimeout(timer)
  return /<pre id="out">([\s\S]*?)<\/pre>/.exec(stdout)?.[1] ?? `no page (${stdout.length} bytes)`
}

withBrowser('CORS: a page on another origin can call the server with --cors, and cannot without it', async (t) => {
  t.timeout(120_000)
  let target = ''
  const page = await pageServer(() => target)
  t.teardown(page.close)
  const open = await server(t, { cors: [page.origin] })
  const closed = await server(t)
  target = `${open.url}/`
  const ok = await runInBrowser(page.origin)
  t.regex(ok, /^OK 200 from-the-page \[.*"entity_group"/, ok)
  target = `${closed.url}/`
  t.regex(await runInBrowser(page.origin), /^FAILED TypeError: Failed to fetch/)
  // The preflight as the Fetch standard has it: the origin by name, the methods, the headers.
  const pre = await fetch(`${open.url}/`, { method: 'OPTIONS', headers: { origin: page.origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
  t.is(pre.status, 204)
  t.is(pre.headers.get('access-control-allow-origin'), page.origin)
  t.is(pre.headers.get('access-control-allow-methods'), 'GET, POST')
  t.regex(pre.headers.get('access-control-allow-headers')!, /content-type/)
  t.regex(pre.headers.get('vary')!, /Origin/)
  const other = await fetch(`${open.url}/`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } })
  t.is(other.status, 403)
  t.is(other.headers.get('access-control-allow-origin'), null)
})

test('GET /openapi.json is a valid OpenAPI document that lists every route', async (t) => {
  const s = await server(t)
  const doc = await (await fetch(`${s.url}/openapi.json`)).json()
  const result = await new Validator().validate(doc)
  t.true(result.valid, JSON.stringify(result.errors))
  t.deepEqual(Object.keys(doc.paths).sort(), ['/', '/health', '/info', '/metrics', '/ner', '/openapi.json'])
  t.deepEqual(Object.keys(doc.paths['/']).sort(), ['get', 'post'])
  t.truthy(doc.components.schemas.Error.properties.error_type)
})

test('request ids: the client\'s is echoed, or one is made; errors are {error, error_type} in the client\'s own names', async (t) => {
  const s = await server(t)
  const given = await postJson(`${s.url}/`, { inputs: 'Oslo' }, { 'x-request-id': 'abc-123' })
  t.is(given.headers.get('x-request-id'), 'abc-123')
  t.regex(given.headers.get('x-total-time')!, /^\d+$/)
  const made = await fetch(`${s.url}/health`)
  t.regex(made.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/)
  const bad = await postJson(`${s.url}/`, { inputs: 'Oslo', parameters: { aggregation_strategy: 'nope' } })
  t.is(bad.status, 400)
  const body = await bad.json()
  t.is(body.error_type, 'validation')
  t.regex(body.error, /aggregation_strategy must be one of/)
  t.notRegex(body.error, /aggregationStrategy/)
  t.is((await postJson(`${s.url}/`, { inputs: 'Oslo', parameters: { aggregation_strategy: 'SIMPLE' } })).status, 200, "any case, as transformers")
  t.like(await (await fetch(`${s.url}/nope`)).json(), { error_type: 'not_found' })
  t.like(await (await fetch(`${s.url}/ner`)).json(), { error_type: 'method_not_allowed' })
})

test('/info in snake_case like TEI\'s; process and Node.js metrics under their standard names', async (t) => {
  const s = await server(t, { maxTexts: 77 })
  const info = await (await fetch(`${s.url}/info`)).json()
  t.like(info, { model_id: 'tiny-eurobert', model_dtype: 'f32', device: 'cpu', max_client_batch_size: 77, max_concurrent_requests: 64 })
  t.is(info.labels.length, 19)
  t.is(info.model_type.token_classifier.id2label['1'], info.labels[1])
  t.true(Object.keys(info).every((k) => /^[a-z0-9_]+$/.test(k)))
  const metrics = await (await fetch(`${s.url}/metrics`)).text()
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'eurobert_ner_requests_total', 'eurobert_ner_requests_cancelled_total']) {
    t.regex(metrics, new RegExp(`^${name}[ {]`, 'm'), name)
  }
  t.notRegex(metrics, /eurobert_ner_process_/)
})

test('draining: requests that arrive after SIGTERM get 503 with Retry-After while in-flight ones finish', async (t) => {
  const { child, url, output, exited } = await startCliServer(['--log-requests', '--drain-timeout-ms', String(10_000 * SLOWDOWN)])
  const long = postJson(`${url}/`, { inputs: Array(40).fill('Erna Solberg besøkte Universitetet i Oslo forrige uke. '.repeat(30)) })
  await new Promise((r) => setTimeout(r, 150))
  child.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 50))
  const during = await Promise.all(Array.from({ length: 5 }, () => fetch(`${url}/health`).then((r) => ({ status: r.status, retry: r.headers.get('retry-after') }), (e) => ({ status: 0, retry: String(e) }))))
  const first = await long
  const code = await exited
  t.is(first.status, 200, 'the in-flight request finished')
  t.deepEqual(during, Array(5).fill({ status: 503, retry: '1' }), 'no connection errors while draining')
  t.is(code, 0)
  t.regex(output(), /"event":"request".*"status":200/)
})

test('POST /ner takes options in either spelling, with the same answers; unknown ones are a 400 naming the nearest', async (t) => {
  const s = await server(t)
  const text = 'Erna Solberg besøkte Universitetet i Oslo.'
  const camel = await (await postJson(`${s.url}/ner`, { text, options: { aggregationStrategy: 'first', ignoreLabels: ['O', 'PER'] } })).json()
  const snake = await (await postJson(`${s.url}/ner`, { text, options: { aggregation_strategy: 'FIRST', ignore_labels: ['O', 'PER'] } })).json()
  t.deepEqual(snake, camel)
  const typo = await postJson(`${s.url}/ner`, { text, options: { aggregation_stratgy: 'first' } })
  t.is(typo.status, 400)
  t.regex((await typo.json()).error, /unknown option 'aggregation_stratgy' \(did you mean 'aggregation_strategy'\?\)/)
})
