// Choosing the binary for a device, on a machine without a GPU: 'cuda' on the CPU-only build
// is a clear Error; a CUDA build that is installed but cannot be used (its libraries or the
// GPU are missing) sends 'auto' to the CPU with a warning that says why. Each case runs in a
// fresh process, since a process loads its binaries once.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { TINY_MODEL } from './helpers/fixtures'

const ROOT = path.join(__dirname, '..')

function load(device: string, env: Record<string, string> = {}) {
  const script = `
    process.on('warning', (w) => w.name === 'EuroBertWarning' && console.log(JSON.stringify({ warning: w.message })))
    require('./dist/index.js').EuroBertModel.load(${JSON.stringify(TINY_MODEL)}, { device: ${JSON.stringify(device)}, threads: 1 })
      .then(async (m) => { await m.logits('Oslo'); console.log(JSON.stringify({ device: m.device })) }, (e) => console.log(JSON.stringify({ error: e.message })))`
  const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } })
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
}

const linuxX64 = process.platform === 'linux' && process.arch === 'x64' ? test : test.skip

test('the CPU build runs device cpu and says so', (t) => {
  t.deepEqual(load('cpu'), [{ device: 'cpu' }])
})

test("device 'cuda' without a usable CUDA build is a clear Error", (t) => {
  const [r] = load('cuda', { EUROBERT_NER_CUDA_BINARY: '' })
  t.regex(r.error, /device 'cuda' is not available: the CUDA build is not installed \(npm i eurobert-ner-linux-x64-gnu-cuda/)
})

linuxX64('a CUDA build that does not load (missing CUDA libraries): auto falls back to the CPU with the reason; cuda fails with it', (t) => {
  const fake = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-cuda-')), 'eurobert-ner.linux-x64-gnu-cuda.node')
  fs.writeFileSync(fake, 'not a shared object')
  const auto = load('auto', { EUROBERT_NER_CUDA_BINARY: fake })
  t.regex(auto[0].warning, /device 'auto' runs on the CPU: the CUDA build at .* does not load \(are the NVIDIA driver and CUDA libraries installed\?\)/)
  t.deepEqual(auto[1], { device: 'cpu' })
  t.regex(load('cuda:0', { EUROBERT_NER_CUDA_BINARY: fake })[0].error, /device 'cuda:0' is not available: the CUDA build at .* does not load/)
})

linuxX64('a build without a GPU to use: auto runs on the CPU and says there is no usable GPU', (t) => {
  // The CPU binary stands in for a CUDA build that loads but sees no device.
  // This machine's own binary (others, such as a cross-built arm64 one, may lie beside it).
  const cpu = 'eurobert-ner.linux-x64-gnu.node'
  const auto = load('auto', { EUROBERT_NER_CUDA_BINARY: path.join(ROOT, cpu) })
  t.regex(auto[0].warning, /runs on the CPU: .* is not a CUDA build/)
  t.deepEqual(auto[1], { device: 'cpu' })
})

test("'auto' with no CUDA build installed runs on the CPU quietly", (t) => {
  t.deepEqual(load('auto', { EUROBERT_NER_CUDA_BINARY: '' }), [{ device: process.platform === 'darwin' && process.arch === 'arm64' ? 'metal:0' : 'cpu' }])
})

// The real CUDA build from scripts/build-cuda.sh, where it has run on this machine (it is not
// part of `npm test`'s build: ten minutes and a 1 GB toolkit). Without the NVIDIA driver it
// does not load; with the toolkit wheels' libraries and the script's stub driver (every call
// answers CUDA_ERROR_NO_DEVICE) it loads and finds no GPU. Both cases must end on the CPU.
const CUDA_BINARY = path.join(ROOT, 'npm', 'linux-x64-gnu-cuda', 'eurobert-ner.linux-x64-gnu-cuda.node')
const TOOLKIT = process.env.CUDA_VENV ?? path.join(os.homedir(), '.cache', 'eurobert-ner', 'cuda-toolkit')
const WHEEL_LIBS = fs.existsSync(path.join(TOOLKIT, 'lib'))
  ? fs
      .readdirSync(path.join(TOOLKIT, 'lib'))
      .map((py) => path.join(TOOLKIT, 'lib', py, 'site-packages', 'nvidia', 'cu13', 'lib'))
      .find((d) => fs.existsSync(d))
  : undefined
const built = linuxX64 === test && fs.existsSync(CUDA_BINARY) && fs.existsSync(path.join(TOOLKIT, 'link', 'libcuda.so.1')) && WHEEL_LIBS ? test : test.skip

built('the built CUDA binary: without a driver it does not load, with no GPU it finds none; both fall back to the CPU', (t) => {
  const bare = load('auto', { EUROBERT_NER_CUDA_BINARY: CUDA_BINARY, LD_LIBRARY_PATH: '' })
  t.regex(bare[0].warning, /the CUDA build at .* does not load \(are the NVIDIA driver and CUDA libraries installed\?\): .*lib(cuda|curand|cublas)\.so/)
  t.deepEqual(bare[1], { device: 'cpu' })
  const noGpu = { EUROBERT_NER_CUDA_BINARY: CUDA_BINARY, LD_LIBRARY_PATH: `${path.join(TOOLKIT, 'link')}:${WHEEL_LIBS}` }
  const auto = load('auto', noGpu)
  t.regex(auto[0].warning, /device 'auto' runs on the CPU: the CUDA build loaded but finds no usable GPU/)
  t.deepEqual(auto[1], { device: 'cpu' })
  t.regex(load('cuda', noGpu)[0].error, /device 'cuda' is not available: the CUDA build loaded but finds no usable GPU/)
})
