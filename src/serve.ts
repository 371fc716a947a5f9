// `eurobert-ner serve`: an HTTP server over one pipeline, whose dynamic batching merges the
// concurrent requests into shared forward passes.
//   POST /         the Hugging Face Inference API's token-classification shape:
//                  {"inputs": str | str[], "parameters": {"aggregation_strategy": ..}} → entities
//                  as transformers' pipeline returns them (offsets in code points, like Python)
//   POST /ner      {"text" | "texts", "options": {...}} with ner()'s options → entities (UTF-16)
//   GET  /         a page to try it: a text box, a strategy, the entities highlighted
//   GET  /health   200 while serving, 503 while draining
//   GET  /info     model, labels, dtype, device, version
//   GET  /metrics  Prometheus text format (prom-client)
// Limits: over `maxConcurrentRequests` → 429 with Retry-After; over `payloadLimit` → 413; bad
// JSON or options → 400; `close()` (SIGTERM in the CLI) stops accepting and drains.
import * as fs from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as path from 'node:path'

import * as prom from 'prom-client'

import type { Entity } from './aggregate'
import { entityTypes, pageEnd, pageStart, renderHtml } from './html'
import type { DType, LoadOptions } from './model'
import { parseHubId } from './hub'
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
}

export interface Server {
  url: string
  ner: Ner
  /** Stops accepting connections, lets in-flight requests finish (up to `drainTimeoutMs`), frees the model. */
  close(): Promise<void>
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

const VERSION: string = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version

type Route = '/' | '/ner' | '/health' | '/info' | '/metrics'
/** The routes and their methods; anything else is 404 (or 405), and `other` in metrics. */
const ROUTES: Record<Route, readonly string[]> = {
  '/': ['GET', 'POST'],
  '/ner': ['POST'],
  '/health': ['GET'],
  '/info': ['GET'],
  '/metrics': ['GET'],
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
  const registry = new prom.Registry()
  let depth = () => 0
  const m = metrics(registry, () => depth())
  const { model, port, host, maxBatchTokens, maxConcurrentRequests: _mc, payloadLimit: _pl, maxTexts: _mt, maxChars: _mch, requestTimeoutMs, drainTimeoutMs: _dt, ...load } = options
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
    let counted = false
    let aborted = false
    req.on('error', () => undefined) // a reset connection ends this request only
    res.on('close', () => {
      if (!res.writableFinished) aborted = true
    })
    try {
      if (draining) throw new HttpError(503, 'the server is shutting down', { 'retry-after': '1', connection: 'close' })
      if (!route) throw new HttpError(404, `no route ${String(req.url).slice(0, 100)}; try POST / or POST /ner`)
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
          return send(res, 200, info(ner, modelName, options.dtype ?? 'f32'))
        case 'GET /metrics':
          res.writeHead(200, { 'content-type': registry.contentType })
          return res.end(await registry.metrics())
      }
      const body = await readJson(req, payloadLimit)
      // A slot is taken only once the body is here: slow senders hold a connection, not a slot.
      if (inFlight >= maxConcurrent) throw new HttpError(429, `more than ${maxConcurrent} requests at once; retry shortly`, { 'retry-after': '1' })
      inFlight++
      counted = true
      send(res, 200, route === '/' ? await inferenceApi(ner, body, limits) : await nerRoute(ner, body, limits))
    } catch (e) {
      const err = e instanceof HttpError ? e : e instanceof TypeError || e instanceof RangeError ? new HttpError(400, e.message) : new HttpError(500, (e as Error).message)
      if (err.status === 413 || err.status === 408) res.setHeader('connection', 'close')
      send(res, err.status, { error: err.message }, err.headers)
    } finally {
      if (counted) inFlight--
      // A client that went away is nginx's 499, not a server error.
      const status = aborted || res.destroyed ? '499' : String(res.statusCode)
      m.requests.inc({ route: label, status })
      if (isNer) m.latency.observe({ route: label }, Number(process.hrtime.bigint() - started) / 1e9)
    }
  }
  const server = http.createServer(
    { requestTimeout: requestTimeoutMs ?? 30_000, headersTimeout: Math.min(requestTimeoutMs ?? 30_000, 20_000), connectionsCheckingInterval: 1_000 },
    (req, res) => {
      // Nothing a request does may end the process: whatever escapes is this request's 500.
      handle(req, res).catch((e) => {
        send(res, 500, { error: (e as Error)?.message ?? String(e) })
      })
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
    close: () =>
      (closing ??= (async () => {
        draining = true
        await new Promise<void>((resolve) => {
          // After the deadline, connections still open (a client trickling a body, a long
          // request) are dropped, so shutdown always ends.
          const deadline = setTimeout(() => server.closeAllConnections(), drainTimeoutMs)
          server.close(() => {
            clearTimeout(deadline)
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
    body: JSON.stringify({ text, options: { aggregationStrategy: document.getElementById('strategy').value } }) });
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
  prom.collectDefaultMetrics({ register: registry, prefix: 'eurobert_ner_' })
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

/** What runs: the model's Hub id or folder name (not its path on this machine), and how. */
function info(ner: Ner, model: string, dtype: DType) {
  const m = ner.model
  return { model, labels: m.labels, dtype, device: m.device, version: VERSION, maxLength: m.maxLength, modelMaxLength: m.modelMaxLength, threads: m.threads }
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

/** `{inputs, parameters}` as the Hugging Face Inference API takes it; its answer, too. */
async function inferenceApi(ner: Ner, body: unknown, limits: Limits): Promise<unknown> {
  const { inputs, parameters = {} } = (body !== null && typeof body === 'object' ? body : {}) as { inputs?: unknown; parameters?: Record<string, unknown> }
  if (typeof inputs !== 'string' && !(Array.isArray(inputs) && inputs.every((t) => typeof t === 'string'))) {
    throw new HttpError(400, '"inputs" must be a string or an array of strings')
  }
  if (parameters === null || typeof parameters !== 'object') throw new HttpError(400, '"parameters" must be an object')
  const known = ['aggregation_strategy', 'ignore_labels', 'stride']
  const unknown = Object.keys(parameters).filter((k) => !known.includes(k))
  if (unknown.length > 0) throw new HttpError(400, `unknown parameters: ${unknown.join(', ')} (known: ${known.join(', ')})`)
  const options: NerOptions = {
    aggregationStrategy: (parameters.aggregation_strategy as NerOptions['aggregationStrategy']) ?? 'simple',
    ignoreLabels: parameters.ignore_labels as string[] | undefined,
    stride: parameters.stride as number | undefined,
    output: 'transformers',
  }
  const texts = typeof inputs === 'string' ? [inputs] : inputs
  checkTexts(texts, limits)
  const out = (await ner(texts, options)) as Entity[][]
  // Python indexes strings by code point; so does the Inference API.
  const answer = out.map((entities, i) => toCodePoints(texts[i], entities))
  return typeof inputs === 'string' ? answer[0] : answer
}

/** Per-call options a client may set; batch sizes are the server's to choose. */
const CLIENT_OPTIONS = ['aggregationStrategy', 'ignoreLabels', 'stride', 'output', 'words', 'decode', 'maxLength']

async function nerRoute(ner: Ner, body: unknown, limits: Limits): Promise<unknown> {
  const { text, texts, options = {} } = (body !== null && typeof body === 'object' ? body : {}) as { text?: unknown; texts?: unknown; options?: NerOptions }
  if ((text === undefined) === (texts === undefined)) throw new HttpError(400, 'give exactly one of "text" (a string) or "texts" (an array of strings)')
  if (typeof text !== 'string' && !(Array.isArray(texts) && texts.every((t) => typeof t === 'string'))) {
    throw new HttpError(400, '"text" must be a string, or "texts" an array of strings')
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new HttpError(400, '"options" must be an object')
  const refused = Object.keys(options).filter((k) => !CLIENT_OPTIONS.includes(k))
  if (refused.length > 0) throw new HttpError(400, `options ${refused.join(', ')} cannot be set per request (known: ${CLIENT_OPTIONS.join(', ')})`)
  checkTexts(typeof text === 'string' ? [text] : (texts as string[]), limits)
  return ner((text ?? texts) as string, options)
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

function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
    if (encoding !== 'identity') return reject(new HttpError(415, `Content-Encoding ${encoding.slice(0, 40)} is not supported; send the JSON uncompressed`))
    // JSON only: a browser's cross-site form or text/plain POST cannot send this type without a preflight.
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
    if (type !== 'application/json') return reject(new HttpError(415, `Content-Type must be application/json, got ${JSON.stringify(type.slice(0, 60))}`))
    const declared = Number(req.headers['content-length'])
    if (declared > limit) return reject(new HttpError(413, `the body is ${declared} bytes; the limit is ${limit}`))
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > limit) {
        req.removeAllListeners('data')
        req.resume()
        reject(new HttpError(413, `the body is over the limit of ${limit} bytes`))
      } else chunks.push(c)
    })
    req.on('end', () => {
      if (size > limit) return
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')))
      } catch (e) {
        // The parser's message quotes the body; say where it broke instead.
        const at = /position (\d+)/.exec((e as Error).message)
        reject(new HttpError(400, `the body is not JSON${at ? ` (error at byte ${at[1]})` : ''}`))
      }
    })
    req.on('error', reject)
  })
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return
  const json = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), ...headers })
  res.end(json)
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory()
  } catch {
    return false
  }
}
