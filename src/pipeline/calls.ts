// Native calls as the API promises them: the addon's types, its argument errors as
// RangeErrors and its cancellations as AbortErrors. Shared by every binding (native, WASI,
// browser).
import type * as Binding from '../../binding'
import { AbortError } from './abort'

export type NativeModel = Binding.NativeModel
export type NativeTokens = Binding.NativeTokens
export type NativeScoredText = Binding.NativeScoredText
export type NativePrepared = Binding.NativePrepared
export type NativeLoadOptions = Binding.NativeLoadOptions
export type NativeRunOptions = Binding.NativeRunOptions
export type Addon = typeof Binding

/**
 * The addon's argument errors (status `InvalidArg`: the core's validation) as the
 * `RangeError`s the API promises, prefixed with the method; its cancellations (status
 * `Cancelled`: a call whose id `cancelCall` cancelled, running or not yet started) as our
 * AbortError; other failures pass through.
 */
export function argumentError(e: unknown, method?: string): unknown {
  const err = e as Error & { code?: string }
  if (err?.code === 'Cancelled' || err?.name === 'AbortError') return new AbortError(undefined, { cause: e })
  if (err?.code !== 'InvalidArg') return e
  return new RangeError(method ? `${method}: ${err.message}` : err.message)
}

/** Awaits a native call, its argument errors turned into `RangeError`s. */
export async function call<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise
  } catch (e) {
    throw argumentError(e)
  }
}
