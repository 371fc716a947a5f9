// The bundled compact NorNE model: loaded by default, exact against transformers, and useful.
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { BUNDLED_MODEL, GroupedEntity, pipeline } from '..'
import { FIXTURES, maxAbsDiff } from './helpers/fixtures'

interface Rec {
  text: string
  ids: number[]
  logits: number[][]
  first: { entity_group: string; score: number; word: string; start: number; end: number }[]
  simple: Rec['first']
}
const fx: { sentences: Rec[] } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'norne-compact.expected.json'), 'utf8'))
const nerPromise = pipeline(undefined, { threads: 2 })

test('the bundled model is the default and fits the size budget (≤ 15 MB)', async (t) => {
  const ner = await nerPromise
  t.is(ner.model.path, BUNDLED_MODEL)
  t.is(ner.model.labels.length, 19)
  const bytes = fs.readdirSync(BUNDLED_MODEL).reduce((n, f) => n + fs.statSync(path.join(BUNDLED_MODEL, f)).size, 0)
  t.true(bytes <= 15e6, `${(bytes / 1e6).toFixed(2)} MB`) // the budget is decimal megabytes
  t.log(`bundled model: ${(bytes / 1e6).toFixed(2)} MB`)
})

test('its logits equal transformers within 5e-5', async (t) => {
  const ner = await nerPromise
  const outs = await ner.model.logits(fx.sentences.map((s) => s.text))
  let worst = 0
  outs.forEach((o, i) => {
    t.deepEqual([...o.ids], fx.sentences[i].ids)
    worst = Math.max(worst, maxAbsDiff(o.logits, fx.sentences[i].logits))
  })
  t.true(worst < 5e-5, `max abs diff ${worst}`)
  t.log(`max abs diff ${worst.toExponential(2)}`)
})

test("its entities equal transformers' pipeline (first and simple)", async (t) => {
  const ner = await nerPromise
  for (const s of fx.sentences) {
    for (const strategy of ['first', 'simple'] as const) {
      const got = (await ner(s.text, { aggregationStrategy: strategy, output: 'transformers' })) as GroupedEntity[]
      t.deepEqual(got.map(({ score: _s, ...e }) => e), s[strategy].map(({ score: _s, ...e }) => e), `${strategy}: ${s.text}`)
      got.forEach((g, i) => t.true(Math.abs(g.score - s[strategy][i].score) < 2e-6, `score diff ${Math.abs(g.score - s[strategy][i].score)}`))
    }
  }
})

test("clean output: the same entities as transformers' first, with spans trimmed to the words", async (t) => {
  const ner = await nerPromise
  for (const s of fx.sentences) {
    const entities = (await ner(s.text, { aggregationStrategy: 'first' })) as GroupedEntity[]
    // transformers' spans may start on the space before a word; clean spans do not.
    const want = s.first.map((e) => {
      const span = s.text.slice(e.start, e.end)
      const start = e.start + span.length - span.trimStart().length
      return { entity_group: e.entity_group, word: s.text.slice(start, e.end), start, end: e.end }
    })
    t.deepEqual(entities.map(({ entity_group, word, start, end }) => ({ entity_group, word, start, end })), want, s.text)
  }
})
