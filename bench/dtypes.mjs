#!/usr/bin/env node
// `node bench/dtypes.mjs --model DIR [--dtypes f32,f16,bf16,q8] [--docs 4] [--chars 3000]
// [--rounds 3]`: our own encoder in each dtype, interleaved round by round: documents (`chars`
// characters of NorNE dev text each, one window), a batch of 32 sentences, and one sentence per call (p50 of 10).
// Prints each cell's median over the rounds [min–max] and its speed-up over the first dtype,
// and the weight bytes and RSS after load of each.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const { EuroBertModel } = require('../dist/index.js')
const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    dtypes: { type: 'string', default: 'f32,f16,bf16,q8' },
    docs: { type: 'string', default: '4' },
    chars: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    norne: { type: 'string', default: path.join(here, '..', '..', 'shared', 'norne') },
  },
})
if (!values.model) throw new Error('--model DIR is required')
const dtypes = values.dtypes.split(',')
const text = fs.readFileSync(path.join(values.norne, 'nob', 'dev.conllu'), 'utf8').split('\n').filter((l) => l.startsWith('# text = ')).map((l) => l.slice(9))
const docs = Array.from({ length: +values.docs }, (_, i) => text.slice(i * 60, i * 60 + 60).join(' ').slice(0, +values.chars))
const sents = text.slice(1000, 1032)

const models = {}
for (const d of dtypes) {
  models[d] = await EuroBertModel.load(values.model, { threads: +values.threads, dtype: d })
  console.log(`${d}: ${(models[d].weightBytes / 1e6).toFixed(0)} MB of weights`)
}
const count = async (texts) => (await models[dtypes[0]].logits(texts)).reduce((a, r) => a + r.ids.length, 0)
console.log(`${docs.length} documents, ${await count(docs)} tokens; ${sents.length} sentences, ${await count(sents)} tokens`)
const res = {}
for (let round = 0; round < +values.rounds; round++) {
  for (const d of dtypes) {
    for (const [name, input] of [['documents', docs], ['sentences', sents], ['one sentence', [sents[0]]]]) {
      const reps = name === 'one sentence' ? 10 : 1
      const times = []
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now()
        await models[d].logits(input)
        times.push(performance.now() - t0)
      }
      times.sort((a, b) => a - b)
      ;(res[`${d}|${name}`] ??= []).push(times[times.length >> 1])
    }
  }
}
const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1]
for (const [key, v] of Object.entries(res)) {
  const [d, name] = key.split('|')
  const ratio = d === dtypes[0] ? '' : `  ${(median(res[`${dtypes[0]}|${name}`]) / median(v)).toFixed(2)}× ${dtypes[0]}`
  console.log(`${d.padEnd(5)} ${name.padEnd(13)} ${median(v).toFixed(1).padStart(9)} ms [${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)}]${ratio}`)
}
