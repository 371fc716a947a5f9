#!/usr/bin/env node
// `npm run bench [-- --quick] [-- --rounds N] [-- --norne DIR] [-- --python PATH]`: the same
// workload through this project, transformers.js (fp32 and q8), onnxruntime-node directly, and
// Python transformers on PyTorch when a Python with torch is given; each system in its own
// process so its load time and peak RSS are its own. The systems run interleaved, round after
// round (ours, peers, ours, peers, ...): on a shared machine one run of each is not a
// measurement, so every figure is the median over rounds and every ratio is the median of the
// rounds' own ratios, with its min–max. Writes bench/RESULTS.md and bench/results/*.json.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.dirname(here)
const require = createRequire(import.meta.url)
const { readConllu } = require('../dist/index.js')

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    norne: { type: 'string', default: path.join(root, '..', 'shared', 'norne') },
    python: { type: 'string', default: process.env.BENCH_PYTHON },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    // Comma-separated system families to run: ours, ort, transformersjs, torch (default: all).
    only: { type: 'string' },
    // Comma-separated models to run (default: all): norne-compact, eurobert-610m-random, bert-base-random, xlm-roberta-base-random.
    models: { type: 'string' },
    out: { type: 'string', default: path.join(here, 'out') },
  },
})
const threads = values.threads
const quick = values.quick ?? false
const rounds = Number(values.rounds)
if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`)

// Workload: every NorNE dev sentence (both standards) as raw text, 50 documents of ~2,000
// characters, and single sentences for latency: `latency` calls, one at a time, cycling over
// the dev sentences of 40–120 characters. --quick takes a subset per model size.
const sentences = readConllu(['nob', 'nno'].map((l) => path.join(values.norne, l, 'dev.conllu'))).map((s) => s.text)
function docs(n) {
  const out = []
  let i = 0
  while (out.length < n) {
    let d = ''
    while (d.length < 2000) d += sentences[i++ % sentences.length] + ' '
    out.push(d.slice(0, 2000))
  }
  return out
}
const MODELS = [
  { name: 'norne-compact', dir: path.join(values.out, 'norne-compact'), short: quick ? 1000 : sentences.length, long: 50, latency: 300, maxLength: 512, stride: 128 },
  { name: 'eurobert-610m-random', dir: path.join(values.out, 'eurobert-610m-random'), short: quick ? 64 : 512, long: quick ? 3 : 10, latency: 200, maxLength: 8192, stride: 128, window: 8192 },
  { name: 'bert-base-random', dir: path.join(values.out, 'bert-base-random'), short: quick ? 500 : 2000, long: quick ? 20 : 50, latency: 200, maxLength: 512, stride: 128 },
  { name: 'xlm-roberta-base-random', dir: path.join(values.out, 'xlm-roberta-base-random'), short: quick ? 500 : 2000, long: quick ? 20 : 50, latency: 200, maxLength: 512, stride: 128 },
].filter((m) => !values.models || values.models.split(',').includes(m.name))

function child(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: here, encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, RAYON_NUM_THREADS: threads, OMP_NUM_THREADS: threads } })
  if (r.error) return { error: String(r.error) }
  const line = r.stdout.trim().split('\n').pop()
  if (r.status !== 0 || !line?.startsWith('{')) return { error: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ') }
  return JSON.parse(line)
}

function flopsPerToken(cfg, avgLen) {
  const h = cfg.hidden_size, nh = cfg.num_attention_heads, hd = cfg.head_dim ?? h / nh, kv = cfg.num_key_value_heads ?? nh
  // A GLU MLP (EuroBERT) has three matrices, BERT's family two.
  const mlp = cfg.model_type === 'eurobert' ? 3 : 2
  const perLayer = 2 * (h * (nh + 2 * kv) * hd + nh * hd * h + mlp * h * cfg.intermediate_size) + 4 * avgLen * nh * hd
  return cfg.num_hidden_layers * perLayer + 2 * h * Object.keys(cfg.id2label).length
}

const probe = JSON.parse(
  execFileSync('cargo', ['run', '-q', '--release', '-p', 'eurobert', '--example', 'matmul_probe', '--', threads, '2048'], { cwd: root, encoding: 'utf8' }).trim(),
)
if (values.python && !MODELS.every((m) => fs.existsSync(path.join(m.dir, 'onnx', 'model.onnx')))) {
  execFileSync(values.python, [path.join(here, 'make_models.py'), '--out', values.out, ...(values.models ? ['--only', values.models] : [])], { stdio: 'inherit' })
}
const results = []
const windows = []
const accuracy = []
for (const m of MODELS) {
  if (!fs.existsSync(path.join(m.dir, 'onnx', 'model.onnx'))) {
    console.error(`skipping ${m.name}: run python bench/make_models.py first`)
    continue
  }
  const single = sentences.filter((s) => s.length >= 40 && s.length <= 120)
  const work = { short: sentences.slice(0, m.short), long: docs(m.long), latency: Array.from({ length: m.latency }, (_, i) => single[i % single.length]) }
  const workFile = path.join(os.tmpdir(), `bench-${m.name}.json`)
  fs.writeFileSync(workFile, JSON.stringify(work))
  const check = child('node', ['systems/check.mjs', '--model', m.dir, '--threads', threads])
  if (check.error || check.maxAbsDiffOursVsOrt > 1e-3) throw new Error(`${m.name}: logits disagree before timing: ${JSON.stringify(check)}`)
  const cfg = JSON.parse(fs.readFileSync(path.join(m.dir, 'config.json'), 'utf8'))
  const count = child('node', ['systems/count.mjs', '--model', m.dir, '--work', workFile])
  const common = ['--model', m.dir, '--work', workFile, '--threads', threads, '--batch-size', '32']
  const families = values.only ? values.only.split(',') : ['ours', 'ort', 'transformersjs', 'torch']
  const systems = [
    ['ours', () => child('node', ['systems/ours.mjs', ...common, '--stride', String(m.stride)])],
    ['ours', () => child('node', ['systems/ours.mjs', ...common, '--stride', String(m.stride), '--dtype', 'q8'])],
    ['ort', () => child('node', ['systems/ort.mjs', ...common, '--file', 'model.onnx', '--max-length', String(m.maxLength)])],
    ['ort', () => child('node', ['systems/ort.mjs', ...common, '--file', 'model.onnx', '--max-length', String(m.maxLength), '--spin', '0'])],
    ['ort', () => child('node', ['systems/ort.mjs', ...common, '--file', 'model_quantized.onnx', '--max-length', String(m.maxLength)])],
    ['transformersjs', () => child('node', ['systems/transformersjs.mjs', ...common, '--dtype', 'fp32'])],
    ['transformersjs', () => child('node', ['systems/transformersjs.mjs', ...common, '--dtype', 'q8'])],
    ...(values.python ? [['torch', () => child(values.python, ['systems/torch_peer.py', ...common, '--stride', String(m.stride)])]] : []),
  ]
    .filter(([family]) => families.includes(family))
    .map(([, run]) => run)
  const avgLen = count.short / work.short.length
  const fpt = flopsPerToken(cfg, avgLen)
  const runs = systems.map(() => [])
  for (let round = 0; round < rounds; round++) {
    systems.forEach((run, i) => {
      const r = run()
      if (!r.error) {
        r.sentencesPerSecond = work.short.length / (r.shortMs / 1000)
        r.tokensPerSecond = count.short / (r.shortMs / 1000)
        r.longTokensPerSecond = count.long / (r.longMs / 1000)
        r.peakShare = (fpt * r.tokensPerSecond) / (probe.gflops * 1e9)
      }
      runs[i].push(r)
      console.error(`${m.name} round ${round + 1}/${rounds}: ${JSON.stringify(r)}`)
    })
  }
  for (const rs of runs) {
    const ok = rs.filter((r) => !r.error)
    const row = { model: m.name, sentences: work.short.length, tokens: count.short, longDocs: work.long.length, longTokens: count.long, latencyCalls: work.latency.length, rounds: rs }
    if (ok.length === 0) Object.assign(row, { system: rs[0]?.system, error: rs[0]?.error })
    else {
      row.system = ok[0].system
      row.longTruncated = ok[0].longTruncated
      for (const k of ['sentencesPerSecond', 'tokensPerSecond', 'longTokensPerSecond', 'peakShare', 'p50', 'p95', 'p99', 'loadMs', 'loadRssMB', 'peakRssMB', 'weightMB']) {
        if (ok.some((r) => r[k] !== undefined)) row[k] = median(ok.map((r) => r[k]).filter((x) => x !== undefined))
      }
      if (ok.length < rs.length) row.failedRounds = rs.length - ok.length
    }
    row.checkMaxAbsDiff = check.maxAbsDiffOursVsOrt
    results.push(row)
  }
  // q8 accuracy, ours next to ORT's: NorNE dev F1 where the model has real labels.
  const acc = child('node', ['systems/accuracy.mjs', '--model', m.dir, '--threads', threads, '--labels', m.name === 'norne-compact' ? 'real' : 'random',
    '--conllu', ['nob', 'nno'].map((l) => path.join(values.norne, l, 'dev.conllu')).join(','), '--limit', String(m.name === 'norne-compact' ? 1e9 : m.short)])
  accuracy.push({ model: m.name, ...acc })
  console.error(JSON.stringify(accuracy.at(-1)))
  if (m.window) {
    const r = child('node', ['systems/ours_window.mjs', '--model', m.dir, '--work', workFile, '--threads', threads, '--tokens', String(m.window)])
    windows.push({ model: m.name, ...r })
    console.error(JSON.stringify(windows.at(-1)))
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** a ÷ b per round (rounds where both ran), as { median, min, max }; undefined if none. */
function ratio(a, b, key) {
  const xs = []
  for (let i = 0; i < Math.min(a.rounds.length, b.rounds.length); i++) {
    const x = a.rounds[i][key], y = b.rounds[i][key]
    if (!a.rounds[i].error && !b.rounds[i].error && x > 0 && y > 0) xs.push(x / y)
  }
  return xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) } : undefined
}

const pkg = (p) => { try { return require(p + '/package.json').version } catch { return 'n/a' } }
const machine = {
  cpu: (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? os.cpus()[0]?.model,
  cores: os.cpus().length,
  memoryGB: +(os.totalmem() / 2 ** 30).toFixed(1),
  threads: Number(threads),
  node: process.version,
  onnxruntimeNode: pkg(path.join(here, 'node_modules', 'onnxruntime-node')),
  transformersJs: pkg(path.join(here, 'node_modules', '@huggingface/transformers')),
  fp32PeakGflops: probe.gflops,
}
const flags = [quick ? '--quick' : '', rounds !== 3 ? `--rounds ${rounds}` : '', values.only ? `--only ${values.only}` : '', values.models ? `--models ${values.models}` : '', values.python ? `--python ${values.python}` : ''].filter(Boolean).join(' ')
const command = `npm run bench${flags ? ' -- ' + flags : ''}`
const stamp = new Date().toISOString().replace(/[:.]/g, '-')
fs.mkdirSync(path.join(here, 'results'), { recursive: true })
fs.writeFileSync(path.join(here, 'results', `${stamp}.json`), JSON.stringify({ command, machine, results, windows, accuracy }, null, 2) + '\n')

const f = (x, d = 1) => (x === undefined ? '–' : Number(x).toFixed(d))
let md = `# Benchmark results\n\nCommand: \`${command}\` (${new Date().toISOString().slice(0, 10)}).\n\n`
md += `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGB} GiB; every system uses ${threads} threads. `
md += `Node ${machine.node}, onnxruntime-node ${machine.onnxruntimeNode}, transformers.js ${machine.transformersJs}. `
md += `FP32 peak from a ${probe.n}³ matmul probe (best of the gemm crate with AVX-512 kernels and rten-gemm): ${probe.gflops} GFLOP/s.\n\n`
md += `Workload: NorNE dev sentences as raw text (batch 32), long documents of 2,000 characters (windows with stride 128 where the system has them), and single sentences of 40–120 characters for latency (one caller, one sentence per call, p50/p99 over the calls). ${rounds} rounds, the systems interleaved in each; every figure is the median over the rounds, every ratio the median [min–max] of the rounds' own ratios. "ours ÷ peer" is our sentences/s divided by the peer's (above 1: we are faster); for latency, our p50 divided by the peer's (below 1: we answer sooner). Share of FP32 peak = FLOPs per token (from the config) × tokens/s ÷ the probe's peak.\n\n`
const spread = (x) => (x ? `${f(x.median, 2)} [${f(x.min, 2)}–${f(x.max, 2)}]` : '–')
// The cells the speed targets are set on: each of ours against onnxruntime-node at its dtype.
md += '## Against onnxruntime-node\n\n| model · dtype | sentences | 2,000-char documents | single-sentence p50 (ours ÷ ORT) | p50 ms ours / ORT | p99 ms ours / ORT |\n|---|---:|---:|---:|---:|---:|\n'
for (const m of MODELS) {
  const rows = results.filter((r) => r.model === m.name)
  for (const [ourName, peerName, label] of [['eurobert-ner', 'onnxruntime-node fp32', 'f32 vs ORT fp32'], ['eurobert-ner q8', 'onnxruntime-node q8', 'q8 vs ORT q8']]) {
    const o = rows.find((r) => r.system === ourName && !r.error), p = rows.find((r) => r.system === peerName && !r.error)
    if (!o || !p) continue
    md += `| ${m.name} · ${label} | ${spread(ratio(o, p, 'sentencesPerSecond'))} | ${spread(ratio(o, p, 'longTokensPerSecond'))} | ${spread(ratio(o, p, 'p50'))} | ${f(o.p50, 2)} / ${f(p.p50, 2)} | ${f(o.p99, 2)} / ${f(p.p99, 2)} |\n`
  }
}
md += '\n'
for (const m of MODELS) {
  const rows = results.filter((r) => r.model === m.name)
  if (rows.length === 0) continue
  const ours = rows[0]
  md += `## ${m.name} (${rows[0].sentences} sentences, ${rows[0].tokens} tokens, ${rows[0].latencyCalls} single-sentence calls; logits ours vs ORT max abs diff ${rows[0].checkMaxAbsDiff?.toExponential(1)})\n\n`
  md += '| system | sentences/s | tokens/s | long docs tokens/s | p50 ms | p99 ms | load ms | RSS after load MB | peak RSS MB | share of FP32 peak | ours ÷ peer | ours ÷ peer, long docs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
  for (const r of rows) {
    if (r.error) {
      md += `| ${r.system ?? 'failed'} | error: ${r.error.slice(0, 120)} |||||||||||\n`
      continue
    }
    const longRatio = r.longTruncated ? '–' : r === ours ? '1.00' : spread(ratio(ours, r, 'longTokensPerSecond'))
    md += `| ${r.system}${r.longTruncated ? ' ¹' : ''}${r.failedRounds ? ` (${r.failedRounds} rounds failed)` : ''} | ${f(r.sentencesPerSecond)} | ${f(r.tokensPerSecond, 0)} | ${f(r.longTokensPerSecond, 0)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.loadMs, 0)} | ${f(r.loadRssMB, 0)} | ${f(r.peakRssMB, 0)} | ${f(100 * r.peakShare)}% | ${r === ours ? '1.00' : spread(ratio(ours, r, 'sentencesPerSecond'))} | ${longRatio} |\n`
  }
  if (ours.weightMB) md += `\nOur weights in memory: ${f(ours.weightMB, 0)} MB; RSS after load ÷ weights: ${f(ours.loadRssMB / ours.weightMB, 2)}.\n`
  const oq = rows.find((r) => r.system === 'eurobert-ner q8' && !r.error)
  if (oq) {
    const vs = (name, key) => {
      const p = rows.find((r) => r.system === name && !r.error)
      return p ? spread(ratio(oq, p, key)) + '×' : '–'
    }
    md += `\nq8: ours q8 ÷ ORT q8 ${vs('onnxruntime-node q8', 'sentencesPerSecond')} (long docs ${vs('onnxruntime-node q8', 'longTokensPerSecond')}), ÷ transformers.js q8 ${vs('transformers.js q8', 'sentencesPerSecond')}, ÷ our f32 ${vs('eurobert-ner', 'sentencesPerSecond')} (long docs ${vs('eurobert-ner', 'longTokensPerSecond')}); weights ${f(oq.weightMB, 0)} MB, RSS after load ${f(oq.loadRssMB, 0)} MB, load (with quantization) ${f(oq.loadMs, 0)} ms.\n`
  }
  const ac = accuracy.find((x) => x.model === m.name)
  if (ac && !ac.error) {
    const g = (x) => `argmax agreement ${f(100 * x.argmaxAgreement, 2)}%, cosine min ${f(x.minCosine, 4)} / mean ${f(x.meanCosine, 5)}` + (x.f1F32 !== undefined ? `, dev F1 ${f(x.f1Q8, 4)} (f32 ${f(x.f1F32, 4)}, Δ ${f(100 * (x.f1Q8 - x.f1F32), 2)} points)` : '')
    md += `\nq8 accuracy against each system's own f32 (${ac.sentences} NorNE dev sentences): ours: ${g(ac.ours)}; ORT q8: ${g(ac.ort)}.\n`
  }
  const w = windows.find((x) => x.model === m.name)
  if (w) {
    md += w.error
      ? `\nOne ${m.window}-token window: error: ${w.error.slice(0, 200)}\n`
      : `\nOne window of ${w.windowTokens} tokens (ours): ${f(w.windowMs / 1000, 1)} s, peak memory ${f(w.aboveWeightsMB, 0)} MB above the loaded model (RSS after load ${f(w.rssAfterLoadMB, 0)} MB).\n`
  }
  md += '\n'
}
md += 'q8 rows run int8 matrix products, so their share of the FP32 peak can exceed 100%.\n\n'
md += '¹ transformers.js has no stride: long documents are truncated to `model_max_length`, so it processes fewer tokens than the others there.\n'
// The sections other scripts write (bf16/f16, streaming) and the history of earlier machines stay, and
// so do the sections of models this run did not measure: a run of the BERT-family shapes only
// rewrites its own section, a run of the EuroBERT models the top of the file.
const previous = fs.existsSync(path.join(here, 'RESULTS.md')) ? fs.readFileSync(path.join(here, 'RESULTS.md'), 'utf8') : ''
const FAMILY_SHAPES = new Set(['bert-base-random', 'xlm-roberta-base-random'])
const at = (re) => {
  const i = previous.search(re)
  return i < 0 ? previous.length : i
}
// Where the sections that this script does not write begin.
const KEPT = '(bf16 and f16|One short call|Streaming|WebAssembly|Chromium|History)'
let out
if (MODELS.every((m) => FAMILY_SHAPES.has(m.name))) {
  const body = md.slice(md.indexOf('## Against onnxruntime-node\n\n') + '## Against onnxruntime-node\n\n'.length).replace(/^## /gm, '### ')
  const section =
    `## BERT-family shapes (${new Date().toISOString().slice(0, 10)}, \`${command}\`)\n\n` +
    'Token classifiers of the BERT family\'s shapes with random weights and NorNE\'s 19 labels: bert-base-cased\'s (12 layers, hidden 768, 12 heads, intermediate 3072, vocabulary 28,996) and xlm-roberta-base\'s (the same encoder, a 250,002-row vocabulary: 768 MB of embeddings), same method as above.\n\n' +
    (md.match(/^Machine: .*$/m)?.[0] ?? '') + '\n\n' +
    body
  const start = at(/^## BERT-family/m)
  out = previous.slice(0, start) + section + '\n' + previous.slice(at(new RegExp(`^## ${KEPT}`, 'm')))
} else {
  const kept = MODELS.some((m) => FAMILY_SHAPES.has(m.name)) ? KEPT : `(BERT-family|${KEPT.slice(1)}`
  out = md + '\n' + previous.slice(at(new RegExp(`^## ${kept}`, 'm')))
}
fs.writeFileSync(path.join(here, 'RESULTS.md'), out)
console.log(md)
