// A packaged Electron app's layout, as electron-builder and Electron Forge write it: the app's
// JavaScript (this package's dist/ included) inside resources/app.asar, and what the README
// tells users to unpack (the .node binary, the bundled model) in resources/app.asar.unpacked.
// Electron's patched fs shows the archive as a folder; here a real folder named app.asar
// stands in for that view, and the native core, which reads with the operating system, must
// be sent to the unpacked twin.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { pipeline } from '..'
import { TINY_MODEL } from './helpers/fixtures'

const ROOT = path.join(__dirname, '..')

/** resources/app.asar/node_modules/eurobert-ner (JS) and its unpacked twin (binary, model). */
function packagedApp(unpackModel: boolean): { resources: string; pkg: string } {
  const resources = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-electron-'))
  const pkg = path.join(resources, 'app.asar', 'node_modules', 'eurobert-ner')
  const twin = path.join(resources, 'app.asar.unpacked', 'node_modules', 'eurobert-ner')
  fs.mkdirSync(pkg, { recursive: true })
  for (const f of ['package.json', 'binding.js']) fs.copyFileSync(path.join(ROOT, f), path.join(pkg, f))
  fs.cpSync(path.join(ROOT, 'dist'), path.join(pkg, 'dist'), { recursive: true })
  // Electron resolves a .node inside the archive to its unpacked copy itself; Node does not,
  // so the binary sits where Electron would load it from.
  for (const f of fs.readdirSync(ROOT).filter((x) => x.endsWith('.node'))) fs.symlinkSync(path.join(ROOT, f), path.join(pkg, f))
  // The package's dependencies (an app's node_modules holds them beside it).
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'))
  if (unpackModel) {
    fs.mkdirSync(path.join(twin, 'models'), { recursive: true })
    fs.cpSync(path.join(ROOT, 'models', 'norne-compact'), path.join(twin, 'models', 'norne-compact'), { recursive: true })
  }
  return { resources, pkg }
}

/** The README's Electron example, run by the packaged copy of the package. */
function runExample(pkg: string) {
  const script = `require(${JSON.stringify(path.join(pkg, 'dist', 'index.js'))}).pipeline(undefined, { threads: 1 })
    .then((ner) => ner('Erna Solberg besøkte Oslo.', { aggregationStrategy: 'first' }))
    .then((r) => console.log(JSON.stringify(r)), (e) => { console.error(e.message); process.exit(1) })`
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
}

test('the bundled model of a packaged Electron app loads from app.asar.unpacked', async (t) => {
  const { resources, pkg } = packagedApp(true)
  t.teardown(() => fs.rmSync(resources, { recursive: true, force: true }))
  const r = runExample(pkg)
  t.is(r.status, 0, r.stderr)
  // What the package gives from its own folder.
  const ner = await pipeline(undefined, { threads: 1 })
  t.deepEqual(JSON.parse(r.stdout), await ner('Erna Solberg besøkte Oslo.', { aggregationStrategy: 'first' }))
  ner.dispose()
})

test('a model left inside the archive is a clear error that says how to unpack it', (t) => {
  const { resources, pkg } = packagedApp(false)
  t.teardown(() => fs.rmSync(resources, { recursive: true, force: true }))
  const r = runExample(pkg)
  t.is(r.status, 1)
  t.regex(r.stderr, /lies inside an asar archive.*asarUnpack/)
})

test("any model folder under app.asar is read from its unpacked twin, as the app's own models are", async (t) => {
  const resources = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-electron-'))
  t.teardown(() => fs.rmSync(resources, { recursive: true, force: true }))
  fs.writeFileSync(path.join(resources, 'app.asar'), 'an archive, unreadable to the native core')
  fs.cpSync(TINY_MODEL, path.join(resources, 'app.asar.unpacked', 'models', 'tiny'), { recursive: true })
  const ner = await pipeline(path.join(resources, 'app.asar', 'models', 'tiny'), { threads: 1 })
  t.true(Array.isArray(await ner('Oslo')))
  ner.dispose()
})
