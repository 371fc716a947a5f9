// Models by Hub id, against a Hub stand-in on 127.0.0.1 (HF_ENDPOINT semantics): Python's
// cache layout, only the files a safetensors model needs, offline mode, revisions, shards,
// resumed and corrupted downloads, tokens, errors, and two processes at once.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { EuroBertModel, pipeline, resolveModel } from '..'
import { cacheTree, Entry } from './helpers/cache-tree'
import { FIXTURES, TINY_MODEL } from './helpers/fixtures'
import { commitOf, folderRepo, HubRepo, readFolder, startHub } from './helpers/hub-server'
import { shardedFiles } from './helpers/safetensors'

const TEXT = 'Erna Solberg besøkte Universitetet i Oslo.'
const TOKEN = 'hf_testtoken1234567890'
const ROOT = path.join(__dirname, '..')

function tmp(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `eurobert-hub-${name}-`))
}

/** The tiny model plus files a loader must never fetch. */
function decoyRepo(): HubRepo {
  const files = readFolder(TINY_MODEL)
  files['pytorch_model.bin'] = Buffer.from('\x80\x02 a pickle')
  files['onnx/model.onnx'] = Buffer.from('onnx')
  files['modeling_eurobert.py'] = Buffer.from('import os')
  files['README.md'] = Buffer.from('# tiny')
  const sha = commitOf(files)
  return { id: 'test/decoys', commits: { [sha]: files }, refs: { main: sha } }
}

/** The tiny model split into a sharded checkpoint. */
function shardedRepo(): HubRepo {
  const files = shardedFiles(readFolder(TINY_MODEL))
  const sha = commitOf(files)
  return { id: 'test/sharded', commits: { [sha]: files }, refs: { main: sha } }
}

function picklesOnly(): HubRepo {
  const files = readFolder(TINY_MODEL)
  delete files['model.safetensors']
  files['pytorch_model.bin'] = Buffer.from('\x80\x02 a pickle')
  const sha = commitOf(files)
  return { id: 'test/pickles', commits: { [sha]: files }, refs: { main: sha } }
}

const tiny = () => folderRepo('test/tiny', TINY_MODEL)

/** A Hub stand-in stopped when the test ends, whatever happens in it. */
async function hubFor(t: { teardown: (f: () => Promise<void>) => void }, ...args: Parameters<typeof startHub>) {
  const hub = await startHub(...args)
  t.teardown(() => hub.close())
  return hub
}
const commit = commitOf(readFolder(TINY_MODEL))

async function entities(model: EuroBertModel): Promise<string> {
  const [out] = await model.logits(TEXT)
  return Array.from(out.logits.slice(0, 19), (v) => v.toFixed(5)).join(',')
}

test('first download: only the needed files, in Python\'s layout with refs and relative links; then a cache hit with the server stopped', async (t) => {
  const hub = await hubFor(t, [tiny(), decoyRepo()])
  const cacheDir = tmp('first')
  const seen: Record<string, number> = {}
  const model = await EuroBertModel.load('test/decoys', { endpoint: hub.url, cacheDir, onProgress: (p) => p.status === 'progress' && (seen[p.file] = p.loaded === p.total ? p.total : -1) })
  const fetched = hub.requests.filter((r) => r.url.includes('/resolve/')).map((r) => decodeURIComponent(r.url.split('/resolve/')[1].split('/').slice(1).join('/')))
  t.deepEqual([...new Set(fetched)].sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'])
  t.deepEqual(Object.keys(seen).sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'])
  t.is(seen['model.safetensors'], fs.statSync(path.join(TINY_MODEL, 'model.safetensors')).size, 'progress ends at the file size')
  const repoDir = path.join(cacheDir, 'models--test--decoys')
  const sha = fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8')
  t.regex(sha, /^[0-9a-f]{40}$/)
  const link = fs.readlinkSync(path.join(repoDir, 'snapshots', sha, 'model.safetensors'))
  t.regex(link, /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/, 'LFS blobs are named by their sha256, linked relatively')
  t.is(model.path, path.join(repoDir, 'snapshots', sha))
  const want = await entities(await EuroBertModel.load(TINY_MODEL))
  t.is(await entities(model), want)
  await hub.close()

  // Server gone: the cached snapshot loads without a request.
  const again = await EuroBertModel.load('test/decoys', { endpoint: hub.url, cacheDir })
  t.is(await entities(again), want)
})

test('offline mode with an empty cache says which model is missing and how to go offline', async (t) => {
  const cacheDir = tmp('offline')
  const err = await t.throwsAsync(EuroBertModel.load('test/tiny', { cacheDir, localFilesOnly: true }))
  t.regex(err!.message, /HF_HUB_OFFLINE.*test\/tiny@main is not in the cache.*Download it once online/)
  // No server at all and an empty cache: the same, naming the address it could not reach.
  const down = await t.throwsAsync(EuroBertModel.load('test/tiny', { cacheDir, endpoint: 'http://127.0.0.1:9' }))
  t.regex(down!.message, /cannot reach http:\/\/127\.0\.0\.1:9.*not in the cache/)
  // With a cache, offline needs no server at all.
  const hub = await hubFor(t, [tiny()])
  await resolveModel('test/tiny', { endpoint: hub.url, cacheDir })
  await hub.close()
  const requests = hub.requests.length
  const model = await EuroBertModel.load('test/tiny', { cacheDir, localFilesOnly: true })
  t.truthy(model.labels.length)
  t.is(hub.requests.length, requests)
})

test('a commit hash and a tag resolve to the same snapshot; a tag gets its ref', async (t) => {
  const hub = await hubFor(t, [tiny()])
  const cacheDir = tmp('revs')
  const byCommit = await resolveModel(`test/tiny@${commit}`, { endpoint: hub.url, cacheDir })
  const byTag = await resolveModel('test/tiny', { endpoint: hub.url, cacheDir, revision: 'v1.0' })
  t.is(byCommit, byTag)
  t.is(path.basename(byTag), commit)
  const refs = path.join(cacheDir, 'models--test--tiny', 'refs')
  t.deepEqual(fs.readdirSync(refs), ['v1.0'])
  t.is(fs.readFileSync(path.join(refs, 'v1.0'), 'utf8'), commit)
  await t.throwsAsync(resolveModel('test/tiny@v1.0', { revision: 'main' }), { instanceOf: RangeError })
  await hub.close()
})

test('a sharded checkpoint downloads its index and every shard', async (t) => {
  const hub = await hubFor(t, [shardedRepo()])
  const cacheDir = tmp('sharded')
  const model = await EuroBertModel.load('test/sharded', { endpoint: hub.url, cacheDir })
  t.deepEqual(fs.readdirSync(model.path).sort(), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json'])
  t.is(await entities(model), await entities(await EuroBertModel.load(TINY_MODEL)))
  await hub.close()
})

test('a connection dropped mid-file resumes with a Range request; nothing partial is ever linked', async (t) => {
  const hub = await hubFor(t, [tiny()], { dropAfter: { file: 'model.safetensors', bytes: 300_000 } })
  const cacheDir = tmp('resume')
  const model = await EuroBertModel.load('test/tiny', { endpoint: hub.url, cacheDir })
  const ranges = hub.requests.filter((r) => r.server === 'cdn').map((r) => r.range)
  t.is(ranges.length, 2)
  t.is(ranges[0], undefined)
  // It resumes from what arrived before the drop (up to the 300,000 bytes the server sent).
  const from = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1])
  t.true(from > 0 && from <= 300_000, String(ranges[1]))
  const blob = fs.realpathSync(path.join(model.path, 'model.safetensors'))
  t.true(fs.readFileSync(blob).equals(fs.readFileSync(path.join(TINY_MODEL, 'model.safetensors'))))
  t.false(fs.readdirSync(path.dirname(blob)).some((f) => f.endsWith('.incomplete')))
  await hub.close()
})

test('a corrupted byte fails the sha256 check and nothing is cached', async (t) => {
  const hub = await hubFor(t, [tiny()], { corrupt: { file: 'model.safetensors' } })
  const cacheDir = tmp('corrupt')
  const err = await t.throwsAsync(EuroBertModel.load('test/tiny', { endpoint: hub.url, cacheDir }))
  t.regex(err!.message, /model\.safetensors: sha256 [0-9a-f]{64} does not match the Hub's [0-9a-f]{64}/)
  const blobs = path.join(cacheDir, 'models--test--tiny', 'blobs')
  t.false(fs.readdirSync(blobs).some((f) => f.length === 64 || f.endsWith('.incomplete')), 'no safetensors blob, no partial file')
  t.false(fs.existsSync(path.join(cacheDir, 'models--test--tiny', 'snapshots', commit, 'model.safetensors')))
  // The next try (the fault was one-off) succeeds.
  t.truthy(await EuroBertModel.load('test/tiny', { endpoint: hub.url, cacheDir }))
  await hub.close()
})

test('a gated repo: 401 without a token, then success with one; the token never reaches the CDN', async (t) => {
  const repo = folderRepo('test/gated', TINY_MODEL, [TOKEN])
  const hub = await hubFor(t, [repo])
  const cacheDir = tmp('gated')
  const err = await t.throwsAsync(EuroBertModel.load('test/gated', { endpoint: hub.url, cacheDir }))
  t.regex(err!.message, /test\/gated@main: authentication required.*set HF_TOKEN/)
  const wrong = await t.throwsAsync(EuroBertModel.load('test/gated', { endpoint: hub.url, cacheDir, token: 'hf_wrongwrongwrongwrong' }))
  t.regex(wrong!.message, /access denied/)
  const model = await EuroBertModel.load('test/gated', { endpoint: hub.url, cacheDir, token: TOKEN })
  t.truthy(model.labels.length)
  t.true(hub.requests.filter((r) => r.server === 'hub').some((r) => r.authorization === `Bearer ${TOKEN}`))
  t.true(hub.requests.filter((r) => r.server === 'cdn').every((r) => r.authorization === undefined))
  await hub.close()
})

test('404s name the repo, the revision, or the missing safetensors', async (t) => {
  const hub = await hubFor(t, [tiny(), picklesOnly()])
  const cacheDir = tmp('404')
  const o = { endpoint: hub.url, cacheDir }
  t.regex((await t.throwsAsync(EuroBertModel.load('test/nope', o)))!.message, /test\/nope@main: repo not found/)
  t.regex((await t.throwsAsync(EuroBertModel.load('test/tiny@nope', o)))!.message, /revision 'nope' not found/)
  const pickles = await t.throwsAsync(EuroBertModel.load('test/pickles', o))
  t.regex(pickles!.message, /no model\.safetensors.*It has pytorch_model\.bin: pickled checkpoints can run code and are never loaded/)
  t.regex((await t.throwsAsync(EuroBertModel.load('not a folder', o)))!.message, /model folder not found: not a folder \(nor is it a Hub id/)
  await hub.close()
})

test('two processes loading the same id at once both succeed with one copy', async (t) => {
  const hub = await hubFor(t, [tiny()])
  const cacheDir = tmp('race')
  const script = `require('./dist/index.js').EuroBertModel.load('test/tiny', { endpoint: ${JSON.stringify(hub.url)}, cacheDir: ${JSON.stringify(cacheDir)} }).then((m) => console.log(m.labels.length))`
  const run = () =>
    new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, ['-e', script], { cwd: ROOT })
      let out = ''
      p.stdout.on('data', (d) => (out += d))
      p.stderr.on('data', (d) => (out += d))
      p.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(out))))
    })
  t.deepEqual(await Promise.all([run(), run()]), ['19', '19'])
  const blobs = fs.readdirSync(path.join(cacheDir, 'models--test--tiny', 'blobs'))
  t.is(blobs.length, 4, 'one blob per file')
  t.is(hub.requests.filter((r) => r.server === 'cdn' && r.method === 'GET').length, 1, 'the weights were downloaded once')
  await hub.close()
})

interface PythonRecord {
  files: string[]
  python_tree: Entry[]
  python_loaded_ours: { max_abs_diff: number }
}

test("our cache has the tree Python's huggingface_hub writes, and loads Python's cache offline", async (t) => {
  const record: PythonRecord = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'hub-python-cache.json'), 'utf8'))
  const hub = await hubFor(t, [tiny()])
  const cacheDir = tmp('shape')
  await resolveModel('test/tiny', { endpoint: hub.url, cacheDir })
  await hub.close()
  // Python also keeps its own listing of each commit's files in `trees/` (rebuilt when missing).
  t.deepEqual(cacheTree(cacheDir), record.python_tree.filter(([rel]) => !rel.includes('/trees/')))
  t.true(record.python_loaded_ours.max_abs_diff < 1e-6, 'transformers loaded our cache (tools/record_hub_cache.py)')

  // Python's cache, rebuilt entry by entry from the recording, loads offline.
  const py = tmp('python')
  const contents = Object.values(readFolder(TINY_MODEL))
  for (const [rel, kind, what] of record.python_tree) {
    const p = path.join(py, rel)
    fs.mkdirSync(path.dirname(p), { recursive: true })
    if (kind === 'link') fs.symlinkSync(what as string, p)
    else if (rel.includes('/refs/')) fs.writeFileSync(p, commit)
    else if (rel === 'CACHEDIR.TAG' || rel.includes('/trees/')) fs.writeFileSync(p, '')
    else fs.writeFileSync(p, contents.find((c) => c.length === what)!)
  }
  const model = await EuroBertModel.load('test/tiny', { cacheDir: py, localFilesOnly: true })
  t.is(await entities(model), await entities(await EuroBertModel.load(TINY_MODEL)))
})

test('the CLI and pipeline take a Hub id from HF_ENDPOINT and HF_HUB_CACHE; transformers.js call shape works', async (t) => {
  const hub = await hubFor(t, [tiny()])
  const cacheDir = tmp('env')
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ['dist/cli/index.js', '-m', 'test/tiny', '--no-progress', '--format', 'jsonl', TEXT], {
      cwd: ROOT,
      env: { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir, HF_HUB_OFFLINE: '' },
    })
    let s = ''
    p.stdout.on('data', (d) => (s += d))
    p.stderr.on('data', (d) => (s += d))
    p.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(s))))
  })
  t.is(JSON.parse(out).text, TEXT, out)
  t.true(fs.existsSync(path.join(cacheDir, 'models--test--tiny', 'refs', 'main')))
  const progress: number[] = []
  const ner = await pipeline('token-classification', 'test/tiny', { cache_dir: cacheDir, local_files_only: true, progress_callback: (p) => p.status === 'progress' && progress.push(p.progress) })
  t.is(typeof (await ner(TEXT)).length, 'number')
  await hub.close()
})

const BERT_VOCAB_ONLY = path.join(FIXTURES, 'families', 'bert-vocab-only')

test('a BERT repo as dslim/bert-base-NER ships it (vocab.txt, max_len, no tokenizer.json) loads by Hub id, as the folder does', async (t) => {
  const hub = await startHub([folderRepo('dslim/bert-like', BERT_VOCAB_ONLY)])
  t.teardown(() => hub.close())
  const cacheDir = tmp('bert')
  const ner = await pipeline('dslim/bert-like', { endpoint: hub.url, cacheDir, threads: 1 })
  const local = await pipeline(BERT_VOCAB_ONLY, { threads: 1 })
  t.is(ner.model.modelMaxLength, 512, 'max_len counts')
  t.deepEqual(await ner(TEXT, { aggregationStrategy: 'first' }), await local(TEXT, { aggregationStrategy: 'first' }))
  const fetched = hub.requests.filter((r) => r.method === 'GET' && r.url.includes('/resolve/')).map((r) => r.url.split('/').pop())
  t.deepEqual(fetched.sort(), ['config.json', 'tokenizer_config.json', 'vocab.txt'])
  t.true(hub.requests.some((r) => r.server === 'cdn' && r.url.includes('file=model.safetensors')), 'and the weights from the CDN')
  ner.dispose()
  local.dispose()
})

/** A repo whose main has only pytorch_model.bin, and conversion PRs on refs/pr/N. */
function conversionRepo(prs: { author: string; fromMain: boolean; num: number }[]): HubRepo {
  const main = readFolder(BERT_VOCAB_ONLY)
  delete main['model.safetensors']
  main['pytorch_model.bin'] = Buffer.from('\x80\x02 a pickle')
  const mainSha = commitOf(main)
  const repo: HubRepo = { id: 'NbAiLab/bert-like-ner', commits: { [mainSha]: main }, refs: { main: mainSha }, discussions: [], parents: {} }
  for (const pr of prs) {
    const files = { ...readFolder(BERT_VOCAB_ONLY), 'pytorch_model.bin': main['pytorch_model.bin'], [`pr-${pr.num}.txt`]: Buffer.from(String(pr.num)) }
    const sha = commitOf(files)
    repo.commits[sha] = files
    repo.refs[`refs/pr/${pr.num}`] = sha
    repo.parents![sha] = pr.fromMain ? mainSha : '0'.repeat(40)
    repo.discussions!.push({ num: pr.num, title: 'Adding `safetensors` variant of this model', status: 'open', isPullRequest: true, author: pr.author })
  }
  return repo
}

test('only pytorch_model.bin on main: the Hub\'s safetensors conversion PR is used as transformers uses it; an impostor\'s or a stale one is not', async (t) => {
  // NbAiLab/nb-bert-base-ner's layout: the safetensors are on refs/pr/1 only.
  const hub = await startHub([conversionRepo([{ author: 'someone-else', fromMain: true, num: 1 }, { author: 'SFconvertbot', fromMain: false, num: 2 }, { author: 'SFconvertbot', fromMain: true, num: 3 }])])
  t.teardown(() => hub.close())
  const cacheDir = tmp('convert')
  const dir = await resolveModel('NbAiLab/bert-like-ner', { endpoint: hub.url, cacheDir })
  t.true(fs.existsSync(path.join(dir, 'pr-3.txt')) === false && fs.existsSync(path.join(dir, 'model.safetensors')))
  t.is(fs.readFileSync(path.join(cacheDir, 'models--NbAiLab--bert-like-ner', 'refs', 'refs', 'pr', '3'), 'utf8'), path.basename(dir), 'the PR of SFconvertbot made from main')
  t.false(hub.requests.some((r) => r.url.includes('pytorch_model.bin')), 'the pickle is never fetched')
  const model = await EuroBertModel.load(dir, { threads: 1 })
  t.is(model.labels.length, 9)
  model.dispose()
  // Offline afterwards, by the same id.
  t.is(await resolveModel('NbAiLab/bert-like-ner', { cacheDir, localFilesOnly: true }), dir)
  // Explicitly too.
  t.is(await resolveModel('NbAiLab/bert-like-ner', { endpoint: hub.url, cacheDir: tmp('convert2'), revision: 'refs/pr/3' }).then((d) => fs.existsSync(path.join(d, 'model.safetensors'))), true)
  // Without an eligible PR: the clear error, nothing downloaded but the config.
  const none = await startHub([conversionRepo([{ author: 'someone-else', fromMain: true, num: 1 }, { author: 'SFconvertbot', fromMain: false, num: 2 }])])
  t.teardown(() => none.close())
  const err = await t.throwsAsync(resolveModel('NbAiLab/bert-like-ner', { endpoint: none.url, cacheDir: tmp('convert3') }))
  t.regex(err!.message, /has no model\.safetensors or model\.safetensors\.index\.json\. It has pytorch_model\.bin: .*no open safetensors conversion PR/)
  t.deepEqual(none.requests.filter((r) => r.url.includes('/resolve/')).map((r) => r.url.split('/').pop()), ['config.json', 'config.json'])
})

test('an architecture this runtime does not run is refused after config.json, before any other file moves', async (t) => {
  const files = readFolder(TINY_MODEL)
  files['config.json'] = Buffer.from(JSON.stringify({ model_type: 'gpt2', n_layer: 2 }))
  const sha = commitOf(files)
  const hub = await startHub([{ id: 'openai/gpt-like', commits: { [sha]: files }, refs: { main: sha } }])
  t.teardown(() => hub.close())
  const err = await t.throwsAsync(pipeline('openai/gpt-like', { endpoint: hub.url, cacheDir: tmp('arch') }))
  t.regex(err!.message, /unsupported model_type 'gpt2': this runtime implements eurobert, bert, .*; nothing else was downloaded/)
  const fetched = hub.requests.filter((r) => r.url.includes('/resolve/')).map((r) => r.url.split('/').pop())
  t.deepEqual([...new Set(fetched)], ['config.json'])
})

test('RoBERTa, XLM-R and DeBERTa repos without tokenizer.json (vocab.json + merges.txt; sentencepiece.bpe.model; spm.model) load by Hub id', async (t) => {
  const dirs = { 'Jean-Baptiste/roberta-like-ner': 'roberta-vocab-merges', 'Davlan/xlm-roberta-like-ner': 'xlm-roberta-spm', 'microsoft/deberta-v3-like-ner': 'deberta-v3-spm' }
  const hub = await startHub(Object.entries(dirs).map(([id, d]) => folderRepo(id, path.join(FIXTURES, 'families', d))))
  t.teardown(() => hub.close())
  const cacheDir = tmp('families')
  for (const [id, d] of Object.entries(dirs)) {
    const ner = await pipeline(id, { endpoint: hub.url, cacheDir, threads: 1 })
    const local = await pipeline(path.join(FIXTURES, 'families', d), { threads: 1 })
    t.deepEqual(await ner(TEXT, { aggregationStrategy: 'simple' }), await local(TEXT, { aggregationStrategy: 'simple' }), id)
    ner.dispose()
    local.dispose()
  }
  const fetched = hub.requests.filter((r) => r.method === 'GET' && r.url.includes('/resolve/')).map((r) => r.url.split('/').pop())
  t.deepEqual([...new Set(fetched)].sort(), ['config.json', 'merges.txt', 'sentencepiece.bpe.model', 'spm.model', 'tokenizer_config.json', 'vocab.json'])
})
