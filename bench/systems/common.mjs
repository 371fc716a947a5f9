// Shared by the benchmark workers: the workload file, timing and the JSON line they print.
import fs from 'node:fs'

export function args() {
  const out = {}
  const a = process.argv.slice(2)
  for (let i = 0; i < a.length; i += 2) out[a[i].replace(/^--/, '')] = a[i + 1]
  return out
}

/** { short: string[], long: string[], latency: string[] } */
export function workload(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'))
}

export async function timed(fn) {
  const t = performance.now()
  const value = await fn()
  return { ms: performance.now() - t, value }
}

export function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

export async function latencies(texts, run) {
  const ms = []
  for (const t of texts) ms.push((await timed(() => run(t))).ms)
  return { p50: percentile(ms, 50), p95: percentile(ms, 95), p99: percentile(ms, 99), calls: ms.length }
}

export function report(fields) {
  const maxRssMB = process.resourceUsage().maxRSS / 1024
  console.log(JSON.stringify({ ...fields, peakRssMB: +maxRssMB.toFixed(1) }))
}
