// Dynamic batching with fair scheduling. Concurrent ner() calls on one pipeline share forward
// passes, and no call can hold the others up:
// - Calls that arrive together (the same tick, or within `maxWaitMs` when set, or while others
//   run) are tokenized and cut into windows in one native `prepare`, with no forward pass. A
//   call's cost, the tokens its windows will run, is then known and checked against its
//   budget (`maxTokens`) first.
// - Windows run in steps, one native call each, of about STEP_MS of work (measured as it
//   goes). A step first takes one window of every call that has not started (so a
//   one-sentence call waits for at most the step that runs when it comes, however long the
//   calls before it), then fills up with the oldest calls' windows (so calls finish in the
//   order they came, and each resolves as soon as its own windows are done).
// - One native call runs at a time, tokenizing and steps taking turns, so newcomers are
//   tokenized between two steps and join the next one.
// - A call that is aborted leaves at once; a step whose callers have all left is cancelled in
//   the native pool (it stops within one layer). `cancel()` ends everything, for shutdowns.
// - A short call that finds the pipeline idle (nothing waiting or running, no `maxWaitMs`, no
//   `maxTokens`) is tokenized and run in one native call: one napi hop instead of two.
// If a merged native call fails, its calls run again one by one, so a bad text fails only its
// own call.
import { abortError, AbortError } from './abort'
import { checkCost } from './cost'
import { nextTurn, warn } from './runtime'
import type { TokenClassifierModel, NativePreparedCall, PreparedText, WindowOptions } from './model'

/** Characters tokenized in one merged `prepare` at most (the texts of one call are never split). */
const MAX_MERGED_CHARS = 1 << 20
/** How long a step should take: the most a short call waits behind long ones. */
const STEP_MS = 200
/** Tokens of the first step, before any speed is measured. */
const FIRST_STEP_TOKENS = 2048
const MIN_STEP_TOKENS = 256
const DEFAULT_MAX_BATCH_TOKENS = 16_384
/**
 * Characters of a call that may skip the separate tokenizing hop on an idle pipeline: a
 * sentence or a short paragraph, whose forward pass holds up a newcomer no longer than a step.
 */
const ONE_HOP_CHARS = 512

export interface ScoreOptions extends WindowOptions {
  /** Most tokens the call's windows may run; over it, a TooLargeError before any forward pass. */
  maxTokens?: number
}

export interface BatchStats {
  /**
   * Called after each step that ran: texts and calls that had windows in it, and the tokens
   * of those windows (special tokens included: what the model really ran).
   */
  onBatch?: (texts: number, calls: number, tokens: number) => void
}

interface Job {
  texts: string[]
  options: ScoreOptions
  signal?: AbortSignal
  resolve: (out: PreparedText[]) => void
  reject: (e: unknown) => void
  settled: boolean
  /** Run alone: a merged call that held it failed, so it must not fail others again. */
  alone: boolean
  /** Once prepared: its texts `[textFrom, textTo)` of `prepared`, windows `[next, end)` still to schedule. */
  prepared?: NativePreparedCall
  textFrom: number
  textTo: number
  next: number
  end: number
  /** Windows scheduled or not that have not run yet. */
  left: number
  /** Whether any of its windows has been in a step. */
  started: boolean
}

interface Part {
  job: Job
  from: number
  to: number
}

export class Batcher {
  private waiting: Job[] = []
  private ready: Job[] = []
  private preparing = false
  /** Whether the last native call tokenized: a step goes next, so arrivals cannot starve steps. */
  private preparedLast = false
  private step: { parts: Part[]; controller: AbortController } | undefined
  private timer: NodeJS.Timeout | undefined
  /** Tokens per second of the last steps (exponentially weighted), once measured. */
  private rate: number | undefined
  private cancelled: Error | undefined

  constructor(
    private readonly model: TokenClassifierModel,
    private readonly maxWaitMs: number,
    private readonly stats: BatchStats = {},
  ) {}

  /** Texts of calls that have not finished. */
  get depth(): number {
    let n = 0
    for (const j of this.waiting) n += j.texts.length
    for (const j of this.ready) n += j.texts.length
    return n
  }

  /**
   * Scores `texts` in shared steps. An abort rejects at once with an AbortError; the call's
   * windows that have not run never do, and a step that only it still needed is cancelled.
   */
  score(texts: string[], options: ScoreOptions, signal?: AbortSignal): Promise<PreparedText[]> {
    if (signal?.aborted) return Promise.reject(abortError(signal))
    if (this.cancelled) return Promise.reject(this.cancelled)
    return new Promise((resolve, reject) => {
      const job: Job = { texts, options, signal, resolve, reject, settled: false, alone: false, textFrom: 0, textTo: 0, next: 0, end: 0, left: 0, started: false }
      const onAbort = () => this.fail(job, abortError(signal!))
      signal?.addEventListener('abort', onAbort, { once: true })
      job.resolve = (out) => {
        signal?.removeEventListener('abort', onAbort)
        resolve(out)
      }
      job.reject = (e) => {
        signal?.removeEventListener('abort', onAbort)
        reject(e)
      }
      this.waiting.push(job)
      this.pump()
    })
  }

  /**
   * Ends every call with `reason` (an AbortError by default) and cancels the step that runs:
   * what a shutdown does at its deadline. Later calls fail with the same error.
   */
  cancel(reason: Error = new AbortError('The pipeline was shut down')): void {
    this.cancelled = reason
    clearTimeout(this.timer)
    for (const job of [...this.waiting, ...this.ready]) this.fail(job, reason)
    this.step?.controller.abort(reason)
  }

  private fail(job: Job, e: unknown): void {
    if (job.settled) return
    job.settled = true
    this.waiting = this.waiting.filter((j) => j !== job)
    this.ready = this.ready.filter((j) => j !== job)
    job.reject(e)
    // A step that no caller waits for any more stops in the native pool.
    if (this.step && this.step.parts.every((p) => p.job.settled)) this.step.controller.abort()
  }

  private pump(): void {
    if (this.preparing || this.step || this.timer) return
    if (this.ready.length === 0 && this.waiting.length === 1 && this.maxWaitMs === 0 && oneHop(this.waiting[0])) {
      return this.runWhole(this.waiting.shift()!)
    }
    const canStep = this.ready.some((j) => j.next < j.end)
    if (this.waiting.length > 0 && !(canStep && this.preparedLast)) {
      this.preparing = true
      // An idle pipeline may wait a little for company; a busy one tokenizes at once.
      if (this.maxWaitMs > 0 && !canStep) {
        this.timer = setTimeout(() => {
          this.timer = undefined
          this.prepareWaiting()
        }, this.maxWaitMs)
      } else nextTurn(() => this.prepareWaiting())
    } else if (canStep) this.runStep()
  }

  /** Tokenizes the waiting calls that share the first one's window options, in one native call. */
  private prepareWaiting(): void {
    const first = this.waiting[0]
    if (!first) {
      this.preparing = false
      this.pump()
      return
    }
    const key = prepareKey(first)
    const group: Job[] = []
    let chars = 0
    this.waiting = this.waiting.filter((j) => {
      const size = j.texts.reduce((n, t) => n + t.length, 0)
      if (prepareKey(j) !== key || (group.length > 0 && (chars + size > MAX_MERGED_CHARS || j.alone || first.alone))) return true
      group.push(j)
      chars += size
      return false
    })
    const controller = new AbortController()
    const texts = group.flatMap((j) => j.texts)
    // Tokenizing stops too if every caller of the group leaves meanwhile.
    const leave = () => group.every((j) => j.settled) && controller.abort()
    for (const j of group) j.signal?.addEventListener('abort', leave, { once: true })
    this.model
      .prepareCall(texts, first.options, controller.signal)
      .then(
        (prepared) => {
          let at = 0
          for (const job of group) {
            job.textFrom = at
            job.textTo = at += job.texts.length
            if (job.settled) continue
            job.prepared = prepared
            job.next = prepared.textWindows[job.textFrom]
            job.end = prepared.textWindows[job.textTo]
            job.left = job.end - job.next
            let tokens = 0
            for (let w = job.next; w < job.end; w++) tokens += prepared.windowLengths[w]
            try {
              checkCost('ner', tokens, job.left, job.options.maxTokens)
            } catch (e) {
              this.fail(job, e)
              continue
            }
            this.ready.push(job)
          }
        },
        (e: unknown) => {
          if (group.length === 1) return this.fail(group[0], e)
          // Find the culprit: each call again on its own, so only the failing one fails.
          for (const j of group) j.alone = true
          this.waiting.unshift(...group.filter((j) => !j.settled))
        },
      )
      .finally(() => {
        for (const j of group) j.signal?.removeEventListener('abort', leave)
        this.preparing = false
        this.preparedLast = true
        this.pump()
      })
      .catch((e: unknown) => this.cancel(e as Error)) // a bug above must not leave callers pending
  }

  /** One step: windows round-robin from every ready call, about STEP_MS of work. */
  private runStep(): void {
    const candidates = this.ready.filter((j) => j.next < j.end)
    const first = candidates[0]
    const key = runKey(first)
    const maxBatchTokens = first.options.maxBatchTokens ?? DEFAULT_MAX_BATCH_TOKENS
    const budget = Math.min(maxBatchTokens, this.rate === undefined ? FIRST_STEP_TOKENS : Math.max(MIN_STEP_TOKENS, Math.round((this.rate * STEP_MS) / 1000)))
    // A call that failed in company runs alone; the others share.
    const jobs = first.alone ? [first] : candidates.filter((j) => !j.alone && runKey(j) === key)
    const parts = new Map<Job, Part>()
    let tokens = 0
    const take = (job: Job): boolean => {
      const len = job.prepared!.windowLengths[job.next]
      if (tokens > 0 && tokens + len > budget) return false
      const part = parts.get(job) ?? { job, from: job.next, to: job.next }
      parts.set(job, part)
      part.to = ++job.next
      job.started = true
      tokens += len
      return true
    }
    // Newcomers first, one window each; then the oldest calls, in order, as far as it goes.
    for (const job of jobs) if (!job.started && job.next < job.end) take(job)
    for (const job of jobs) while (job.next < job.end && take(job));
    const step = { parts: [...parts.values()], controller: new AbortController() }
    this.step = step
    const started = performance.now()
    this.model
      .runWindows(step.parts.map((p) => ({ prepared: p.job.prepared!, from: p.from, to: p.to })), { batchSize: first.options.batchSize, maxBatchTokens }, step.controller.signal)
      .then(
        (ran) => {
          const seconds = (performance.now() - started) / 1e3
          const rate = ran / Math.max(seconds, 1e-4)
          this.rate = this.rate === undefined ? rate : 0.7 * this.rate + 0.3 * rate
          let texts = 0
          for (const { job, from, to } of step.parts) {
            job.left -= to - from
            const first = job.prepared!.textWindows
            for (let t = job.textFrom; t < job.textTo; t++) if (first[t] < to && first[t + 1] > from) texts++
            if (job.left === 0 && !job.settled) this.finish(job)
          }
          // Callers first: a throwing metrics callback must not hold their answers.
          try {
            this.stats.onBatch?.(texts, step.parts.length, ran)
          } catch (e) {
            warn(`onBatch threw: ${(e as Error)?.message ?? String(e)}`)
          }
        },
        (e: unknown) => {
          if (step.controller.signal.aborted) return // its callers left, or cancel() ended them
          const live = step.parts.filter((p) => !p.job.settled)
          if (live.length === 1 || first.alone) {
            for (const p of live) this.fail(p.job, e)
            return
          }
          // Which call's windows broke it: each runs its windows again, alone.
          for (const p of live) {
            p.job.next = Math.min(p.job.next, p.from)
            p.job.alone = true
          }
        },
      )
      .finally(() => {
        this.step = undefined
        this.preparedLast = false
        this.ready = this.ready.filter((j) => !j.settled)
        this.pump()
      })
      .catch((e: unknown) => this.cancel(e as Error))
  }

  /**
   * A short call alone on an idle pipeline: tokenized, cut and run in one native call. It is
   * the running step meanwhile, so an abort cancels it in the native pool and newcomers wait.
   * Its cost needs no check: it has no `maxTokens` (`oneHop`).
   */
  private runWhole(job: Job): void {
    const step = { parts: [{ job, from: 0, to: 0 }], controller: new AbortController() }
    this.step = step
    job.started = true
    this.model
      .prepareAndRun(job.texts, job.options, step.controller.signal)
      .then(
        (prepared) => {
          job.prepared = prepared
          job.textTo = job.texts.length
          if (!job.settled) this.finish(job)
          const windows = prepared.textWindows
          let texts = 0
          for (let t = 0; t < job.texts.length; t++) if (windows[t + 1] > windows[t]) texts++
          const tokens = prepared.windowLengths.reduce((n, l) => n + l, 0)
          try {
            if (texts > 0) this.stats.onBatch?.(texts, 1, tokens)
          } catch (e) {
            warn(`onBatch threw: ${(e as Error)?.message ?? String(e)}`)
          }
        },
        (e: unknown) => {
          if (!step.controller.signal.aborted) this.fail(job, e)
        },
      )
      .finally(() => {
        this.step = undefined
        this.preparedLast = false
        this.pump()
      })
      .catch((e: unknown) => this.cancel(e as Error))
  }

  private finish(job: Job): void {
    job.settled = true
    this.ready = this.ready.filter((j) => j !== job)
    let out: PreparedText[]
    try {
      out = this.model.takeScored(job.prepared!, job.textFrom, job.textTo, job.options.tokens ?? false)
    } catch (e) {
      return job.reject(e)
    }
    job.resolve(out)
  }
}

/** Whether a call may take `runWhole`'s single hop: short, no budget to check, never failed in company. */
function oneHop(j: Job): boolean {
  if (j.alone || j.options.maxTokens !== undefined) return false
  let chars = 0
  for (const t of j.texts) if ((chars += t.length) > ONE_HOP_CHARS) return false
  return true
}

/** Calls that can share one `prepare`: the same windows. */
function prepareKey(j: Job): string {
  return `${j.options.maxLength}|${j.options.stride}`
}

/** Calls that can share one step: the same forward-pass caps. */
function runKey(j: Job): string {
  return `${j.options.batchSize}|${j.options.maxBatchTokens}`
}
