// Deterministic weights for the base-sized fixture models, too large to commit: the same
// numbers tools/make_family_fixtures.py's `generated()` gives (a 32-bit hash of the tensor's
// name and the index, mapped to [-1, 1) exactly), written as a safetensors file.
import * as fs from 'node:fs'
import * as path from 'node:path'

import { StoredTensor, writeSafetensors } from './safetensors'

/** FNV-1a of a name's UTF-8 bytes. */
function fnv1a(name: string): number {
  let h = 0x811c9dc5
  for (const b of Buffer.from(name, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0
  return h
}

export function generated(name: string, n: number, scale: number, center = 0): Float32Array {
  const out = new Float32Array(n)
  const h = fnv1a(name)
  for (let i = 0; i < n; i++) {
    // (h + i·0x9E3779B9) mod 2^32, then the lowbias32 mixer.
    let x = (h + Math.imul(i, 0x9e3779b9)) >>> 0
    x ^= x >>> 16
    x = Math.imul(x, 0x7feb352d) >>> 0
    x ^= x >>> 15
    x = Math.imul(x, 0x846ca68b) >>> 0
    x ^= x >>> 16
    const u = (x >>> 8) / 16777216
    out[i] = (u * 2 - 1) * scale + center
  }
  return out
}

/** The scale the generator gives a tensor (as `fill_generated` in the Python script). */
function spec(name: string): [number, number] {
  if (/LayerNorm\.weight$|layer_norm\.weight$|norm\.weight$/.test(name)) return [0.1, 1]
  if (name.endsWith('bias')) return [0.02, 0]
  return [0.05, 0]
}

/**
 * Writes a base-sized model folder: `config` (from the fixture), the tokenizer files of
 * `tokenizerDir`, and every tensor `shapes` names filled by the generator.
 */
export function writeGeneratedModel(dir: string, config: Record<string, unknown>, shapes: Record<string, number[]>, tokenizerDir: string): void {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config))
  for (const f of fs.readdirSync(tokenizerDir)) if (/^(tokenizer\.json|tokenizer_config\.json|vocab\.txt|vocab\.json|merges\.txt|sentencepiece\.bpe\.model|spm\.model)$/.test(f)) fs.copyFileSync(path.join(tokenizerDir, f), path.join(dir, f))
  const tensors = new Map<string, StoredTensor>()
  for (const [name, shape] of Object.entries(shapes)) {
    const [scale, center] = spec(name)
    const data = generated(name, shape.reduce((a, b) => a * b, 1), scale, center)
    tensors.set(name, { dtype: 'F32', shape, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) })
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors)
}
