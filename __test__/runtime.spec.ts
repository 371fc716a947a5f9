// The runtime as users see it: logits and tokenization against transformers' own outputs.
import test from 'ava'

import { EuroBertModel } from '..'
import { expected, maxAbsDiff, TINY_MODEL } from './helpers/fixtures'

const TOL = 1e-5
const exp = expected()
const modelPromise = EuroBertModel.load(TINY_MODEL, { threads: 2 })

test('metadata comes from config.json', async (t) => {
  const model = await modelPromise
  t.deepEqual([...model.labels], exp.labels)
  t.is(model.maxLength, 256)
  t.is(model.threads, 2)
  t.is(model.path, TINY_MODEL)
})

test('logits equal transformers within 1e-5, one text at a time', async (t) => {
  const model = await modelPromise
  let worst = 0
  for (const s of exp.singles) {
    const [out] = await model.logits(s.text)
    t.is(out.numLabels, exp.labels.length)
    const d = maxAbsDiff(out.logits, s.logits)
    t.true(d < TOL, `${JSON.stringify(s.text)}: max abs diff ${d}`)
    worst = Math.max(worst, d)
  }
  t.log(`max abs diff (single): ${worst.toExponential(2)}`)
})

test('logits of one padded batch equal transformers within 1e-5', async (t) => {
  const model = await modelPromise
  const out = await model.logits(exp.batch.texts, { batchSize: 64 })
  t.is(out.length, exp.batch.texts.length)
  let worst = 0
  out.forEach((o, i) => {
    t.is(o.text, exp.batch.texts[i], 'results come back in input order')
    const d = maxAbsDiff(o.logits, exp.batch.logits[i])
    t.true(d < TOL, `row ${i}: max abs diff ${d}`)
    worst = Math.max(worst, d)
  })
  t.log(`max abs diff (batched): ${worst.toExponential(2)}`)
})

test('small batches and token budgets give the same logits as one batch', async (t) => {
  const model = await modelPromise
  const out = await model.logits(exp.batch.texts, { batchSize: 3, maxBatchTokens: 64 })
  out.forEach((o, i) => t.true(maxAbsDiff(o.logits, exp.batch.logits[i]) < TOL, `row ${i}`))
})

test('token ids, tokens, offsets, special-token mask and word ids equal the Python tokenizer', async (t) => {
  const model = await modelPromise
  const toks = await model.tokenize(exp.singles.map((s) => s.text))
  toks.forEach((tok, i) => {
    const s = exp.singles[i]
    t.deepEqual([...tok.ids], s.ids, `${JSON.stringify(s.text)} ids`)
    t.deepEqual(tok.tokens, s.tokens, `${JSON.stringify(s.text)} tokens`)
    t.deepEqual([...tok.offsets], s.offsets_utf16.flat(), `${JSON.stringify(s.text)} offsets`)
    t.deepEqual([...tok.specialTokensMask], s.special_tokens_mask)
    t.deepEqual([...tok.attentionMask], s.attention_mask)
    t.deepEqual([...tok.wordIds], s.word_ids)
  })
})

test('offsets index the JavaScript string, also after astral characters and CRLF', async (t) => {
  const model = await modelPromise
  const text = '😀 Oslo og 𝔊 Bergen\r\nTromsø e\u0301 \u00a0Bodø'
  const [tok] = await model.tokenize(text)
  const spans: [number, number][] = []
  tok.tokens.forEach((_, i) => {
    if (!tok.specialTokensMask[i]) spans.push([tok.offsets[2 * i], tok.offsets[2 * i + 1]])
  })
  const isLow = (i: number) => i > 0 && i < text.length && /[\uDC00-\uDFFF]/.test(text[i])
  t.is(spans[0][0], 0)
  t.is(spans[spans.length - 1][1], text.length)
  for (let i = 0; i < spans.length; i++) {
    const [s, e] = spans[i]
    t.false(isLow(s) || isLow(e), `span ${s}..${e} splits a surrogate pair`)
    // Consecutive tokens tile the text; byte pieces of one character share its span.
    if (i > 0) t.true(s === spans[i - 1][1] || (s === spans[i - 1][0] && e === spans[i - 1][1]), `gap before ${s}`)
  }
  t.true(spans.some(([s, e]) => text.slice(s, e) === '😀'))
})

test('decodeTokens joins byte-level tokens like the tokenizer decoder', async (t) => {
  const model = await modelPromise
  const [tok] = await model.tokenize('Tromsø og Ålesund')
  const content = tok.tokens.filter((_, i) => !tok.specialTokensMask[i])
  t.is(model.decodeTokens(content), 'Tromsø og Ålesund')
})

test('empty text still gets the special tokens and their logits', async (t) => {
  const model = await modelPromise
  const [out] = await model.logits('')
  t.deepEqual(out.tokens, ['<|begin_of_text|>', '<|end_of_text|>'])
  t.is(out.logits.length, 2 * out.numLabels)
})

test('concurrent calls give the same answers as sequential ones', async (t) => {
  const model = await modelPromise
  const results = await Promise.all(exp.singles.slice(0, 6).map((s) => model.logits(s.text)))
  results.forEach(([o], i) => t.true(maxAbsDiff(o.logits, exp.singles[i].logits) < TOL))
})

test('inference runs off the main thread: the event loop keeps turning', async (t) => {
  const model = await modelPromise
  const texts = Array.from({ length: 400 }, (_, i) => `${exp.batch.texts[i % 12]} ${i}`)
  let ticks = 0
  let done = false
  const spin = () => {
    if (done) return
    ticks++
    setImmediate(spin)
  }
  setImmediate(spin)
  const out = await model.logits(texts)
  done = true
  t.is(out.length, 400)
  t.true(ticks > 1, `the event loop turned ${ticks} times while the model ran`)
})
