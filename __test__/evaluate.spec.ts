// Evaluation against seqeval's own outputs (tools/make_seqeval_fixtures.py), and over CoNLL-U.
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { BUNDLED_MODEL, classificationReport, EuroBertModel, evaluate, parseConllu, readConllu, scores } from '..'
import { formatFixed } from '../dist/evaluate/pyformat'
import { FIXTURES, TINY_MODEL } from './helpers/fixtures'

interface Numbers {
  precision: number
  recall: number
  f1: number
  support: number
}
interface SeqevalCase {
  name: string
  y_true: string[][]
  y_pred: string[][]
  default: ModeRecord
  strict: ModeRecord
}
interface ModeRecord {
  error?: string
  report_2?: string
  report_4?: string
  numbers?: {
    per_type: { precision: number[]; recall: number[]; f1: number[]; support: number[] }
    micro: Numbers
    macro: Numbers
    weighted: Numbers
  }
}
const fx: { cases: SeqevalCase[] } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'seqeval.json'), 'utf8'))

for (const mode of ['default', 'strict'] as const) {
  test(`classification_report text equals seqeval's, ${mode} mode, digits 2 and 4`, (t) => {
    let compared = 0
    for (const c of fx.cases) {
      const exp = c[mode]
      if (exp.error) {
        t.throws(() => classificationReport(c.y_true, c.y_pred, { mode }), undefined, c.name)
        continue
      }
      t.is(classificationReport(c.y_true, c.y_pred, { mode, digits: 2 }), exp.report_2, `${c.name}, digits 2`)
      t.is(classificationReport(c.y_true, c.y_pred, { mode, digits: 4 }), exp.report_4, `${c.name}, digits 4`)
      compared += 2
    }
    t.true(compared > 50)
  })

  test(`precision, recall, F1 and support equal seqeval's, ${mode} mode`, (t) => {
    for (const c of fx.cases) {
      const exp = c[mode].numbers
      if (!exp) continue
      const got = scores(c.y_true, c.y_pred, mode)
      const types = Object.keys(got.types)
      t.is(types.length, exp.per_type.support.length, c.name)
      types.forEach((name, i) => {
        const g = got.types[name]
        t.is(g.support, exp.per_type.support[i])
        for (const m of ['precision', 'recall', 'f1'] as const) t.true(Math.abs(g[m] - exp.per_type[m][i]) < 1e-12, `${c.name} ${name} ${m}`)
      })
      for (const avg of ['micro', 'macro', 'weighted'] as const) {
        t.is(got[avg].support, exp[avg].support)
        // numpy's pairwise summation is reproduced, so the averages agree to the last bit.
        for (const m of ['precision', 'recall', 'f1'] as const) t.is(got[avg][m], exp[avg][m], `${c.name} ${avg} ${m}`)
      }
    }
  })
}

test('the fixtures include invalid sequences that the two modes score differently', (t) => {
  const differ = fx.cases.filter((c) => c.default.numbers && c.strict.numbers && c.default.numbers.micro.f1 !== c.strict.numbers.micro.f1)
  t.true(differ.length >= 5)
})

test("numbers print with Python's rounding: exact ties go to the even digit", (t) => {
  t.is(formatFixed(0.125, 2), '0.12')
  t.is(formatFixed(0.375, 2), '0.38')
  t.is(formatFixed(0.03125, 4), '0.0312')
  t.is(formatFixed(2.5, 0), '2')
  t.is(formatFixed(3.5, 0), '4')
  t.is(formatFixed(-0.125, 2), '-0.12')
  t.is(formatFixed(0.1, 2), '0.10')
  t.is(formatFixed(0.675, 2), '0.68') // 0.675 is stored just above the tie
  t.is(formatFixed(1 / 3, 4), '0.3333')
  t.is(formatFixed(0, 4), '0.0000')
})

test('CoNLL-U: tags from name=, text rebuilt with SpaceAfter, multi-word ranges skipped', (t) => {
  const [s1, s2] = readConllu(path.join(FIXTURES, 'sample.conllu'))
  t.is(s1.id, 's1')
  t.is(s1.text, 'Erna Solberg besøkte Universitetet i Oslo.')
  t.deepEqual(s1.tokens.map((x) => x.tag), ['B-PER', 'I-PER', 'O', 'B-ORG', 'I-ORG', 'I-ORG', 'O'])
  t.is(s2.text, 'Eg las «Dagbladet» i Bergen.')
  t.deepEqual(s2.tokens.map((x) => x.form), ['Eg', 'las', '«', 'Dagbladet', '»', 'i', 'Bergen', '.'])
  for (const s of [s1, s2]) for (const tok of s.tokens) t.is(s.text.slice(tok.start, tok.end), tok.form)
})

test('CoNLL-U errors name the file and line', (t) => {
  t.throws(() => parseConllu('1\tOslo\t_\n', 'a.conllu'), { message: /^a\.conllu:1: expected 10 tab-separated columns/ })
  t.throws(() => parseConllu('# x\n1\tOslo\t_\t_\t_\t_\t_\t_\t_\t_\n', 'b.conllu'), { message: /^b\.conllu:2: token "Oslo" has no name= tag/ })
})

test('evaluate: each word takes its first token’s label; the report is seqeval’s over those tags', async (t) => {
  const model = await EuroBertModel.load(TINY_MODEL, { threads: 2 })
  const sentences = readConllu(path.join(FIXTURES, 'sample.conllu'))
  const ev = await evaluate(model, sentences, { digits: 4 })
  t.is(ev.sentences, 2)
  t.is(ev.tokens, 15)
  const outs = await model.logits(sentences.map((s) => s.text))
  sentences.forEach((s, i) => {
    const out = outs[i]
    s.tokens.forEach((tok, j) => {
      let k = 0
      while (out.specialTokensMask[k] || !(out.offsets[2 * k] < tok.end && out.offsets[2 * k + 1] > tok.start)) k++
      const row = Array.from(out.logits.subarray(k * out.numLabels, (k + 1) * out.numLabels))
      t.is(ev.yPred[i][j], model.labels[row.indexOf(Math.max(...row))], `${s.id} token ${j}`)
    })
  })
  t.deepEqual(ev.yTrue, sentences.map((s) => s.tokens.map((x) => x.tag)))
  t.deepEqual(ev.report, scores(ev.yTrue, ev.yPred))
  t.is(ev.text, classificationReport(ev.yTrue, ev.yPred, { digits: 4 }))
})

test("evaluate() on the bundled model gives seqeval's numbers as tools/evaluate_seqeval.py recorded them", async (t) => {
  const rec = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'eval.seqeval.json'), 'utf8'))
  const model = await EuroBertModel.load(BUNDLED_MODEL, { threads: 2 })
  const sentences = readConllu(path.join(FIXTURES, 'eval.conllu'))
  const ev = await evaluate(model, sentences, { digits: 4 })
  t.deepEqual(ev.yPred, rec.y_pred, 'the same tags as transformers + the first-token rule')
  t.is(ev.text, rec.report.default_4)
  t.is((await evaluate(model, sentences, { digits: 2 })).text, rec.report.default_2)
  t.is((await evaluate(model, sentences, { digits: 4, mode: 'strict' })).text, rec.report.strict_4)
  t.is(ev.report.micro.precision, rec.micro.precision)
  t.is(ev.report.micro.recall, rec.micro.recall)
  t.is(ev.report.micro.f1, rec.micro.f1)
})
