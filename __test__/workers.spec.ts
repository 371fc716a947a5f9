// The addon in worker_threads, as Electron utility processes and Node worker pools use it:
// four workers load and run ner() at once, are terminated mid-call and again after, and the
// main thread's model is unaffected; the process exits cleanly afterwards.
import { spawnSync } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import * as path from 'node:path'

import test from 'ava'

import { TINY_MODEL } from './helpers/fixtures'

const ROOT = path.join(__dirname, '..')

// Run in a child process so that a crash at exit (napi instance data, thread pools torn down
// twice) shows up as a signal or a bad exit code rather than killing the test runner.
const SCRIPT = `
const { Worker } = require('node:worker_threads')
const { pipeline } = require('./dist/index.js')
const model = process.argv[1]
const text = 'Erna Solberg besøkte Universitetet i Oslo. '.repeat(40)

const workerCode = \`
  const { parentPort, workerData } = require('node:worker_threads')
  const { pipeline } = require(workerData.index)
  pipeline(workerData.model, { threads: 1 }).then(async (ner) => {
    parentPort.postMessage({ ready: true })
    for (;;) {
      const out = await ner(workerData.text, { aggregationStrategy: 'simple' })
      parentPort.postMessage({ entities: out.length })
    }
  })
\`

function start() {
  const w = new Worker(workerCode, { eval: true, workerData: { index: require.resolve('./dist/index.js'), model, text } })
  const results = []
  const firstResult = new Promise((resolve, reject) => {
    w.on('message', (m) => { if (m.entities !== undefined) { results.push(m.entities); resolve() } })
    w.on('error', reject)
  })
  return { w, results, firstResult }
}

;(async () => {
  const ner = await pipeline(model, { threads: 1 })
  const before = JSON.stringify(await ner(text, { aggregationStrategy: 'simple' }))
  const workers = [start(), start(), start(), start()]
  // Main-thread calls run while the workers compute.
  const during = await Promise.all([1, 2, 3].map(() => ner(text, { aggregationStrategy: 'simple' })))
  await Promise.all(workers.map((x) => x.firstResult))
  // Terminate mid-call: every worker is inside a ner() call in its loop.
  await Promise.all(workers.slice(0, 2).map((x) => x.w.terminate()))
  // And the others after a few more results.
  await new Promise((r) => setTimeout(r, 200))
  await Promise.all(workers.slice(2).map((x) => x.w.terminate()))
  // A fresh worker after the others died still works.
  const late = start()
  await late.firstResult
  await late.w.terminate()
  const after = JSON.stringify(await ner(text, { aggregationStrategy: 'simple' }))
  console.log(JSON.stringify({
    sameBefore: during.every((d) => JSON.stringify(d) === before),
    sameAfter: after === before,
    workerResults: workers.map((x) => x.results.length),
    workerEntities: [...new Set(workers.flatMap((x) => x.results))],
    mainEntities: JSON.parse(before).length,
  }))
})()
`

test('four worker_threads run ner() at once, are terminated mid-call and after; the main model is unaffected and exit is clean', (t) => {
  const r = spawnSync(process.execPath, ['-e', SCRIPT, TINY_MODEL], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  t.is(r.signal, null, `died with ${r.signal}: ${r.stderr}`)
  t.is(r.status, 0, r.stderr)
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!)
  t.true(res.sameBefore, 'main-thread results while workers ran')
  t.true(res.sameAfter, 'main-thread results after the workers were terminated')
  t.true(res.workerResults.every((n: number) => n >= 1))
  t.deepEqual(res.workerEntities, [res.mainEntities], 'workers computed what the main thread computes')
})

test('a call in flight keeps the process alive until it settles, and an idle model lets it exit', (t) => {
  // Nothing but the calls' own promises holds this process's event loop.
  const script = `
    const { EuroBertModel } = require('./dist/index.js')
    EuroBertModel.load(process.argv[1], { threads: 1 }).then((model) => {
      const texts = Array(200).fill('Erna Solberg besøkte Universitetet i Oslo.')
      model.logits(texts).then((out) => model.logits(texts.slice(0, 1)).then((one) => console.log('settled ' + out.length + ' ' + one.length)))
    })`
  const r = spawnSync(process.execPath, ['-e', script, TINY_MODEL], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  t.is(r.signal, null, `did not exit by itself (${r.signal}): ${r.stderr}`)
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.trim(), 'settled 200 1', 'the process waited for both calls')
})

test("a model's threads stay awake briefly after a call, then sleep: an idle model takes no CPU", (t) => {
  // Its own process: the CPU time measured is the model's threads' alone. While they linger
  // (1 ms after the last work) they yield but spin; one that never stopped would take
  // ~1 s of CPU over the 500 ms window below.
  const script = `
    const { EuroBertModel } = require('./dist/index.js')
    EuroBertModel.load(process.argv[1], { threads: 2 }).then(async (model) => {
      for (let i = 0; i < 50; i++) await model.logits(['Erna Solberg besøkte Universitetet i Oslo.'])
      await new Promise((r) => setTimeout(r, 100))
      const before = process.cpuUsage()
      await new Promise((r) => setTimeout(r, 500))
      const used = process.cpuUsage(before)
      console.log(JSON.stringify({ ms: (used.user + used.system) / 1000 }))
    })`
  const r = spawnSync(process.execPath, ['-e', script, TINY_MODEL], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  t.is(r.status, 0, r.stderr)
  const { ms } = JSON.parse(r.stdout.trim())
  t.true(ms < 100, `the idle process used ${ms} ms of CPU in 500 ms`)
})

test('calls on different threads never cancel each other: an abort in one worker leaves the call of another running', async (t) => {
  // Both workers' first cancellable call: the same number, were calls numbered per thread.
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { EuroBertModel } = require(workerData.index)
    EuroBertModel.load(workerData.model, { threads: 1 }).then((model) => {
      let controller
      parentPort.on('message', async (m) => {
        if (m === 'abort') return controller.abort()
        controller = new AbortController()
        const call = model.logits(workerData.texts, { signal: controller.signal })
        parentPort.postMessage('started')
        try {
          await call
          parentPort.postMessage('done')
        } catch (e) {
          parentPort.postMessage(e.name)
        }
      })
      parentPort.postMessage('ready')
    })`
  const texts = Array(3000).fill('Erna Solberg besøkte Universitetet i Oslo, og Jonas Gahr Støre var i Bergen.')
  const workers = [0, 1].map(() => new Worker(code, { eval: true, workerData: { index: require.resolve('..'), model: TINY_MODEL, texts } }))
  t.teardown(() => Promise.all(workers.map((w) => w.terminate())))
  const next = (w: Worker) => new Promise<string>((resolve, reject) => (w.once('message', resolve), w.once('error', reject)))
  await Promise.all(workers.map(next))
  const [a, b] = workers
  let answer = next(a)
  a.postMessage('start')
  t.is(await answer, 'started')
  const aEnds = next(a)
  answer = next(b)
  b.postMessage('start')
  t.is(await answer, 'started')
  const bEnds = next(b)
  a.postMessage('abort')
  t.is(await aEnds, 'AbortError')
  t.is(await bEnds, 'done', "the other worker's call ran to its end")
})

test('two copies of the package in one thread (as test runners load it per file) never cancel each other\'s calls', async (t) => {
  const dist = path.join(ROOT, 'dist') + path.sep
  const load = () => {
    // A fresh copy of the JavaScript; the addon itself stays the one this process loaded.
    for (const k of Object.keys(require.cache)) if (k.startsWith(dist)) delete require.cache[k]
    return require(path.join(ROOT, 'dist', 'index.js')) as typeof import('..')
  }
  const [one, two] = [load(), load()]
  t.not(one.EuroBertModel, two.EuroBertModel, 'two copies')
  const [a, b] = await Promise.all([one.EuroBertModel.load(TINY_MODEL, { threads: 1 }), two.EuroBertModel.load(TINY_MODEL, { threads: 1 })])
  const texts = Array(3000).fill('Erna Solberg besøkte Universitetet i Oslo, og Jonas Gahr Støre var i Bergen.')
  const stop = new AbortController()
  const first = a.logits(texts, { signal: stop.signal })
  const second = b.logits(texts, { signal: new AbortController().signal })
  stop.abort()
  t.is((await t.throwsAsync(first))!.name, 'AbortError')
  t.is((await second).length, texts.length, "the other copy's call ran to its end")
  a.dispose()
  b.dispose()
})
