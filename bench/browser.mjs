#!/usr/bin/env node
// `node bench/browser.mjs [--rounds N] [--models norne-compact,bert-base-random] [--threads T]`:
// in headless Chromium, our package's browser build (the WebAssembly binding, f32 and q8)
// against transformers.js' `device: 'wasm'` (onnxruntime-web; fp32 and q8 ONNX graphs), each
// page bundled by esbuild from the package as a web app gets it and served cross-origin
// isolated from 127.0.0.1, on the workload of `bench/wasm.mjs` (NorNE dev sentences in batches
// of 32, 2,000-character documents, one-sentence calls; aggregation 'simple' for both). Each
// run is a fresh browser (cold caches), systems interleaved round after round; medians over
// rounds, ratios the median [min–max] of the rounds' own. Needs the wasm build
// (node scripts/build-native.mjs --target wasm32-wasip1-threads), `npm run build:ts`, the bench
// models with their ONNX exports (bench/make_models.py) and bench/node_modules. Writes the
// "Chromium" section of bench/RESULTS.md.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, URLSearchParams } from 'node:url'

import { bundle, chromium, runChromium, servePage } from '../scripts/browser-page.mjs'
import { devWorkload, fixed as f, interleave, median, roundRatio, WASM_SIZES, wasmBenchArgs, writeSection } from './workload.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))

const values = wasmBenchArgs()
const threads = Number(values.threads)
const rounds = Number(values.rounds)
if (!chromium) throw new Error('no Chromium (apt-get install chromium)')

const dev = devWorkload(values.norne)

// One timing body for both systems: `ner(texts, options)` under each.
const RUN = `
const q = new URLSearchParams(location.search)
const report = (o) => fetch('/result', { method: 'POST', body: JSON.stringify(o) })
const w = await (await fetch('/workload.json')).json()
const timed = async (f) => { const t = performance.now(); await f(); return performance.now() - t }
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] }
async function bench(load, ner) {
  const inBatches = async (texts) => { for (let i = 0; i < texts.length; i += 32) await ner(texts.slice(i, i + 32)) }
  await ner(w.short.slice(0, 8))
  const shortMs = await timed(() => inBatches(w.short))
  const longMs = await timed(() => inBatches(w.long))
  const ms = []
  for (const t of w.latency) ms.push(await timed(() => ner(t)))
  await report({ loadMs: load, shortMs, longMs, p50: pct(ms, 50), p99: pct(ms, 99) })
}
try {
  await main()
} catch (e) {
  await report({ error: String((e && e.stack) || e).slice(0, 500) })
}
`
const PAGES = {
  ours: `import { pipeline } from 'eurobert-ner'
${RUN}
async function main() {
  const t = performance.now()
  const ner = await pipeline(new URL('/models/' + q.get('model') + '/', location.href), { threads: Number(q.get('threads')), dtype: q.get('dtype') })
  await bench(performance.now() - t, (x) => ner(x, { aggregationStrategy: 'simple' }))
}
`,
  tjs: `import { env, pipeline } from '@huggingface/transformers'
${RUN}
async function main() {
  env.allowRemoteModels = false
  env.allowLocalModels = true
  env.localModelPath = '/models/'
  env.useBrowserCache = false
  env.backends.onnx.wasm.wasmPaths = '/ort/'
  env.backends.onnx.wasm.numThreads = Number(q.get('threads'))
  const t = performance.now()
  const ner = await pipeline('token-classification', q.get('model'), { dtype: q.get('dtype'), device: 'wasm' })
  await bench(performance.now() - t, (x) => ner(x, { aggregation_strategy: 'simple' }))
}
`,
}

const site = await bundle(PAGES, [path.join(here, 'node_modules')])
let work
let reported = () => undefined
const server = await servePage({
  site: site.site,
  folders: { '/models/': values.out, '/ort/': path.join(here, 'node_modules', 'onnxruntime-web', 'dist') },
  json: { get '/workload.json'() { return work } },
  onReport: (r) => reported(r),
})
/** One system's run in a fresh browser: its report, or { error }. */
async function runPage(page, query) {
  let result
  const got = new Promise((resolve) => (reported = (r) => ((result = r), resolve())))
  const { finished, peakRendererMB } = await runChromium(`${server.origin}/${page}?${new URLSearchParams(query)}`, got, 600_000)
  return finished ? { ...result, peakRendererMB } : { error: 'no report within 600 s' }
}

const sections = []
for (const name of values.models.split(',')) {
  const size = WASM_SIZES[name] ?? WASM_SIZES['bert-base-random']
  work = dev.work(size)
  const q = { model: name, threads }
  const systems = [
    ['eurobert-ner wasm f32', () => runPage('ours', { ...q, dtype: 'f32' })],
    ['eurobert-ner wasm q8', () => runPage('ours', { ...q, dtype: 'q8' })],
    ['transformers.js wasm fp32', () => runPage('tjs', { ...q, dtype: 'fp32' })],
    ['transformers.js wasm q8', () => runPage('tjs', { ...q, dtype: 'q8' })],
  ]
  const runs = await interleave(name, systems, rounds, work)
  const ratio = (i, j, key) => roundRatio(runs[i], runs[j], key)
  let md = `### ${name} (${work.short.length} sentences, ${work.long.length} documents, ${work.latency.length} one-sentence calls)\n\n`
  md += '| system | sentences/s | documents/s | p50 ms | p99 ms | load ms | renderer peak RSS MB |\n|---|---:|---:|---:|---:|---:|---:|\n'
  systems.forEach(([label], i) => {
    const ok = runs[i].filter((r) => !r.error)
    if (!ok.length) {
      md += `| ${label} | error: ${String(runs[i][0]?.error).replace(/\s+/g, ' ').slice(0, 160)} ||||||\n`
      return
    }
    const m = (k) => median(ok.map((r) => r[k]).filter((x) => x !== undefined))
    md += `| ${label}${label.startsWith('transformers.js') ? ' ¹' : ''} | ${f(m('sentencesPerSecond'))} | ${f(m('longDocsPerSecond'), 2)} | ${f(m('p50'), 2)} | ${f(m('p99'), 2)} | ${f(m('loadMs'), 0)} | ${f(m('peakRendererMB'), 0)} |\n`
  })
  md += `\nOurs ÷ transformers.js, sentences/s: f32 ${ratio(0, 2, 'sentencesPerSecond')}, q8 ${ratio(1, 3, 'sentencesPerSecond')}; documents/s f32 ${ratio(0, 2, 'longDocsPerSecond')}, q8 ${ratio(1, 3, 'longDocsPerSecond')}; one-sentence p50 (below 1: we answer sooner) f32 ${ratio(0, 2, 'p50')}, q8 ${ratio(1, 3, 'p50')}.\n`
  sections.push(md)
}
server.close()
site.remove()

const command = `node bench/browser.mjs --rounds ${rounds} --models ${values.models}`
const version = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', '@huggingface', 'transformers', 'package.json'), 'utf8')).version
const section =
  `## Chromium (${new Date().toISOString().slice(0, 10)}, \`${command}\`)\n\n` +
  `Machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores; headless Chromium (Debian's), ${threads} threads for both (our rayon pool in wasm threads; onnxruntime-web's numThreads). ` +
  `Ours: the package's browser build (\`import { pipeline } from 'eurobert-ner'\`, bundled by esbuild), the model fetched from its URL. transformers.js ${version}: \`pipeline('token-classification', model, { device: 'wasm' })\`, onnxruntime-web's SIMD+threads wasm. ` +
  'Both aggregate with `simple`; load is from a fresh browser (no cache) over 127.0.0.1; memory is the peak RSS of the page\'s renderer process (the page, its workers, their wasm memories; Chromium\'s own baseline included). ' +
  '¹ transformers.js has no stride: a document longer than the model\'s 512 tokens is cut there (less work than our windows over all of it).\n\n' +
  sections.join('\n')
writeSection(path.join(here, 'RESULTS.md'), /^## Chromium/m, section)
console.log(section)
