// Minimal safetensors reader/writer, for tests that build damaged checkpoints.
import * as fs from 'node:fs'

export interface StoredTensor {
  dtype: string
  shape: number[]
  data: Buffer
}

export function readSafetensors(file: string): Map<string, StoredTensor> {
  return decodeSafetensors(fs.readFileSync(file))
}

function decodeSafetensors(buf: Buffer): Map<string, StoredTensor> {
  const n = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))
  const out = new Map<string, StoredTensor>()
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue
    const [s, e] = info.data_offsets
    out.set(name, { dtype: info.dtype, shape: info.shape, data: buf.subarray(8 + n + s, 8 + n + e) })
  }
  return out
}

export function writeSafetensors(file: string, tensors: Map<string, StoredTensor>): void {
  fs.writeFileSync(file, encodeSafetensors(tensors))
}

/**
 * A model folder's files (`files`, by name) with `model.safetensors` split into two shards
 * behind a `model.safetensors.index.json`, as `save_pretrained` shards a large checkpoint.
 */
export function shardedFiles(files: Record<string, Buffer>): Record<string, Buffer> {
  const out = { ...files }
  const tensors = [...decodeSafetensors(files['model.safetensors'])]
  const half = Math.ceil(tensors.length / 2)
  const weightMap: Record<string, string> = {}
  ;[tensors.slice(0, half), tensors.slice(half)].forEach((part, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`
    out[name] = encodeSafetensors(new Map(part))
    for (const [t] of part) weightMap[t] = name
  })
  delete out['model.safetensors']
  out['model.safetensors.index.json'] = Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap }))
  return out
}

function encodeSafetensors(tensors: Map<string, StoredTensor>): Buffer {
  const header: Record<string, unknown> = {}
  let offset = 0
  for (const [name, t] of tensors) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] }
    offset += t.data.length
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - (json.length % 8)) % 8)
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
  return Buffer.concat([len, Buffer.from(json), ...[...tensors.values()].map((t) => t.data)])
}
