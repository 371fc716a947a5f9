// A tokenizer that is not byte-level (BPE with a `##` continuing-subword prefix and an [UNK]
// token, BERT's pre-tokenizer): transformers' pipeline then decides subwords by comparing a
// token's string with the text it covers, and gives an [UNK] token the text it covers as its
// word. Against tools/make_wordpiece_fixture.py's recording of transformers' pipeline.
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { Entity, pipeline } from '..'
import { FIXTURES, PyEntity } from './helpers/fixtures'

const fx: { unk_token_id: number; cases: { text: string; aggregation_strategy: 'none' | 'simple' | 'first' | 'average' | 'max'; entities: PyEntity[] }[] } = JSON.parse(
  fs.readFileSync(path.join(FIXTURES, 'tiny-wordpiece.pipeline.json'), 'utf8'),
)
const MODEL = path.join(FIXTURES, 'tiny-wordpiece')
const nerPromise = pipeline(MODEL, { threads: 2 })

test('the tokenizer is word-aware: a ## prefix and an [UNK] id reach the pipeline', async (t) => {
  const ner = await nerPromise
  t.is(ner.model.continuingSubwordPrefix, '##')
  t.is(ner.model.unkTokenId, fx.unk_token_id)
})

for (const strategy of ['none', 'simple', 'first', 'average', 'max'] as const) {
  test(`output 'transformers' equals transformers' pipeline: ${strategy}`, async (t) => {
    const ner = await nerPromise
    let worst = 0
    for (const c of fx.cases.filter((c) => c.aggregation_strategy === strategy)) {
      const got = (await ner(c.text, { aggregationStrategy: strategy, output: 'transformers' })) as Entity[]
      t.deepEqual(
        got.map(({ score: _s, ...e }) => e),
        c.entities.map(({ score: _s, start_utf16, end_utf16, ...e }) => ({ ...e, start: start_utf16, end: end_utf16 }) as unknown as Entity),
        `${strategy} ${JSON.stringify(c.text)}`,
      )
      got.forEach((g, i) => (worst = Math.max(worst, Math.abs(g.score - c.entities[i].score))))
    }
    t.true(worst < 1e-6, `score diff ${worst}`)
  })
}

test("the two cases transformers' rules decide: [UNK] words and punctuation after a word", async (t) => {
  const ner = await nerPromise
  const unk = (await ner('一二三 Oslo', { aggregationStrategy: 'none', output: 'transformers' })) as { word: string }[]
  t.deepEqual(unk.slice(0, 3).map((e) => e.word), ['一', '二', '三'])
  const first = await ner('Oslo-mannen i Drammen.', { aggregationStrategy: 'first' })
  t.true(first.some((e) => e.word === 'Drammen' && e.start === 14 && e.end === 21), JSON.stringify(first))
})
