// The addon in a browser: the WebAssembly build, which the package's browser entry
// (browser.mjs) loads with napi-rs' browser loader and hands over with `useBinding`.
import type { Addon } from '../pipeline/calls'

export { argumentError, call } from '../pipeline/calls'
export type { NativeModel, NativeTokens, NativeScoredText, NativePrepared, NativeLoadOptions, NativeRunOptions } from '../pipeline/calls'

export const CUDA_PACKAGE = 'eurobert-ner-linux-x64-gnu-cuda'

let binding: Addon | undefined

export function useBinding(addon: Addon): void {
  binding = addon
}

export function native(): Addon {
  if (!binding) throw new Error('eurobert-ner: the WebAssembly binding is not loaded (import the package itself, whose browser entry loads it)')
  return binding
}

/** Only the CPU in a browser: 'auto' means it, a GPU device is refused. */
export function nativeFor(device: string): { addon: Addon; device: string } {
  if (device === 'cpu' || device === 'auto') return { addon: native(), device: 'cpu' }
  throw new Error(`device '${device}' is not available in a browser: the WebAssembly build runs on the CPU`)
}
