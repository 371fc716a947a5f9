#!/usr/bin/env node
// Builds the addon for one target, the same way locally and in the workflow:
//
//   node scripts/build-native.mjs [--target TRIPLE] [--profile release|dist] [napi build options...]
//
// Linux glibc targets link against glibc 2.17 (cargo-zigbuild, `<triple>.2.17`), so the
// binary loads on every glibc distribution of the last decade (RHEL 7, Ubuntu 14.04 on);
// musl targets (Alpine) go through cargo-zigbuild too. zig and cargo-zigbuild come from PyPI
// (`ziglang`, `cargo-zigbuild`), installed on first use into ~/.cache/eurobert-ner/zig unless
// `cargo-zigbuild` is already on PATH. Other targets (macOS on macOS, Windows on Windows, the
// windows-gnu target here, wasm32-wasip1-threads anywhere) build with plain `napi build`.
// WebAssembly needs no C toolchain (the tokenizer's regex engine is Rust there); its flags are
// in .cargo/config.toml, and it leaves the loaders napi writes (eurobert-ner.wasi.cjs,
// wasi-worker.mjs, the -browser variants) beside binding.js. It is built twice: SIMD128 for
// every engine, and with relaxed SIMD as well (fused multiply-add: 1.2-1.3x the throughput)
// as eurobert-ner.wasm32-wasi.relaxed.wasm, which the loaders take where the engine validates
// it (Node >= 22, Chromium, Deno, Bun; not Node 20 without --experimental-wasm-relaxed-simd).
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { RELAXED_PROBE, relaxedNodeFlags, relaxedRustflags } from './wasm-flags.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
/** The glibc every Linux gnu binary is linked against. */
const GLIBC_FLOOR = '2.17'

const args = process.argv.slice(2)
const take = (flag) => {
  const i = args.indexOf(flag)
  if (i < 0) return undefined
  const [, value] = args.splice(i, 2)
  return value
}
const host = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (.+)$/m)[1]
const target = take('--target') ?? host
const profile = take('--profile') ?? 'release'

const linux = /-linux-(gnu|musl)/.exec(target)
const napiArgs = ['build', '--platform', '--profile', profile, '-p', 'eurobert-node', '--output-dir', '.', '--js', 'binding.js', '--dts', 'binding.d.ts']
const env = { ...process.env }
if (linux) {
  env.PATH = `${zigToolchain()}${path.delimiter}${env.PATH}`
  napiArgs.push('--cross-compile', '--target', linux[1] === 'gnu' ? `${target}.${GLIBC_FLOOR}` : target)
  // A separate target folder: zig's C compiler and linker flags differ from the host's.
  napiArgs.push('--target-dir', path.join(root, 'target', 'zig'))
} else {
  napiArgs.push('--target', target)
}
napiArgs.push(...args)

const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx'
console.log(`> napi ${napiArgs.join(' ')}`)
const r = spawnSync(npx, ['napi', ...napiArgs], { cwd: root, env, stdio: 'inherit', shell: process.platform === 'win32' })
if (r.status === 0 && target.startsWith('wasm32-')) {
  // napi also writes an unoptimized copy that its loader would prefer when present, and a
  // browser.js re-export that the package does not use.
  for (const f of ['eurobert-ner.wasm32-wasi.debug.wasm', 'browser.js']) fs.rmSync(path.join(root, f), { force: true })
  process.exit(buildRelaxed() ? 0 : 1)
}
process.exit(r.status ?? 1)

/**
 * The relaxed-SIMD twin: the same build with `+relaxed-simd` added to .cargo/config.toml's
 * flags (in its own target folder), saved as `<binary>.relaxed.wasm`; then both loaders pick it
 * where `WebAssembly.validate` accepts a relaxed-SIMD instruction.
 */
function buildRelaxed() {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-relaxed-'))
  const relaxedArgs = ['build', '--platform', '--profile', profile, '-p', 'eurobert-node', '--output-dir', out, '--target', target, '--target-dir', path.join(root, 'target', 'wasm-relaxed')]
  console.log(`> napi ${relaxedArgs.join(' ')} (RUSTFLAGS += relaxed-simd)`)
  // napi checks the module it wrote by loading it: on a Node whose V8 has relaxed SIMD only
  // behind a flag (20), the CLI runs with it.
  const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
  const r = spawnSync(process.execPath, [...relaxedNodeFlags(), cli, ...relaxedArgs], { cwd: root, env: { ...env, CARGO_TARGET_WASM32_WASIP1_THREADS_RUSTFLAGS: relaxedRustflags(root) }, stdio: 'inherit' })
  if (r.status !== 0) return false
  fs.copyFileSync(path.join(out, 'eurobert-ner.wasm32-wasi.wasm'), path.join(root, 'eurobert-ner.wasm32-wasi.relaxed.wasm'))
  fs.rmSync(out, { recursive: true, force: true })
  patchLoaders()
  return true
}

/** Makes napi's two loaders take the relaxed build where the engine has relaxed SIMD. */
function patchLoaders() {
  const patch = (file, from, to) => {
    const p = path.join(root, file)
    const text = fs.readFileSync(p, 'utf8')
    if (text.includes('__eurobertRelaxed')) return
    if (!text.includes(from)) throw new Error(`${file}: napi's loader changed; cannot find ${from}`)
    fs.writeFileSync(p, text.replace(from, to))
  }
  const choose = `// eurobert-ner: the relaxed-SIMD build where the engine has relaxed SIMD (EUROBERT_WASM_BASELINE=1 in Node keeps SIMD128).
const __eurobertRelaxed = WebAssembly.validate(new Uint8Array(${JSON.stringify(RELAXED_PROBE)}))`
  patch(
    'eurobert-ner.wasi.cjs',
    'const __wasmFile = __nodeFs.readFileSync(__wasmFilePath)',
    `${choose} && process.env.EUROBERT_WASM_BASELINE !== '1'
const __relaxedFilePath = __wasmFilePath.slice(0, -'.wasm'.length) + '.relaxed.wasm'
const __wasmFile = __nodeFs.readFileSync(__eurobertRelaxed && __nodeFs.existsSync(__relaxedFilePath) ? __relaxedFilePath : __wasmFilePath)`,
  )
  patch(
    'eurobert-ner.wasi-browser.js',
    "const __wasmUrl = new URL('./eurobert-ner.wasm32-wasi.wasm', import.meta.url).href",
    `${choose}
// Both URLs written out, so bundlers see both files.
const __wasmUrl = (__eurobertRelaxed ? new URL('./eurobert-ner.wasm32-wasi.relaxed.wasm', import.meta.url) : new URL('./eurobert-ner.wasm32-wasi.wasm', import.meta.url)).href`,
  )
}

/** A folder whose `cargo-zigbuild` and `python3 -m ziglang` work, installing them if needed. */
function zigToolchain() {
  const onPath = spawnSync('cargo-zigbuild', ['--version'], { stdio: 'ignore' }).status === 0
  const venv = path.join(process.env.EUROBERT_ZIG_HOME ?? path.join(os.homedir(), '.cache', 'eurobert-ner', 'zig'))
  const bin = path.join(venv, process.platform === 'win32' ? 'Scripts' : 'bin')
  if (onPath && !fs.existsSync(bin)) return ''
  if (!fs.existsSync(path.join(bin, process.platform === 'win32' ? 'cargo-zigbuild.exe' : 'cargo-zigbuild'))) {
    console.log(`installing ziglang and cargo-zigbuild from PyPI into ${venv}`)
    const python = process.platform === 'win32' ? 'python' : 'python3'
    run(python, ['-m', 'venv', venv])
    run(path.join(bin, 'pip'), ['install', '--quiet', 'ziglang==0.17.1', 'cargo-zigbuild==0.24.1'])
  }
  return bin
}

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit' })
  if (r.status !== 0) {
    console.error(`${cmd} ${argv.join(' ')} failed`)
    process.exit(1)
  }
}
