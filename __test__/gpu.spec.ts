// Parity on a GPU, where one is there: CUDA (the CUDA build, any NVIDIA GPU) and Metal
// (Apple silicon; the macOS workflow sets EUROBERT_TEST_METAL=1). f32 within 1e-4 of
// transformers, f16/bf16 within 5e-2 (half precision). Elsewhere these tests are skipped.
import test from 'ava'

import { EuroBertModel } from '..'
import { native, nativeFor } from '../dist/pipeline/native'
import { expected, maxAbsDiff, TINY_MODEL } from './helpers/fixtures'

function cudaUsable(): boolean {
  try {
    return nativeFor('cuda').addon.cudaDevices() > 0
  } catch {
    return false
  }
}
const cudaOk = cudaUsable()
const metalUsable = native().backends().includes('metal') && process.env.EUROBERT_TEST_METAL === '1'

const cases: [string, boolean, 'f32' | 'f16' | 'bf16', number][] = [
  ['cuda', cudaOk, 'f32', 1e-4],
  ['cuda', cudaOk, 'f16', 5e-2],
  ['cuda', cudaOk, 'bf16', 5e-2],
  ['metal', metalUsable, 'f32', 1e-4],
  ['metal', metalUsable, 'f16', 5e-2],
]

for (const [device, usable, dtype, tol] of cases) {
  ;(usable ? test : test.skip)(`${device} ${dtype}: logits of single texts and a padded batch near transformers' (within ${tol})`, async (t) => {
    const exp = expected()
    const model = await EuroBertModel.load(TINY_MODEL, { device: device as 'cuda', dtype })
    t.regex(model.device, new RegExp(`^${device}`))
    let worst = 0
    for (const s of exp.singles) worst = Math.max(worst, maxAbsDiff((await model.logits(s.text))[0].logits, s.logits))
    const batch = await model.logits(exp.batch.texts, { batchSize: 64 })
    batch.forEach((o, i) => (worst = Math.max(worst, maxAbsDiff(o.logits, exp.batch.logits[i]))))
    t.log(`max abs diff ${worst.toExponential(2)}`)
    t.true(worst < tol, `max abs diff ${worst}`)
  })
}
