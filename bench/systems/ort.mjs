// onnxruntime-node directly on the exported graph: tokenize (our Rust tokenizer), pad, run.
// `--web 1`: onnxruntime-web's WebAssembly backend instead (SIMD, threads), the engine under
// transformers.js' wasm device, which transformers.js itself offers only in browsers.
import path from 'node:path'
import { createRequire } from 'node:module'
import { args, latencies, report, timed, workload } from './common.mjs'

const require = createRequire(import.meta.url)
const { EuroBertModel } = require('../../dist/index.js')
const a = args()
const web = a.web === '1'
const ort = (await import(web ? 'onnxruntime-web' : 'onnxruntime-node')).default
if (web) ort.env.wasm.numThreads = Number(a.threads)
const w = workload(a.work)
const batchSize = Number(a['batch-size'])
const threads = Number(a.threads)
const maxLength = Number(a['max-length'])

const load = await timed(async () => {
  const session = await ort.InferenceSession.create(path.join(a.model, 'onnx', a.file), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionProviders: [web ? 'wasm' : 'cpu'],
    // ORT's threads spin after each run by default, burning the cores other work needs;
    // '--spin 0' turns that off (session.intra_op.allow_spinning).
    ...(a.spin === '0' ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
  })
  // Only for tokenization: the weights are the ORT session's.
  const tok = await EuroBertModel.load(a.model, { threads: 1 })
  return { session, tok }
})
const { session, tok } = load.value
const loadRssMB = process.memoryUsage().rss / 2 ** 20

async function run(seqs) {
  const n = Math.max(...seqs.map((s) => s.length))
  const ids = new BigInt64Array(seqs.length * n).fill(1n)
  const mask = new BigInt64Array(seqs.length * n)
  seqs.forEach((s, r) => s.forEach((id, j) => ((ids[r * n + j] = BigInt(id)), (mask[r * n + j] = 1n))))
  const feeds = { input_ids: new ort.Tensor('int64', ids, [seqs.length, n]), attention_mask: new ort.Tensor('int64', mask, [seqs.length, n]) }
  return (await session.run(feeds)).logits
}

async function texts(list) {
  const toks = await tok.tokenize(list)
  // Windows of maxLength without overlap for long texts; sorted by length like our batches.
  const seqs = toks.flatMap((t) => {
    const ids = [...t.ids]
    const out = []
    for (let i = 0; i < ids.length; i += maxLength) out.push(ids.slice(i, i + maxLength))
    return out
  })
  seqs.sort((x, y) => y.length - x.length)
  for (let i = 0; i < seqs.length; i += batchSize) await run(seqs.slice(i, i + batchSize))
}

await texts(w.short.slice(0, 8))
const short = await timed(() => texts(w.short))
const long = await timed(() => texts(w.long))
const lat = await latencies(w.latency, (t) => texts([t]))
const name = `${web ? 'onnxruntime-web wasm' : 'onnxruntime-node'} ${a.file === 'model.onnx' ? 'fp32' : 'q8'}${a.spin === '0' ? ', spinning off' : ''}`
report({ system: name, loadMs: load.ms, loadRssMB, shortMs: short.ms, longMs: long.ms, ...lat })
