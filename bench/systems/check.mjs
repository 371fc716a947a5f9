// Before timing: our logits and ORT's (same safetensors, exported) must agree.
import path from 'node:path'
import { createRequire } from 'node:module'
import ort from 'onnxruntime-node'
import { args } from './common.mjs'

const require = createRequire(import.meta.url)
const { EuroBertModel } = require('../../dist/index.js')
const a = args()
const texts = ['Erna Solberg besøkte Universitetet i Oslo forrige uke.', 'Eg budde i Bergen.', 'NRK melde at Equinor og DNB i Stavanger']
const model = await EuroBertModel.load(a.model, { threads: Number(a.threads) })
const session = await ort.InferenceSession.create(path.join(a.model, 'onnx', 'model.onnx'), { intraOpNumThreads: Number(a.threads) })
let worst = 0
for (const out of await model.logits(texts)) {
  const n = out.ids.length
  const feeds = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(out.ids, BigInt), [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
  }
  const ref = (await session.run(feeds)).logits.data
  out.logits.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ref[i]))))
}
console.log(JSON.stringify({ maxAbsDiffOursVsOrt: worst }))
