// Loading events against the ones transformers.js sends for the same files
// (bench/record-progress.mjs wrote fixtures/progress-events.json with transformers.js' own
// pipeline): the same statuses with the same fields, per file `initiate`, `download`,
// `progress` (each after a `progress_total`) and `done`, totals that end complete, and `ready`
// last, for a folder, a Hub download and a cache hit.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { pipeline, type ProgressInfo } from '..'
import { FIXTURES } from './helpers/fixtures'
import { folderRepo, startHub } from './helpers/hub-server'

interface Shape {
  status: string
  file?: string
  fields: string[]
}
interface Recording {
  events: Shape[]
  finalTotal?: { loaded: number; total: number; progress: number }
}
const fx = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'progress-events.json'), 'utf8')) as { weights: string; folder: Recording; hub: Recording; cached: Recording }
const MODEL = path.join(__dirname, '..', 'models', 'norne-compact')

const shape = (e: ProgressInfo): Shape => ({ status: e.status, ...('file' in e && { file: e.file }), fields: Object.keys(e).sort() })
/** Each status's field names. */
const fieldsByStatus = (events: Shape[]) => Object.fromEntries(events.map((e) => [e.status, e.fields.join(',')]))
/** Each file's statuses, runs of `progress` collapsed to one. */
function perFile(events: Shape[], rename: (f: string) => string = (f) => f): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const e of events) {
    if (e.file === undefined) continue
    const list = (out[rename(e.file)] ??= [])
    if (!(e.status === 'progress' && list.at(-1) === 'progress')) list.push(e.status)
  }
  return out
}

/** What holds for our events against transformers.js' recording of the same kind of load. */
function sameAsTransformersJs(t: import('ava').ExecutionContext, ours: ProgressInfo[], theirs: Recording, name: string): void {
  const shapes = ours.map(shape)
  t.deepEqual(fieldsByStatus(shapes), fieldsByStatus(theirs.events), 'the same statuses, with the same fields')
  // The same files (their weights are ONNX, ours safetensors), each through the same steps.
  const weights = (f: string) => (f === fx.weights || f === 'model.safetensors' ? '<weights>' : f)
  t.deepEqual(perFile(shapes, weights), perFile(theirs.events, weights), 'per file: initiate, download, progress, done')
  ours.forEach((e, i) => {
    if (e.status === 'progress') t.is(ours[i - 1]?.status, 'progress_total', `event ${i}: a progress_total before each progress`)
  })
  const last = ours.at(-1)
  t.deepEqual(last, { status: 'ready', task: 'token-classification', model: name }, 'ready comes last')
  t.is(theirs.events.at(-1)?.status, 'ready')
  const totals = ours.filter((e): e is Extract<ProgressInfo, { status: 'progress_total' }> => e.status === 'progress_total')
  const final = totals.at(-1)!
  t.is(final.loaded, final.total, 'the totals end complete')
  t.is(final.progress, 100)
  t.is(theirs.finalTotal?.progress, 100)
  for (const e of ours) if ('name' in e) t.is(e.name, name)
}

test('a local folder: the events transformers.js sends for one', async (t) => {
  const events: ProgressInfo[] = []
  const ner = await pipeline('token-classification', MODEL, { threads: 1, progress_callback: (e) => events.push(e) })
  sameAsTransformersJs(t, events, fx.folder, MODEL)
  ner.dispose()
})

test('a Hub id: the download with its bytes as they arrive, then a cache hit; onProgress gets the same events', async (t) => {
  const hub = await startHub([folderRepo('test/norne-compact', MODEL)])
  t.teardown(() => hub.close())
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-progress-'))
  t.teardown(() => fs.rmSync(cacheDir, { recursive: true, force: true }))
  const events: ProgressInfo[] = []
  const ner = await pipeline('test/norne-compact', { endpoint: hub.url, cacheDir, threads: 1, progress_callback: (e) => events.push(e) })
  sameAsTransformersJs(t, events, fx.hub, 'test/norne-compact')
  const partial = events.filter((e) => e.status === 'progress' && e.file === 'model.safetensors' && e.loaded < e.total)
  t.true(partial.length > 0, 'the weights report bytes before they are complete')
  ner.dispose()
  const again: ProgressInfo[] = []
  const cached = await pipeline('test/norne-compact', { endpoint: hub.url, cacheDir, threads: 1, onProgress: (e) => again.push(e) })
  sameAsTransformersJs(t, again, fx.cached, 'test/norne-compact')
  cached.dispose()
})

test('a callback that throws does not fail the load', async (t) => {
  const ner = await pipeline(MODEL, {
    threads: 1,
    progress_callback: () => {
      throw new Error('a UI bug')
    },
  })
  t.true(Array.isArray(await ner('Oslo')))
  ner.dispose()
})
