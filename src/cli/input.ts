// Reading the CLI's documents with the same care as model files: a path must be a file or a
// pipe (never a device such as /dev/zero), and no line or document may grow past a bound,
// whatever the source sends.
import * as fs from 'node:fs'
import { StringDecoder } from 'node:string_decoder'

/** Largest document (a line, a --whole file, a CoNLL-U file) in bytes: 64 MB. */
export const MAX_DOCUMENT_BYTES = 64 << 20

/** Throws unless `file` is a regular file (or a pipe: `-f <(zcat x.gz)`); returns its size for files. */
export function checkInputFile(file: string, usage: (m: string) => Error): number | undefined {
  let st: fs.Stats
  try {
    st = fs.statSync(file)
  } catch {
    throw usage(`file not found: ${file}`)
  }
  if (st.isDirectory()) throw usage(`${file} is a folder, not a file`)
  if (st.isFIFO()) return undefined
  if (!st.isFile()) throw usage(`${file} is not a regular file (a device or socket); give a file or a pipe`)
  return st.size
}

/** A whole file as text, refused before reading when it is over the bound. */
export function readWholeFile(file: string, max = MAX_DOCUMENT_BYTES): string {
  const size = fs.statSync(file).size
  if (fs.statSync(file).isFile()) {
    if (size > max) throw new Error(`${file}: ${size} bytes, over the ${max}-byte limit of one document; split it`)
    return fs.readFileSync(file, 'utf8')
  }
  throw new Error(`${file}: not a regular file`)
}

/** A stream's text as one document, failing once it passes `max` bytes. */
export async function readWhole(stream: AsyncIterable<Buffer | string>, name: string, max = MAX_DOCUMENT_BYTES): Promise<string> {
  const decoder = new StringDecoder('utf8')
  let text = ''
  let bytes = 0
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    bytes += buf.length
    if (bytes > max) throw new Error(`${name}: over the ${max}-byte limit of one document; split it`)
    text += decoder.write(buf)
  }
  return text + decoder.end()
}

/**
 * The lines of a stream (without `\n` or `\r\n`), decoded as UTF-8 across chunk edges; a line
 * longer than `max` bytes is an error naming the source and the line.
 */
export async function* boundedLines(stream: AsyncIterable<Buffer | string>, name: string, max = MAX_DOCUMENT_BYTES): AsyncIterable<string> {
  const decoder = new StringDecoder('utf8')
  let pending = ''
  let pendingBytes = 0
  let n = 0
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    let from = 0
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, from)) {
      if (pendingBytes + nl - from > max) throw new Error(`${name}:${n + 1}: a line over the ${max}-byte limit of one document`)
      const line = pending + decoder.write(buf.subarray(from, nl)) + decoder.end()
      n++
      yield line.endsWith('\r') ? line.slice(0, -1) : line
      pending = ''
      pendingBytes = 0
      from = nl + 1
    }
    pendingBytes += buf.length - from
    if (pendingBytes > max) throw new Error(`${name}:${n + 1}: a line over the ${max}-byte limit of one document`)
    pending += decoder.write(buf.subarray(from))
  }
  pending += decoder.end()
  if (pending.length > 0) yield pending.endsWith('\r') ? pending.slice(0, -1) : pending
}
