// The relaxed-SIMD WebAssembly build: its rustflags (.cargo/config.toml's flags for
// wasm32-wasip1-threads with `+relaxed-simd` added, as CARGO_TARGET_..._RUSTFLAGS, which
// replaces the config's), and the probe that tells an engine that runs it. Used by
// scripts/build-native.mjs and scripts/test-wasi.mjs.
import * as fs from 'node:fs'
import path from 'node:path'

export function relaxedRustflags(root) {
  const config = fs.readFileSync(path.join(root, '.cargo', 'config.toml'), 'utf8')
  const block = config.match(/\[target\.wasm32-wasip1-threads\][\s\S]*?rustflags = \[([\s\S]*?)\]/)
  const flags = block ? [...block[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]) : []
  if (!flags.includes('target-feature=+simd128')) throw new Error('.cargo/config.toml no longer sets target-feature=+simd128 for wasm32-wasip1-threads')
  return flags.map((f) => (f === 'target-feature=+simd128' ? 'target-feature=+simd128,+relaxed-simd' : f)).join(' ')
}

/** A module whose one function uses f32x4.relaxed_madd: valid only where relaxed SIMD is. */
export const RELAXED_PROBE = [
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 12, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 133, 2, 11,
]

/** Node flags that let this Node run the relaxed-SIMD build (Node 20's V8 has it behind a flag). */
export function relaxedNodeFlags() {
  return WebAssembly.validate(new Uint8Array(RELAXED_PROBE)) ? [] : ['--experimental-wasm-relaxed-simd']
}
