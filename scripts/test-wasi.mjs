#!/usr/bin/env node
// `npm run test:wasi`: the WebAssembly build (wasm32-wasip1-threads) tested here, under Node's
// WASI:
//   1. the model crate's whole test suite (kernels, parity with transformers and PyTorch,
//      hardening), each test binary run by scripts/wasi-run.mjs; the kernel and parity tests
//      again built with relaxed SIMD (the build Node >= 22 and browsers load);
//   2. the binding built for WebAssembly (scripts/build-native.mjs), then a stated subset of
//      the ava suite with NAPI_RS_FORCE_WASI=error, so no test can fall back to the native
//      binary: the public API, every family's parity fixtures, the bundled model, q8, errors
//      and corrupt folders, Unicode fuzzing, budgets and aborts, Viterbi, the Hub loader,
//      serve, the CLI and worker_threads, and models given as files or URLs;
//   3. the package in headless Chromium (scripts/test-browser.mjs --built).
// Needs `npm run build` first (the TypeScript). Installs the rustup target if missing. Ends
// with `N passed, N failed, N skipped`.
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { relaxedNodeFlags, relaxedRustflags } from './wasm-flags.mjs'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const TARGET = 'wasm32-wasip1-threads'
export const SUBSET = ['api', 'pipeline', 'model-files', 'families', 'compact', 'q8', 'half', 'errors', 'corrupt', 'fuzz', 'bounds', 'viterbi', 'wordpiece', 'evaluate', 'progress', 'hub', 'hub-hostile', 'serve', 'serve-hostile', 'cli', 'workers'].map((f) => `__test__/${f}.spec.ts`)

function run(cmd, args, env) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    const keep = (d) => {
      out += d
      process.stdout.write(d)
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    child.on('close', (code) => resolve({ code: code ?? 1, out }))
    child.on('error', (e) => resolve({ code: 1, out: String(e) }))
  })
}

let passed = 0
let failed = 0
let skipped = 0

const installed = spawnSync('rustup', ['target', 'list', '--installed'], { encoding: 'utf8' })
if (installed.status === 0 && !installed.stdout.split('\n').includes(TARGET)) {
  spawnSync('rustup', ['target', 'add', TARGET], { stdio: 'inherit' })
}

console.log(`\n# the model crate's tests on ${TARGET}, under Node's WASI`)
const runner = `CARGO_TARGET_${TARGET.toUpperCase().replace(/-/g, '_')}_RUNNER`
const wasiRun = path.join(root, 'scripts', 'wasi-run.mjs')
const crateTests = async (args, env) => {
  const cargo = await run('cargo', ['test', '--release', '-p', 'eurobert', '--target', TARGET, '--no-fail-fast', ...args], env)
  for (const m of cargo.out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
    passed += Number(m[1])
    failed += Number(m[2])
    skipped += Number(m[3])
  }
  // A binary that aborted prints no result line: one failure for it.
  failed += [...cargo.out.matchAll(/^error: test failed/gm)].length - [...cargo.out.matchAll(/test result: FAILED/g)].length
}
// The kernels test checks that the SIMD128 build and rten-gemm's wasm kernels are in use.
await crateTests(['--tests'], { [runner]: `${process.execPath} --no-warnings ${wasiRun}`, EUROBERT_EXPECT_SIMD: 'simd128' })

// The relaxed-SIMD build (the one Node >= 22 and browsers load): the kernels and parity with
// transformers again, on this Node (with relaxed SIMD switched on where it is behind a flag).
console.log(`\n# the model crate's kernel and parity tests, built with relaxed SIMD`)
await crateTests(['--lib', '--test', 'parity', '--test', 'families', '--target-dir', path.join(root, 'target', 'wasm-relaxed')], {
  [runner]: [process.execPath, '--no-warnings', ...relaxedNodeFlags(), wasiRun].join(' '),
  CARGO_TARGET_WASM32_WASIP1_THREADS_RUSTFLAGS: relaxedRustflags(root),
  EUROBERT_EXPECT_SIMD: 'simd128+relaxed',
})

console.log(`\n# the binding for ${TARGET}`)
const build = await run(process.execPath, ['scripts/build-native.mjs', '--target', TARGET])
if (build.code !== 0) failed++
else {
  console.log('\n# ava on the WebAssembly binding (NAPI_RS_FORCE_WASI=error)')
  // WebAssembly runs a step about 4 times slower than native on this machine: the tests' time
  // bounds scale with EUROBERT_TEST_SLOWDOWN, as under emulation. Left out: bounds' "fair
  // steps", which asserts that a short call shares the very next forward pass with a long one;
  // under WASI each native completion is a message from a worker, and the short call joins a
  // later step (it still runs before the long call ends).
  const ava = await run('npx', ['ava', '--tap', ...SUBSET, '--match', '!fair steps*'], {
    NAPI_RS_FORCE_WASI: 'error',
    NODE_NO_WARNINGS: '1',
    EUROBERT_TEST_SLOWDOWN: '4',
  })
  const count = (re) => Number(ava.out.match(re)?.[1] ?? 0)
  passed += count(/^# pass (\d+)$/m)
  failed += count(/^# fail (\d+)$/m)
  skipped += count(/^# skip (\d+)$/m)
  if (ava.code !== 0 && !/^# fail [1-9]/m.test(ava.out)) failed++

  console.log('\n# the package in headless Chromium (npm run test:browser)')
  const browser = await run(process.execPath, ['scripts/test-browser.mjs', '--built'])
  const m = [...browser.out.matchAll(/^(\d+) passed, (\d+) failed, (\d+) skipped$/gm)].at(-1)
  if (!m) failed++
  else {
    passed += Number(m[1])
    failed += Number(m[2])
    skipped += Number(m[3])
  }
}

console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(failed > 0 ? 1 : 0)
