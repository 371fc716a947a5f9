// Cancellation with AbortSignal: an aborted call rejects at once with an AbortError, the way
// Node's own APIs do (fs/promises, timers/promises): an Error named 'AbortError', code
// 'ABORT_ERR', the signal's reason as its cause.

export class AbortError extends Error {
  readonly code = 'ABORT_ERR'
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AbortError'
  }
}

export function abortError(signal: AbortSignal): Error {
  return new AbortError(undefined, { cause: signal.reason })
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal)
}

/** `promise`, or a rejection as soon as `signal` aborts (the work behind it is not stopped). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise
  if (signal.aborted) return Promise.reject(abortError(signal))
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

export function isAbort(e: unknown): boolean {
  return (e as Error | undefined)?.name === 'AbortError'
}
