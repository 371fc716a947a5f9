// `serve` as the services people already run: CORS checked by a real browser on another
// origin, an OpenAPI document that validates and lists every route, request ids, TEI's error
// bodies in the client's own option names, standard process metrics, and a drain that
// answers 503 with Retry-After instead of refusing connections.
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as os from 'node:os'
import * as path from 'node:path'
import type { AddressInfo } from 'node:net'

import { Validator } from '@seriousme/openapi-schema-validator'
import test from 'ava'

import { serve } from '..'
import { startCliServer } from './helpers/cli-server'
import { SLOWDOWN, TINY_MODEL } from './helpers/fixtures'

const chromium = ['chromium', 'chromium-browser', 'google-chrome'].find((c) => spawnSync(c, ['--version']).status === 0)
const firefox = ['firefox-esr', 'firefox'].find((c) => spawnSync(c, ['--version']).status === 0)

async function server(t: { teardown: (f: () => Promise<void>) => void }, options: Parameters<typeof serve>[0] = {}) {
  const s = await serve({ model: TINY_MODEL, threads: 1, port: 0, ...options })
  t.teardown(() => s.close())
  return s
}

const postJson = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

/**
 * A page on its own origin whose script POSTs to `target` as @huggingface/inference does
 * (content-type, a user-agent of its own, which Firefox sends and asks the preflight about
 * while Chromium drops it; and x-request-id), then reports the outcome to its own server.
 */
async function pageServer(target: () => string): Promise<{ origin: string; result: () => Promise<string>; close: () => void }> {
  const page = () => `<!doctype html><html><body><script>
const report = (s) => fetch('/result', { method: 'POST', body: s })
fetch(${JSON.stringify(target())}, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'huggingface.js/4 (eurobert-ner test)', 'x-request-id': 'from-the-page' },
  body: JSON.stringify({ inputs: 'Erna Solberg besøkte Oslo.', parameters: { aggregation_strategy: 'simple' } }) })
  .then(async (r) => report('OK ' + r.status + ' ' + r.headers.get('x-request-id') + ' ' + JSON.stringify(await r.json())))
  .catch((e) => report('FAILED ' + e))
</script></body></html>`
  let waiting: ((s: string) => void) | undefined
  const s = http.createServer((req, res) => {
    if (req.url !== '/result') return res.writeHead(200, { 'content-type': 'text/html' }).end(page())
    let body = ''
    req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => (res.end(), waiting?.(body)))
  })
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return {
    origin: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    result: () => new Promise((resolve) => (waiting = resolve)),
    close: () => s.close(),
  }
}

/** What the page reported after a headless browser ran it (async: the servers live in this process). */
async function runInBrowser(browser: string, page: { origin: string; result: () => Promise<string> }): Promise<string> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-browser-'))
  const args = /firefox/.test(browser)
    ? ['--headless', '--no-remote', '--profile', profile, page.origin]
    : ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', `--user-data-dir=${profile}`, page.origin]
  const result = page.result()
  const child = spawn(browser, args, { stdio: 'ignore' })
  let timer: NodeJS.Timeout | undefined
  const outcome = await Promise.race([result, new Promise<string>((r) => (timer = setTimeout(() => r('no report within 90 s'), 90_000)))])
  clearTimeout(timer)
  const closed = new Promise((r) => child.on('close', r))
  child.kill('SIGKILL')
  await closed
  // The browser's helper processes may still write for a moment: the profile is best-effort.
  setTimeout(() => fs.rm(profile, { recursive: true, force: true, maxRetries: 5 }, () => undefined), 2000).unref()
  return outcome
}

for (const [name, browser] of [['Chromium', chromium], ['Firefox', firefox]] as const) {
  ;(browser ? test : test.skip)(`CORS in ${name}: a page on another origin can call the server with --cors, as @huggingface/inference does, and cannot without it`, async (t) => {
    t.timeout(240_000)
    let target = ''
    const page = await pageServer(() => target)
    t.teardown(page.close)
    const open = await server(t, { cors: [page.origin] })
    const closed = await server(t)
    target = `${open.url}/`
    const ok = await runInBrowser(browser!, page)
    t.regex(ok, /^OK 200 from-the-page \[.*"entity_group"/, ok)
    target = `${closed.url}/`
    t.regex(await runInBrowser(browser!, page), /^FAILED TypeError/)
  })
}

test('CORS preflight as the Fetch standard has it: the origin by name, the methods, the headers the request asks for', async (t) => {
  const origin = 'http://app.example'
  const open = await server(t, { cors: [origin] })
  const pre = await fetch(`${open.url}/`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,user-agent,x-hf-bill-to' } })
  t.is(pre.status, 204)
  t.is(pre.headers.get('access-control-allow-origin'), origin)
  t.is(pre.headers.get('access-control-allow-methods'), 'GET, POST')
  t.is(pre.headers.get('access-control-allow-headers'), 'content-type,user-agent,x-hf-bill-to')
  t.regex(pre.headers.get('vary')!, /Origin/)
  t.is(pre.headers.get('access-control-allow-credentials'), null, 'never credentials')
  // A header list that is not one falls back to the fixed list.
  const odd = await fetch(`${open.url}/`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'a b, (c)' } })
  t.is(odd.headers.get('access-control-allow-headers'), 'content-type, authorization, x-request-id')
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
