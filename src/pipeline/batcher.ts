// Dynamic batching: concurrent ner() calls on one pipeline share forward passes. Calls made
// in the same tick (or within `maxWaitMs`, when set), or while a batch is running, merge into one
// native scoreWindows call (which packs their windows into forward passes under
// `maxBatchTokens`); each caller gets its own texts' results back, in order. One batch runs
// at a time, so under load batches grow by themselves. If a merged call fails, its calls run
// again one by one, so a bad text fails only its own call.
import { abortError } from './abort'
import type { EuroBertModel, ScoredText, WindowOptions } from './model'

interface Pending {
  texts: string[]
  options: WindowOptions
  resolve: (out: ScoredText[]) => void
  reject: (e: unknown) => void
  signal?: AbortSignal
}

/** Characters merged into one native call at most (about 4 per token; the call splits it). */
const MAX_MERGED_CHARS = 1 << 20

export interface BatchStats {
  /** Texts, calls and tokens of each merged native call that succeeded. */
  onBatch?: (texts: number, calls: number, tokens: number) => void
}

export class Batcher {
  private queue: Pending[] = []
  private running = false
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly model: EuroBertModel,
    private readonly maxWaitMs: number,
    private readonly stats: BatchStats = {},
  ) {}

  /** Texts waiting for a batch. */
  get depth(): number {
    return this.queue.reduce((n, p) => n + p.texts.length, 0)
  }

  /**
   * Scores `texts` in the next merged batch. An abort rejects at once: while still queued the
   * texts leave the queue (they never reach the model); once their batch runs, it finishes
   * for the other callers and this one's results are dropped.
   */
  score(texts: string[], options: WindowOptions, signal?: AbortSignal): Promise<ScoredText[]> {
    if (signal?.aborted) return Promise.reject(abortError(signal))
    return new Promise((resolve, reject) => {
      const pending: Pending = { texts, options, resolve, reject, signal }
      if (signal) {
        const onAbort = () => {
          this.queue = this.queue.filter((p) => p !== pending)
          reject(abortError(signal))
        }
        signal.addEventListener('abort', onAbort, { once: true })
        pending.resolve = (out) => {
          signal.removeEventListener('abort', onAbort)
          resolve(out)
        }
        pending.reject = (e) => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        }
      }
      this.queue.push(pending)
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.running || this.timer) return
    if (this.maxWaitMs <= 0) return void setImmediate(() => this.flush())
    this.timer = setTimeout(() => this.flush(), this.maxWaitMs)
  }

  private async flush(): Promise<void> {
    this.timer = undefined
    if (this.running || this.queue.length === 0) return
    // Merge the calls that share the first one's window and batch options.
    const key = optionsKey(this.queue[0].options)
    const batch: Pending[] = []
    let chars = 0
    this.queue = this.queue.filter((p) => {
      const size = p.texts.reduce((n, t) => n + t.length, 0)
      if (optionsKey(p.options) !== key || (batch.length > 0 && chars + size > MAX_MERGED_CHARS)) return true
      batch.push(p)
      chars += size
      return false
    })
    this.running = true
    try {
      await this.run(batch)
    } finally {
      this.running = false
      // What arrived meanwhile goes at once: it has waited for the batch that just ran.
      if (this.queue.length > 0) setImmediate(() => this.flush())
    }
  }

  private async run(batch: Pending[]): Promise<void> {
    const texts = batch.flatMap((p) => p.texts)
    let out: ScoredText[]
    try {
      out = await this.model.scoreWindows(texts, batch[0].options)
    } catch (e) {
      if (batch.length === 1) return batch[0].reject(e)
      // Find the culprit: each call alone, so that only the failing one fails.
      for (const p of batch) await this.model.scoreWindows(p.texts, p.options).then(p.resolve, p.reject)
      return
    }
    this.stats.onBatch?.(texts.length, batch.length, out.reduce((n, t) => n + t.offsets.length / 2, 0))
    let at = 0
    for (const p of batch) {
      p.resolve(out.slice(at, at + p.texts.length))
      at += p.texts.length
    }
  }
}

function optionsKey(o: WindowOptions): string {
  return [o.maxLength, o.stride, o.batchSize, o.maxBatchTokens, o.tokens].join('|')
}
