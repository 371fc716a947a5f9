// This project: the NER pipeline (batched, windows for long texts, off the main thread).
import { createRequire } from 'node:module'
import { args, latencies, report, timed, workload } from './common.mjs'

const require = createRequire(import.meta.url)
const { pipeline } = require('../../dist/index.js')
const a = args()
const w = workload(a.work)
const threads = Number(a.threads)
const batchSize = Number(a['batch-size'])
const opts = { aggregationStrategy: 'simple', batchSize }

const dtype = a.dtype ?? 'f32'
const load = await timed(() => pipeline(a.model, { threads, dtype }))
const ner = load.value
const loadRssMB = process.memoryUsage().rss / 2 ** 20
await ner(w.short.slice(0, 8), opts) // warm-up
const short = await timed(() => ner(w.short, opts))
const long = await timed(() => ner(w.long, { ...opts, stride: Number(a.stride) }))
const lat = await latencies(w.latency, (t) => ner(t, opts))
// NAPI_RS_FORCE_WASI=error (bench/wasm.mjs) runs the WebAssembly binding instead.
const name = 'eurobert-ner' + (process.env.NAPI_RS_FORCE_WASI === 'error' ? ' wasm' : '')
report({ system: dtype === 'f32' ? name : `${name} ${dtype}`, loadMs: load.ms, loadRssMB, weightMB: ner.model.weightBytes / 2 ** 20, shortMs: short.ms, longMs: long.ms, ...lat })
