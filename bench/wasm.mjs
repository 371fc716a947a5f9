#!/usr/bin/env node
// `node bench/wasm.mjs [--rounds N] [--models norne-compact,bert-base-random] [--threads T]`:
// the WebAssembly binding (wasm32-wasip1-threads under Node's WASI, NAPI_RS_FORCE_WASI=error)
// against our native binding and onnxruntime-web's WebAssembly backend (transformers.js' wasm
// engine; transformers.js itself offers that device only in browsers), on the
// same workload as `npm run bench` (NorNE dev sentences in batches of 32, 2,000-character
// documents, one-sentence calls), each system in its own process, interleaved round after
// round; medians over rounds, ratios the median [min–max] of the rounds' own. Needs
// `node scripts/build-native.mjs --target wasm32-wasip1-threads` and the bench models
// (bench/make_models.py). Writes the "WebAssembly" section of bench/RESULTS.md.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { devWorkload, fixed as f, interleave, median, roundRatio, WASM_SIZES, wasmBenchArgs, writeSection } from './workload.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.dirname(here)

const values = wasmBenchArgs()
const threads = values.threads
const rounds = Number(values.rounds)
if (!fs.existsSync(path.join(root, 'eurobert-ner.wasm32-wasi.wasm'))) throw new Error('build the WebAssembly binding first: node scripts/build-native.mjs --target wasm32-wasip1-threads')

const dev = devWorkload(values.norne)

function child(args, env = {}) {
  const r = spawnSync('node', args, { cwd: here, encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, ...env, NODE_NO_WARNINGS: '1' } })
  const line = r.stdout?.trim().split('\n').pop()
  if (r.status !== 0 || !line?.startsWith('{')) return { error: (r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-3).join(' | ') }
  return JSON.parse(line)
}
const sections = []
for (const name of values.models.split(',')) {
  const dir = path.join(values.out, name)
  const size = WASM_SIZES[name] ?? WASM_SIZES['bert-base-random']
  const work = dev.work(size)
  const workFile = path.join(os.tmpdir(), `bench-wasm-${name}.json`)
  fs.writeFileSync(workFile, JSON.stringify(work))
  const common = ['--model', dir, '--work', workFile, '--threads', threads, '--batch-size', '32', '--stride', '128']
  const WASI = { NAPI_RS_FORCE_WASI: 'error' }
  const systems = [
    ['eurobert-ner (native)', () => child(['systems/ours.mjs', ...common])],
    ['eurobert-ner wasm', () => child(['systems/ours.mjs', ...common], WASI)],
    ['eurobert-ner wasm q8', () => child(['systems/ours.mjs', ...common, '--dtype', 'q8'], WASI)],
    // transformers.js offers its wasm device only in browsers; in Node its engine,
    // onnxruntime-web, runs the same graphs (tokenized by our tokenizer, no aggregation).
    ['onnxruntime-web wasm fp32', () => child(['systems/ort.mjs', ...common, '--file', 'model.onnx', '--max-length', '512', '--web', '1'])],
    ['onnxruntime-web wasm q8', () => child(['systems/ort.mjs', ...common, '--file', 'model_quantized.onnx', '--max-length', '512', '--web', '1'])],
  ]
  const runs = await interleave(name, systems, rounds, work)
  const ratio = (i, j, key) => roundRatio(runs[i], runs[j], key)
  let md = `### ${name} (${work.short.length} sentences, ${work.long.length} documents, ${work.latency.length} one-sentence calls)\n\n`
  md += '| system | sentences/s | documents/s | p50 ms | p99 ms | load ms | RSS after load MB | peak RSS MB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n'
  systems.forEach(([label], i) => {
    const ok = runs[i].filter((r) => !r.error)
    if (!ok.length) {
      md += `| ${label} | error: ${String(runs[i][0]?.error).slice(0, 120)} |||||||\n`
      return
    }
    const m = (k) => median(ok.map((r) => r[k]).filter((x) => x !== undefined))
    md += `| ${label}${ok[0].longTruncated ? ' ¹' : ''} | ${f(m('sentencesPerSecond'))} | ${f(m('longDocsPerSecond'), 2)} | ${f(m('p50'), 2)} | ${f(m('p99'), 2)} | ${f(m('loadMs'), 0)} | ${f(m('loadRssMB'), 0)} | ${f(m('peakRssMB'), 0)} |\n`
  })
  md += `\nOurs wasm ÷ onnxruntime-web wasm, sentences/s: f32 ${ratio(1, 3, 'sentencesPerSecond')}, q8 ${ratio(2, 4, 'sentencesPerSecond')}; one-sentence p50 (below 1: we answer sooner) f32 ${ratio(1, 3, 'p50')}, q8 ${ratio(2, 4, 'p50')}. `
  md += `Ours native ÷ ours wasm: sentences ${ratio(0, 1, 'sentencesPerSecond')}, documents ${ratio(0, 1, 'longDocsPerSecond')}, p50 wasm ÷ native ${ratio(1, 0, 'p50')}.\n`
  sections.push(md)
}

const command = `node bench/wasm.mjs --rounds ${rounds} --models ${values.models}`
const section =
  `## WebAssembly (${new Date().toISOString().slice(0, 10)}, \`${command}\`)\n\n` +
  `Machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores; ${threads} threads everywhere (our rayon pool in WASI threads; onnxruntime-web's numThreads). Node ${process.version}. ` +
  'Our wasm32-wasip1-threads binding under Node\'s WASI (@napi-rs/wasm-runtime; SIMD128, rten-gemm\'s wasm kernels), the whole pipeline (tokenization, windows, aggregation); onnxruntime-web\'s WebAssembly backend (SIMD, threads; the engine of transformers.js\' `device: \'wasm\'`, which transformers.js offers only in browsers) on the same ONNX graphs as `npm run bench`, fed by our native tokenizer and without aggregation (less work than ours). Documents/s counts whole 2,000-character documents (ORT: windows of 512 tokens without overlap).\n\n' +
  sections.join('\n')
writeSection(path.join(here, 'RESULTS.md'), /^## WebAssembly/m, section)
console.log(section)
