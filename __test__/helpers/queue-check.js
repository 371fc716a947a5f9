// Runs the queue end to end against one BullMQ major: `node queue-check.js REDIS_URL QUEUE
// MODEL [BULLMQ_DIR]`. With BULLMQ_DIR, `require('bullmq')` resolves there (a folder with
// bullmq 6 and ioredis installed), as it would in an app that installed that major.
// Prints one JSON line: the version, a result, the poison job's attempts, progress, worker name.
const Module = require('node:module')
const path = require('node:path')
const [redis, queueName, model, bullmqDir] = process.argv.slice(2)
if (bullmqDir) {
  const resolve = Module._resolveFilename
  Module._resolveFilename = function (request, ...rest) {
    if (request === 'bullmq') return resolve.call(this, path.join(bullmqDir, 'node_modules', 'bullmq'), ...rest)
    return resolve.call(this, request, ...rest)
  }
}
const { startWorker, nerQueue } = require(path.join(__dirname, '..', '..', 'dist', 'queue', 'index.js'))

;(async () => {
  const version = require(require.resolve('bullmq/package.json', bullmqDir ? { paths: [path.join(bullmqDir, 'node_modules')] } : undefined)).version
  const worker = await startWorker({ redis, queue: queueName, model, threads: 1, name: 'checker' })
  const q = await nerQueue({ redis, queue: queueName })
  const entities = await q.ner('Erna Solberg besøkte Oslo.', { aggregationStrategy: 'simple' })
  const progress = []
  const job = await q.add({ texts: Array.from({ length: 20 }, (_, i) => `Oslo ${i}`) })
  const poll = setInterval(async () => {
    const j = await q.queue.getJob(job.id)
    if (j && typeof j.progress === 'number' && progress[progress.length - 1] !== j.progress) progress.push(j.progress)
  }, 5)
  await q.wait(job)
  clearInterval(poll)
  const done = await q.queue.getJob(job.id)
  const poison = await q.add({ text: 42 }, { attempts: 3, backoff: { type: 'fixed', delay: 10 } })
  const error = await q.wait(poison).then(() => 'completed', (e) => e.message)
  const failed = await q.queue.getJob(poison.id)
  console.log(JSON.stringify({ version, groups: entities.map((e) => e.entity_group), progress: done.progress, processedBy: done.processedBy ?? null, error, attemptsMade: failed.attemptsMade }))
  await q.close()
  await worker.close()
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
