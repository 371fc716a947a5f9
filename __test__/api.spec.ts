// The library API as people paste it from transformers and transformers.js: both spellings
// of every option and nothing silently ignored, strategy names in any case, typed results
// (checked with tsc --strict), light entry points, streaming with bounded memory and input
// order, and cancellation with AbortSignal that keeps aborted texts away from the model.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { getEventListeners } from 'node:events'
import { Readable, Writable } from 'node:stream'
import { pipeline as streamPipeline } from 'node:stream/promises'

import test from 'ava'

import { Entity, EuroBertModel, pipeline, renderHtml, resolveModel } from '..'
import { SLOWDOWN, TINY_MODEL } from './helpers/fixtures'
import { folderRepo, startHub } from './helpers/hub-server'

const ROOT = path.join(__dirname, '..')
const TEXT = 'Erna Solberg besøkte Universitetet i Oslo, og Jonas Gahr Støre var i Bergen.'
const json = (x: unknown) => JSON.stringify(x)

test('every option in transformers\' spelling changes the output exactly as its camelCase twin', async (t) => {
  const ner = await pipeline(TINY_MODEL, { threads: 1 })
  const twins: [Record<string, unknown>, Record<string, unknown>][] = [
    [{ aggregationStrategy: 'simple' }, { aggregation_strategy: 'simple' }],
    [{ aggregationStrategy: 'first', ignoreLabels: ['O', 'PER'] }, { aggregation_strategy: 'first', ignore_labels: ['O', 'PER'] }],
    [{ maxLength: 8, stride: 2 }, { max_length: 8, stride: 2 }],
    [{ batchSize: 1, maxBatchTokens: 64 }, { batch_size: 1, max_batch_tokens: 64 }],
  ]
  const plain = json(await ner(TEXT))
  for (const [camel, snake] of twins) {
    const a = json(await ner(TEXT, camel))
    t.is(json(await ner(TEXT, snake)), a, json(snake))
    if (!('batchSize' in camel)) t.not(a, plain, `${json(camel)} changes the output`)
  }
  // As pipeline defaults too.
  const grouped = await pipeline(TINY_MODEL, { threads: 1, aggregation_strategy: 'simple' })
  t.is(json(await grouped(TEXT)), json(await ner(TEXT, { aggregationStrategy: 'simple' })))
  // In any case, as transformers takes them.
  t.is(json(await ner(TEXT, { aggregationStrategy: 'SIMPLE' })), json(await ner(TEXT, { aggregationStrategy: 'simple' })))
  ner.dispose()
  grouped.dispose()
})

test('an unknown option is a TypeError naming it and the nearest known name; two spellings that disagree are an error', async (t) => {
  const ner = await pipeline(TINY_MODEL, { threads: 1 })
  const typo = await t.throwsAsync(ner(TEXT, { aggregationStrategyy: 'simple' } as never), { instanceOf: TypeError })
  t.regex(typo!.message, /unknown option 'aggregationStrategyy' \(did you mean 'aggregationStrategy'\?\)/)
  t.regex((await t.throwsAsync(ner(TEXT, { ignore_label: ['O'] } as never)))!.message, /did you mean 'ignore_labels'/)
  t.regex((await t.throwsAsync(ner(TEXT, { aggregationStrategy: 'simple', aggregation_strategy: 'first' })))!.message, /'aggregationStrategy' and 'aggregation_strategy' are the same option with different values/)
  t.is(json(await ner(TEXT, { aggregationStrategy: 'first', aggregation_strategy: 'first' })), json(await ner(TEXT, { aggregationStrategy: 'first' })), 'the same value twice is fine')
  // pipeline() checks its options before loading anything.
  const started = Date.now()
  t.regex((await t.throwsAsync(pipeline('/no/such/model', { theads: 2 } as never)))!.message, /unknown option 'theads' \(did you mean 'threads'\?\)/)
  t.true(Date.now() - started < 1000 * SLOWDOWN)
  ner.dispose()
})

test('renderHtml and the other HTML helpers come from the main entry; serve and queue from their own', (t) => {
  t.is(typeof renderHtml, 'function')
  t.regex(renderHtml('Oslo', [{ entity_group: 'GPE_LOC', score: 1, word: 'Oslo', start: 0, end: 4 }]), /<mark/)
  const probe = (code: string) => spawnSync(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8' })
  const main = probe(`require('./'); console.log(JSON.stringify(Object.keys(require.cache).filter((k) => /prom-client|bullmq|[\\\\/](serve|queue)[\\\\/]index\\.js$/.test(k))))`)
  t.deepEqual(JSON.parse(main.stdout), [], 'the main import loads neither the server nor the queue')
  const sub = probe(`const p = require('./package.json'); for (const s of ['./serve', './queue', './html']) if (!p.exports[s]) throw new Error(s); console.log([require('eurobert-ner/serve').serve, require('eurobert-ner/queue').nerQueue, require('eurobert-ner/html').renderHtml].map((f) => typeof f).join())`)
  t.is(sub.stdout.trim(), 'function,function,function', sub.stderr)
})

test('typed results: the entity type follows the strategy and the input; tsc --strict checks it', (t) => {
  const dir = fs.mkdtempSync(path.join(ROOT, '__test__', '.types-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(
    path.join(dir, 'check.ts'),
    `import { pipeline, type Entity, type GroupedEntity, type TokenEntity } from '../..'
import type { NerQueue } from '../../dist/queue'
export async function check(): Promise<void> {
  const ner = await pipeline()
  const grouped: GroupedEntity[] = await ner('Oslo', { aggregationStrategy: 'simple' })
  const group: string = (await ner('Oslo', { aggregationStrategy: 'simple' }))[0].entity_group
  const snake: string = (await ner('Oslo', { aggregation_strategy: 'first' }))[0].entity_group
  const tokens: TokenEntity[] = await ner('Oslo')
  const many: GroupedEntity[][] = await ner(['Oslo', 'Bergen'], { aggregationStrategy: 'max' })
  const upper: GroupedEntity[] = await ner('Oslo', { aggregationStrategy: 'SIMPLE' })
  // @ts-expect-error: strategy none gives tokens, which have no entity_group
  void (await ner('Oslo'))[0].entity_group
  const byDefault = await pipeline(undefined, { aggregationStrategy: 'first' })
  const fromDefault: string = (await byDefault('Oslo'))[0].entity_group
  for await (const r of ner.stream([{ text: 'Oslo', id: 7 }], { aggregationStrategy: 'simple' })) {
    const id: number = r.id
    const g: string = r.entities[0].entity_group
    void id, g
  }
  void grouped, group, snake, tokens, many, upper, fromDefault
}
export async function queued(q: NerQueue): Promise<void> {
  // The queue's results narrow by strategy as ner()'s do; without one, the worker decides.
  const grouped: GroupedEntity[] = await q.ner('Oslo', { aggregationStrategy: 'first' })
  const many: GroupedEntity[][] = await q.ner(['Oslo'], { aggregation_strategy: 'max' })
  const tokens: TokenEntity[] = await q.ner('Oslo', { aggregationStrategy: 'none' })
  const either: Entity[] = await q.ner('Oslo')
  // @ts-expect-error: without a strategy the result may be tokens
  const notGrouped: GroupedEntity[] = await q.ner('Oslo')
  void grouped, many, tokens, either, notGrouped
}
`,
  )
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '--strict', '--noEmit', '--skipLibCheck', '--target', 'es2022', '--module', 'commonjs', '--types', 'node', path.join(dir, 'check.ts')], { cwd: ROOT, encoding: 'utf8' })
  t.is(tsc.status, 0, tsc.stdout + tsc.stderr)
})

test('stream(): 10,000 documents to a slow consumer, in input order, never more in flight than the bound', async (t) => {
  t.timeout(180_000 * SLOWDOWN)
  const ner = await pipeline(TINY_MODEL, { threads: 2 })
  const N = 10_000
  const bound = 32
  let pulled = 0
  let yielded = 0
  let most = 0
  async function* docs() {
    for (let i = 0; i < N; i++) {
      pulled++
      most = Math.max(most, pulled - yielded)
      yield { text: `Dokument ${i}: Erna Solberg besøkte Oslo.`, id: i }
    }
  }
  let expect = 0
  let ordered = true
  for await (const r of ner.stream(docs(), { aggregationStrategy: 'simple', highWaterMark: bound })) {
    yielded++
    if (r.id !== expect++) ordered = false
    t.true(Array.isArray(r.entities))
    // A consumer far slower than the model: a pause every 500 documents, a turn of the loop for each.
    await new Promise((resolve) => (yielded % 500 === 0 ? setTimeout(resolve, 50) : setImmediate(resolve)))
  }
  t.is(yielded, N)
  t.true(ordered, 'input order')
  t.true(most <= bound + 1, `at most ${most} documents in flight (bound ${bound})`)
  // The same entities as one call per document.
  const sample = [0, 4321, N - 1].map((i) => `Dokument ${i}: Erna Solberg besøkte Oslo.`)
  const alone = await ner(sample, { aggregationStrategy: 'simple' })
  const streamed: Entity[][] = []
  for await (const r of ner.stream(sample, { aggregationStrategy: 'simple' })) streamed.push(r.entities)
  t.is(json(streamed), json(alone))
  ner.dispose()
})

test('createStream(): a Node object-mode Duplex for stream.pipeline', async (t) => {
  const ner = await pipeline(TINY_MODEL, { threads: 1 })
  const out: { text: string; n: number; entities: unknown[] }[] = []
  await streamPipeline(
    Readable.from(Array.from({ length: 50 }, (_, n) => ({ text: `Oslo og Bergen ${n}`, n }))),
    ner.createStream({ aggregationStrategy: 'first' }),
    new Writable({ objectMode: true, write: (chunk, _e, cb) => (out.push(chunk), cb()) }),
  )
  t.deepEqual(out.map((r) => r.n), Array.from({ length: 50 }, (_, n) => n))
  t.true(out.every((r) => Array.isArray(r.entities)))
  ner.dispose()
})

test('an aborted call rejects at once, its texts never reach the model, and the other calls of its batch are unaffected', async (t) => {
  const texts: number[] = []
  const ner = await pipeline(TINY_MODEL, { threads: 1, maxWaitMs: 200, onBatch: (n) => texts.push(n) })
  const alone = json(await ner(['Oslo', 'Bergen'], { aggregationStrategy: 'simple' }))
  texts.length = 0
  const controller = new AbortController()
  // Settlement order, not a time bound: on a loaded machine the event loop itself can lag
  // by more than the batcher's 200 ms wait, but the abort still comes first.
  const settled: string[] = []
  const a = ner('Oslo', { aggregationStrategy: 'simple' }).finally(() => settled.push('a'))
  const b = ner(Array(50).fill('Erna Solberg besøkte Oslo.'), { aggregationStrategy: 'simple', signal: controller.signal })
  b.catch(() => settled.push('b'))
  const c = ner('Bergen', { aggregationStrategy: 'simple' })
  setTimeout(() => controller.abort(), 10)
  const err = await t.throwsAsync(b)
  t.is(err!.name, 'AbortError')
  await a
  t.is(settled[0], 'b', 'the aborted call rejected before the batch of the others ran')
  t.is(json([await a, await c]), alone, 'the others get what they get alone')
  t.deepEqual(texts, [2], 'one forward batch of the two other texts; none of the aborted 50')
  // Already aborted: rejects without queuing anything.
  t.is((await t.throwsAsync(ner('Oslo', { signal: AbortSignal.abort() })))!.name, 'AbortError')
  // stream() stops when aborted.
  const stop = new AbortController()
  let n = 0
  await t.throwsAsync(
    (async () => {
      for await (const _ of ner.stream(Array(1000).fill('Oslo'), { signal: stop.signal })) if (++n === 10) stop.abort()
    })(),
    { name: 'AbortError' },
  )
  t.true(n < 1000)
  ner.dispose()
})

test("a caller's AbortSignal is only listened to: its own onabort still fires, and no listener stays once a call settles", async (t) => {
  const model = await EuroBertModel.load(TINY_MODEL, { threads: 1 })
  const controller = new AbortController()
  const signal = controller.signal
  let fired = 0
  const onabort = () => fired++
  signal.onabort = onabort
  const listeners = () => getEventListeners(signal, 'abort').length
  const before = listeners()
  const [tok] = await model.tokenize('Oslo', { signal })
  await model.logits('Oslo', { signal })
  await model.logitsForIds([Uint32Array.from(tok.ids)], { signal })
  await model.scoreWindows('Oslo', { signal })
  const ner = await pipeline(TINY_MODEL, { threads: 1, signal })
  await ner('Oslo', { signal })
  t.is(signal.onabort, onabort, 'the handler the caller set is still there')
  t.is(listeners(), before, 'every listener the calls added is gone')
  // A call in flight when the signal fires: an AbortError, and the caller's handler ran too.
  const call = model.logits(Array(200).fill(TEXT), { signal })
  controller.abort()
  t.is((await t.throwsAsync(call))!.name, 'AbortError')
  t.is(fired, 1)
  t.is((await model.logits('Bergen')).length, 1, 'the model goes on')
  ner.dispose()
  model.dispose()
})

test('an aborted load stops a Hub download at once', async (t) => {
  const hub = await startHub([folderRepo('test/tiny', TINY_MODEL)], {
    // The weights never come: only an abort (or the timeout) ends the wait.
    intercept: (s, req, _res, f) => s === 'cdn' && f === 'model.safetensors' && req.method === 'GET',
  })
  t.teardown(() => hub.close())
  const cacheDir = fs.mkdtempSync(path.join(ROOT, '__test__', '.cache-'))
  t.teardown(() => fs.rmSync(cacheDir, { recursive: true, force: true }))
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 300)
  const started = Date.now()
  const err = await t.throwsAsync(pipeline('test/tiny', { endpoint: hub.url, cacheDir, timeoutMs: 30_000, signal: controller.signal }))
  t.is(err!.name, 'AbortError')
  t.true(Date.now() - started < 2000 * SLOWDOWN, `${Date.now() - started} ms`)
  t.is((await t.throwsAsync(resolveModel('test/tiny', { endpoint: hub.url, cacheDir, signal: AbortSignal.abort() })))!.name, 'AbortError')
})
