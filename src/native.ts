// The napi-rs addon, loaded once. The generated loader (binding.js) picks the prebuilt
// binary for this platform: `./eurobert-ner.<platform>.node` next to the package, or the
// `eurobert-ner-<platform>` optional dependency.
import type * as Binding from '../binding'

export type NativeModel = Binding.NativeModel
export type NativeTokens = Binding.NativeTokens
export type NativeScoredText = Binding.NativeScoredText
export type NativeLoadOptions = Binding.NativeLoadOptions
export type NativeRunOptions = Binding.NativeRunOptions

let binding: typeof Binding | undefined

export function native(): typeof Binding {
  if (!binding) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      binding = require('../binding.js') as typeof Binding
    } catch (e) {
      const err = new Error(
        `eurobert-ner: no native binary for ${process.platform}-${process.arch} could be loaded. ` +
          `Reinstall without --no-optional, or build from source with \`npm run build\`. Cause: ${(e as Error).message}`,
      )
      ;(err as Error & { cause?: unknown }).cause = e
      throw err
    }
  }
  return binding
}

/**
 * Awaits a native call, turning the addon's argument errors (status `InvalidArg`) into the
 * `RangeError`s the API promises; other failures stay `Error`s.
 */
export async function call<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise
  } catch (e) {
    const err = e as Error & { code?: string }
    if (err.code === 'InvalidArg') throw new RangeError(err.message.replace(/^invalid argument: /, ''))
    throw e
  }
}
