// The long-running subcommands of the CLI: `serve` (HTTP) and `worker` (BullMQ). Each prints
// one JSON line per event on stdout and, on SIGTERM or SIGINT, drains and exits 0.
import { parseArgs } from 'node:util'

import type { Device, DType } from '../pipeline/model'

export const SERVE_HELP = `Usage: eurobert-ner serve [options]

  -m, --model MODEL               folder or Hub id (default: the bundled NorNE model)
      --port N                    default 8080 (0: any free port)
      --host H                    default 127.0.0.1
      --max-batch-tokens N        tokens per forward pass (default 16384)
      --max-concurrent-requests N NER requests at once; more get 429 (default 64)
      --payload-limit BYTES       largest request body, e.g. 2mb (default); more gets 413
      --max-texts N               most texts in one request; more gets 413 (default 1024)
      --max-chars N               most characters in one request; more gets 413 (default 1000000)
      --max-wait-ms N             dynamic batching wait (default 0)
      --request-timeout-ms N      a request not fully received by then gets 408 (default 30000)
      --keep-alive-timeout-ms N   close idle keep-alive connections after this long (default 65000)
      --drain-timeout-ms N        on SIGTERM, wait this long for requests in flight (default 10000)
      --cors ORIGINS              let pages on these origins call the server: * or a comma-
                                  separated list such as https://app.example.com (default: none)
      --log-requests              one JSON line per request (id, method, route, status, ms);
                                  server errors are always logged
      --threads N, --dtype T, --device D, --revision REV, --offline

Routes: POST / (Hugging Face Inference API shape), POST /ner, GET /health, /info, /metrics,
/openapi.json. Errors are {"error", "error_type"}; answers carry x-request-id.`

export const WORKER_HELP = `Usage: eurobert-ner worker [options]

      --redis URL                 redis://host:port[/db] (default redis://127.0.0.1:6379)
      --queue NAME                default ner
  -m, --model MODEL               folder or Hub id (default: the bundled NorNE model)
      --concurrency N             jobs at once, sharing forward passes (default 8)
      --lock-ms N                 job lock; a dead worker's jobs return after it (default 30000)
      --stalled-ms N              how often stalled jobs are looked for (default 30000)
      --name NAME                 stored on every job this worker runs (default eurobert-ner@host:pid)
      --max-job-chars N           larger jobs fail without retries (default 1000000)
      --max-result-bytes N        larger results fail without retries (default 16777216)
      --threads N, --dtype T, --device D, --revision REV, --offline

Jobs: {"text": str} or {"texts": [str]} with optional "options" (ner()'s); the entities are
the job's result; a {"texts"} job reports progress (0-100) as parts of it finish. Job names
are labels for dashboards: every job in the queue is handled the same way. Jobs with bad data,
bad options or over the limits fail at once, without retries (BullMQ's UnrecoverableError). Produce with nerQueue() from eurobert-ner/queue.`

type Usage = (message: string) => Error

/** The options every command shares (the model and how it loads); the main command adds its own. */
export const common = {
  model: { type: 'string', short: 'm' },
  threads: { type: 'string' },
  dtype: { type: 'string' },
  device: { type: 'string' },
  revision: { type: 'string' },
  offline: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** A CLI integer option, checked (`usage` makes the error for a bad value). */
export function int(v: string | undefined, flag: string, usage: Usage, min = 1): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < min) throw usage(`${flag} must be an integer ≥ ${min}, got ${v}`)
  return n
}

function bytes(v: string | undefined, usage: Usage): number | undefined {
  if (v === undefined) return undefined
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(v.trim())
  if (!m) throw usage(`--payload-limit must be a size like 2mb or 500000, got ${v}`)
  return Math.round(Number(m[1]) * { b: 1, kb: 1 << 10, mb: 1 << 20, gb: 1 << 30 }[(m[2] ?? 'b').toLowerCase() as 'b'])
}

function load(values: { model?: string; threads?: string; dtype?: string; device?: string; revision?: string; offline?: boolean }, usage: Usage) {
  return {
    model: values.model,
    threads: int(values.threads, '--threads', usage),
    dtype: values.dtype as DType | undefined,
    device: values.device as Device | undefined,
    revision: values.revision,
    localFilesOnly: values.offline ? true : undefined,
  }
}

function log(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(event) + '\n')
}

/** Waits for SIGTERM or SIGINT, then runs `close` and exits 0. */
function onSignals(close: () => Promise<void>, inFlight?: () => number): void {
  let closing = false
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      if (closing) return
      closing = true
      log({ event: 'draining', signal: sig, ...(inFlight && { in_flight: inFlight() }) })
      close().then(
        () => {
          log({ event: 'stopped' })
          process.exit(0)
        },
        (e) => {
          process.stderr.write(`eurobert-ner: error: ${(e as Error).message}\n`)
          process.exit(1)
        },
      )
    })
  }
}

export async function serveCommand(argv: string[], usage: Usage): Promise<number | undefined> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...common,
      port: { type: 'string' },
      host: { type: 'string' },
      'max-batch-tokens': { type: 'string' },
      'max-concurrent-requests': { type: 'string' },
      'payload-limit': { type: 'string' },
      'max-wait-ms': { type: 'string' },
      'max-texts': { type: 'string' },
      'max-chars': { type: 'string' },
      'request-timeout-ms': { type: 'string' },
      'keep-alive-timeout-ms': { type: 'string' },
      'drain-timeout-ms': { type: 'string' },
      cors: { type: 'string' },
      'log-requests': { type: 'boolean' },
    },
  })
  if (values.help) {
    process.stdout.write(SERVE_HELP + '\n')
    return 0
  }
  const { serve } = await import('../serve')
  const server = await serve({
    ...load(values, usage),
    port: int(values.port, '--port', usage, 0) ?? 8080,
    host: values.host,
    maxBatchTokens: int(values['max-batch-tokens'], '--max-batch-tokens', usage),
    maxConcurrentRequests: int(values['max-concurrent-requests'], '--max-concurrent-requests', usage),
    payloadLimit: bytes(values['payload-limit'], usage),
    maxWaitMs: int(values['max-wait-ms'], '--max-wait-ms', usage, 0),
    maxTexts: int(values['max-texts'], '--max-texts', usage),
    maxChars: int(values['max-chars'], '--max-chars', usage),
    requestTimeoutMs: int(values['request-timeout-ms'], '--request-timeout-ms', usage),
    keepAliveTimeoutMs: int(values['keep-alive-timeout-ms'], '--keep-alive-timeout-ms', usage, 0),
    drainTimeoutMs: int(values['drain-timeout-ms'], '--drain-timeout-ms', usage, 0),
    // serve() checks the origins (a RangeError, which the CLI reports as a usage error).
    cors: values.cors?.split(','),
    onRequest: (r) => {
      if (values['log-requests'] || r.error) log({ event: 'request', ...r })
    },
  })
  log({ event: 'listening', url: server.url, model: server.ner.model.path })
  onSignals(server.close, () => server.inFlight)
  return undefined // keeps running
}

export async function workerCommand(argv: string[], usage: Usage): Promise<number | undefined> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...common,
      redis: { type: 'string' },
      queue: { type: 'string' },
      concurrency: { type: 'string' },
      'lock-ms': { type: 'string' },
      'stalled-ms': { type: 'string' },
      'max-job-chars': { type: 'string' },
      'max-result-bytes': { type: 'string' },
      name: { type: 'string' },
    },
  })
  if (values.help) {
    process.stdout.write(WORKER_HELP + '\n')
    return 0
  }
  const { startWorker } = await import('../queue')
  const worker = await startWorker({
    ...load(values, usage),
    redis: values.redis,
    queue: values.queue,
    concurrency: int(values.concurrency, '--concurrency', usage),
    lockDurationMs: int(values['lock-ms'], '--lock-ms', usage),
    stalledIntervalMs: int(values['stalled-ms'], '--stalled-ms', usage),
    name: values.name,
    maxJobChars: int(values['max-job-chars'], '--max-job-chars', usage),
    maxResultBytes: int(values['max-result-bytes'], '--max-result-bytes', usage),
    onEvent: log,
  })
  log({ event: 'ready', queue: values.queue ?? 'ner', pid: process.pid })
  onSignals(worker.close)
  return undefined
}
