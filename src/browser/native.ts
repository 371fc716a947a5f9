// The addon in a browser: the WebAssembly build, which the package's browser entry
// (browser.mjs) loads with napi-rs' browser loader and hands over with `useBinding`.
import type { Addon } from '../pipeline/calls'

export { argumentError, call } from '../pipeline/calls'
export type { NativeModel, NativeTokens, NativeScoredText, NativePrepared, NativeLoadOptions, NativeRunOptions } from '../pipeline/calls'

export const CUDA_PACKAGE = 'eurobert-ner-linux-x64-gnu-cuda'

let binding: Addon | undefined
let unavailable = 'eurobert-ner: the WebAssembly binding is not loaded (import the package itself, whose browser entry loads it)'

/** The binding browser.mjs started, or why there is none. */
export function useBinding(addon: Addon | undefined, why?: string): void {
  binding = addon
  if (why) unavailable = why
}

export function native(): Addon {
  if (!binding) throw new Error(unavailable)
  return binding
}

/** Only the CPU in a browser: 'auto' means it, a GPU device is refused. */
export function nativeFor(device: string): { addon: Addon; device: string } {
  if (device === 'cpu' || device === 'auto') return { addon: native(), device: 'cpu' }
  throw new Error(`device '${device}' is not available in a browser: the WebAssembly build runs on the CPU`)
}
