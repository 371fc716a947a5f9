// transformers.js (@huggingface/transformers) token-classification pipeline on onnxruntime-node.
import fs from 'node:fs'
import path from 'node:path'
import { env, pipeline } from '@huggingface/transformers'
import { args, latencies, report, timed, workload } from './common.mjs'

const a = args()
const w = workload(a.work)
const batchSize = Number(a['batch-size'])
env.allowRemoteModels = false
env.localModelPath = path.dirname(path.resolve(a.model)) + '/'
const threads = Number(a.threads)

const load = await timed(() =>
  pipeline('token-classification', path.basename(a.model), {
    dtype: a.dtype,
    // Models over 2 GB keep their weights in onnx/model.onnx_data.
    use_external_data_format: a.dtype === 'fp32' && fs.existsSync(path.join(a.model, 'onnx', 'model.onnx_data')),
    device: 'cpu',
    session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
  }),
)
const ner = load.value
const opts = { aggregation_strategy: 'simple' }
const inBatches = async (texts) => {
  for (let i = 0; i < texts.length; i += batchSize) await ner(texts.slice(i, i + batchSize), opts)
}
await ner(w.short.slice(0, 8), opts)
const short = await timed(() => inBatches(w.short))
// transformers.js has no stride: each long document is truncated to model_max_length.
const long = await timed(() => inBatches(w.long))
const lat = await latencies(w.latency, (t) => ner(t, opts))
report({ system: `transformers.js ${a.dtype}`, loadMs: load.ms, shortMs: short.ms, longMs: long.ms, longTruncated: true, ...lat })
