// Every failure is a JavaScript Error naming what was wrong; the process and the model live on.
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { EuroBertModel, pipeline } from '..'
import { copyOfTinyModel, expected, maxAbsDiff, TINY_MODEL } from './helpers/fixtures'
import { readSafetensors, writeSafetensors } from './helpers/safetensors'

const exp = expected()

function damaged(change: (dir: string) => void): string {
  const dir = copyOfTinyModel()
  change(dir)
  return dir
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json')
  const c = JSON.parse(fs.readFileSync(file, 'utf8'))
  edit(c)
  fs.writeFileSync(file, JSON.stringify(c))
}

function editWeights(dir: string, edit: (m: ReturnType<typeof readSafetensors>) => void): void {
  const file = path.join(dir, 'model.safetensors')
  const tensors = readSafetensors(file)
  edit(tensors)
  writeSafetensors(file, tensors)
}

const cases: [string, () => string, RegExp[]][] = [
  ['missing folder', () => path.join(TINY_MODEL, 'does-not-exist'), [/does-not-exist/, /not found/]],
  ['missing config.json', () => damaged((d) => fs.rmSync(path.join(d, 'config.json'))), [/config\.json/, /cannot read/]],
  ['bad JSON in config.json', () => damaged((d) => fs.writeFileSync(path.join(d, 'config.json'), '{"model_type": ')), [/config\.json/, /invalid JSON/]],
  [
    'unknown model_type',
    () => damaged((d) => editConfig(d, (c) => (c.model_type = 'llama'))),
    [/config\.json/, /unsupported model_type 'llama'/],
  ],
  ['missing tokenizer.json', () => damaged((d) => fs.rmSync(path.join(d, 'tokenizer.json'))), [/tokenizer\.json/, /not found/]],
  ['missing weights', () => damaged((d) => fs.rmSync(path.join(d, 'model.safetensors'))), [/model\.safetensors/, /no model\.safetensors/]],
  [
    'pickle checkpoint only',
    () =>
      damaged((d) => {
        fs.rmSync(path.join(d, 'model.safetensors'))
        fs.writeFileSync(path.join(d, 'pytorch_model.bin'), 'not loaded')
      }),
    [/pytorch_model\.bin/, /never pickles/],
  ],
  [
    'missing tensor',
    () => damaged((d) => editWeights(d, (m) => m.delete('model.layers.2.self_attn.k_proj.weight'))),
    [/model\.safetensors/, /missing tensor 'model\.layers\.2\.self_attn\.k_proj\.weight'/],
  ],
  [
    'mis-shaped tensor',
    () =>
      damaged((d) =>
        editWeights(d, (m) => {
          const t = m.get('classifier.weight')!
          m.set('classifier.weight', { ...t, shape: [t.shape[1], t.shape[0]] })
        }),
      ),
    [/model\.safetensors/, /'classifier\.weight' has shape \[64, 19\], expected \[19, 64\]/],
  ],
  [
    'wrong dtype',
    () =>
      damaged((d) =>
        editWeights(d, (m) => {
          const t = m.get('model.norm.weight')!
          m.set('model.norm.weight', { ...t, dtype: 'I32' })
        }),
      ),
    [/model\.safetensors/, /'model\.norm\.weight' has dtype I32/],
  ],
  [
    'truncated weights file',
    () => damaged((d) => fs.truncateSync(path.join(d, 'model.safetensors'), 4000)),
    [/model\.safetensors/],
  ],
]

for (const [name, makeDir, patterns] of cases) {
  test(`load error: ${name}`, async (t) => {
    const dir = makeDir()
    const err = await t.throwsAsync(EuroBertModel.load(dir))
    t.true(err instanceof Error)
    for (const p of patterns) t.regex(err!.message, p)
  })
}

test('invalid load options are rejected before any work', async (t) => {
  await t.throwsAsync(EuroBertModel.load(TINY_MODEL, { threads: 0 }), { instanceOf: RangeError, message: /threads/ })
  await t.throwsAsync(EuroBertModel.load(TINY_MODEL, { dtype: 'f64' as never }), { instanceOf: RangeError, message: /dtype must be 'f32', 'q8', 'f16' or 'bf16', got "f64"/ })
  await t.throwsAsync(EuroBertModel.load(TINY_MODEL, { device: 'tpu' as never }), { instanceOf: RangeError, message: /device must be .*got "tpu"/ })
  // 100,000 threads once never settled (rayon spawned thousands): bounded to 4 per core.
  await t.throwsAsync(EuroBertModel.load(TINY_MODEL, { threads: 100_000 }), { instanceOf: RangeError, message: /threads must be at most \d+ \(4 per available core\)/ })
  await t.throwsAsync(EuroBertModel.load(TINY_MODEL, { dtype: 'q8', device: 'cuda' }), { message: /q8 runs on the CPU only/ })
  await t.throwsAsync(EuroBertModel.load(''), { instanceOf: TypeError })
})

test('bad input gets a clear error and leaves the model usable', async (t) => {
  const model = await EuroBertModel.load(TINY_MODEL, { threads: 1 })
  await t.throwsAsync(model.logits(42 as never), { instanceOf: TypeError, message: /expected a string or an array/ })
  await t.throwsAsync(model.logits(['ok', null as never]), { instanceOf: TypeError, message: /texts\[1\] is null/ })
  // A hole in a sparse array is caught by the entry point the user called.
  // eslint-disable-next-line no-sparse-arrays
  await t.throwsAsync(model.logits(['a', , 'c'] as never), { instanceOf: TypeError, message: /^logits: texts\[1\] is undefined/ })
  await t.throwsAsync(model.logits('x', { batchSize: 0 }), { instanceOf: RangeError, message: /batchSize/ })
  await t.throwsAsync(model.logits('x', { batchSize: 1.5 }), { instanceOf: RangeError })
  await t.throwsAsync(model.logits('Oslo '.repeat(1000)), { message: /at most 256/ })
  // Lone surrogates cannot cross into Rust as UTF-8; they arrive as U+FFFD, one unit each.
  const [lone] = await model.logits('Oslo \uD800 Bergen')
  t.is(lone.offsets[lone.offsets.length - 3], 'Oslo \uD800 Bergen'.length)
  const [out] = await model.logits(exp.singles[0].text)
  t.true(maxAbsDiff(out.logits, exp.singles[0].logits) < 1e-5)
})

test('ner() names itself in argument errors, also for a sparse array', async (t) => {
  const ner = await pipeline(TINY_MODEL, { threads: 1 })
  // One stride rule, transformers': less than the text tokens a window holds (the window
  // length minus the special tokens), stated by the core.
  const long = 'Oslo og Bergen. '.repeat(150)
  const budget = ner.model.modelMaxLength - 2
  await t.throwsAsync(ner(long, { stride: budget }), { instanceOf: RangeError, message: new RegExp(`stride must be less than the ${budget} text tokens a window holds, got ${budget}`) })
  t.true(Array.isArray(await ner(long, { stride: budget - 1 })), 'the largest stride transformers takes works')
  // eslint-disable-next-line no-sparse-arrays
  await t.throwsAsync(ner(['a', , 'c'] as never), { instanceOf: TypeError, message: /^ner: texts\[1\] is undefined, expected a string/ })
})

test('dispose() with calls in flight: they finish, later calls reject, nothing throws', async (t) => {
  const model = await EuroBertModel.load(TINY_MODEL, { threads: 1 })
  const texts = Array.from({ length: 400 }, (_, i) => `${exp.singles[i % exp.singles.length].text} ${i}`)
  const inFlight = [model.logits(texts), model.tokenize(texts), model.scoreWindows(texts)]
  t.notThrows(() => model.dispose())
  const [logits, toks, windows] = await Promise.all(inFlight)
  t.is(logits.length, 400)
  t.is(toks.length, 400)
  t.is(windows.length, 400)
  await t.throwsAsync(model.logits('Oslo'), { message: /disposed/ })
  t.notThrows(() => model.dispose(), 'a second dispose is harmless')
})

test('tensors the model does not use load with one warning that names them', async (t) => {
  const dir = damaged((d) =>
    editWeights(d, (m) => {
      m.set('lm_head.weight', { dtype: 'F32', shape: [2, 4], data: Buffer.alloc(32) })
    }),
  )
  const warnings: Error[] = []
  const listener = (w: Error) => warnings.push(w)
  process.on('warning', listener)
  const model = await EuroBertModel.load(dir, { threads: 1 })
  await new Promise((r) => setImmediate(r))
  process.off('warning', listener)
  const ours = warnings.filter((w) => w.name === 'EuroBertWarning')
  t.is(ours.length, 1)
  t.regex(ours[0].message, /1 tensor\(s\) of the checkpoint are not used by EuroBertForTokenClassification and were ignored: lm_head\.weight/)
  t.truthy(model.labels.length)
})

test('a disposed model says so', async (t) => {
  const model = await EuroBertModel.load(TINY_MODEL, { threads: 1 })
  model.dispose()
  await t.throwsAsync(async () => model.logits('Oslo'), { message: /disposed/ })
  t.throws(() => model.decodeTokens(['a']), { message: /disposed/ })
})
