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
import { Ner, NerOptions, pipeline } from './pipeline'

export interface ServeOptions extends LoadOptions {
  /** A folder or Hub id (default: the bundled model). */
  model?: string
  port?: number
  /** Default 127.0.0.1: serving beyond the machine is a choice. */
  host?: string
  /** Tokens per forward pass (default 16384). */
  maxBatchTokens?: number
  /** NER requests handled at once; more get 429 (default 64). */
  maxConcurrentRequests?: number
  /** Largest request body in bytes; larger gets 413 (default 2 MB). */
  payloadLimit?: number
  /** Dynamic batching wait (default 2 ms). */
  maxWaitMs?: number
}

export interface Server {
  url: string
  ner: Ner
  /** Stops accepting connections, lets in-flight requests finish, frees the model. */
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

export async function serve(options: ServeOptions = {}): Promise<Server> {
  const maxConcurrent = options.maxConcurrentRequests ?? 64
  const payloadLimit = options.payloadLimit ?? 2 << 20
  const registry = new prom.Registry()
  let depth = () => 0
  const m = metrics(registry, () => depth())
  const { model, port, host, maxBatchTokens, maxConcurrentRequests: _mc, payloadLimit: _pl, ...load } = options
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

  let inFlight = 0
  let draining = false
  const server = http.createServer(async (req, res) => {
    const route = `${req.method} ${new URL(req.url ?? '/', 'http://x').pathname}`
    const started = process.hrtime.bigint()
    const isNer = route === 'POST /' || route === 'POST /ner'
    let counted = false
    try {
      if (draining) throw new HttpError(503, 'the server is shutting down')
      switch (route) {
        case 'GET /':
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          return res.end(viewPage(entityTypes(ner.model.labels)))
        case 'GET /health':
          return send(res, 200, { status: 'ok' })
        case 'GET /info':
          return send(res, 200, info(ner, options.dtype ?? 'f32', options.device ?? 'cpu'))
        case 'GET /metrics':
          res.writeHead(200, { 'content-type': registry.contentType })
          return res.end(await registry.metrics())
      }
      if (!isNer) throw new HttpError(404, `no route ${route}; try POST / or POST /ner`)
      if (inFlight >= maxConcurrent) throw new HttpError(429, `more than ${maxConcurrent} requests at once; retry shortly`, { 'retry-after': '1' })
      inFlight++
      counted = true
      const body = await readJson(req, payloadLimit)
      send(res, 200, route === 'POST /' ? await inferenceApi(ner, body) : await nerRoute(ner, body))
    } catch (e) {
      const err = e instanceof HttpError ? e : e instanceof TypeError || e instanceof RangeError ? new HttpError(400, e.message) : new HttpError(500, (e as Error).message)
      if (err.status === 413) res.setHeader('connection', 'close')
      send(res, err.status, { error: err.message }, err.headers)
    } finally {
      if (counted) inFlight--
      const status = String(res.statusCode)
      m.requests.inc({ route, status })
      if (isNer) m.latency.observe({ route }, Number(process.hrtime.bigint() - started) / 1e9)
    }
  })
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve) => server.listen(port ?? 8080, host ?? '127.0.0.1', resolve))
  const addr = server.address() as AddressInfo
  return {
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    ner,
    close: async () => {
      draining = true
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      })
      ner.dispose()
    },
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

function info(ner: Ner, dtype: DType, device: string) {
  const m = ner.model
  return { model: m.path, labels: m.labels, dtype, device, version: VERSION, maxLength: m.maxLength, modelMaxLength: m.modelMaxLength, threads: m.threads }
}

/** `{inputs, parameters}` as the Hugging Face Inference API takes it; its answer, too. */
async function inferenceApi(ner: Ner, body: unknown): Promise<unknown> {
  const { inputs, parameters = {} } = (body ?? {}) as { inputs?: unknown; parameters?: Record<string, unknown> }
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
  const out = (await ner(texts, options)) as Entity[][]
  // Python indexes strings by code point; so does the Inference API.
  const answer = out.map((entities, i) => entities.map((e) => toCodePoints(texts[i], e)))
  return typeof inputs === 'string' ? answer[0] : answer
}

async function nerRoute(ner: Ner, body: unknown): Promise<unknown> {
  const { text, texts, options = {} } = (body ?? {}) as { text?: unknown; texts?: unknown; options?: NerOptions }
  if ((text === undefined) === (texts === undefined)) throw new HttpError(400, 'give exactly one of "text" (a string) or "texts" (an array of strings)')
  return ner((text ?? texts) as string, options)
}

function toCodePoints(text: string, e: Entity): Entity {
  const cp = (units: number) => {
    let n = 0
    for (let i = 0; i < units; i++) {
      const c = text.charCodeAt(i)
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < units && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++
      n++
    }
    return n
  }
  return { ...e, start: cp(e.start), end: cp(e.end) }
}

function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
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
        reject(new HttpError(400, `the body is not JSON: ${(e as Error).message}`))
      }
    })
    req.on('error', reject)
  })
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return
  const json = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), ...headers })
  res.end(json)
}
