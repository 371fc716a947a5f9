#!/usr/bin/env node
// The package's version and publishing fields have one source, package.json; this copies them
// into every other manifest: the platform packages under npm/ (the CUDA one included) and the
// Rust workspace. `npm version x.y.z` runs it (the "version" script), and a test fails when any
// manifest differs. `node scripts/version.mjs --check` only reports.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const main = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
/** What npm's provenance and registry pages read from each platform package. */
const SHARED = ['version', 'license', 'repository', 'homepage', 'bugs', 'engines']
const check = process.argv.includes('--check')
const stale = []

for (const dir of fs.readdirSync(path.join(root, 'npm')).sort()) {
  const file = path.join(root, 'npm', dir, 'package.json')
  if (!fs.existsSync(file)) continue
  const pkg = JSON.parse(fs.readFileSync(file, 'utf8'))
  let changed = false
  for (const key of SHARED) {
    if (JSON.stringify(pkg[key]) !== JSON.stringify(main[key])) {
      pkg[key] = main[key]
      changed = true
    }
  }
  if (changed) {
    stale.push(path.relative(root, file))
    if (!check) fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + '\n')
  }
}

const cargo = path.join(root, 'Cargo.toml')
const toml = fs.readFileSync(cargo, 'utf8')
const updated = toml.replace(/(\[workspace\.package\][^[]*?\nversion = ")[^"]*(")/, `$1${main.version}$2`)
if (updated !== toml) {
  stale.push('Cargo.toml')
  if (!check) fs.writeFileSync(cargo, updated)
}

if (check && stale.length > 0) {
  console.error(`not at package.json's ${main.version} and fields: ${stale.join(', ')} (run node scripts/version.mjs)`)
  process.exit(1)
}
if (!check) console.log(stale.length ? `updated ${stale.join(', ')} to ${main.version}` : `every manifest is at ${main.version}`)
