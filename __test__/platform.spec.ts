// The binaries the build leaves next to the package: every Linux glibc binary needs no glibc
// newer than 2.17 (so it loads on RHEL 7+, Ubuntu 14.04+, Debian 8+, Amazon Linux 2) and
// links only the C library's own parts; musl binaries (Alpine) need only musl's libc.
// Also the loader's choice of musl vs glibc, as napi-rs' generated loader makes it.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

const ROOT = path.join(__dirname, '..')
const FLOOR = [2, 17]
const hasObjdump = spawnSync('objdump', ['--version']).status === 0
const binaries = fs.readdirSync(ROOT).filter((f) => /^eurobert-ner\.linux-.*\.node$/.test(f) && !f.includes('cuda'))

function objdump(flag: string, file: string): string {
  return spawnSync('objdump', [flag, file], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout
}

const withObjdump = hasObjdump ? test : test.skip
// Off Linux there is no Linux build here to look at: reported as skipped, not passed.
const onLinux = hasObjdump && process.platform === 'linux' ? test : test.skip

onLinux('the default build is a Linux binary with a glibc floor of 2.17 or lower', (t) => {
  const own = binaries.find((f) => f.includes(process.arch === 'arm64' ? 'linux-arm64-gnu' : 'linux-x64-gnu'))
  t.truthy(own, `built binaries: ${binaries.join(', ')}`)
})

for (const file of binaries) {
  withObjdump(`${file}: links no newer C library than the floor, and only the C library`, (t) => {
    const abs = path.join(ROOT, file)
    const needed = [...objdump('-p', abs).matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1])
    if (file.includes('-musl')) {
      t.true(needed.every((n) => /^libc\.(musl-[\w]+\.)?so(\.1)?$/.test(n)), needed.join(', '))
      return
    }
    const versions = [...new Set([...objdump('-T', abs).matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => `${m[1]}.${m[2]}`))]
    const newest = versions.map((v) => v.split('.').map(Number)).sort((a, b) => a[0] - b[0] || a[1] - b[1]).pop()!
    t.true(newest[0] < FLOOR[0] || (newest[0] === FLOOR[0] && newest[1] <= FLOOR[1]), `needs GLIBC_${newest.join('.')}, above the floor ${FLOOR.join('.')}`)
    const allowed = /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/
    t.deepEqual(needed.filter((n) => !allowed.test(n)), [], `links ${needed.join(', ')}`)
  })
}

test("the loader takes musl's binary on a musl system and glibc's elsewhere, like napi-rs' loader", (t) => {
  const loader = fs.readFileSync(path.join(ROOT, 'binding.js'), 'utf8')
  // The generated loader decides with isMusl(), and asks for the -musl package or file then.
  t.regex(loader, /function isMusl\(\)|const isMusl = /)
  t.regex(loader, /eurobert-ner\.linux-x64-musl\.node/)
  t.regex(loader, /eurobert-ner\.linux-arm64-musl\.node/)
  t.regex(loader, /eurobert-ner-linux-x64-musl/)
  for (const dir of ['linux-x64-musl', 'linux-arm64-musl']) {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'npm', dir, 'package.json'), 'utf8'))
    t.deepEqual(pkg.libc, ['musl'], dir)
    t.is(pkg.main, `eurobert-ner.${dir}.node`)
  }
  for (const dir of ['linux-x64-gnu', 'linux-arm64-gnu']) t.deepEqual(JSON.parse(fs.readFileSync(path.join(ROOT, 'npm', dir, 'package.json'), 'utf8')).libc, ['glibc'])
})
