#!/usr/bin/env node
// `npm test`: builds the addon and the TypeScript, runs `cargo test`, the style gates (rustfmt,
// clippy, ESLint), actionlint, the ava suite, other runtimes and the WebAssembly build, and
// closes with one line `N passed, N failed` counting every test that ran.
import { spawn, execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx'

/** Runs a command with output streamed through, returning its exit code and output. */
function run(cmd, args, env = process.env) {
  return new Promise((resolve) => {
    // Node refuses to spawn npm.cmd/npx.cmd without a shell (EINVAL since the 2024 fix for
    // CVE-2024-27980), so Windows goes through one; our arguments need no quoting.
    const child = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      process.stdout.write(d)
    })
    child.stderr.on('data', (d) => {
      out += d
      process.stderr.write(d)
    })
    child.on('close', (code) => resolve({ code: code ?? 1, out }))
    child.on('error', (e) => resolve({ code: 1, out: String(e) }))
  })
}

function hasCommand(name) {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

let passed = 0
let failed = 0
let skipped = 0
let broken = false
// Crate tests that find nothing to test here (no VNNI on this CPU) write a line to this file:
// counted as skipped, not passed.
const skipLog = path.join(os.tmpdir(), `eurobert-skips-${process.pid}.txt`)
fs.rmSync(skipLog, { force: true })

const build = await run(npm, ['run', 'build'])
if (build.code !== 0) {
  console.error('build failed')
  broken = true
} else {
  // Same target triple as `napi build`, so the test binaries reuse its compiled crates.
  const host = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (.+)$/m)[1]
  const cargoTest = async (args, env) => {
    const cargo = await run('cargo', ['test', '--release', '--target', host, ...args], env)
    for (const m of cargo.out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
      passed += Number(m[1])
      failed += Number(m[2])
      skipped += Number(m[3])
    }
    if (cargo.code !== 0 && !/test result: FAILED/.test(cargo.out)) broken = true
  }
  await cargoTest(['--workspace'], { ...process.env, EUROBERT_SKIP_LOG: skipLog })
  // Every x86 SIMD level on one machine: the kernel, parity and q8 tests again on CPUs that
  // qemu emulates, Haswell (AVX2+FMA, no AVX-512) and Nehalem (no AVX: baseline kernels).
  // Our kernels and rten-gemm's both pick by CPUID, and a test checks which ones ran.
  if (host.startsWith('x86_64-unknown-linux') && hasCommand('qemu-x86_64')) {
    const runner = `CARGO_TARGET_${host.toUpperCase().replace(/-/g, '_')}_RUNNER`
    for (const [cpu, level] of [['Haswell', 'avx2'], ['Nehalem', 'baseline']]) {
      console.log(`\n# crate tests on an emulated ${cpu} CPU (${level} kernels)`)
      await cargoTest(['-p', 'eurobert', '--lib', '--test', 'parity'], { ...process.env, EUROBERT_SKIP_LOG: skipLog, EUROBERT_EXPECT_SIMD: level, [runner]: `qemu-x86_64 -cpu ${cpu}` })
    }
  } else {
    console.log('\n# qemu-x86_64 not found: the AVX2 and baseline kernels were not tested (apt-get install qemu-user)')
  }

  // Style gates, one check each: rustfmt, clippy (warnings are errors), ESLint.
  const gate = async (name, cmd, args) => {
    const r = await run(cmd, args)
    if (r.code === 0) passed++
    else failed++
    console.log(`# ${name}: ${r.code === 0 ? 'ok' : 'FAILED'}`)
  }
  await gate('cargo fmt --check', 'cargo', ['fmt', '--all', '--', '--check'])
  await gate('cargo clippy -D warnings', 'cargo', ['clippy', '--release', '--target', host, '--workspace', '--all-targets', '--', '-D', 'warnings'])
  await gate('eslint', npx, ['eslint', '.'])

  // The workflow, checked as GitHub would (.ci/run installs actionlint).
  if (hasCommand('actionlint')) {
    await gate('actionlint', 'actionlint', ['-no-color'])
  } else {
    console.log('\n# actionlint not found: the workflow was not checked (go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12)')
  }

  const ava = await run(npx, ['ava', '--tap'])
  const pass = ava.out.match(/^# pass (\d+)$/m)
  const fail = ava.out.match(/^# fail (\d+)$/m)
  const skip = ava.out.match(/^# skip (\d+)$/m)
  skipped += skip ? Number(skip[1]) : 0
  if (!pass) broken = true
  passed += pass ? Number(pass[1]) : 0
  failed += fail ? Number(fail[1]) : 0
  if (ava.code !== 0 && !fail) broken = true

  // Other runtimes: the oldest and newest maintained Node lines (a subset of the ava suite),
  // Bun and Deno (every entry point), binaries from npm cached outside the repo. Skipped with
  // EUROBERT_SKIP_RUNTIMES=1 (offline machines).
  if (process.env.EUROBERT_SKIP_RUNTIMES === '1') {
    console.log('\n# EUROBERT_SKIP_RUNTIMES=1: Node 22/26, Bun and Deno were not tested (npm run test:runtimes)')
  } else if (process.platform !== 'linux' || process.arch !== 'x64') {
    console.log('\n# other runtimes are fetched for linux-x64 only: not tested here (CI runs each Node line natively)')
  } else {
    const rt = await run(process.execPath, ['scripts/test-runtimes.mjs', '--only', 'node22,node26,bun,deno'])
    // Each runtime prints its own line first; the closing total is the last one.
    const m = [...rt.out.matchAll(/^(\d+) passed, (\d+) failed, (\d+) skipped$/gm)].at(-1)
    if (!m) broken = true
    else {
      passed += Number(m[1])
      failed += Number(m[2])
      skipped += Number(m[3])
    }
  }

  // The WebAssembly build: the crate's tests under Node's WASI and an ava subset on the
  // wasm32-wasip1-threads binding (scripts/test-wasi.mjs). EUROBERT_SKIP_WASI=1 skips it.
  if (process.env.EUROBERT_SKIP_WASI === '1') {
    console.log('\n# EUROBERT_SKIP_WASI=1: the WebAssembly build was not tested (npm run test:wasi)')
  } else {
    const wasi = await run(process.execPath, ['scripts/test-wasi.mjs'])
    const m = [...wasi.out.matchAll(/^(\d+) passed, (\d+) failed, (\d+) skipped$/gm)].at(-1)
    if (!m) broken = true
    else {
      passed += Number(m[1])
      failed += Number(m[2])
      skipped += Number(m[3])
    }
  }
}

if (broken) failed += 1 // a step that died without reporting counts as a failure
const skips = fs.existsSync(skipLog) ? fs.readFileSync(skipLog, 'utf8').split('\n').filter(Boolean) : []
fs.rmSync(skipLog, { force: true })
// A crate test that skipped itself returned as passed: it is moved to the skipped count.
passed -= skips.length
skipped += skips.length
for (const s of skips) console.log(`# skipped: ${s}`)
console.log(`\n# ${skipped} skipped (ignored crate tests, ava skips, crate tests with nothing to test on this machine)`)
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed > 0 ? 1 : 0)
