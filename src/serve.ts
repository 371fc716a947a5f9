// `eurobert-ner serve`: an HTTP server over one pipeline, whose dynamic batching merges the
// concurrent requests into shared forward passes.
//   POST /         the Hugging Face Inference API's token-classification shape:
//                  {"inputs": str | str[], "parameters": {"aggregation_strategy": ..}} → entities
//                  as transformers' pipeline returns them (offsets in code points, like Python)
//   POST /ner      {"text" | "texts", "options": {...}} with ner()'s options → entities (UTF-16)
//   GET  /         a page to try it: a text box, a strategy, the entities highlighted
//   GET  /health   200 while serving, 503 while draining
//   GET  /info     model, labels, dtype, device, version, limits (snake_case, as TEI's)
//   GET  /metrics  Prometheus text format (prom-client)
//   GET  /openapi.json  the routes as an OpenAPI 3.1 document
// Errors are `{error, error_type}`; every answer carries `x-request-id`; `cors` lets browsers
// on other origins call it. `close()` (SIGTERM in the CLI) answers 503 while it drains.
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as path from 'node:path'

import * as prom from 'prom-client'

import { Cors, corsHeaders, HttpError, parseCors, preflight, readJson, requestId, send, sendError, toHttpError } from './http'
import { openApi } from './openapi'
import { NER_OPTIONS, normalize } from './options'

import type { Entity } from './aggregate'
import { entityTypes, pageEnd, pageStart, renderHtml } from './html'
import type { DType, LoadOptions } from './model'
import { isDirectory, parseHubId } from './hub'
import { VERSION } from './version'
import { Ner, NerOptions, pipeline } from './pipeline'

export interface ServeOptions extends LoadOptions {
  /** A folder or Hub id (default: the bundled model). */
  model?: string
  port?: number
  /** Default 127.0.0.1: serving beyond the machine is a choice. */
  host?: string
  /** Tokens per forward pass (default 16384). */
  maxBatchTokens?: number
  /** NER requests handled at once, counted once their body has arrived; more get 429 (default 64). */
  maxConcurrentRequests?: number
  /** Largest request body in bytes; larger gets 413 (default 2 MB). */
  payloadLimit?: number
  /** Most texts in one request; more get 413 (default 1024). */
  maxTexts?: number
  /** Most characters (UTF-16 units) over all texts of one request; more get 413 (default 1,000,000). */
  maxChars?: number
  /** Dynamic batching wait (default 2 ms). */
  maxWaitMs?: number
  /** A request whose headers and body have not all arrived by then gets 408 (default 30 s). */
  requestTimeoutMs?: number
  /** `close()` waits this long for requests in flight, then drops their connections (default 10 s). */
  drainTimeoutMs?: number
  /** Origins whose pages may call the server: `'*'`, or a list such as `['https://app.example.com']` (default: none). */
  cors?: '*' | readonly string[]
  /** One call per answered request (for logs): id, method, path, status, milliseconds. */
  onRequest?: (entry: RequestLog) => void
}

export interface RequestLog {
  id: string
  method: string
  route: string
  status: number
  ms: number
  error?: string
}

export interface Server {
  url: string
  ner: Ner
  /** Requests being answered now (`POST /` and `/ner`). */
  readonly inFlight: number
  /** Stops accepting connections, lets in-flight requests finish (up to `drainTimeoutMs`), frees the model. */
  close(): Promise<void>
}


type Route = '/' | '/ner' | '/health' | '/info' | '/metrics' | '/openapi.json'
/** The routes and their methods; anything else is 404 (or 405), and `other` in metrics. */
const ROUTES: Record<Route, readonly string[]> = {
  '/': ['GET', 'POST'],
  '/ner': ['POST'],
  '/health': ['GET'],
  '/info': ['GET'],
  '/metrics': ['GET'],
  '/openapi.json': ['GET'],
}

/** The route of a request target: its path exactly (no `//`, no absolute form), or undefined. */
function routeOf(target: string | undefined): Route | undefined {
  if (!target || target[0] !== '/' || target[1] === '/') return undefined
  const end = target.search(/[?#]/)
  const p = end < 0 ? target : target.slice(0, end)
  return Object.hasOwn(ROUTES, p) ? (p as Route) : undefined
}

export async function serve(options: ServeOptions = {}): Promise<Server> {
  const maxConcurrent = options.maxConcurrentRequests ?? 64
  const payloadLimit = options.payloadLimit ?? 2 << 20
  const limits = { maxTexts: options.maxTexts ?? 1024, maxChars: options.maxChars ?? 1_000_000 }
  const drainTimeoutMs = options.drainTimeoutMs ?? 10_000
  const cors: Cors = parseCors(options.cors)
  const registry = new prom.Registry()
  let depth = () => 0
  const m = metrics(registry, () => depth())
  const { model, port, host, maxBatchTokens, maxConcurrentRequests: _mc, payloadLimit: _pl, maxTexts: _mt, maxChars: _mch, requestTimeoutMs, drainTimeoutMs: _dt, cors: _c, onRequest, ...load } = options
  const ner = await pipeline(model, {
    ...load,
    maxBatchTokens,
    onBatch: (texts, calls, tokens) => {
      m.batchTexts.observe(texts)
      m.batchCalls.observe(calls)
      m.tokens.inc(tokens)
    },
  })
  depth = () => ner.queueDepth
  const modelName = model !== undefined && parseHubId(model) && !isDirectory(model) ? model : path.basename(ner.model.path)
  const about = info(ner, modelName, options.dtype ?? 'f32', { maxConcurrent, maxBatchTokens: maxBatchTokens ?? 16384, ...limits })
  const apiDoc = JSON.stringify(openApi(VERSION, ner.model.labels))

  let inFlight = 0
  let draining = false
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const route = routeOf(req.url)
    // HEAD is GET without a body (Node leaves the body out).
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? '')
    // Metric labels come from a fixed set: the known routes with their methods, or 'other'.
    const label = route && ROUTES[route].includes(method) ? `${req.method === 'HEAD' ? 'HEAD' : method} ${route}` : 'other'
    const started = process.hrtime.bigint()
    const isNer = method === 'POST' && (route === '/' || route === '/ner')
    const id = requestId(req)
    res.setHeader('x-request-id', id)
    for (const [k, v] of Object.entries(corsHeaders(cors, req.headers.origin))) res.setHeader(k, v)
    let counted = false
    let aborted = false
    let failure: string | undefined
    // A client that goes away cancels its work: texts not yet in a forward pass never run.
    const cancel = new AbortController()
    req.on('error', () => undefined) // a reset connection ends this request only
    res.on('close', () => {
      if (!res.writableFinished) {
        aborted = true
        cancel.abort()
      }
    })
    try {
      if (route && cors) {
        const pre = preflight(cors, req, ROUTES[route])
        if (pre) {
          res.writeHead(pre.status, pre.headers)
          return res.end()
        }
      }
      if (draining) throw new HttpError(503, 'the server is shutting down; retry on another instance', { 'retry-after': '1', connection: 'close' })
      if (!route) throw new HttpError(404, `no route ${String(req.url).slice(0, 100)}; try POST / or POST /ner (GET /openapi.json lists the routes)`)
      if (!ROUTES[route].includes(method)) {
        const allow = ROUTES[route].flatMap((x) => (x === 'GET' ? ['GET', 'HEAD'] : [x])).join(', ')
        throw new HttpError(405, `${route} takes ${allow}`, { allow })
      }
      switch (`${method} ${route}`) {
        case 'GET /':
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          return res.end(viewPage(entityTypes(ner.model.labels)))
        case 'GET /health':
          return send(res, 200, { status: 'ok' })
        case 'GET /info':
          return send(res, 200, about)
        case 'GET /openapi.json':
          res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' })
          return res.end(apiDoc)
        case 'GET /metrics':
          res.writeHead(200, { 'content-type': registry.contentType })
          return res.end(await registry.metrics())
      }
      const body = await readJson(req, payloadLimit)
      // A slot is taken only once the body is here: slow senders hold a connection, not a slot.
      if (inFlight >= maxConcurrent) throw new HttpError(429, `more than ${maxConcurrent} requests at once; retry shortly`, { 'retry-after': '1' })
      inFlight++
      counted = true
      const answer = route === '/' ? await inferenceApi(ner, body, limits, cancel.signal) : await nerRoute(ner, body, limits, cancel.signal)
      // TEI's timing headers: the whole request, in ms.
      res.setHeader('x-total-time', String(Math.round(Number(process.hrtime.bigint() - started) / 1e6)))
      send(res, 200, answer)
    } catch (e) {
      const err = toHttpError(e)
      if (err.status >= 500) failure = err.message
      sendError(res, err)
    } finally {
      if (counted) inFlight--
      // A client that went away is nginx's 499, not a server error.
      const gone = aborted || res.destroyed
      const status = gone ? 499 : res.statusCode
      m.requests.inc({ route: label, status: String(status) })
      if (gone && isNer) m.cancelled.inc()
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      if (isNer) m.latency.observe({ route: label }, seconds)
      onRequest?.({ id, method: req.method ?? '', route: route ?? 'other', status, ms: Math.round(seconds * 1000), ...(failure ? { error: failure } : {}) })
    }
  }
  const server = http.createServer(
    { requestTimeout: requestTimeoutMs ?? 30_000, headersTimeout: Math.min(requestTimeoutMs ?? 30_000, 20_000), connectionsCheckingInterval: 1_000 },
    (req, res) => {
      // Nothing a request does may end the process: whatever escapes is this request's 500.
      handle(req, res).catch((e) => sendError(res, toHttpError(e)))
    },
  )
  server.keepAliveTimeout = 5_000
  // A socket error (a client that resets, garbage before the request line) ends that socket only.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && !socket.destroyed) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
    } else socket.destroy()
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port ?? 8080, host ?? '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (e) {
    ner.dispose()
    const err = e as NodeJS.ErrnoException
    const why = err.code === 'EADDRINUSE' ? 'the address is in use' : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN' ? 'no such address on this machine' : err.code === 'EACCES' ? 'permission denied' : err.message
    throw new Error(`cannot listen on ${host ?? '127.0.0.1'}:${port ?? 8080}: ${why}${err.code ? ` (${err.code})` : ''}`)
  }
  const addr = server.address() as AddressInfo
  let closing: Promise<void> | undefined
  return {
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    ner,
    get inFlight() {
      return inFlight
    },
    close: () =>
      (closing ??= (async () => {
        // Draining: the listener stays open while requests run, so new clients get a 503
        // with Retry-After (which they retry elsewhere) rather than a refused connection.
        draining = true
        server.closeIdleConnections()
        const deadline = Date.now() + drainTimeoutMs
        while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
        await new Promise<void>((resolve) => {
          // After the deadline, connections still open (a client trickling a body, a long
          // request) are dropped, so shutdown always ends.
          const timer = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()))
          server.close(() => {
            clearTimeout(timer)
            resolve()
          })
          server.closeIdleConnections()
        })
        ner.dispose()
      })()),
  }
}

/** The page of `GET /`: it asks this server's POST /ner and renders with `renderHtml`'s own source. */
function viewPage(types: string[]): string {
  const strategies = ['first', 'simple', 'average', 'max', 'none']
  return (
    pageStart('eurobert-ner', types) +
    `<form id="f"><textarea id="text" rows="5" style="width:100%;font:inherit" aria-label="text">Erna Solberg besøkte Universitetet i Oslo forrige uke.</textarea>
<p><label>Aggregation <select id="strategy">${strategies.map((s) => `<option>${s}</option>`).join('')}</select></label>
<button type="submit">Find entities</button> <span id="status" role="status"></span></p></form>
<div id="out" aria-live="polite"></div>
<script>
const renderHtml = ${renderHtml.toString()};
document.getElementById('f').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = document.getElementById('text').value;
  const status = document.getElementById('status');
  status.textContent = '…';
  const res = await fetch('ner', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text, options: { aggregationStrategy: document.getElementById('strategy').value, words: 'unicode' } }) });
  const body = await res.json();
  status.textContent = res.ok ? body.length + ' entities' : body.error;
  if (res.ok) document.getElementById('out').innerHTML = renderHtml(text, body, {});
});
</script>
` +
    pageEnd()
  )
}

function metrics(registry: prom.Registry, queueDepth: () => number) {
  // Process and Node.js metrics under their standard names (process_cpu_seconds_total,
  // nodejs_eventloop_lag_seconds, ...), so the usual dashboards find them.
  prom.collectDefaultMetrics({ register: registry })
  return {
    requests: new prom.Counter({ name: 'eurobert_ner_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers: [registry] }),
    latency: new prom.Histogram({
      name: 'eurobert_ner_request_duration_seconds',
      help: 'NER request latency',
      labelNames: ['route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    batchTexts: new prom.Histogram({ name: 'eurobert_ner_batch_texts', help: 'Texts per merged forward batch', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [registry] }),
    batchCalls: new prom.Histogram({ name: 'eurobert_ner_batch_calls', help: 'Requests merged per forward batch', buckets: [1, 2, 4, 8, 16, 32, 64], registers: [registry] }),
    cancelled: new prom.Counter({ name: 'eurobert_ner_requests_cancelled_total', help: 'NER requests whose client went away before the answer', registers: [registry] }),
    tokens: new prom.Counter({ name: 'eurobert_ner_tokens_total', help: 'Tokens run through the model (rate() gives tokens/s)', registers: [registry] }),
    queue: new prom.Gauge({
      name: 'eurobert_ner_queue_depth',
      help: 'Texts waiting for the next batch',
      registers: [registry],
      collect() {
        this.set(queueDepth())
      },
    }),
  }
}

/** What runs, in text-embeddings-inference's snake_case: the model's Hub id or folder name (not its path on this machine), and the limits. */
function info(ner: Ner, model: string, dtype: DType, l: { maxConcurrent: number; maxBatchTokens: number; maxTexts: number; maxChars: number }) {
  const m = ner.model
  return {
    model_id: model,
    model_dtype: dtype,
    model_type: { token_classifier: { id2label: Object.fromEntries(m.labels.map((label, i) => [String(i), label])) } },
    labels: m.labels,
    device: m.device,
    version: VERSION,
    max_input_length: m.maxLength,
    window_length: m.modelMaxLength,
    max_concurrent_requests: l.maxConcurrent,
    max_batch_tokens: l.maxBatchTokens,
    max_client_batch_size: l.maxTexts,
    max_client_chars: l.maxChars,
    threads: m.threads,
  }
}

interface Limits {
  maxTexts: number
  maxChars: number
}

/** The texts of a request, within the per-request caps (each request's work is linear in its size). */
function checkTexts(texts: readonly string[], limits: Limits): void {
  if (texts.length > limits.maxTexts) throw new HttpError(413, `${texts.length} texts in one request; the limit is ${limits.maxTexts}`)
  let chars = 0
  for (const t of texts) chars += t.length
  if (chars > limits.maxChars) throw new HttpError(413, `${chars} characters in one request; the limit is ${limits.maxChars}`)
}

/**
 * A server's own bound on `stride`: at most half the window, so a request's work stays within
 * about twice its text's tokens (the library takes any stride transformers does, up to a
 * window per token).
 */
function checkStride(stride: unknown, ner: Ner, name: string): void {
  const most = Math.floor(ner.model.modelMaxLength / 2)
  if (typeof stride === 'number' && stride > most) throw new HttpError(400, `${name} may be at most ${most} on this server (half the window of ${ner.model.modelMaxLength} tokens), got ${stride}`)
}

/** `{inputs, parameters}` as the Hugging Face Inference API takes it; its answer, too. */
async function inferenceApi(ner: Ner, body: unknown, limits: Limits, signal: AbortSignal): Promise<unknown> {
  const { inputs, parameters = {} } = (body !== null && typeof body === 'object' ? body : {}) as { inputs?: unknown; parameters?: Record<string, unknown> }
  if (typeof inputs !== 'string' && !(Array.isArray(inputs) && inputs.every((t) => typeof t === 'string'))) {
    throw new HttpError(400, '"inputs" must be a string or an array of strings')
  }
  if (parameters === null || typeof parameters !== 'object') throw new HttpError(400, '"parameters" must be an object')
  const known = ['aggregation_strategy', 'ignore_labels', 'stride']
  const unknown = Object.keys(parameters).filter((k) => !known.includes(k))
  if (unknown.length > 0) throw new HttpError(400, `unknown parameters: ${unknown.join(', ')} (known: ${known.join(', ')})`)
  const strategy = parameters.aggregation_strategy
  const options: NerOptions = {
    // transformers takes any case ('SIMPLE' too).
    aggregationStrategy: ((typeof strategy === 'string' ? strategy.toLowerCase() : strategy) as NerOptions['aggregationStrategy']) ?? 'simple',
    ignoreLabels: parameters.ignore_labels as string[] | undefined,
    stride: parameters.stride as number | undefined,
    output: 'transformers',
    signal,
  }
  const texts = typeof inputs === 'string' ? [inputs] : inputs
  checkTexts(texts, limits)
  checkStride(options.stride, ner, 'parameters.stride')
  let out: Entity[][]
  try {
    out = (await ner(texts, options)) as Entity[][]
  } catch (e) {
    // The client sent snake_case names: its errors use them.
    if (e instanceof TypeError || e instanceof RangeError) {
      const message = e.message.replace(/\baggregationStrategy\b/g, 'aggregation_strategy').replace(/\bignoreLabels\b/g, 'ignore_labels').replace(/^ner: /, '')
      throw new HttpError(400, message)
    }
    throw e
  }
  // Python indexes strings by code point; so does the Inference API.
  const answer = out.map((entities, i) => toCodePoints(texts[i], entities))
  return typeof inputs === 'string' ? answer[0] : answer
}

/** Per-call options a client may set (either spelling); batch sizes are the server's to choose. */
const SERVER_SET = ['batchSize', 'maxBatchTokens', 'signal']

async function nerRoute(ner: Ner, body: unknown, limits: Limits, signal: AbortSignal): Promise<unknown> {
  const { text, texts, options: raw = {} } = (body !== null && typeof body === 'object' ? body : {}) as { text?: unknown; texts?: unknown; options?: unknown }
  if ((text === undefined) === (texts === undefined)) throw new HttpError(400, 'give exactly one of "text" (a string) or "texts" (an array of strings)')
  if (typeof text !== 'string' && !(Array.isArray(texts) && texts.every((t) => typeof t === 'string'))) {
    throw new HttpError(400, '"text" must be a string, or "texts" an array of strings')
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new HttpError(400, '"options" must be an object')
  const refused = Object.keys(raw).filter((k) => SERVER_SET.includes(k) || SERVER_SET.includes(k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())))
  if (refused.length > 0) throw new HttpError(400, `options ${refused.join(', ')} cannot be set per request (the server sets them)`)
  const options = normalize<NerOptions>('options', raw, NER_OPTIONS)
  checkTexts(typeof text === 'string' ? [text] : (texts as string[]), limits)
  checkStride(options.stride, ner, 'options.stride')
  return ner((text ?? texts) as string, { ...options, signal })
}

/**
 * UTF-16 offsets → code points (Python's string indices), for all of a text's entities in one
 * pass over the text: linear, whatever the number of entities.
 */
function toCodePoints(text: string, entities: Entity[]): Entity[] {
  if (!/[\uD800-\uDFFF]/.test(text)) return entities
  const cp = new Uint32Array(text.length + 1)
  let n = 0
  for (let i = 0; i < text.length; i++) {
    cp[i] = n
    const c = text.charCodeAt(i)
    // A high surrogate followed by a low one is one code point; its second unit maps inside it.
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) cp[++i] = n + 1
    n++
  }
  cp[text.length] = n
  return entities.map((e) => ({ ...e, start: cp[e.start], end: cp[e.end] }))
}
