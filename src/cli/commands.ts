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
      --max-request-tokens N      most tokens a request's windows may run (its real cost,
                                  checked before any forward pass); more gets 413 (default 1048576)
      --max-answer-bytes BYTES    largest answer; a larger one gets 413 (default 16mb)
      --send-timeout-ms N         a client that has not read its answer by then is
                                  disconnected (default 30000)
      --allowed-hosts H,H         Host names answered (others get 403, against DNS rebinding):
                                  names, .domain for its subdomains, or all (default: localhost
                                  and IP addresses when bound to loopback, else all)
      --max-wait-ms N             dynamic batching wait (default 0)
      --request-timeout-ms N      a request not fully received by then gets 408 (default 30000)
      --keep-alive-timeout-ms N   close idle keep-alive connections after this long (default 65000)
      --drain-timeout-ms N        on SIGTERM, wait this long for requests in flight, then stop
                                  their work and exit (default 10000)
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
      --max-job-texts N           jobs with more texts fail without retries (default 1024)
      --max-job-tokens N          jobs whose windows would run more tokens fail without
                                  retries, before any forward pass (default 1048576)
      --drain-timeout-ms N        on SIGTERM, wait this long for running jobs, then stop their
                                  work and exit; their locks expire and another worker runs
                                  them (default 30000)
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
export function int(v: string | undefined, flag: string, usage: Usage, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw usage(`${flag} must be an integer from ${min} to ${max}, got ${v}`)
  return n
}

/** Longest delay Node's timers take (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
const MAX_MS = 2 ** 31 - 1

/** A duration flag in milliseconds, within what a timer can wait. */
function ms(v: string | undefined, flag: string, usage: Usage, min = 1): number | undefined {
  return int(v, flag, usage, min, MAX_MS)
}

function bytes(v: string | undefined, usage: Usage, flag = '--payload-limit'): number | undefined {
  if (v === undefined) return undefined
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(v.trim())
  const n = m ? Math.round(Number(m[1]) * { b: 1, kb: 1 << 10, mb: 1 << 20, gb: 1 << 30 }[(m[2] ?? 'b').toLowerCase() as 'b']) : NaN
  if (!(n >= 1 && n <= 2 ** 32)) throw usage(`${flag} must be a size from 1 byte to 4gb, like 2mb or 500000, got ${v}`)
  return n
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

/**
 * Whether a long-running command (serve, worker) is running: its stdout is a log, and a log
 * reader that goes away (`serve | head`) must not end the service, as it ends a one-shot
 * command's output. Once stdout is broken, events are dropped.
 */
export const service = { running: false, stdoutBroken: false }

function log(event: Record<string, unknown>): void {
  if (service.stdoutBroken) return
  process.stdout.write(JSON.stringify(event) + '\n')
}

/** What a close may take past its drain deadline before the process exits anyway. */
const CLOSE_GRACE_MS = 10_000

/**
 * Waits for SIGTERM or SIGINT, then runs `close` and exits 0; a second signal exits at once,
 * and so does a close that outlives `deadlineMs` plus a grace (a client library stuck
 * reconnecting must never keep a stopped service alive).
 */
function onSignals(close: () => Promise<void>, deadlineMs: number, inFlight?: () => number): void {
  let closing = false
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      if (closing) {
        process.stderr.write(`eurobert-ner: ${sig} again: exiting without waiting\n`)
        process.exit(1)
      }
      closing = true
      setTimeout(() => {
        process.stderr.write(`eurobert-ner: the close did not end within ${deadlineMs + CLOSE_GRACE_MS} ms of ${sig}: exiting\n`)
        process.exit(1)
      }, deadlineMs + CLOSE_GRACE_MS).unref()
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
      'max-request-tokens': { type: 'string' },
      'max-answer-bytes': { type: 'string' },
      'send-timeout-ms': { type: 'string' },
      'allowed-hosts': { type: 'string' },
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
  service.running = true
  const server = await serve({
    ...load(values, usage),
    port: int(values.port, '--port', usage, 0, 65535) ?? 8080,
    host: values.host,
    maxBatchTokens: int(values['max-batch-tokens'], '--max-batch-tokens', usage),
    maxConcurrentRequests: int(values['max-concurrent-requests'], '--max-concurrent-requests', usage),
    payloadLimit: bytes(values['payload-limit'], usage),
    maxWaitMs: ms(values['max-wait-ms'], '--max-wait-ms', usage, 0),
    maxTexts: int(values['max-texts'], '--max-texts', usage),
    maxChars: int(values['max-chars'], '--max-chars', usage),
    maxRequestTokens: int(values['max-request-tokens'], '--max-request-tokens', usage, 1, 2 ** 32 - 1),
    maxAnswerBytes: bytes(values['max-answer-bytes'], usage, '--max-answer-bytes'),
    sendTimeoutMs: ms(values['send-timeout-ms'], '--send-timeout-ms', usage),
    allowedHosts: values['allowed-hosts']?.split(','),
    requestTimeoutMs: ms(values['request-timeout-ms'], '--request-timeout-ms', usage),
    keepAliveTimeoutMs: ms(values['keep-alive-timeout-ms'], '--keep-alive-timeout-ms', usage, 0),
    drainTimeoutMs: ms(values['drain-timeout-ms'], '--drain-timeout-ms', usage, 0),
    // serve() checks the origins (a RangeError, which the CLI reports as a usage error).
    cors: values.cors?.split(','),
    onRequest: (r) => {
      if (values['log-requests'] || r.error) log({ event: 'request', ...r })
    },
  })
  log({ event: 'listening', url: server.url, model: server.ner.model.path })
  onSignals(server.close, ms(values['drain-timeout-ms'], '--drain-timeout-ms', usage, 0) ?? 10_000, () => server.inFlight)
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
      'max-job-texts': { type: 'string' },
      'max-job-tokens': { type: 'string' },
      'drain-timeout-ms': { type: 'string' },
      'max-result-bytes': { type: 'string' },
      name: { type: 'string' },
    },
  })
  if (values.help) {
    process.stdout.write(WORKER_HELP + '\n')
    return 0
  }
  // Every flag is checked before anything starts.
  const drain = ms(values['drain-timeout-ms'], '--drain-timeout-ms', usage, 0)
  const { startWorker } = await import('../queue')
  service.running = true
  const worker = await startWorker({
    ...load(values, usage),
    redis: values.redis,
    queue: values.queue,
    concurrency: int(values.concurrency, '--concurrency', usage),
    lockDurationMs: ms(values['lock-ms'], '--lock-ms', usage),
    stalledIntervalMs: ms(values['stalled-ms'], '--stalled-ms', usage),
    name: values.name,
    maxJobChars: int(values['max-job-chars'], '--max-job-chars', usage),
    maxJobTexts: int(values['max-job-texts'], '--max-job-texts', usage),
    maxJobTokens: int(values['max-job-tokens'], '--max-job-tokens', usage, 1, 2 ** 32 - 1),
    maxResultBytes: int(values['max-result-bytes'], '--max-result-bytes', usage),
    onEvent: log,
  })
  log({ event: 'ready', queue: values.queue ?? 'ner', pid: process.pid })
  onSignals(() => worker.close(drain), drain ?? 30_000)
  return undefined
}
