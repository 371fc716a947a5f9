// The pipeline's host runtime in a browser (see src/pipeline/runtime.ts for Node's).
import type { Duplex } from 'node:stream'

export function warn(message: string): void {
  console.warn(`EuroBertWarning: ${message}`)
}

/** Browsers do not warn about many listeners on a signal. */
export function unlimitedListeners(_signal: AbortSignal): void {}

export function duplexFrom<I, O>(_transform: (source: AsyncIterable<I>) => AsyncIterable<O>): Duplex {
  throw new Error('createStream() returns a Node stream, which a browser does not have; use stream(), an async iterable, instead')
}

let channel: InstanceType<typeof MessageChannel> | undefined
const turns: (() => void)[] = []

/** A later turn without setTimeout's clamping to 4 ms once nested (what setImmediate is in Node). */
export function nextTurn(fn: () => void): void {
  if (!channel) {
    channel = new MessageChannel()
    channel.port1.addEventListener('message', () => turns.shift()?.())
    // addEventListener (unlike onmessage) needs the port started.
    channel.port1.start()
  }
  turns.push(fn)
  channel.port2.postMessage(0)
}
