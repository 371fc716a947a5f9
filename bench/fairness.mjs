#!/usr/bin/env node
// Fair scheduling, measured: how long a one-sentence ner() call waits while a long document
// (165,000 characters, as in the audit) is being tagged on the same pipeline, against the same
// sentence on an idle pipeline. The batcher runs work in steps of about 200 ms, a newcomer's
// window first, so a short call should wait for at most about one step.
// Usage: node bench/fairness.mjs [--model DIR] [--threads 2] [--chars 165000] [--probes 20]
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { pipeline, BUNDLED_MODEL } = require('../dist/index.js')

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: BUNDLED_MODEL },
    threads: { type: 'string', default: '2' },
    chars: { type: 'string', default: '165000' },
    probes: { type: 'string', default: '20' },
  },
})
const SENTENCE = 'Jonas Gahr Støre møtte styret i Equinor i Stavanger.'
const PARAGRAPH = 'Erna Solberg besøkte Universitetet i Oslo forrige uke, og Jonas Gahr Støre var i Bergen med NRK. '
const long = PARAGRAPH.repeat(Math.ceil(Number(values.chars) / PARAGRAPH.length)).slice(0, Number(values.chars))
const ner = await pipeline(values.model, { threads: Number(values.threads) })
const ms = async (f) => {
  const t = performance.now()
  await f()
  return performance.now() - t
}
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]

await ner(SENTENCE)
const idle = []
for (let i = 0; i < Number(values.probes); i++) idle.push(await ms(() => ner(SENTENCE)))

const { tokens } = await ner.cost(long)
let longDone = false
const started = performance.now()
const longCall = ner(long).then(() => (longDone = true))
await new Promise((r) => setTimeout(r, 300))
const busy = []
while (!longDone && busy.length < Number(values.probes)) {
  busy.push(await ms(() => ner(SENTENCE)))
  await new Promise((r) => setTimeout(r, 50))
}
await longCall
const longMs = performance.now() - started

const f = (x) => x.toFixed(1)
console.log(`model ${values.model}, ${values.threads} threads; long document ${long.length} characters, ${tokens} window tokens, ${f(longMs / 1000)} s alone-ish`)
console.log(`one sentence, idle pipeline:          p50 ${f(pct(idle, 50))} ms, max ${f(Math.max(...idle))} ms (${idle.length} calls)`)
console.log(`one sentence, while the long one runs: p50 ${f(pct(busy, 50))} ms, max ${f(Math.max(...busy))} ms (${busy.length} calls)`)
ner.dispose()
