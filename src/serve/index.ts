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

import { isDirectory, parseHubId } from '../pipeline/hub'
import type { LoadOptions } from '../pipeline/model'
import { Ner, pipeline } from '../pipeline/pipeline'
import { entityTypes } from './html'
import { AllowedHosts, allowedHosts, Cors, corsHeaders, HttpError, hostAllowed, parseCors, preflight, readJson, requestId, send, sendError, sendJson, serialize, toHttpError } from './http'
import { metrics } from './metrics'
import { openApi } from './openapi'
import { viewPage } from './page'
import { inferenceApi, info, nerRoute } from './routes'
import { VERSION } from '../version'

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
  /**
   * Most tokens one request's windows may run, special tokens included: what it really costs,
   * checked after tokenizing and before any forward pass; more get 413 (default 1,048,576).
   */
  maxRequestTokens?: number
  /** Largest answer in bytes of JSON; a larger one gets 413 instead (default 16 MB). */
  maxAnswerBytes?: number
  /**
   * A client that has not read its whole answer this long after it was written is
   * disconnected, and its memory freed (default 30 s).
   */
  sendTimeoutMs?: number
  /**
   * Host names the server answers to (the Host header, without its port); others get 403, so
   * a web page cannot reach a loopback server through DNS rebinding. `'all'` turns the check
   * off. Default: when bound to a loopback address, `localhost`, `*.localhost` and IP
   * addresses; otherwise all. A name starting with `.` allows its subdomains too.
   */
  allowedHosts?: 'all' | readonly string[]
  /** Dynamic batching: how long a request to an idle server waits for others (default 0 ms). */
  maxWaitMs?: number
  /** A request whose headers and body have not all arrived by then gets 408 (default 30 s). */
  requestTimeoutMs?: number
  /**
   * An idle keep-alive connection is closed after this long (default 65 s). Longer than the
   * idle timeouts of the proxies and clients in front (AWS ALB and nginx: 60 s; undici: 4 s),
   * so the other side always closes first: a server that closes first races a request sent on
   * the dying connection, which the client sees as ECONNRESET (a 502 behind a proxy).
   */
  keepAliveTimeoutMs?: number
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

/**
 * Resolves once `res` has been handed to the operating system in full, or its connection
 * closed; a client that has not taken its answer within `ms` is disconnected.
 */
function flushed(res: http.ServerResponse, ms: number): Promise<void> {
  if (res.writableFinished || res.destroyed) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      res.destroy()
      done()
    }, ms)
    res.once('finish', done)
    res.once('close', done)
  })
}

export async function serve(options: ServeOptions = {}): Promise<Server> {
  const maxConcurrent = options.maxConcurrentRequests ?? 64
  const payloadLimit = options.payloadLimit ?? 2 << 20
  const limits = { maxTexts: options.maxTexts ?? 1024, maxChars: options.maxChars ?? 1_000_000, maxTokens: options.maxRequestTokens ?? 1 << 20 }
  const drainTimeoutMs = options.drainTimeoutMs ?? 10_000
  const maxAnswerBytes = options.maxAnswerBytes ?? 16 << 20
  const sendTimeoutMs = options.sendTimeoutMs ?? 30_000
  const cors: Cors = parseCors(options.cors)
  const hosts: AllowedHosts = allowedHosts(options.allowedHosts, options.host ?? '127.0.0.1')
  const registry = new prom.Registry()
  let depth = () => 0
  let inFlight = 0
  const m = metrics(registry, () => depth(), () => inFlight)
  const { model, port, host, maxBatchTokens, maxConcurrentRequests: _mc, payloadLimit: _pl, maxTexts: _mt, maxChars: _mch, maxRequestTokens: _mrt, maxAnswerBytes: _mab, sendTimeoutMs: _st, allowedHosts: _ah, requestTimeoutMs, keepAliveTimeoutMs, drainTimeoutMs: _dt, cors: _c, onRequest, ...load } = options
  const ner = await pipeline(model, {
    ...load,
    maxBatchTokens,
    // Per step of the batcher: the tokens its windows ran (what the model really did).
    onBatch: (texts, calls, tokens) => {
      m.batchTexts.observe(texts)
      m.batchCalls.observe(calls)
      m.tokens.inc(tokens)
    },
  })
  depth = () => ner.queueDepth
  const modelName = model !== undefined && parseHubId(model) && !isDirectory(model) ? model : path.basename(ner.model.path)
  const about = info(ner, modelName, options.dtype ?? 'f32', { maxConcurrent, maxBatchTokens: maxBatchTokens ?? 16384, maxAnswerBytes, ...limits })
  const apiDoc = JSON.stringify(openApi(VERSION, ner.model.labels))

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
      // DNS rebinding: a page whose name resolves to this machine reaches us with its own Host.
      if (!hostAllowed(hosts, req.headers.host)) {
        throw new HttpError(403, `requests for host ${JSON.stringify(String(req.headers.host ?? '').slice(0, 100))} are not allowed; start the server with --allowed-hosts (allowedHosts) naming it`)
      }
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
      const json = serialize(answer, maxAnswerBytes)
      // TEI's timing headers: the whole request, in ms.
      res.setHeader('x-total-time', String(Math.round(Number(process.hrtime.bigint() - started) / 1e6)))
      sendJson(res, 200, json)
    } catch (e) {
      const err = toHttpError(e)
      if (err.status >= 500) failure = err.message
      sendError(res, err)
    } finally {
      // The slot is held until the answer has left: a client that does not read holds its
      // own slot (and its answer's memory) for at most sendTimeoutMs.
      if (counted) await flushed(res, sendTimeoutMs)
      if (counted) inFlight--
      // A client that went away is nginx's 499, not a server error.
      // (Node 24+ marks a response destroyed once its connection closes, even after it finished.)
      const gone = aborted || (res.destroyed && !res.writableFinished)
      const status = gone ? 499 : res.statusCode
      m.requests.inc({ route: label, status: String(status) })
      if (gone && isNer) m.cancelled.inc()
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      if (isNer) m.latency.observe({ route: label }, seconds)
      onRequest?.({ id, method: req.method ?? '', route: route ?? 'other', status, ms: Math.round(seconds * 1000), ...(failure ? { error: failure } : {}) })
    }
  }
  const server = http.createServer(
    {
      requestTimeout: requestTimeoutMs ?? 30_000,
      headersTimeout: Math.min(requestTimeoutMs ?? 30_000, 20_000),
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => {
      // Nothing a request does may end the process: whatever escapes is this request's 500.
      handle(req, res).catch((e) => sendError(res, toHttpError(e)))
    },
  )
  server.keepAliveTimeout = keepAliveTimeoutMs ?? 65_000
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

