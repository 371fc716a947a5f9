#!/usr/bin/env node
// `node bench/batch-call.mjs [--root CHECKOUT] [--model DIR] [--dtype D] [--count N] [--runs N]`:
// one ner() of the first N NorNE nob dev sentences (../shared/norne), the sentences cell of
// `npm run bench` without the peers, timed N times after 3 to warm up: median and min.
// `--root` runs another checkout's build (a worktree of an earlier commit), so two builds
// can be alternated on one machine (A/B).
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
const { values } = parseArgs({
  options: {
    root: { type: 'string', default: path.join(here, '..') },
    model: { type: 'string', default: path.join(here, '..', 'models', 'norne-compact') },
    dtype: { type: 'string', default: 'q8' },
    count: { type: 'string', default: '1000' },
    runs: { type: 'string', default: '10' },
    norne: { type: 'string', default: path.join(here, '..', '..', 'shared', 'norne') },
  },
})
const require = createRequire(import.meta.url)
const { pipeline } = require(path.resolve(values.root, 'dist', 'index.js'))
const texts = fs
  .readFileSync(path.join(values.norne, 'nob', 'dev.conllu'), 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('# text = '))
  .map((l) => l.slice(9))
  .slice(0, Number(values.count))
const ner = await pipeline(values.model, { threads: 2, dtype: values.dtype })
const opts = { aggregationStrategy: 'simple' }
for (let i = 0; i < 3; i++) await ner(texts, opts)
const ms = []
for (let i = 0; i < Number(values.runs); i++) {
  const t = performance.now()
  await ner(texts, opts)
  ms.push(performance.now() - t)
}
ms.sort((a, b) => a - b)
const median = ms[ms.length >> 1]
console.log(`${values.root} ${path.basename(values.model)} ${values.dtype}: ${texts.length} sentences, median ${median.toFixed(1)} ms (min ${ms[0].toFixed(1)}), ${((texts.length / median) * 1000).toFixed(0)} sentences/s`)
