// Property-based fuzzing of ner() with fast-check (fixed seed, so a failure reproduces):
// random Unicode — astral characters, ZWJ sequences, lone surrogates, NUL and control
// characters, long runs — through every aggregation strategy and both word modes. Every string
// is a valid input, so every call must succeed with spans that slice the input to `word`
// (a rejection fails the property, with the input that caused it); and the model answers a
// fixed text identically afterwards.
import test from 'ava'
import fc from 'fast-check'

import { Entity, pipeline } from '..'
import { SLOWDOWN, TINY_MODEL } from './helpers/fixtures'

const STRATEGIES = ['none', 'simple', 'first', 'average', 'max'] as const
const PIECES = ['😀', '👩‍👩‍👧', '\u200d', '\0', '\x07', '\r\n', '\n', ' ', '\u00a0', '\t', '\uD800', '\uDC00', 'a', 'Ø', 'e\u0301', 'Oslo', '«', '.', '-', '\uFFFF', '𝔘']

const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: fc.constantFrom(...PIECES), maxLength: 300 }),
  // Long runs without spaces: one huge pre-tokenizer word.
  fc.tuple(fc.constantFrom(...PIECES), fc.integer({ min: 1, max: 2000 })).map(([p, n]) => p.repeat(n)),
)

test('random Unicode through every strategy: every call succeeds and its spans slice the input; the model stays sane', async (t) => {
  t.timeout(240_000 * SLOWDOWN)
  const ner = await pipeline(TINY_MODEL, { threads: 2 })
  const probe = 'Erna Solberg besøkte Universitetet i Oslo.'
  const before = JSON.stringify(await ner(probe, { aggregationStrategy: 'simple' }))
  let calls = 0
  await fc.assert(
    fc.asyncProperty(text, fc.constantFrom(...STRATEGIES), fc.constantFrom('transformers' as const, 'unicode' as const), async (s, strategy, words) => {
      calls++
      const out: Entity[] = await ner(s, { aggregationStrategy: strategy, words })
      return out.every((e) => Number.isInteger(e.start) && 0 <= e.start && e.start < e.end && e.end <= s.length && e.word === s.slice(e.start, e.end) && Number.isFinite(e.score))
    }),
    { seed: 20261125, numRuns: 2500 },
  )
  t.is(JSON.stringify(await ner(probe, { aggregationStrategy: 'simple' })), before)
  t.log(`${calls} inputs, none rejected`)
})
