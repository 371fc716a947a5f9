#!/usr/bin/env node
// `node bench/call-profile.mjs [--model DIR] [--threads N] [--calls N] [--dtype D] [--layers a,b]`:
// where the time of one short ner() call goes. Each layer of the call is timed on its own,
// interleaved call by call (so machine noise hits every layer alike), and reported as p50/p99
// in microseconds (`--layers ner --calls 3000`: whole calls back to back, as a server makes them):
//   hop            the napi round trip alone: an empty text through tokenize
//   tokenize       napi hop to the model's threads + tokenization + copy back
//   logitsForIds   napi hop + the model's pool + the forward pass (ids already made)
//   scoreWindows   napi hop + tokenization + windows + forward + copy back
//   ner            the whole pipeline call: argument handling, batcher, scoreWindows, aggregation
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { percentile as pct } from './systems/common.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const { pipeline, EuroBertModel } = require('../dist/index.js')
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: path.join(here, '..', 'models', 'norne-compact') },
    threads: { type: 'string', default: '2' },
    calls: { type: 'string', default: '300' },
    dtype: { type: 'string', default: 'f32' },
    layers: { type: 'string', default: 'tokenize,logitsForIds,scoreWindows,ner' },
  },
})
const threads = Number(values.threads)
const text = 'Jens Stoltenberg møtte statsminister Erna Solberg i Oslo tirsdag.'
const model = await EuroBertModel.load(values.model, { threads, dtype: values.dtype })
const ner = await pipeline(values.model, { threads, dtype: values.dtype, aggregationStrategy: 'simple' })
const [tok] = await model.tokenize([text])
const ids = Uint32Array.from(tok.ids)

const all = {
  hop: () => model.tokenize(['']),
  tokenize: () => model.tokenize([text]),
  logitsForIds: () => model.logitsForIds([ids]),
  scoreWindows: () => model.scoreWindows([text]),
  ner: () => ner(text),
}
const names = values.layers.split(',')
for (const n of names) if (!(n in all)) throw new Error(`--layers: unknown layer ${n} (${Object.keys(all).join(', ')})`)
const layers = Object.fromEntries(names.map((n) => [n, all[n]]))
const ms = Object.fromEntries(Object.keys(layers).map((k) => [k, []]))
for (let i = 0; i < 200; i++) for (const f of Object.values(layers)) await f()
for (let i = 0; i < Number(values.calls); i++) {
  for (const [k, f] of Object.entries(layers)) {
    const t = process.hrtime.bigint()
    await f()
    ms[k].push(Number(process.hrtime.bigint() - t) / 1e3)
  }
}
console.log(`${path.basename(values.model)}, ${values.dtype}, ${threads} threads, ${tok.ids.length} tokens, ${values.calls} calls per layer (µs)`)
for (const [k, xs] of Object.entries(ms)) console.log(`${k.padEnd(14)} p50 ${pct(xs, 50).toFixed(0).padStart(6)}  p99 ${pct(xs, 99).toFixed(0).padStart(6)}`)
// Forward passes by length, this pool against a one-thread model: where a second thread pays.
const one = await EuroBertModel.load(values.model, { threads: 1, dtype: values.dtype })
console.log(`\nlogitsForIds of one sequence, p50 µs: ${threads} threads vs 1 thread (where a second thread pays)`)
for (const n of [8, 16, 32, 64, 128, 256]) {
  const seq = Uint32Array.from({ length: n }, (_, i) => ids[i % ids.length])
  const a = [], b = []
  for (let i = 0; i < 10; i++) await Promise.all([model.logitsForIds([seq]), one.logitsForIds([seq])])
  for (let i = 0; i < 100; i++) {
    let t = process.hrtime.bigint()
    await model.logitsForIds([seq])
    a.push(Number(process.hrtime.bigint() - t) / 1e3)
    t = process.hrtime.bigint()
    await one.logitsForIds([seq])
    b.push(Number(process.hrtime.bigint() - t) / 1e3)
  }
  console.log(`${String(n).padStart(4)} tokens  ${pct(a, 50).toFixed(0).padStart(6)}  ${pct(b, 50).toFixed(0).padStart(6)}`)
}
one.dispose()
model.dispose()
ner.model.dispose()
