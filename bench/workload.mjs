// What the benchmarks share: the NorNE dev workload (every dev sentence of both standards as
// raw text, ~2,000-character documents, one-sentence calls of 40–120 characters), medians, and
// rewriting one section of bench/RESULTS.md.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const here = path.dirname(fileURLToPath(import.meta.url))

/** The options of the WebAssembly benchmarks (bench/wasm.mjs, bench/browser.mjs), parsed. */
export function wasmBenchArgs() {
  return parseArgs({
    options: {
      norne: { type: 'string', default: path.join(here, '..', '..', 'shared', 'norne') },
      threads: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      models: { type: 'string', default: 'norne-compact,bert-base-random' },
      out: { type: 'string', default: path.join(here, 'out') },
    },
  }).values
}

/** Their work per model: smaller than `npm run bench`'s, WebAssembly being slower. */
export const WASM_SIZES = { 'norne-compact': { short: 1000, long: 20, latency: 200 }, 'bert-base-random': { short: 200, long: 5, latency: 50 } }

/** The dev sentences, the short ones for latency calls, and `docs(n)`: n documents of 2,000 characters. */
export function devWorkload(norne) {
  const { readConllu } = require('../dist/index.js')
  const sentences = readConllu(['nob', 'nno'].map((l) => path.join(norne, l, 'dev.conllu'))).map((s) => s.text)
  const single = sentences.filter((s) => s.length >= 40 && s.length <= 120)
  const docs = (n) => {
    const out = []
    for (let i = 0; out.length < n; ) {
      let d = ''
      while (d.length < 2000) d += sentences[i++ % sentences.length] + ' '
      out.push(d.slice(0, 2000))
    }
    return out
  }
  /** `short` sentences, `long` documents and `latency` one-sentence calls. */
  const work = (size) => ({ short: sentences.slice(0, size.short), long: docs(size.long), latency: Array.from({ length: size.latency }, (_, i) => single[i % single.length]) })
  return { sentences, single, docs, work }
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

export const fixed = (x, d = 1) => (x === undefined || Number.isNaN(x) ? '–' : Number(x).toFixed(d))

/** `a[key] ÷ b[key]` round by round (rounds where both ran) as `median [min–max]`, or '–'. */
export function roundRatio(a, b, key) {
  const xs = a.map((x, k) => (x.error || b[k]?.error ? undefined : x[key] / b[k][key])).filter((x) => x > 0)
  return xs.length ? `${fixed(median(xs), 2)} [${fixed(Math.min(...xs), 2)}–${fixed(Math.max(...xs), 2)}]` : '–'
}

/** Replaces the section of RESULTS.md whose heading matches `heading` (or adds it before History). */
export function writeSection(file, heading, section) {
  const previous = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
  const start = previous.search(heading)
  let out
  if (start < 0) {
    const history = previous.search(/^## History/m)
    out = history < 0 ? previous + '\n' + section : previous.slice(0, history) + section + '\n' + previous.slice(history)
  } else {
    const rest = previous.slice(start + 3).search(/^## /m)
    out = previous.slice(0, start) + section + '\n' + (rest < 0 ? '' : previous.slice(start + 3 + rest))
  }
  fs.writeFileSync(file, out)
}

/**
 * `rounds` rounds of every system in turn (interleaved, so machine noise hits all alike):
 * each system's results per round, with sentences/s and documents/s from its times on `work`.
 */
export async function interleave(name, systems, rounds, work) {
  const runs = systems.map(() => [])
  for (let round = 0; round < rounds; round++) {
    for (const [i, [label, run]] of systems.entries()) {
      const r = await run()
      if (!r.error) {
        r.sentencesPerSecond = work.short.length / (r.shortMs / 1000)
        r.longDocsPerSecond = work.long.length / (r.longMs / 1000)
      }
      runs[i].push(r)
      console.error(`${name} round ${round + 1}/${rounds} ${label}: ${JSON.stringify(r)}`)
    }
  }
  return runs
}
