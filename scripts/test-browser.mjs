#!/usr/bin/env node
// `npm run test:browser`: the package in headless Chromium (Debian's), as a page gets it.
//   1. The page is bundled by esbuild from `import { pipeline } from 'eurobert-ner'` (the
//      package's `browser` export condition and `browser` field), the WebAssembly package
//      staged as npm installs it, napi-rs' thread worker bundled beside the page.
//   2. A server on 127.0.0.1 serves it with the cross-origin isolation headers threads need
//      (COOP same-origin, COEP require-corp), and the bundled model as static files.
//   3. The page loads the model from its URL, then again from the Cache API, then from its files
//      as Blobs, runs ner() under every aggregation strategy, and posts what it got; the
//      entities must equal the native build's on the same texts.
// --built skips building (scripts/test-wasi.mjs has just built the TypeScript and the wasm).
// Ends with `N passed, N failed, N skipped`.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

import { bundle, chromium, root, runChromium, servePage } from './browser-page.mjs'

const require = createRequire(import.meta.url)
const MODEL = path.join(root, 'models', 'norne-compact')
const STRATEGIES = ['none', 'simple', 'first', 'average', 'max']
const TEXTS = JSON.parse(fs.readFileSync(path.join(root, '__test__', 'fixtures', 'norne-compact.expected.json'), 'utf8')).sentences.map((s) => s.text)
// A long text of several windows, and texts the tokenizer must not trip on.
TEXTS.push(TEXTS.join(' ').repeat(12), '', '🙂 Oslo 🙂', 'Ærlig talt: Tromsø – Bodø.')

let passed = 0
let failed = 0
let skipped = 0
const check = (ok, what, detail = '') => {
  if (ok) passed++
  else failed++
  console.log(`${ok ? 'ok' : 'not ok'} - ${what}${!ok && detail ? `\n  ${detail}` : ''}`)
}
const done = () => {
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
  process.exit(failed > 0 ? 1 : 0)
}

if (!chromium) {
  console.log('# no Chromium found (apt-get install chromium): the browser test was skipped')
  skipped++
  done()
}

if (!process.argv.includes('--built')) {
  for (const args of [['run', 'build:ts'], ['run', 'build:native', '--', '--target', 'wasm32-wasip1-threads']]) {
    const r = spawnSync('npm', args, { cwd: root, stdio: 'inherit' })
    if (r.status !== 0) {
      check(false, `npm ${args.join(' ')}`)
      done()
    }
  }
}

// 1. The page, bundled from the package's name.
const PAGE = `import { pipeline, cpuKernels, CACHE_NAME } from 'eurobert-ner'
const report = (o) => fetch('/result', { method: 'POST', body: JSON.stringify(o) })
const texts = await (await fetch('/texts.json')).json()
const strategies = ${JSON.stringify(STRATEGIES)}
if (!crossOriginIsolated) {
  let error = ''
  try {
    await pipeline(new URL('/model/', location.href))
  } catch (e) {
    error = String(e)
  }
  await report({ phase: 'plain', error })
} else try {
  const runAll = async (ner) => {
    const out = {}
    for (const s of strategies) out[s] = await ner(texts, { aggregationStrategy: s })
    return out
  }
  await caches.delete(CACHE_NAME)
  let t = performance.now()
  const events = []
  const ner = await pipeline(new URL('/model/', location.href), { threads: 2, onProgress: (e) => events.push(e.status) })
  const loadMs = performance.now() - t
  const results = await runAll(ner)
  // Speed: the short texts, many times, after a warm-up.
  const short = texts.slice(0, 5)
  await ner(short)
  t = performance.now()
  const rounds = 20
  for (let i = 0; i < rounds; i++) await ner(short)
  const sentencesPerSecond = (rounds * short.length) / ((performance.now() - t) / 1000)
  await report({ phase: 'url', loadMs, events, results, kernels: cpuKernels(), isolated: crossOriginIsolated, threads: ner.model.threads, sentencesPerSecond })
  t = performance.now()
  const cached = await pipeline(location.origin + '/model/', { threads: 2 })
  await report({ phase: 'cache', loadMs: performance.now() - t, results: await runAll(cached) })
  const names = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']
  const files = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await (await fetch('/model/' + n)).blob()])))
  const fromFiles = await pipeline(files, { threads: 2 })
  await report({ phase: 'files', results: await runAll(fromFiles), path: fromFiles.model.path })
  let refused = ''
  try {
    await pipeline('./models/norne-compact')
  } catch (e) {
    refused = String(e)
  }
  await report({ phase: 'end', refused })
  // The same page without the isolation headers.
  location.href = '/plain'
} catch (e) {
  await report({ phase: 'error', error: String((e && e.stack) || e) })
}
`
let site
try {
  site = await bundle({ page: PAGE })
  check(true, 'esbuild bundles the page from the package name and the worker beside it')
} catch (e) {
  check(false, 'esbuild bundles the page from the package name and the worker beside it', String(e))
  done()
}
const bundleBytes = fs.statSync(path.join(site.site, 'page.js')).size
const wasmBytes = fs.statSync(path.join(site.site, 'eurobert-ner.wasm32-wasi.relaxed.wasm')).size
const bundleText = fs.readFileSync(path.join(site.site, 'page.js'), 'utf8')
check(!/["']node:|require\(["'](fs|path|os)["']\)/.test(bundleText), 'the bundle holds no Node module')

// 2. The server: the page, isolated (and once without the headers, at /plain); the model as
// static files. 3. Chromium runs the page until it reports its end (or an error).
const reports = []
let onReport = () => undefined
const server = await servePage({
  site: site.site,
  folders: { '/model/': MODEL },
  json: { '/texts.json': TEXTS },
  plain: ['plain'],
  onReport: (r) => (reports.push(r), onReport()),
})
fs.copyFileSync(path.join(site.site, 'page.js'), path.join(site.site, 'plain.js'))
const requests = server.requests
const timeoutMs = 300_000
const ended = new Promise((resolve) => (onReport = () => reports.some((r) => r.phase === 'plain' || r.phase === 'error') && resolve()))
const { finished, peakRendererMB } = await runChromium(`${server.origin}/page`, ended, timeoutMs)
server.close()
check(finished, `the page reports within ${timeoutMs / 1000} s`)
const error = reports.find((r) => r.phase === 'error')
check(!error, 'the page ran without an error', error?.error)

// The native build's entities on the same texts: what every page load must equal.
const { pipeline } = require(root)
const native = await pipeline(MODEL, { threads: 2 })
const want = {}
for (const s of STRATEGIES) want[s] = await native(TEXTS, { aggregationStrategy: s })
/** Same entities (words, labels, offsets); scores within what f32 kernels of two ISAs differ by. */
function compare(got, label) {
  let worst = 0
  let same = got !== undefined
  for (const s of STRATEGIES) {
    const a = got?.[s]
    const b = want[s]
    if (!a || a.length !== b.length) {
      same = false
      continue
    }
    a.forEach((es, i) => {
      const strip = (x) => x.map(({ score: _s, ...rest }) => rest)
      if (JSON.stringify(strip(es)) !== JSON.stringify(strip(b[i]))) same = false
      es.forEach((e, j) => (worst = Math.max(worst, Math.abs(e.score - (b[i][j]?.score ?? NaN)))))
    })
  }
  const entities = STRATEGIES.reduce((n, s) => n + want[s].flat().length, 0)
  check(same && worst < 1e-4, `${label}: the entities of the native build under all ${STRATEGIES.length} strategies (${entities} entities; worst score diff ${worst.toExponential(2)})`, same ? `score diff ${worst}` : String(JSON.stringify(got?.simple?.[0])).slice(0, 300))
}
const url = reports.find((r) => r.phase === 'url')
const cache = reports.find((r) => r.phase === 'cache')
const files = reports.find((r) => r.phase === 'files')
const end = reports.find((r) => r.phase === 'end')
if (url) {
  check(url.isolated === true, 'the page is cross-origin isolated (SharedArrayBuffer for the threads)')
  // Chromium has relaxed SIMD: the loader takes that build.
  check(url.kernels?.elementwise === 'simd128+relaxed', `relaxed-SIMD kernels (${JSON.stringify(url.kernels)})`)
  check(url.threads === 2, `the model runs 2 threads (${url.threads})`)
  check(url.events?.at(-1) === 'ready' && url.events.includes('progress'), 'progress events as transformers.js sends them, ending in ready')
  compare(url.results, 'from a URL')
}
compare(cache?.results, 'from the Cache API')
const weightFetches = requests.filter((p) => p === '/model/model.safetensors').length
// One fetch for the URL load and one by the page itself for the Blobs; none for the cached load.
check(weightFetches === 2, `the cached load fetches no weights (model.safetensors fetched ${weightFetches} times, 2 expected)`)
compare(files?.results, 'from files as Blobs')
check(files?.path === '(in memory)', 'a model from files has no path')
check(/a browser has no folders/.test(end?.refused ?? ''), 'a folder name is refused with what to do instead', end?.refused)
const plain = reports.find((r) => r.phase === 'plain')
check(/not cross-origin isolated.*Cross-Origin-Opener-Policy: same-origin/.test(plain?.error ?? ''), 'a page without the isolation headers gets an error naming them', plain?.error)
if (url) {
  console.log(`# Chromium, WebAssembly: model load ${url.loadMs.toFixed(0)} ms from the URL, ${cache?.loadMs?.toFixed(0)} ms from the cache; ${url.sentencesPerSecond.toFixed(0)} sentences/s (5 short sentences per call, 2 threads)`)
  console.log(`# page bundle ${(bundleBytes / 1024).toFixed(0)} KiB, wasm ${(wasmBytes / 1048576).toFixed(1)} MiB; the renderer's peak RSS ${peakRendererMB?.toFixed(0)} MB (three models loaded one after another)`)
}
site.remove()
done()
