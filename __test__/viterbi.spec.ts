// IOB2-valid decoding against its definition: the best-scoring label sequence among all
// sequences in which I-X only follows B-X or I-X, found by brute force on small inputs.
import test from 'ava'

import { pipeline } from '..'
import { parseLabels } from '../dist/pipeline/labels'
import { viterbi } from '../dist/pipeline/viterbi'
import { TINY_MODEL } from './helpers/fixtures'

const LABELS = parseLabels(['O', 'B-PER', 'I-PER', 'B-ORG', 'I-ORG'])

function valid(path: number[]): boolean {
  return path.every((j, i) => {
    const name = LABELS[j].name
    if (!name.startsWith('I-')) return true
    if (i === 0) return false
    const prev = LABELS[path[i - 1]].name
    return (prev.startsWith('B-') || prev.startsWith('I-')) && prev.slice(2) === name.slice(2)
  })
}

function score(probs: number[][], path: number[]): number {
  return path.reduce((s, j, i) => s + Math.log(probs[i][j]), 0)
}

function bruteForce(probs: number[][]): number {
  let best = -Infinity
  const n = probs.length
  for (let code = 0; code < LABELS.length ** n; code++) {
    const path = Array.from({ length: n }, (_, i) => Math.floor(code / LABELS.length ** i) % LABELS.length)
    if (valid(path)) best = Math.max(best, score(probs, path))
  }
  return best
}

test('viterbi finds the best IOB2-valid sequence (brute force on 300 random inputs)', (t) => {
  let seed = 7
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  let repaired = 0
  for (let k = 0; k < 300; k++) {
    const n = 1 + (k % 5)
    const probs = Array.from({ length: n }, () => {
      const raw = LABELS.map(() => rand() ** 3 + 1e-3)
      const z = raw.reduce((a, b) => a + b, 0)
      return raw.map((x) => x / z)
    })
    const path = viterbi(probs, LABELS)
    t.true(valid(path), `valid path for input ${k}`)
    t.true(Math.abs(score(probs, path) - bruteForce(probs)) < 1e-9, `best score for input ${k}`)
    const argmax = probs.map((p) => p.indexOf(Math.max(...p)))
    if (!valid(argmax)) repaired++
  }
  t.true(repaired > 20, `${repaired} inputs where argmax alone is invalid`)
})

test("ner(..., { decode: 'viterbi' }) gives IOB2-valid entities; token strategies refuse it", async (t) => {
  const ner = await pipeline(TINY_MODEL, { threads: 1 })
  const text = 'Erna Solberg besøkte Universitetet i Oslo forrige uke, sa NRK.'
  for (const strategy of ['first', 'average', 'max'] as const) {
    const out = await ner(text, { aggregationStrategy: strategy, decode: 'viterbi' })
    t.true(out.every((e) => e.word === text.slice(e.start, e.end)))
  }
  await t.throwsAsync(ner(text, { aggregationStrategy: 'simple', decode: 'viterbi' }), { instanceOf: RangeError, message: /labels words/ })
  await t.throwsAsync(ner(text, { decode: 'beam' as never }), { instanceOf: RangeError })
})
