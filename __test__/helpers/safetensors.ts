// Minimal safetensors reader/writer, for tests that build damaged checkpoints.
import * as fs from 'node:fs'

export interface StoredTensor {
  dtype: string
  shape: number[]
  data: Buffer
}

export function readSafetensors(file: string): Map<string, StoredTensor> {
  const buf = fs.readFileSync(file)
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
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...[...tensors.values()].map((t) => t.data)]))
}
