// The napi-rs addon. The generated loader (binding.js) picks this platform's prebuilt binary:
// `./eurobert-ner.<platform>.node` next to the package, or the `eurobert-ner-<platform>`
// optional dependency. On linux-x64 a CUDA build ships apart, in the opt-in package
// `eurobert-ner-linux-x64-gnu-cuda`: it links CUDA libraries a CPU-only machine lacks, so it
// is loaded only when a model asks for `device: 'cuda'` or `'auto'`. Where no native binary
// matches (FreeBSD, riscv64, WebContainers...), the loader falls back to the WebAssembly build,
// `eurobert-ner-wasm32-wasi`; `NAPI_RS_FORCE_WASI=true` (or `1`) prefers it everywhere.
import * as fs from 'node:fs'
import * as path from 'node:path'

import type { Addon } from './calls'

export { argumentError, call } from './calls'
export type { NativeModel, NativeTokens, NativeScoredText, NativePrepared, NativeLoadOptions, NativeRunOptions } from './calls'

export const CUDA_PACKAGE = 'eurobert-ner-linux-x64-gnu-cuda'

let binding: Addon | undefined

/** The platform's own binary (CPU everywhere, Metal on Apple silicon). */
export function native(): Addon {
  if (!binding) {
    // napi-rs' loader reads only `true` and `error`; `1` is the spelling users try first.
    if (process.env.NAPI_RS_FORCE_WASI === '1') process.env.NAPI_RS_FORCE_WASI = 'true'
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      binding = require('../../binding.js') as Addon
    } catch (e) {
      const err = new Error(
        `eurobert-ner: no native binary for ${process.platform}-${process.arch} could be loaded. ` +
          `Reinstall without --no-optional (the WebAssembly build, eurobert-ner-wasm32-wasi, is the fallback), ` +
          `or build from source with \`npm run build\`. Cause: ${(e as Error).message}`,
      )
      ;(err as Error & { cause?: unknown }).cause = e
      throw err
    }
  }
  return binding
}

let cuda: { addon?: Addon; why?: string } | undefined

/**
 * The CUDA build, if one is installed and loads: `EUROBERT_NER_CUDA_BINARY` (a path), a
 * local `eurobert-ner.linux-x64-gnu-cuda.node` (scripts/build-cuda.sh), or the package.
 */
function cudaAddon(): { addon?: Addon; why?: string } {
  if (cuda) return cuda
  const candidates: string[] = []
  if (process.env.EUROBERT_NER_CUDA_BINARY) candidates.push(path.resolve(process.env.EUROBERT_NER_CUDA_BINARY))
  const local = path.join(__dirname, '..', '..', 'eurobert-ner.linux-x64-gnu-cuda.node')
  if (fs.existsSync(local)) candidates.push(local)
  try {
    candidates.push(require.resolve(CUDA_PACKAGE))
  } catch {
    // not installed
  }
  if (candidates.length === 0) {
    cuda = { why: `the CUDA build is not installed (npm i ${CUDA_PACKAGE}; Linux x64 with an NVIDIA driver)` }
  } else {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(candidates[0]) as Addon
      cuda = addon.backends().includes('cuda') ? { addon } : { why: `${candidates[0]} is not a CUDA build` }
    } catch (e) {
      cuda = { why: `the CUDA build at ${candidates[0]} does not load (are the NVIDIA driver and CUDA libraries installed?): ${(e as Error).message.split('\n')[0]}` }
    }
  }
  return cuda
}

/**
 * The binary for a `device`, and the device it will run on. 'cuda' and 'cuda:N' need a CUDA
 * build and a GPU (an Error says what is missing); 'auto' takes a GPU where one is usable and
 * otherwise the CPU, with a warning when a CUDA build was installed but could not be used.
 */
export function nativeFor(device: string): { addon: Addon; device: string } {
  if (device !== 'auto' && !device.startsWith('cuda')) return { addon: native(), device }
  if (native().backends().includes('cuda') && native().cudaDevices() > 0) return { addon: native(), device: device === 'auto' ? 'cuda:0' : device }
  const c = cudaAddon()
  const gpus = c.addon ? c.addon.cudaDevices() : 0
  if (c.addon && gpus > 0) return { addon: c.addon, device: device === 'auto' ? 'cuda:0' : device }
  const why = c.addon ? 'the CUDA build loaded but finds no usable GPU (no NVIDIA driver, or no device)' : c.why!
  if (device !== 'auto') throw new Error(`device '${device}' is not available: ${why}`)
  if (c.addon || !/not installed/.test(why)) process.emitWarning(`device 'auto' runs on the CPU: ${why}`, 'EuroBertWarning')
  return { addon: native(), device: native().backends().includes('metal') ? 'metal' : 'cpu' }
}
