// A generated corpus of damaged model folders — truncated and bit-flipped safetensors, huge
// header lengths and dims, bad dtypes, overlapping offsets, non-finite weights, absurd and
// invalid config.json, broken tokenizer files, symlink loops and /dev/zero links — each loaded
// in its own child process: every one must end with a clear Error within seconds and with
// bounded memory, never a signal, an abort or a hang.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { pipeline } from '..'
import { TINY_MODEL } from './helpers/fixtures'
import { readSafetensors, StoredTensor, writeSafetensors } from './helpers/safetensors'

const ROOT = path.join(__dirname, '..')
const WEIGHTS = fs.readFileSync(path.join(TINY_MODEL, 'model.safetensors'))
const HEADER_LEN = Number(WEIGHTS.readBigUInt64LE(0))
const CONFIG = JSON.parse(fs.readFileSync(path.join(TINY_MODEL, 'config.json'), 'utf8'))
const TIMEOUT_MS = 15_000
const MAX_RSS_MB = 400

type Case = { name: string; make: (dir: string) => void }

function folder(root: string, c: Case): string {
  const dir = path.join(root, c.name.replace(/[^\w.-]+/g, '_'))
  fs.mkdirSync(dir)
  for (const f of fs.readdirSync(TINY_MODEL)) fs.copyFileSync(path.join(TINY_MODEL, f), path.join(dir, f))
  c.make(dir)
  return dir
}

const writeWeights = (dir: string, bytes: Buffer) => fs.writeFileSync(path.join(dir, 'model.safetensors'), bytes)
const editConfig = (edit: (c: Record<string, unknown>) => void) => (dir: string) => {
  const c = structuredClone(CONFIG)
  edit(c)
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c))
}
const editTensors = (edit: (m: Map<string, StoredTensor>) => void) => (dir: string) => {
  const m = readSafetensors(path.join(dir, 'model.safetensors'))
  edit(m)
  writeSafetensors(path.join(dir, 'model.safetensors'), m)
}
/** Rewrites the header JSON (offsets relative to the data area kept as they are). */
const editHeader = (edit: (h: Record<string, any>) => void) => (dir: string) => {
  const h = JSON.parse(WEIGHTS.subarray(8, 8 + HEADER_LEN).toString('utf8'))
  edit(h)
  const json = Buffer.from(JSON.stringify(h))
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(json.length))
  writeWeights(dir, Buffer.concat([len, json, WEIGHTS.subarray(8 + HEADER_LEN)]))
}
const firstTensor = 'model.embed_tokens.weight'

function corpus(): Case[] {
  const cases: Case[] = []
  // Truncated safetensors, at every kind of boundary.
  for (const n of [0, 1, 7, 8, 9, 100, HEADER_LEN, HEADER_LEN + 7, HEADER_LEN + 8, HEADER_LEN + 9, HEADER_LEN + 1000, WEIGHTS.length >> 1, WEIGHTS.length - 4, WEIGHTS.length - 1]) {
    cases.push({ name: `truncated at ${n}`, make: (d) => writeWeights(d, WEIGHTS.subarray(0, n)) })
  }
  // Bit flips on the header's structural characters: no longer JSON, or no longer consistent.
  const header = WEIGHTS.subarray(8, 8 + HEADER_LEN).toString('latin1')
  const structural = [...header.matchAll(/[{}[\]":,]/g)].map((m) => m.index!)
  for (let k = 0; k < 24; k++) {
    const at = structural[Math.floor((k * structural.length) / 24)]
    cases.push({
      name: `header bit flip ${k} at ${at}`,
      make: (d) => {
        const b = Buffer.from(WEIGHTS)
        b[8 + at] ^= 0x01
        writeWeights(d, b)
      },
    })
  }
  // Header length fields that lie.
  for (const n of [2n ** 63n, 2n ** 40n, BigInt(WEIGHTS.length), BigInt(HEADER_LEN + 1), BigInt(HEADER_LEN - 1), 0n]) {
    cases.push({
      name: `header length ${n}`,
      make: (d) => {
        const b = Buffer.from(WEIGHTS)
        b.writeBigUInt64LE(n, 0)
        writeWeights(d, b)
      },
    })
  }
  // Shapes, dtypes and offsets that do not fit.
  const dims: [string, number[]][] = [
    ['huge dim', [2 ** 40, 64]],
    ['overflowing dims', [2 ** 52, 2 ** 52, 2 ** 52]],
    ['zero dim', [0, 64]],
    ['extra dim', [1, 1000, 64]],
    ['negative dim', [-1, 64]],
  ]
  for (const [name, shape] of dims) cases.push({ name, make: editHeader((h) => (h[firstTensor].shape = shape)) })
  for (const dtype of ['I64', 'F8_E4M3', 'U8', 'BOOL', 'Q4', '', 'f32']) cases.push({ name: `dtype ${dtype || 'empty'}`, make: editHeader((h) => (h['model.norm.weight'].dtype = dtype)) })
  cases.push({ name: 'overlapping offsets', make: editHeader((h) => (h['model.norm.weight'].data_offsets = h[firstTensor].data_offsets)) })
  cases.push({ name: 'offsets past the end', make: editHeader((h) => (h['classifier.bias'].data_offsets = [WEIGHTS.length, WEIGHTS.length + 76])) })
  cases.push({ name: 'reversed offsets', make: editHeader((h) => (h['classifier.bias'].data_offsets = [...h['classifier.bias'].data_offsets].reverse())) })
  cases.push({ name: 'offsets not numbers', make: editHeader((h) => (h['classifier.bias'].data_offsets = ['a', 'b'])) })
  cases.push({ name: 'header an array', make: editHeader((h) => Object.keys(h).forEach((k) => delete h[k])) })
  cases.push({ name: 'missing tensor', make: editTensors((m) => m.delete('model.layers.0.self_attn.q_proj.weight')) })
  cases.push({ name: 'shape swapped', make: editTensors((m) => (m.get('classifier.weight')!.shape = [...m.get('classifier.weight')!.shape].reverse())) })
  for (const [name, v] of [['NaN weight', NaN], ['Inf weight', Infinity], ['-Inf weight', -Infinity]] as const) {
    cases.push({ name, make: editTensors((m) => m.get('model.layers.1.mlp.up_proj.weight')!.data.writeFloatLE(v, 8)) })
  }
  cases.push({ name: 'extra layer in checkpoint', make: editConfig((c) => (c.num_hidden_layers = 2)) })
  // config.json: invalid and absurd.
  const absurd: [string, unknown][] = [
    ['num_hidden_layers', 2 ** 40], ['num_hidden_layers', 2 ** 62], ['num_hidden_layers', -1], ['num_hidden_layers', 'many'], ['num_hidden_layers', 1.5],
    ['max_position_embeddings', 2 ** 32 + 256], ['max_position_embeddings', 2 ** 40], ['max_position_embeddings', 0],
    ['hidden_size', 2 ** 40], ['hidden_size', 0], ['intermediate_size', 2 ** 50], ['vocab_size', 2 ** 45], ['vocab_size', 10],
    ['num_attention_heads', 0], ['num_attention_heads', 3], ['num_key_value_heads', 2 ** 40], ['head_dim', 15], ['head_dim', 2 ** 30],
    ['rms_norm_eps', 0], ['rms_norm_eps', -1], ['rms_norm_eps', 1e308], ['rope_theta', 1e308], ['model_type', 'bert'], ['model_type', 7],
    ['hidden_act', 'gelu'], ['id2label', { '0': 'O', '00': 'B-PER' }], ['id2label', { '0': 'O', '+1': 'B-PER', '1': 'I-PER' }], ['id2label', { '5': 'O' }],
    ['id2label', []], ['id2label', { '0': 5 }], ['rope_scaling', { rope_type: 'yarn', factor: 4 }], ['rope_parameters', 'default'],
  ]
  for (const [key, value] of absurd) {
    cases.push({
      name: `config ${key}=${JSON.stringify(value)}`,
      make: editConfig((c) => {
        if (key === 'rope_theta') (c.rope_parameters as Record<string, unknown>).rope_theta = value
        else c[key] = value
      }),
    })
  }
  cases.push({ name: 'config num_labels 2^40 without id2label', make: editConfig((c) => ((c.num_labels = 2 ** 40), delete c.id2label, delete c.label2id)) })
  cases.push({ name: 'config num_labels 1e7 without id2label', make: editConfig((c) => ((c.num_labels = 1e7), delete c.id2label, delete c.label2id)) })
  for (const [name, text] of [['config empty', ''], ['config not json', '{"model_type": '], ['config array', '[]'], ['config null', 'null'], ['config deep', '['.repeat(100000)]]) {
    cases.push({ name, make: (d) => fs.writeFileSync(path.join(d, 'config.json'), text) })
  }
  // Tokenizer files.
  const tok = fs.readFileSync(path.join(TINY_MODEL, 'tokenizer.json'), 'utf8')
  for (const [name, text] of [
    ['tokenizer truncated', tok.slice(0, tok.length >> 1)],
    ['tokenizer empty', ''],
    ['tokenizer wrong model', tok.replace('"type":"BPE"', '"type":"Nope"').replace('"type": "BPE"', '"type": "Nope"')],
    ['tokenizer post-processor without special tokens', JSON.stringify({ ...JSON.parse(tok), post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: {} } })],
    ['tokenizer larger vocab than config', tok],
  ]) {
    cases.push({
      name,
      make: (d) => {
        fs.writeFileSync(path.join(d, 'tokenizer.json'), text)
        if (name === 'tokenizer larger vocab than config') editConfig((c) => (c.vocab_size = 10))(d)
      },
    })
  }
  cases.push({ name: 'tokenizer_config not json', make: (d) => fs.writeFileSync(path.join(d, 'tokenizer_config.json'), '{') })
  // Files that are not files.
  if (process.platform !== 'win32') {
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
      cases.push({ name: `${f} -> /dev/zero`, make: (d) => (fs.rmSync(path.join(d, f)), fs.symlinkSync('/dev/zero', path.join(d, f))) })
      cases.push({ name: `${f} symlink loop`, make: (d) => (fs.rmSync(path.join(d, f)), fs.symlinkSync(f, path.join(d, f))) })
      cases.push({ name: `${f} is a directory`, make: (d) => (fs.rmSync(path.join(d, f)), fs.mkdirSync(path.join(d, f))) })
    }
    cases.push({ name: 'model.safetensors fifo', make: (d) => (fs.rmSync(path.join(d, 'model.safetensors')), spawnSyncOk('mkfifo', [path.join(d, 'model.safetensors')])) })
    cases.push({ name: 'config.json fifo', make: (d) => (fs.rmSync(path.join(d, 'config.json')), spawnSyncOk('mkfifo', [path.join(d, 'config.json')])) })
  }
  // Sharded indexes that point outside the folder or at nothing.
  for (const [name, shard] of [['shard escapes', '../model.safetensors'], ['shard absolute', '/etc/passwd'], ['shard drive', 'C:x'], ['shard missing', 'model-00001-of-00002.safetensors']]) {
    cases.push({
      name,
      make: (d) => {
        fs.rmSync(path.join(d, 'model.safetensors'))
        const names = Object.keys(JSON.parse(WEIGHTS.subarray(8, 8 + HEADER_LEN).toString('utf8'))).filter((n) => n !== '__metadata__')
        fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: Object.fromEntries(names.map((n) => [n, shard])) }))
      },
    })
  }
  return cases
}

function spawnSyncOk(cmd: string, args: string[]): void {
  const r = require('node:child_process').spawnSync(cmd, args)
  if (r.status !== 0) throw new Error(`${cmd} failed`)
}

/** Loads `dir` in a child process: `{ ok | error, maxRssMB }`, or how the process died. */
function loadInChild(dir: string): Promise<{ code: number | null; signal: string | null; out: string; ms: number }> {
  const script = `
    const { EuroBertModel } = require('./dist/index.js')
    EuroBertModel.load(process.argv[1], { threads: 1 }).then(
      async (m) => { await m.logits('Oslo'); return { ok: true } },
      (e) => ({ error: e instanceof Error ? e.message : 'not an Error: ' + String(e) }),
    ).then((r) => console.log(JSON.stringify({ ...r, maxRssMB: process.resourceUsage().maxRSS / 1024 })))`
  return new Promise((resolve) => {
    const start = Date.now()
    const p = spawn(process.execPath, ['-e', script, dir], { cwd: ROOT })
    let out = ''
    p.stdout.setEncoding('utf8').on('data', (d) => (out += d))
    p.stderr.setEncoding('utf8').on('data', (d) => (out += d))
    const timer = setTimeout(() => p.kill('SIGKILL'), TIMEOUT_MS)
    p.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, out, ms: Date.now() - start })
    })
  })
}

test('every damaged model folder fails with a clear Error, in seconds and bounded memory', async (t) => {
  t.timeout(600_000)
  const cases = corpus()
  t.true(cases.length >= 100, `${cases.length} cases`)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-corrupt-'))
  const dirs = cases.map((c) => folder(root, c))
  const results: Awaited<ReturnType<typeof loadInChild>>[] = []
  for (let i = 0; i < dirs.length; i += 2) results.push(...(await Promise.all(dirs.slice(i, i + 2).map(loadInChild))))
  let slowest = 0
  let peak = 0
  cases.forEach((c, i) => {
    const r = results[i]
    slowest = Math.max(slowest, r.ms)
    t.is(r.signal, null, `${c.name}: killed by ${r.signal} (${r.out})`)
    t.is(r.code, 0, `${c.name}: exit ${r.code} (${r.out})`)
    const line = r.out.trim().split('\n').find((l) => l.startsWith('{'))
    const res = line ? JSON.parse(line) : {}
    t.truthy(res.error, `${c.name}: should fail to load, got ${r.out}`)
    t.true(typeof res.error === 'string' && !res.error.startsWith('not an Error') && !/internal error|panicked|capacity overflow/.test(res.error), `${c.name}: ${res.error}`)
    t.true(res.maxRssMB < MAX_RSS_MB, `${c.name}: ${res.maxRssMB} MB`)
    peak = Math.max(peak, res.maxRssMB ?? 0)
  })
  t.log(`${cases.length} folders; slowest ${slowest} ms (with process start); peak RSS ${peak.toFixed(0)} MB`)
})

test('finite weights that overflow float32 in the forward pass: ner() rejects with a clear Error, the model stays usable', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-overflow-'))
  const dir = folder(root, {
    name: 'overflow',
    make: editTensors((m) => {
      const w = m.get('classifier.weight')!
      const data = Buffer.alloc(w.data.length)
      // ±3e38: finite, so the load accepts them; any dot product with them overflows.
      for (let i = 0; i < data.length / 4; i++) data.writeFloatLE(i % 2 ? 3e38 : -3e38, i * 4)
      m.set('classifier.weight', { ...w, dtype: 'F32', data })
    }),
  })
  const ner = await pipeline(dir, { threads: 1 })
  const err = await t.throwsAsync(ner('Erna Solberg besøkte Oslo.'))
  t.regex(err!.message, /non-finite logits .* overflow/)
  t.regex((await t.throwsAsync(ner(['Oslo', 'Bergen'])))!.message, /non-finite logits/)
  const good = await pipeline(TINY_MODEL, { threads: 1 })
  t.true(Array.isArray(await good('Erna Solberg besøkte Oslo.')))
  ner.dispose()
  good.dispose()
})
