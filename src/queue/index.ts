// Scale-out on BullMQ (Redis): workers on any number of machines consume one queue of NER
// jobs (`{text}` or `{texts}` plus ner() options) and store the entities as each job's result;
// `nerQueue()` adds documents and awaits their entities. BullMQ is an optional peer
// dependency, loaded only here (`import { nerQueue, startWorker } from 'eurobert-ner/queue'`).
import * as os from 'node:os'

import type * as BullMQ from 'bullmq'

import type { Entity } from '../pipeline/aggregate'
import { checkCost, checkServedStride, TooLargeError, windowOf } from '../pipeline/cost'
import type { LoadOptions } from '../pipeline/model'
import { SERVER_SET } from '../pipeline/options'
import { EntityFor, NerOptions, pipeline, PipelineOptions, StrategyName } from '../pipeline/pipeline'

export interface NerJob {
  text?: string
  texts?: string[]
  options?: NerOptions
}

export interface QueueOptions {
  /** `redis://[user:password@]host:port[/db]` (default redis://127.0.0.1:6379). */
  redis?: string
  /** Queue name (default `ner`). */
  queue?: string
}

export interface WorkerOptions extends QueueOptions, LoadOptions, PipelineOptions {
  /** A folder or Hub id (default: the bundled model). */
  model?: string
  /** Jobs run at once; they share forward passes through the pipeline's batching (default 8). */
  concurrency?: number
  /** How long a job's lock lasts without renewal: a killed worker's jobs return after it (default 30 s). */
  lockDurationMs?: number
  /** How often workers look for stalled jobs (default 30 s). */
  stalledIntervalMs?: number
  /** The worker's name, stored on every job it runs, for dashboards (default `eurobert-ner@<host>:<pid>`). */
  name?: string
  /** Most characters (UTF-16 units) over a job's texts; a larger job fails without retries (default 1,000,000). */
  maxJobChars?: number
  /** Most texts in one job; a larger job fails without retries (default 1024). */
  maxJobTexts?: number
  /**
   * Most tokens a job's windows may run, special tokens included: what it really costs,
   * checked after tokenizing and before any forward pass; a larger job fails without retries
   * (default 1,048,576).
   */
  maxJobTokens?: number
  /** Largest result, as JSON bytes, a job may store in Redis; a larger one fails without retries (default 16 MB). */
  maxResultBytes?: number
  /** Job events, for logs; `error` is a connection problem (the worker keeps retrying). */
  onEvent?: (event: { event: 'active' | 'completed' | 'failed' | 'error'; job?: string; error?: string; ms?: number }) => void
}

function bullmq(): typeof BullMQ {
  let mod: typeof BullMQ
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('bullmq') as typeof BullMQ
  } catch (e) {
    throw new Error(`eurobert-ner's queue needs its optional peer dependency bullmq (npm i bullmq): ${(e as Error).message}`)
  }
  // BullMQ 6 no longer installs ioredis, yet connects with it when given connection options, as
  // here: without it every connection attempt fails and a worker retries forever. Look for it
  // where BullMQ itself would.
  try {
    require.resolve('ioredis', { paths: [require.resolve('bullmq')] })
  } catch {
    throw new Error("eurobert-ner's queue needs the Redis client ioredis, which BullMQ 6 no longer installs: npm i ioredis")
  }
  return mod
}

/** BullMQ connection options from a redis:// URL. */
export function connection(url = 'redis://127.0.0.1:6379'): BullMQ.ConnectionOptions {
  const u = new URL(url)
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new RangeError(`redis: expected a redis:// URL, got ${url}`)
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    // BullMQ workers block on Redis; retrying forever is what they need.
    maxRetriesPerRequest: null,
  }
}

/** The Redis address without its password, for messages. */
function redisLabel(url = 'redis://127.0.0.1:6379'): string {
  try {
    const u = new URL(url)
    u.password = ''
    u.username = ''
    return u.href
  } catch {
    return 'redis://?'
  }
}

export interface NerWorker {
  worker: BullMQ.Worker
  /**
   * Takes no new jobs and lets running ones finish for up to `timeoutMs` (default 30 s); then
   * stops them in the native pool and closes at once (BullMQ's `close(true)`): their locks
   * expire and another worker runs them again. Frees the model.
   */
  close(timeoutMs?: number): Promise<void>
}

/** Loads the model and consumes the queue until `close()`. */
export async function startWorker(options: WorkerOptions = {}): Promise<NerWorker> {
  const { Worker, UnrecoverableError } = bullmq()
  const { redis, queue, model, concurrency, lockDurationMs, stalledIntervalMs, onEvent, name, maxJobChars = 1_000_000, maxJobTexts = 1024, maxJobTokens = 1 << 20, maxResultBytes = 16 << 20, ...load } = options
  const ner = await pipeline(model, load)
  const started = new Map<string, number>()
  /** Running jobs, each with the signal that stops its native work at a close's deadline. */
  const active = new Map<string, AbortController>()
  // A job that can never succeed (bad data, too large, bad options) fails once, not `attempts` times.
  const unrecoverable = (message: string) => new UnrecoverableError(message)
  const worker = new Worker<NerJob, Entity[] | Entity[][]>(
    queue ?? 'ner',
    async (job) => {
      const controller = new AbortController()
      active.set(job.id!, controller)
      try {
        return await run(job, controller.signal)
      } finally {
        active.delete(job.id!)
      }
    },
    {
      connection: connection(redis),
      concurrency: concurrency ?? 8,
      lockDuration: lockDurationMs ?? 30_000,
      stalledInterval: stalledIntervalMs ?? 30_000,
      // A job whose worker died goes back to the queue once; a second death fails it.
      maxStalledCount: 1,
      name: name ?? `eurobert-ner@${os.hostname()}:${process.pid}`,
    },
  )
  async function run(job: BullMQ.Job<NerJob>, signal: AbortSignal): Promise<Entity[] | Entity[][]> {
      const { text, texts, options: raw } = (job.data ?? {}) as NerJob
      if ((text === undefined) === (texts === undefined)) throw unrecoverable('a job needs exactly one of "text" (a string) or "texts" (an array of strings)')
      const list = typeof text === 'string' ? [text] : Array.isArray(texts) && texts.every((x) => typeof x === 'string') ? texts : undefined
      if (!list) throw unrecoverable('"text" must be a string, or "texts" an array of strings')
      // The same bounds as serve's: what a producer may ask of a worker is what a client may ask of a server.
      if (list.length > maxJobTexts) throw unrecoverable(`the job has ${list.length} texts; the limit is ${maxJobTexts} (split it into several jobs)`)
      let chars = 0
      for (const x of list) chars += x.length
      if (chars > maxJobChars) throw unrecoverable(`the job has ${chars} characters; the limit is ${maxJobChars} (split the document into several jobs)`)
      if (raw !== undefined && (raw === null || typeof raw !== 'object' || Array.isArray(raw))) throw unrecoverable('"options" must be an object')
      const refused = Object.keys(raw ?? {}).filter((k) => SERVER_SET.includes(k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())))
      if (refused.length > 0) throw unrecoverable(`options ${refused.join(', ')} cannot be set per job (the worker sets them)`)
      const o: NerOptions = { ...(raw ?? {}), maxTokens: maxJobTokens, signal }
      try {
        checkServedStride(o.stride, windowOf((raw as NerOptions | undefined)?.maxLength ?? (raw as { max_length?: unknown } | undefined)?.max_length, ner.model), ner.model.specialTokens, 'options.stride', 'this worker')
      } catch (e) {
        throw unrecoverable((e as Error).message)
      }
      let result: Entity[] | Entity[][]
      try {
        if (typeof text === 'string') result = await ner(text, o)
        else {
          // Long jobs report progress (0–100) as parts of their texts finish; the budget is the job's.
          const parts = Math.min(10, list.length)
          const size = Math.ceil(list.length / parts)
          const out: Entity[][] = []
          // The job's cost is checked whole, before any part runs.
          const { tokens, windows } = await ner.cost(list, o)
          checkCost('ner', tokens, windows, maxJobTokens)
          for (let i = 0; i < list.length; i += size) {
            out.push(...(await ner(list.slice(i, i + size), { ...o, maxTokens: undefined })))
            if (parts > 1) await job.updateProgress(Math.round((100 * out.length) / list.length))
          }
          result = out
        }
      } catch (e) {
        if (e instanceof TooLargeError) throw unrecoverable(e.message.replace(/^ner: /, '').replace('this call', 'this job'))
        throw e instanceof TypeError || e instanceof RangeError ? unrecoverable(e.message) : e
      }
      const bytes = Buffer.byteLength(JSON.stringify(result))
      if (bytes > maxResultBytes) {
        throw unrecoverable(`the result is ${bytes} bytes of JSON, over the ${maxResultBytes} a job may store; split the document, or group tokens (aggregationStrategy 'first')`)
      }
      return result
  }
  worker.on('active', (job) => {
    started.set(job.id!, Date.now())
    onEvent?.({ event: 'active', job: job.id! })
  })
  worker.on('completed', (job) => onEvent?.({ event: 'completed', job: job.id!, ms: Date.now() - (started.get(job.id!) ?? Date.now()) }))
  worker.on('failed', (job, err) => onEvent?.({ event: 'failed', job: job?.id ?? '?', error: err.message }))
  // Redis unreachable: say so at once, then at most every 10 s, while BullMQ retries.
  let lastError = 0
  worker.on('error', (err) => {
    if (Date.now() - lastError < 10_000) return
    lastError = Date.now()
    onEvent?.({ event: 'error', error: `${err.message} (redis ${redisLabel(redis)}; retrying)` })
  })
  await worker.waitUntilReady()
  let closing: Promise<void> | undefined
  return {
    worker,
    close: (timeoutMs = 30_000) =>
      (closing ??= (async () => {
        // No new jobs; the running ones get until the deadline.
        await worker.pause(true)
        const deadline = Date.now() + timeoutMs
        while (active.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
        if (active.size > 0) {
          // Closed without waiting (their locks expire and another worker runs them again),
          // then their native work stops.
          await worker.close(true)
          for (const c of active.values()) c.abort(new Error('the worker shut down before this job finished'))
          ner.cancel()
        } else await worker.close()
        ner.dispose()
      })()),
  }
}

export interface NerQueue {
  queue: BullMQ.Queue<NerJob>
  /**
   * Adds one document and resolves with its entities (rejects with the job's error). The
   * result's type follows the strategy asked for, as `ner()`'s does; without one it is the
   * worker's default, unknown here.
   */
  ner<S extends StrategyName = StrategyName>(text: string, options?: NerOptions & { aggregationStrategy?: S; aggregation_strategy?: S }, job?: BullMQ.JobsOptions): Promise<EntityFor<S>[]>
  ner<S extends StrategyName = StrategyName>(texts: readonly string[], options?: NerOptions & { aggregationStrategy?: S; aggregation_strategy?: S }, job?: BullMQ.JobsOptions): Promise<EntityFor<S>[][]>
  /** Adds a job without waiting for it; its entities become the job's `returnvalue`. */
  add(data: NerJob, job?: BullMQ.JobsOptions): Promise<BullMQ.Job<NerJob>>
  /** Resolves with a job's result, or rejects with its error. */
  wait(job: BullMQ.Job<NerJob>, timeoutMs?: number): Promise<Entity[] | Entity[][]>
  close(): Promise<void>
}

/** A producer: adds documents to the queue and awaits the entities workers store. */
export async function nerQueue(options: QueueOptions = {}): Promise<NerQueue> {
  const { Job, Queue, QueueEvents } = bullmq()
  const name = options.queue ?? 'ner'
  const conn = connection(options.redis)
  const queue = new Queue<NerJob>(name, { connection: conn })
  const events = new QueueEvents(name, { connection: conn })
  // Each awaited job listens on both for a while; thousands may wait at once.
  queue.setMaxListeners(0)
  events.setMaxListeners(0)
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()])
  const add = (data: NerJob, job?: BullMQ.JobsOptions) => queue.add('ner', data, { removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 }, ...job })
  // QueueEvents now and then misses the event of a job that finishes within milliseconds of
  // being added (seen here about once in 500 jobs), so the job's state is also polled.
  const wait = (j: BullMQ.Job<NerJob>, timeoutMs?: number): Promise<Entity[] | Entity[][]> =>
    new Promise((resolve, reject) => {
      let settled = false
      const settle = (f: () => void) => {
        if (settled) return
        settled = true
        clearInterval(poll)
        clearTimeout(timer)
        f()
      }
      const timer = timeoutMs ? setTimeout(() => settle(() => reject(new Error(`job ${j.id} did not finish within ${timeoutMs} ms`))), timeoutMs) : undefined
      const check = async () => {
        const state = await queue.getJobState(j.id!).catch(() => 'unknown')
        if (state !== 'completed' && state !== 'failed') return
        const done = await Job.fromId<NerJob, Entity[] | Entity[][]>(queue, j.id!)
        if (state === 'completed') settle(() => resolve(done!.returnvalue))
        else settle(() => reject(new Error(done?.failedReason ?? `job ${j.id} failed`)))
      }
      // A poll that fails (Redis gone a moment) is tried again at the next tick, never thrown.
      const poll = setInterval(() => void check().catch(() => undefined), 500)
      j.waitUntilFinished(events).then(
        (v) => settle(() => resolve(v)),
        (e: unknown) => settle(() => reject(e instanceof Error ? e : new Error(String(e)))),
      )
    })
  const ner = async (input: string | readonly string[], o?: NerOptions, job?: BullMQ.JobsOptions) =>
    wait(await add(typeof input === 'string' ? { text: input, options: o } : { texts: [...input], options: o }, job))
  return {
    queue,
    ner: ner as NerQueue['ner'],
    add,
    wait,
    close: async () => {
      await events.close()
      await queue.close()
    },
  }
}
