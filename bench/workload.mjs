// What the benchmarks share: the NorNE dev workload (every dev sentence of both standards as
// raw text, ~2,000-character documents, one-sentence calls of 40–120 characters), medians, and
// rewriting one section of bench/RESULTS.md.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

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
