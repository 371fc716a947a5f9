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
// wasi-worker.mjs, the -browser variants) beside binding.js.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

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
}
process.exit(r.status ?? 1)

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
