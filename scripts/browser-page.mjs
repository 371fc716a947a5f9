// Pages in headless Chromium, for `npm run test:browser` and `node bench/browser.mjs`:
// `bundle` builds a page with esbuild from its source, resolving `eurobert-ner` as a page gets
// the package (its `browser` condition; the WebAssembly package staged as npm installs it, with
// napi-rs' thread worker and the .wasm beside the bundle); `servePage` serves it cross-origin
// isolated on 127.0.0.1 with static folders and collects what the page POSTs to /result;
// `runChromium` opens a URL until the page says it is done.
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

export const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const require = createRequire(import.meta.url)

export const chromium = ['chromium', 'chromium-browser', 'google-chrome'].find((c) => spawnSync(c, ['--version']).status === 0)

/**
 * Bundles `pages` ({ name: source }) into a fresh folder `site`, each as `<name>.js`, beside
 * napi-rs' worker and the .wasm; `nodePaths` are searched after the staged packages.
 */
export async function bundle(pages, nodePaths = []) {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-page-'))
  const modules = path.join(stage, 'node_modules')
  const wasmPackage = path.join(modules, 'eurobert-ner-wasm32-wasi')
  fs.mkdirSync(wasmPackage, { recursive: true })
  const manifest = path.join(root, 'npm', 'wasm32-wasi', 'package.json')
  fs.copyFileSync(manifest, path.join(wasmPackage, 'package.json'))
  for (const f of JSON.parse(fs.readFileSync(manifest, 'utf8')).files) fs.copyFileSync(path.join(root, f), path.join(wasmPackage, f))
  fs.symlinkSync(root, path.join(modules, 'eurobert-ner'), 'dir')
  const site = path.join(stage, 'site')
  fs.mkdirSync(site)
  const esbuild = require('esbuild')
  const common = { bundle: true, platform: 'browser', format: 'esm', target: 'es2022', nodePaths: [modules, ...nodePaths, path.join(root, 'node_modules')], logLevel: 'warning', absWorkingDir: stage }
  for (const [name, source] of Object.entries(pages)) {
    fs.writeFileSync(path.join(stage, `${name}.mjs`), source)
    await esbuild.build({ ...common, entryPoints: [path.join(stage, `${name}.mjs`)], outfile: path.join(site, `${name}.js`) })
  }
  // napi-rs' loader starts its threads as `new Worker(new URL('./wasi-worker-browser.mjs', import.meta.url))`
  // and fetches the .wasm the same way (the relaxed-SIMD one where the browser has it): all
  // beside the page's bundle.
  await esbuild.build({ ...common, entryPoints: [path.join(wasmPackage, 'wasi-worker-browser.mjs')], outfile: path.join(site, 'wasi-worker-browser.mjs') })
  for (const f of fs.readdirSync(wasmPackage).filter((f) => f.endsWith('.wasm'))) fs.copyFileSync(path.join(wasmPackage, f), path.join(site, f))
  return { stage, site, remove: () => fs.rmSync(stage, { recursive: true, force: true, maxRetries: 5 }) }
}

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html' }
export const ISOLATED = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }

/**
 * Serves `site` at `/`, each of `folders` ({ '/model/': dir }) under its prefix, `/<page>` as a
 * page running `<page>.js` (isolated, unless `plain` lists it), and `json` ({ '/texts.json': value }).
 * Reports POSTed to /result go to `onReport`; `requests` lists the paths asked for.
 */
export async function servePage({ site, folders = {}, json = {}, plain = [], onReport }) {
  const requests = []
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x')
    const headers = { ...ISOLATED, 'cache-control': 'no-store' }
    if (req.method === 'POST' && url.pathname === '/result') {
      let body = ''
      req.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => {
        res.end()
        onReport(JSON.parse(body))
      })
      return
    }
    requests.push(url.pathname)
    if (json[url.pathname] !== undefined) return res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(json[url.pathname]))
    const page = url.pathname.slice(1) || 'page'
    if (fs.existsSync(path.join(site, `${page}.js`)) && !page.includes('.')) {
      const html = `<!doctype html><meta charset="utf-8"><script type="module" src="/${page}.js"></script>`
      return res.writeHead(200, { ...(plain.includes(page) ? {} : headers), 'content-type': 'text/html' }).end(html)
    }
    const prefix = Object.keys(folders).find((p) => url.pathname.startsWith(p))
    const rel = decodeURIComponent(prefix ? url.pathname.slice(prefix.length) : url.pathname.slice(1))
    const base = prefix ? folders[prefix] : site
    const file = path.join(base, rel)
    if (rel.split('/').includes('..') || !file.startsWith(base) || !fs.existsSync(file) || !fs.statSync(file).isFile()) return res.writeHead(404, headers).end()
    const body = fs.readFileSync(file)
    res.writeHead(200, { ...headers, 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': body.length }).end(body)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return { origin: `http://127.0.0.1:${server.address().port}`, requests, close: () => (server.closeAllConnections(), server.close()) }
}

/** Peak RSS (VmHWM) in MB of the renderer processes of the browser using `profile` (Linux). */
function rendererPeakMB(profile) {
  let peak
  for (const pid of fs.existsSync('/proc') ? fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)) : []) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      if (!cmd.includes('--type=renderer') || !cmd.includes(profile)) continue
      const kb = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])
      if (kb > 0) peak = Math.max(peak ?? 0, kb / 1024)
    } catch {
      // gone meanwhile
    }
  }
  return peak
}

/**
 * Opens `url` in headless Chromium until `done` resolves, or `timeoutMs` passes: whether it
 * did, and the page's renderer's peak RSS (the page, its workers and their wasm memories).
 */
export async function runChromium(url, done, timeoutMs, flags = []) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-chromium-'))
  const child = spawn(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', `--user-data-dir=${profile}`, ...flags, url], { stdio: 'ignore' })
  let timer
  const finished = await Promise.race([done.then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), timeoutMs)))])
  clearTimeout(timer)
  const peakRendererMB = rendererPeakMB(profile)
  const closed = new Promise((r) => child.on('close', r))
  child.kill('SIGKILL')
  await closed
  // The browser's helper processes may still write for a moment: the profile is best-effort.
  setTimeout(() => fs.rm(profile, { recursive: true, force: true, maxRetries: 5 }, () => undefined), 2000).unref()
  return { finished, peakRendererMB }
}
