// The package as npm delivers it: `npm pack` of the main package and of this platform's
// binary package, installed into an empty project with no Rust toolchain on PATH; then the
// CLI, an ESM import, a CommonJS require and a `tsc --strict` check of typed usage.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

const ROOT = path.join(__dirname, '..')
const PLATFORM = process.platform === 'linux' && process.arch === 'x64' ? 'linux-x64-gnu' : undefined
const BINARY = PLATFORM && path.join(ROOT, `eurobert-ner.${PLATFORM}.node`)
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** PATH without any folder that holds cargo or rustc. */
function pathWithoutRust(): string {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => !['cargo', 'rustc'].some((bin) => fs.existsSync(path.join(dir, bin))))
    .join(path.delimiter)
}

function pack(dir: string, dest: string): string {
  const out = execFileSync(npm, ['pack', '--json', '--pack-destination', dest], { cwd: dir, encoding: 'utf8' })
  return path.join(dest, JSON.parse(out)[0].filename)
}

const maybe = BINARY && fs.existsSync(BINARY) ? test : test.skip

test('the tarball holds LICENSE, the model card, the model, the loader and types, and no sources or tests', (t) => {
  const out = execFileSync(npm, ['pack', '--dry-run', '--json'], { cwd: ROOT, encoding: 'utf8' })
  const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path)
  for (const f of ['LICENSE', 'README.md', 'package.json', 'binding.js', 'binding.d.ts', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/index.js', 'models/norne-compact/README.md', 'models/norne-compact/model.safetensors']) {
    t.true(files.includes(f), `${f} is packed`)
  }
  t.false(files.some((f) => f.startsWith('src/') || f.startsWith('__test__/') || f.startsWith('crates/') || f.endsWith('.node')), 'no sources, tests or binaries')
  const card = fs.readFileSync(path.join(ROOT, 'models/norne-compact/README.md'), 'utf8')
  t.regex(card, /## License and data[\s\S]*Apache License 2\.0[\s\S]*CC0/)
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  t.is(pkg.license, 'Apache-2.0')
  t.truthy(pkg.repository?.url && pkg.homepage && pkg.bugs?.url)
})

maybe('installed from tarballs into an empty project without Rust: the CLI, ESM, CommonJS and tsc --strict work', (t) => {
  t.timeout(300_000)
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-pack-'))
  // The platform package as napi-rs publishes it: its package.json and the binary.
  const platformDir = path.join(work, 'platform')
  fs.cpSync(path.join(ROOT, 'npm', PLATFORM!), platformDir, { recursive: true })
  fs.copyFileSync(BINARY!, path.join(platformDir, path.basename(BINARY!)))
  const tarballs = [pack(ROOT, work), pack(platformDir, work)]
  const app = path.join(work, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  const env = { ...process.env, PATH: pathWithoutRust() }
  t.not(spawnSync('cargo', ['--version'], { env }).status, 0, 'no cargo on PATH')
  // Dependencies come from npm's cache (npm ci filled it), so this works offline too.
  const install = spawnSync(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', ...tarballs, `typescript@${require('typescript/package.json').version}`, `@types/node@${require('@types/node/package.json').version}`], { cwd: app, env, encoding: 'utf8' })
  t.is(install.status, 0, install.stderr)
  t.false(fs.existsSync(path.join(app, 'node_modules/eurobert-ner', path.basename(BINARY!))), 'the binary comes from the platform package')

  // Expected entities come from transformers' own run of the bundled model (the fixture).
  const fx = JSON.parse(fs.readFileSync(path.join(ROOT, '__test__/fixtures/norne-compact.expected.json'), 'utf8')).sentences as { text: string; first: { entity_group: string; word: string }[] }[]
  const [first, second] = [fx[0], fx[1]]
  const cli = spawnSync(process.execPath, ['node_modules/eurobert-ner/dist/cli/index.js', second.text], { cwd: app, env, encoding: 'utf8' })
  t.is(cli.status, 0, cli.stderr)
  const e0 = second.first[0]
  t.true(cli.stdout.includes(`[${e0.word.trim()}](${e0.entity_group})`), cli.stdout)
  const bin = spawnSync(path.join(app, 'node_modules/.bin/eurobert-ner'), ['--version'], { cwd: app, env, encoding: 'utf8' })
  t.is(bin.stdout.trim(), JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version)

  const script = `const ner = await pipeline(undefined, { threads: 1 })
const out = await ner(${JSON.stringify(first.text)}, { aggregationStrategy: 'first' })
console.log(JSON.stringify(out.map((e) => e.entity_group)))
ner.dispose()`
  const esm = spawnSync(process.execPath, ['--input-type=module', '-e', `import { pipeline } from 'eurobert-ner'\n${script}`], { cwd: app, env, encoding: 'utf8' })
  t.is(esm.status, 0, esm.stderr)
  const groups = first.first.map((e) => e.entity_group)
  t.deepEqual(JSON.parse(esm.stdout), groups)
  const cjs = spawnSync(process.execPath, ['-e', `const { pipeline } = require('eurobert-ner');(async () => {\n${script}\n})()`], { cwd: app, env, encoding: 'utf8' })
  t.is(cjs.status, 0, cjs.stderr)
  t.deepEqual(JSON.parse(cjs.stdout), groups)
  // The queue's subpath loads without its optional peer dependency (bullmq is required when used).
  const queue = spawnSync(process.execPath, ['-e', `require('eurobert-ner/queue')`], { cwd: app, env, encoding: 'utf8' })
  t.is(queue.status, 0, queue.stderr)

  fs.writeFileSync(
    path.join(app, 'check.ts'),
    `import { pipeline, EuroBertModel, type Entity, type NerOptions } from 'eurobert-ner'
export async function run(): Promise<number> {
  const options: NerOptions = { aggregationStrategy: 'first', ignoreLabels: ['O'] }
  const ner = await pipeline(undefined, { threads: 1, ...options })
  const one: Entity[] = await ner('Oslo')
  const many: Entity[][] = await ner(['Oslo', 'Bergen'])
  const model: EuroBertModel = ner.model
  return one.length + many.length + model.labels.length
}
`,
  )
  for (const resolution of ['nodenext', 'bundler']) {
    const module = resolution === 'bundler' ? 'esnext' : 'nodenext'
    const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '--strict', '--noEmit', '--skipLibCheck', 'false', '--module', module, '--moduleResolution', resolution, '--target', 'es2022', '--types', 'node', 'check.ts'], { cwd: app, env, encoding: 'utf8' })
    t.is(tsc.status, 0, `${resolution}: ${tsc.stdout}${tsc.stderr}`)
  }
  fs.rmSync(work, { recursive: true, force: true })
})

test('one version: every manifest (the platform packages, the CUDA one, the Rust workspace) has package.json\'s version and publishing fields', (t) => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'version.mjs'), '--check'], { encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version
  for (const dir of fs.readdirSync(path.join(ROOT, 'npm'))) {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'npm', dir, 'package.json'), 'utf8'))
    t.is(pkg.version, version, dir)
    // npm's provenance check compares the repository with the one that built the package.
    t.truthy(pkg.repository?.url, `${dir} has a repository`)
  }
  t.regex(fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8'), new RegExp(`\\[workspace\\.package\\][^[]*\\nversion = "${version.replace(/\./g, '\\.')}"`))
  // The version the CLI and /info report is read from package.json, not written anywhere else.
  const literal = spawnSync('git', ['grep', '-n', '-F', `'${version}'`, '--', 'src'], { cwd: ROOT, encoding: 'utf8' })
  t.is(literal.stdout, '', 'no version literal in the sources')
})
