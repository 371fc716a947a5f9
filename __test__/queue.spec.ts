// Scale-out on BullMQ against a real redis-server (Debian's package; started here on a free
// loopback port, installed by .ci/run): two worker processes share one queue; a worker killed
// with SIGKILL mid-job loses nothing (its job is recovered as stalled and run by the other,
// once); a poison document fails its own job and the worker carries on.
import { ChildProcess, spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { nerQueue } from '../dist/queue'
import { expected, SLOWDOWN, TINY_MODEL } from './helpers/fixtures'

const CLI = path.join(__dirname, '..', 'dist', 'cli', 'index.js')
const TEXTS = expected().batch.texts
const hasRedis = spawnSync('redis-server', ['--version']).status === 0
const withRedis = hasRedis ? test.serial : test.serial.skip

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

let redis: ChildProcess | undefined
let redisUrl = ''

test.before(async () => {
  if (!hasRedis) return
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-redis-'))
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir])
  redisUrl = `redis://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => (c.end(), resolve(true))).on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('redis-server did not start')
})

test.after.always(() => redis?.kill('SIGKILL'))

interface Worker {
  child: ChildProcess
  events: { event: string; job?: string; error?: string }[]
  ready: Promise<void>
}

/** Workers and producers a test left open (it failed before closing them): closed after it, so a failure cannot hang the suite. */
const leftWorkers = new Set<ChildProcess>()
const leftQueues = new Set<{ close(): Promise<void> }>()
test.afterEach.always(async () => {
  for (const c of leftWorkers) c.kill('SIGKILL')
  await Promise.all([...leftQueues].map((q) => q.close().catch(() => undefined)))
  leftWorkers.clear()
  leftQueues.clear()
})

async function openQueue(queue: string) {
  const q = await nerQueue({ redis: redisUrl, queue })
  const close = q.close.bind(q)
  leftQueues.add(q)
  q.close = () => (leftQueues.delete(q), close())
  return q
}

/**
 * A preload that makes `require('bullmq')` load BullMQ 6 (the `bullmq6` dev dependency) and,
 * with `ioredis: false`, hides ioredis, as `npm i bullmq` installs it today.
 */
function bullmq6Hook(ioredis: boolean): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-bullmq6-')), 'hook.js')
  fs.writeFileSync(
    file,
    `const Module = require('module')
const resolve = Module._resolveFilename
Module._resolveFilename = function (request, ...rest) {
  if (request === 'bullmq') request = 'bullmq6'
  if (request === 'ioredis' && ${!ioredis}) throw Object.assign(new Error("Cannot find module 'ioredis'"), { code: 'MODULE_NOT_FOUND' })
  return resolve.call(this, request, ...rest)
}
`,
  )
  return file
}

function startWorker(queue: string, extra: string[] = []): Worker {
  const child = spawn(process.execPath, [CLI, 'worker', '--redis', redisUrl, '--queue', queue, '-m', TINY_MODEL, '--threads', '1', ...extra])
  leftWorkers.add(child)
  child.on('exit', () => leftWorkers.delete(child))
  const events: Worker['events'] = []
  let buffer = ''
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buffer += d
      const lines = buffer.split('\n')
      buffer = lines.pop()!
      for (const l of lines) {
        const e = JSON.parse(l)
        events.push(e)
        if (e.event === 'ready') resolve()
      }
    })
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}`)))
  })
  return { child, events, ready }
}

/** Waits until `check` holds (worker events arrive a moment after the results they log). */
async function until(check: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (check()) return true
  return check()
}

const stop = (w: Worker) => new Promise<void>((resolve) => (w.child.exitCode !== null ? resolve() : (w.child.on('exit', () => resolve()), w.child.kill('SIGTERM'))))

withRedis('two workers share one queue; every job gets its entities', async (t) => {
  const [a, b] = [startWorker('share'), startWorker('share')]
  await Promise.all([a.ready, b.ready])
  const q = await openQueue('share')
  const docs = Array.from({ length: 60 }, (_, i) => `${TEXTS[i % TEXTS.length]} (${i})`)
  const results = await Promise.all(docs.map((d) => q.ner(d, { aggregationStrategy: 'simple' })))
  t.is(results.length, 60)
  t.true(results.every((r) => Array.isArray(r)))
  const done = (w: Worker) => w.events.filter((e) => e.event === 'completed').length
  await until(() => done(a) + done(b) >= 60)
  t.is(done(a) + done(b), 60)
  t.true(done(a) > 0 && done(b) > 0, `a ran ${done(a)}, b ran ${done(b)}`)
  // texts in one job come back as one list per text.
  t.is(((await q.ner(TEXTS.slice(0, 3))) as unknown[]).length, 3)
  await q.close()
  await Promise.all([stop(a), stop(b)])
})

withRedis('a worker killed with SIGKILL mid-job: the other finishes its job, once', async (t) => {
  const opts = ['--lock-ms', '1500', '--stalled-ms', '500', '--concurrency', '1']
  const a = startWorker('stall', opts)
  await a.ready
  const q = await openQueue('stall')
  // Long documents so that a job is still running when the worker dies.
  const big = TEXTS.join(' ').repeat(30)
  const jobs = await Promise.all(Array.from({ length: 3 }, () => q.add({ texts: [big, big, big, big] })))
  // Kill the worker as soon as it starts a job.
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (a.events.some((e) => e.event === 'active')) {
        clearInterval(poll)
        resolve()
      }
    }, 5)
  })
  const killed = a.events.find((e) => e.event === 'active')!.job
  a.child.kill('SIGKILL')
  await new Promise((r) => a.child.on('exit', r))
  t.false(a.events.some((e) => e.event === 'completed' && e.job === killed), 'the killed worker did not finish its job')
  const b = startWorker('stall', opts)
  await b.ready
  const results = await Promise.all(jobs.map((j) => q.wait(j, 60_000 * SLOWDOWN)))
  t.is(results.length, 3)
  t.true(results.every((r) => Array.isArray(r) && (r as unknown[]).length === 4))
  await until(() => b.events.filter((e) => e.event === 'completed').length >= 3)
  const completed = b.events.filter((e) => e.event === 'completed').map((e) => e.job)
  t.deepEqual([...completed].sort(), jobs.map((j) => j.id).sort(), 'each job completed exactly once, by the survivor')
  t.true(completed.includes(killed))
  await q.close()
  await stop(b)
})

withRedis('a poison document fails its job with the error; the worker carries on', async (t) => {
  const w = startWorker('poison')
  await w.ready
  const q = await openQueue('poison')
  const outcomes = await Promise.allSettled([
    q.ner(TEXTS[0]),
    q.ner(TEXTS[2], { stride: 10_000 }),
    q.add({ text: 42 } as never).then((j) => q.wait(j)),
    q.ner(TEXTS[1]),
  ])
  t.is(outcomes[0].status, 'fulfilled')
  t.is(outcomes[1].status, 'rejected')
  t.regex(String((outcomes[1] as PromiseRejectedResult).reason), /options.stride may be at most \d+ on this worker/)
  t.is(outcomes[2].status, 'rejected')
  t.regex(String((outcomes[2] as PromiseRejectedResult).reason), /"text" must be a string/)
  t.is(outcomes[3].status, 'fulfilled')
  t.true(await until(() => w.events.some((e) => e.event === 'failed' && /options.stride may be at most \d+ on this worker/.test(e.error ?? ''))))
  t.true(Array.isArray(await q.ner(TEXTS[2])), 'the worker carries on')
  await q.close()
  await stop(w)
})

withRedis('jobs are bounded: too many characters or too large a result fail once without retries, bad data too; the worker carries on', async (t) => {
  const w = startWorker('bounded', ['--max-job-chars', '5000', '--max-result-bytes', '20000'])
  await w.ready
  const q = await openQueue('bounded')
  const settle = (p: Promise<unknown>) => p.then(() => 'ok', (e: Error) => e.message)
  const [tooLong, tooBig, bad, ok] = await Promise.all([
    settle(q.ner('x'.repeat(6000), {}, { attempts: 3 })),
    // Strategy none keeps every token: 4,000 characters of names make far more than 20 KB of JSON.
    settle(q.ner('Erna Solberg og Jonas Gahr Støre. '.repeat(110), { aggregationStrategy: 'none', ignoreLabels: [] }, { attempts: 3 })),
    settle(q.add({ texts: 'not a list' } as never, { attempts: 3 }).then((j) => q.wait(j))),
    settle(q.ner(TEXTS[0])),
  ])
  t.regex(tooLong, /6000 characters; the limit is 5000/)
  t.regex(tooBig, /the result is \d+ bytes of JSON, over the 20000/)
  t.regex(bad, /"texts" an array of strings/)
  t.is(ok, 'ok')
  // Job options take either spelling, as ner() does.
  t.deepEqual(await q.ner(TEXTS[0], { aggregation_strategy: 'simple' } as never), await q.ner(TEXTS[0], { aggregationStrategy: 'simple' }))
  // Each failed once: UnrecoverableError skips the remaining attempts.
  for (const state of ['failed'] as const) {
    const jobs = await q.queue.getJobs([state])
    t.is(jobs.length, 3)
    t.true(jobs.every((j) => j.attemptsMade === 1), jobs.map((j) => j.attemptsMade).join(','))
  }
  await q.close()
  await stop(w)
})

withRedis('jobs cost what serve allows: batch options refused, texts capped, the window tokens budgeted before any forward pass', async (t) => {
  const w = startWorker('costs', ['--max-job-texts', '10', '--max-job-tokens', '3000'])
  await w.ready
  const q = await openQueue('costs')
  const settle = (p: Promise<unknown>) => p.then(() => 'ok', (e: Error) => e.message)
  const long = 'Erna Solberg besøkte Oslo og Bergen. '.repeat(120)
  const [batch, tokensOpt, many, shortWindow, dense, manyTexts, ok] = await Promise.all([
    settle(q.ner('Oslo', { batchSize: 1e6 } as never, { attempts: 3 })),
    settle(q.ner('Oslo', { max_batch_tokens: 1e9 } as never, { attempts: 3 })),
    settle(q.ner(Array(11).fill('Oslo'), {}, { attempts: 3 })),
    // The audit's job: a short window with a stride that steps one token at a time.
    settle(q.ner(long, { maxLength: 19, stride: 16 }, { attempts: 3 })),
    settle(q.ner(long, { maxLength: 19, stride: 8 }, { attempts: 3 })),
    // A texts job's budget is the whole job's, checked before its first part runs.
    settle(q.ner(Array(10).fill(long.slice(0, 1500)), {}, { attempts: 3 })),
    settle(q.ner(TEXTS[0])),
  ])
  t.regex(batch, /options batchSize cannot be set per job/)
  t.regex(tokensOpt, /options max_batch_tokens cannot be set per job/)
  t.regex(many, /the job has 11 texts; the limit is 10/)
  t.regex(shortWindow, /options\.stride may be at most 8 on this worker \(half the 17 text tokens a window of 19 holds\)/)
  t.regex(dense, /windows of this job would run \d+ tokens; the limit is 3000/)
  t.regex(manyTexts, /windows of this job would run \d+ tokens; the limit is 3000/)
  t.is(ok, 'ok')
  const failed = await q.queue.getJobs(['failed'])
  t.is(failed.length, 6)
  t.true(failed.every((j) => j.attemptsMade === 1), 'each failed once, without retries')
  await q.close()
  await stop(w)
})

withRedis('close has a deadline: at SIGTERM a running job is stopped in the native pool, the worker exits on time, and the job runs again elsewhere', async (t) => {
  t.timeout(180_000 * SLOWDOWN)
  const opts = ['--lock-ms', '2000', '--stalled-ms', '500', '--concurrency', '1', '--max-job-tokens', '100000000', '--max-job-chars', '10000000']
  const a = startWorker('deadline', [...opts, '--drain-timeout-ms', String(500 * SLOWDOWN)])
  await a.ready
  const q = await openQueue('deadline')
  // Far more work than the deadline: the tiny model needs seconds for it.
  const big = TEXTS.join(' ').repeat(2000)
  // Every entity left out: the result stays small, the work does not.
  const ignore = [...new Set(expected().labels.map((l) => l.replace(/^[BI]-/, '')))]
  const job = await q.add({ texts: [big], options: { aggregationStrategy: 'first', ignoreLabels: ignore } })
  await until(() => a.events.some((e) => e.event === 'active'), 30_000 * SLOWDOWN)
  const started = Date.now()
  a.child.kill('SIGTERM')
  const code = await new Promise<number | null>((r) => a.child.on('exit', r))
  const took = Date.now() - started
  t.is(code, 0)
  t.true(took < 8000 * SLOWDOWN, `exited ${took} ms after SIGTERM with a 0.5 s deadline`)
  t.false(a.events.some((e) => e.event === 'completed'))
  // Its lock expires, and another worker runs it, under a lock of its own long enough that a
  // loaded machine cannot stall it a second time (BullMQ fails a job stalled twice).
  const b = startWorker('deadline', opts.map((o, i) => (opts[i - 1] === '--lock-ms' ? String(15_000 * SLOWDOWN) : o)))
  await b.ready
  const result = await q.wait(job, 120_000 * SLOWDOWN)
  t.deepEqual(result, [[]])
  await q.close()
  await stop(b)
})

withRedis('a worker whose Redis is unreachable says so at once', async (t) => {
  const child = spawn(process.execPath, [CLI, 'worker', '--redis', 'redis://127.0.0.1:1', '-m', TINY_MODEL, '--threads', '1'])
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  const seen = await until(() => /"event":"error".*ECONNREFUSED.*redis:\/\/127\.0\.0\.1:1/.test(out), 15_000)
  child.kill('SIGKILL')
  t.true(seen, out)
})

/** A folder with bullmq 6 and ioredis installed (once; npm's cache makes later runs quick). */
function bullmq6(): string {
  const dir = path.join(os.homedir(), '.cache', 'eurobert-ner', 'bullmq6')
  if (!fs.existsSync(path.join(dir, 'node_modules', 'bullmq', 'package.json'))) {
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'bullmq6', private: true }))
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
    const r = spawnSync(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', 'bullmq@^6', 'ioredis@^5'], { cwd: dir, encoding: 'utf8', shell: process.platform === 'win32' })
    if (r.status !== 0) throw new Error(`npm install bullmq@6 failed: ${r.stderr}`)
  }
  return dir
}

withRedis('BullMQ 5 and 6 both work: entities, progress, the worker name on jobs, a poison job failing once of 3 attempts', async (t) => {
  t.timeout(180_000 * SLOWDOWN)
  for (const [major, dir] of [['5', undefined], ['6', bullmq6()]] as const) {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'helpers', 'queue-check.js'), redisUrl, `major${major}`, TINY_MODEL, ...(dir ? [dir] : [])], { encoding: 'utf8', timeout: 120_000 })
    t.is(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!)
    t.true(out.version.startsWith(`${major}.`), out.version)
    t.true(Array.isArray(out.groups))
    t.is(out.progress, 100, `bullmq ${major}: progress ${out.progress}`)
    t.is(out.processedBy, 'checker', `bullmq ${major}: worker name`)
    t.regex(out.error, /"text" must be a string/)
    t.is(out.attemptsMade, 1, `bullmq ${major}: the poison job ran once`)
  }
})

withRedis('BullMQ 6 without ioredis (what `npm i bullmq` installs now): the worker exits 1 with what to install, at once, spinning on nothing', async (t) => {
  const hook = bullmq6Hook(false)
  t.teardown(() => fs.rmSync(path.dirname(hook), { recursive: true, force: true }))
  const started = Date.now()
  const r = spawnSync(process.execPath, ['-r', hook, CLI, 'worker', '--redis', redisUrl, '-m', TINY_MODEL, '--threads', '1'], { encoding: 'utf8', timeout: 60_000 * SLOWDOWN })
  t.is(r.status, 1, `signal ${r.signal}: ${r.stderr}`)
  t.regex(r.stderr, /^eurobert-ner: error: .*ioredis.*npm i ioredis/m)
  t.log(`exited after ${Date.now() - started} ms`)
})
