#!/usr/bin/env node
// Sentences/s and tokens/s of this runtime on NorNE dev text (both written standards).
// Usage: node bench/dev-throughput.mjs [--norne ../shared/norne] [--model DIR] [--threads 2]
//        [--batch-size 32] [--mode logits|ner]
import { parseArgs } from 'node:util'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { EuroBertModel, pipeline, readConllu, BUNDLED_MODEL } = require('../dist/index.js')

const { values } = parseArgs({
  options: {
    norne: { type: 'string', default: '../shared/norne' },
    model: { type: 'string', default: BUNDLED_MODEL },
    threads: { type: 'string', default: '2' },
    'batch-size': { type: 'string', default: '32' },
    mode: { type: 'string', default: 'ner' },
  },
})
const files = ['nob', 'nno'].map((l) => path.join(values.norne, l, 'dev.conllu'))
const texts = readConllu(files).map((s) => s.text)
const threads = Number(values.threads)
const batchSize = Number(values['batch-size'])

const t0 = performance.now()
const ner = await pipeline(values.model, { threads })
const loadMs = performance.now() - t0
const toks = await ner.model.tokenize(texts)
const tokens = toks.reduce((n, t) => n + t.ids.length, 0)

// Warm-up, then the timed pass over every sentence.
await ner(texts.slice(0, 64), { aggregationStrategy: 'first', batchSize })
const t1 = performance.now()
if (values.mode === 'logits') await ner.model.logits(texts, { batchSize })
else await ner(texts, { aggregationStrategy: 'first', batchSize })
const secs = (performance.now() - t1) / 1000
console.log(
  JSON.stringify({
    model: path.relative(process.cwd(), values.model) || values.model,
    mode: values.mode,
    threads,
    batchSize,
    sentences: texts.length,
    tokens,
    seconds: +secs.toFixed(3),
    sentencesPerSecond: +(texts.length / secs).toFixed(1),
    tokensPerSecond: +(tokens / secs).toFixed(0),
    loadMs: +loadMs.toFixed(1),
  }),
)
ner.dispose()
void EuroBertModel
