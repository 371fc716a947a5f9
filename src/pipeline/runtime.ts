// What the pipeline needs from its host runtime, in one place: Node's here. In a browser,
// bundlers take src/browser/runtime.ts instead (package.json's `browser` field).
import { setMaxListeners } from 'node:events'
import { Duplex } from 'node:stream'

/** A warning the process's listeners see (`process.on('warning')`), named EuroBertWarning. */
export function warn(message: string): void {
  process.emitWarning(message, 'EuroBertWarning')
}

/** No max-listeners warning for a signal that every call in flight listens to. */
export function unlimitedListeners(signal: AbortSignal): void {
  setMaxListeners(0, signal)
}

/** An object-mode Duplex from an async generator over its input. */
export function duplexFrom<I, O>(transform: (source: AsyncIterable<I>) => AsyncIterable<O>): Duplex {
  return Duplex.from(transform)
}

/** Runs `fn` on a later turn of the event loop, after pending I/O (setImmediate). */
export function nextTurn(fn: () => void): void {
  setImmediate(fn)
}
