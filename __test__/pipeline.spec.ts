// The NER pipeline against transformers' own pipeline outputs (tools/make_fixtures.py).
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { Entity, pipeline } from '..'
import { FIXTURES, PyEntity, TINY_MODEL } from './helpers/fixtures'

interface Case {
  text: string
  aggregation_strategy: 'none' | 'simple' | 'first' | 'average' | 'max'
  ignore_labels?: string[]
  entities: PyEntity[]
}
const fx: {
  model_max_length: number
  cases: Case[]
  batch: { texts: string[]; entities: PyEntity[][] }
  long: { text: string; num_tokens: number; runs: { aggregation_strategy: Case['aggregation_strategy']; stride: number; entities: PyEntity[] }[] }
} = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'tiny-eurobert.pipeline.json'), 'utf8'))

const nerPromise = pipeline(TINY_MODEL, { threads: 2 })

/** Our entity in transformers' shape: Python's code-point offsets become UTF-16 ones. */
function expectedFields(e: PyEntity): Record<string, unknown> {
  const { score: _s, start_utf16, end_utf16, ...rest } = e
  return { ...rest, start: start_utf16, end: end_utf16 }
}

function assertSame(t: import('ava').ExecutionContext, got: Entity[], exp: PyEntity[], what: string): number {
  t.deepEqual(
    got.map(({ score: _s, ...rest }) => rest),
    exp.map(expectedFields),
    what,
  )
  let worst = 0
  got.forEach((g, i) => (worst = Math.max(worst, Math.abs(g.score - (exp[i]?.score ?? NaN)))))
  t.true(worst < 1e-6, `${what}: score diff ${worst}`)
  return worst
}

test('the fixtures exercise real grouping: many entities of many types', (t) => {
  const simple = fx.cases.filter((c) => c.aggregation_strategy === 'simple' && !c.ignore_labels)
  const groups = new Set(simple.flatMap((c) => c.entities.map((e) => e.entity_group)))
  t.true(simple.reduce((n, c) => n + c.entities.length, 0) > 100)
  t.true(groups.size >= 8, [...groups].join(','))
})

for (const strategy of ['none', 'simple', 'first', 'average', 'max'] as const) {
  test(`output 'transformers' equals transformers' pipeline: ${strategy}`, async (t) => {
    const ner = await nerPromise
    let worst = 0
    for (const c of fx.cases.filter((c) => c.aggregation_strategy === strategy)) {
      const got = await ner(c.text, { aggregationStrategy: strategy, ignoreLabels: c.ignore_labels, output: 'transformers' })
      worst = Math.max(worst, assertSame(t, got, c.entities, `${strategy} ${JSON.stringify(c.text)} ignore=${c.ignore_labels}`))
    }
    t.log(`worst score diff ${worst.toExponential(2)}`)
  })
}

test("a list of texts gives a list of results, as transformers' does", async (t) => {
  const ner = await nerPromise
  const got = await ner(fx.batch.texts, { aggregationStrategy: 'simple', output: 'transformers' })
  t.is(got.length, fx.batch.texts.length)
  got.forEach((g, i) => assertSame(t, g, fx.batch.entities[i], `text ${i}`))
})

test('stride windows over a long text equal transformers, every strategy and stride', async (t) => {
  const ner = await nerPromise
  t.true(fx.long.num_tokens > 3 * fx.model_max_length, 'the long text spans several windows')
  for (const r of fx.long.runs) {
    const got = await ner(fx.long.text, { aggregationStrategy: r.aggregation_strategy, stride: r.stride, output: 'transformers' })
    assertSame(t, got, r.entities, `${r.aggregation_strategy} stride ${r.stride}`)
  }
})

test('clean output: the same entities, trimmed, with word === text.slice(start, end)', async (t) => {
  const ner = await nerPromise
  let trimmed = 0
  for (const c of fx.cases) {
    const got = await ner(c.text, { aggregationStrategy: c.aggregation_strategy, ignoreLabels: c.ignore_labels })
    const exp = c.entities.filter((e) => c.text.slice(e.start_utf16, e.end_utf16).trim() !== '')
    t.is(got.length, exp.length, JSON.stringify(c.text))
    got.forEach((g, i) => {
      const e = exp[i]
      t.is(g.word, c.text.slice(g.start, g.end))
      t.is(g.word, g.word.trim())
      t.is(g.word, c.text.slice(e.start_utf16, e.end_utf16).trim())
      t.is('entity' in g ? g.entity : g.entity_group, e.entity ?? e.entity_group)
      t.true(Math.abs(g.score - e.score) < 1e-6)
      if (g.start !== e.start_utf16) trimmed++
    })
  }
  t.true(trimmed > 20, `${trimmed} spans lost a leading space`)
})

test('offsets index the JS string after emoji, astral characters, combining marks and CRLF', async (t) => {
  const ner = await nerPromise
  const text = 'Kari 😀 Nordmann\r\nRene\u0301 i 𝔊otland\tog\u00a0北京 👩‍👩‍👧 Tromsø.'
  for (const aggregationStrategy of ['none', 'simple', 'first', 'average', 'max'] as const) {
    const got = await ner(text, { aggregationStrategy, ignoreLabels: [] })
    t.true(got.length > 0)
    for (const e of got) {
      t.is(e.word, text.slice(e.start, e.end), aggregationStrategy)
      t.false(/^[\uDC00-\uDFFF]/.test(e.word) || /[\uD800-\uDBFF]$/.test(e.word), `split surrogate pair in ${JSON.stringify(e.word)}`)
    }
    // Together the spans cover every non-space character of the text.
    const covered = new Uint8Array(text.length)
    for (const e of got) covered.fill(1, e.start, e.end)
    for (let i = 0; i < text.length; i++) if (!/\s/.test(text[i])) t.is(covered[i], 1, `unit ${i} of ${JSON.stringify(text)}`)
  }
})

test('a 50,000-character document runs in windows without duplicate or overlapping entities', async (t) => {
  const ner = await nerPromise
  const base = fx.batch.texts.join(' ')
  let doc = ''
  for (let i = 0; doc.length < 50_000; i++) doc += `${base} (${i})\n`
  t.true(doc.length >= 50_000)
  const got = await ner(doc, { aggregationStrategy: 'first' })
  t.true(got.length > 500)
  for (let i = 1; i < got.length; i++) t.true(got[i].start >= got[i - 1].end, `entities ${i - 1} and ${i} overlap`)
  for (const e of got) t.is(e.word, doc.slice(e.start, e.end))
  const tokens = await ner(doc, { aggregationStrategy: 'none', ignoreLabels: [] })
  const indexes = tokens.map((e) => (e as { index: number }).index)
  t.deepEqual(indexes, [...indexes].sort((a, b) => a - b))
  t.is(new Set(indexes).size, indexes.length, 'every token once')
})

test("words: 'unicode' never glues words across newline, tab, NBSP, brackets or quotes, nor keeps edge punctuation", async (t) => {
  const ner = await nerPromise
  const text = 'Møtet i\nBergen\tvar (kort), og «Dagbladet» skrev om "NRK" i Oslo.'
  const words = ['Møtet', 'i', 'Bergen', 'var', 'kort', 'og', 'Dagbladet', 'skrev', 'om', 'NRK', 'i', 'Oslo']
  for (const aggregationStrategy of ['first', 'average', 'max'] as const) {
    const heuristic = await ner(text, { aggregationStrategy, ignoreLabels: [] })
    // transformers' heuristic glues some of these together (e.g. "i\nBergen" or "Oslo.").
    t.true(heuristic.some((e) => !words.includes(e.word)), aggregationStrategy)
    const got = await ner(text, { aggregationStrategy, ignoreLabels: [], words: 'unicode' })
    for (const e of got) {
      t.is(e.word, text.slice(e.start, e.end))
      t.false(/^[\s\p{P}]|[\s\p{P}]$/u.test(e.word), `${JSON.stringify(e.word)} has edge punctuation`)
      // Every entity is a run of whole words.
      t.true(/^[\p{L}\p{N}]/u.test(e.word) && (e.start === 0 || !/[\p{L}\p{N}]/u.test(text[e.start - 1])), JSON.stringify(e.word))
      t.true(e.end === text.length || !/[\p{L}\p{N}]/u.test(text[e.end]), JSON.stringify(e.word))
    }
  }
})

test('options are checked', async (t) => {
  const ner = await nerPromise
  await t.throwsAsync(ner('x', { aggregationStrategy: 'longest' as never }), { instanceOf: RangeError, message: /aggregationStrategy/ })
  await t.throwsAsync(ner('x', { stride: -1 }), { instanceOf: RangeError, message: /stride/ })
  await t.throwsAsync(ner('x', { stride: fx.model_max_length }), { instanceOf: RangeError, message: /stride/ })
  await t.throwsAsync(ner('x', { ignoreLabels: 'O' as never }), { instanceOf: TypeError, message: /ignoreLabels/ })
  await t.throwsAsync(ner('x', { output: 'python' as never }), { instanceOf: RangeError })
  await t.throwsAsync(ner('x', { maxLength: 100_000 }), { instanceOf: RangeError, message: /maxLength/ })
  await t.throwsAsync(ner(7 as never), { instanceOf: TypeError })
  t.deepEqual(await ner(''), [])
})
