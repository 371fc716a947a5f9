// dtype 'f16' and 'bf16' on the CPU: 16-bit weights, f32 arithmetic (crates/eurobert/tests/half.rs
// holds the parity against PyTorch's own f16/bf16 up to 8,192 tokens). Here, as users see it: on
// the bundled model, the labels and F1 of f32 and half the weight memory.
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { BUNDLED_MODEL, EuroBertModel, evaluate, readConllu } from '..'
import { FIXTURES } from './helpers/fixtures'

for (const dtype of ['f16', 'bf16'] as const) {
  test(`${dtype} on the CPU: the bundled model keeps transformers' f32 labels and F1 in half the memory`, async (t) => {
    const fx: { sentences: { text: string; logits: number[][] }[] } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'norne-compact.expected.json'), 'utf8'))
    const rec = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'eval.seqeval.json'), 'utf8'))
    const model = await EuroBertModel.load(BUNDLED_MODEL, { threads: 2, dtype })
    let tokens = 0, same = 0, worst = 0
    for (const [i, out] of (await model.logits(fx.sentences.map((s) => s.text))).entries()) {
      const rows = fx.sentences[i].logits
      const L = rows[0].length
      rows.forEach((want, r) => {
        const got = out.logits.subarray(r * L, (r + 1) * L)
        let ig = 0, iw = 0
        for (let j = 0; j < L; j++) {
          worst = Math.max(worst, Math.abs(got[j] - want[j]))
          if (got[j] > got[ig]) ig = j
          if (want[j] > want[iw]) iw = j
        }
        tokens++
        same += ig === iw ? 1 : 0
      })
    }
    const ev = await evaluate(model, readConllu(path.join(FIXTURES, 'eval.conllu')))
    const full = await EuroBertModel.load(BUNDLED_MODEL, { threads: 1 })
    t.log(`${tokens} tokens: argmax agreement ${(same / tokens).toFixed(4)}, max abs diff ${worst.toFixed(4)}; F1 ${ev.report.micro.f1.toFixed(4)} vs f32 ${rec.micro.f1.toFixed(4)}; weights ${model.weightBytes} vs ${full.weightBytes} bytes`)
    t.true(same / tokens >= 0.999, `argmax agreement ${same / tokens}`)
    // Measured: f16 is exact (the bundled weights are stored in f16), bf16 0.03.
    t.true(worst < (dtype === 'f16' ? 1e-4 : 0.1), `max abs diff ${worst}`)
    t.true(Math.abs(ev.report.micro.f1 - rec.micro.f1) <= 0.003, `F1 ${ev.report.micro.f1} vs ${rec.micro.f1}`)
    t.true(model.weightBytes < 0.52 * full.weightBytes, `${model.weightBytes} of ${full.weightBytes} bytes`)
    full.dispose()
    model.dispose()
  })
}
