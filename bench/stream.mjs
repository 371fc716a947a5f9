#!/usr/bin/env node
// ner.stream() next to one big ner(texts) call on 10,000 documents (NorNE dev sentences,
// repeated): documents/s of each, interleaved over rounds (median [min–max]), and the peak
// RSS of each, measured in its own child process. Usage:
//   node bench/stream.mjs [--norne ../shared/norne] [--docs 10000] [--rounds 3] [--threads 2]
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { values } = parseArgs({
  options: {
    norne: { type: 'string', default: '../shared/norne' },
    docs: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    one: { type: 'string' },
  },
})

if (values.one) {
  // One measurement in this process: print docs/s and the peak RSS.
  const { pipeline, readConllu } = require('../dist/index.js')
  const sentences = readConllu(['nob', 'nno'].map((l) => path.join(values.norne, l, 'dev.conllu'))).map((s) => s.text)
  const n = Number(values.docs)
  const docs = Array.from({ length: n }, (_, i) => sentences[i % sentences.length])
  const ner = await pipeline(undefined, { threads: Number(values.threads) })
  await ner(docs.slice(0, 64), { aggregationStrategy: 'first' })
  const t0 = performance.now()
  let count = 0
  if (values.one === 'stream') {
    for await (const r of ner.stream(docs, { aggregationStrategy: 'first' })) count += r.entities.length >= 0 ? 1 : 0
  } else {
    count = (await ner(docs, { aggregationStrategy: 'first' })).length
  }
  const secs = (performance.now() - t0) / 1000
  console.log(JSON.stringify({ mode: values.one, docs: count, docsPerSec: count / secs, peakRssMB: process.resourceUsage().maxRSS / 1024 }))
  process.exit(0)
}

const self = fileURLToPath(import.meta.url)
const runs = { stream: [], call: [] }
for (let r = 0; r < Number(values.rounds); r++) {
  for (const mode of ['stream', 'call']) {
    const out = execFileSync(process.execPath, [self, '--one', mode, '--docs', values.docs, '--threads', values.threads, '--norne', values.norne], { encoding: 'utf8' })
    runs[mode].push(JSON.parse(out.trim().split('\n').pop()))
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
for (const mode of ['stream', 'call']) {
  const rates = runs[mode].map((x) => x.docsPerSec)
  const rss = runs[mode].map((x) => x.peakRssMB)
  console.log(`${mode === 'stream' ? 'ner.stream(docs)' : 'ner(docs)       '}  ${median(rates).toFixed(0)} docs/s [${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)}]  peak RSS ${median(rss).toFixed(0)} MB [${Math.min(...rss).toFixed(0)}–${Math.max(...rss).toFixed(0)}]`)
}
