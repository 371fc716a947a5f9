// q8 accuracy next to ORT's q8, on the same inputs: each system's q8 logits against its own
// f32 logits (argmax agreement, cosine per token), and on models with real labels the NorNE
// dev entity F1 (seqeval default mode, each word labelled by its first token).
import path from 'node:path'
import { createRequire } from 'node:module'
import ort from 'onnxruntime-node'
import { args } from './common.mjs'

const require = createRequire(import.meta.url)
const { EuroBertModel, readConllu, scores } = require('../../dist/index.js')
const a = args()
const threads = Number(a.threads)
const sentences = readConllu(a.conllu.split(',')).slice(0, Number(a.limit ?? 1e9))
const texts = sentences.map((s) => s.text)

const f32 = await EuroBertModel.load(a.model, { threads })
const q8 = await EuroBertModel.load(a.model, { threads, dtype: 'q8' })
const toks = await f32.tokenize(texts)
const L = f32.labels.length

async function ortLogits(file) {
  const session = await ort.InferenceSession.create(path.join(a.model, 'onnx', file), { intraOpNumThreads: threads })
  const out = []
  for (const t of toks) {
    const n = t.ids.length
    const feeds = { input_ids: new ort.Tensor('int64', BigInt64Array.from(t.ids, BigInt), [1, n]), attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]) }
    out.push((await session.run(feeds)).logits.data)
  }
  return out
}
const ours = async (m) => (await m.logits(texts, { batchSize: 32 })).map((o) => o.logits)

function agreement(ref, got) {
  let tokens = 0, same = 0, minCos = 1, sumCos = 0
  ref.forEach((r, s) => {
    for (let i = 0; i < r.length / L; i++) {
      let d = 0, na = 0, nb = 0, ia = 0, ib = 0
      for (let j = 0; j < L; j++) {
        const x = r[i * L + j], y = got[s][i * L + j]
        d += x * y; na += x * x; nb += y * y
        if (x > r[i * L + ia]) ia = j
        if (y > got[s][i * L + ib]) ib = j
      }
      const c = d / Math.sqrt(na * nb)
      minCos = Math.min(minCos, c); sumCos += c; same += ia === ib ? 1 : 0; tokens++
    }
  })
  return { tokens, argmaxAgreement: same / tokens, minCosine: minCos, meanCosine: sumCos / tokens }
}

function f1(logits) {
  const yPred = sentences.map((s, k) =>
    s.tokens.map((w) => {
      const t = toks[k]
      for (let i = 0; i < t.ids.length; i++) {
        if (t.specialTokensMask[i] || !(t.offsets[2 * i] < w.end && t.offsets[2 * i + 1] > w.start)) continue
        const row = logits[k].subarray(i * L, (i + 1) * L)
        let b = 0
        for (let j = 1; j < L; j++) if (row[j] > row[b]) b = j
        return f32.labels[b]
      }
      return 'O'
    }),
  )
  return scores(sentences.map((s) => s.tokens.map((w) => w.tag)), yPred).micro.f1
}

const [of32, oq8, xf32, xq8] = [await ours(f32), await ours(q8), await ortLogits('model.onnx'), await ortLogits('model_quantized.onnx')]
const real = a.labels === 'real'
console.log(JSON.stringify({
  sentences: sentences.length,
  ours: { ...agreement(of32, oq8), ...(real ? { f1F32: f1(of32), f1Q8: f1(oq8) } : {}) },
  ort: { ...agreement(xf32, xq8), ...(real ? { f1F32: f1(xf32), f1Q8: f1(xq8) } : {}) },
}))
