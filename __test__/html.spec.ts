// The HTML view: escaping, spans that are the entities' words, the CLI's streaming page, the
// page `serve` hands out, and a screenshot in headless Chromium (Debian's chromium, installed
// by .ci/run) of a page with all nine NorNE types: not blank, with its legend.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'
import { PNG } from 'pngjs'

import { pipeline, serve } from '..'
import { renderHtml } from '../dist/serve/html'
import { TINY_MODEL } from './helpers/fixtures'

const CLI = path.join(__dirname, '..', 'dist', 'cli', 'index.js')
const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')
/** The text of each mark, in order. */
const marked = (html: string) => [...html.matchAll(/<bdi>([\s\S]*?)<\/bdi>/g)].map((m) => unescape(m[1]))

test('input text can inject no markup: <script>, &, quotes and labels are escaped', (t) => {
  const text = `<script>alert("x")</script> & 'Oslo' "Bergen" <b>`
  const html = renderHtml(text, [
    { entity_group: 'LOC', score: 0.5, start: text.indexOf("'Oslo'"), end: text.indexOf("'Oslo'") + 6 },
    { entity_group: 'x" onmouseover="alert(1)', score: 0.5, start: text.indexOf('"Bergen"'), end: text.indexOf('"Bergen"') + 8 },
  ])
  t.false(/<script|<b>/.test(html))
  t.false(/onmouseover="/.test(html))
  t.true(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; '))
  t.deepEqual(marked(html), ["'Oslo'", '"Bergen"'])
  t.is(unescape(html.replace(/<span class="tag">[\s\S]*?<\/span>/g, '').replace(/<[^>]+>/g, '')), text, 'the text comes back whole')
})

test('every mark holds exactly its entity’s word, also after emoji, CRLF and right-to-left text', async (t) => {
  const ner = await pipeline(TINY_MODEL, { threads: 1 })
  for (const text of ['Kari 😀 jobber hos DNB i Trondheim.', 'Ålesund og Tromsø\r\nfikk besøk av kong Harald.', 'مرحبا Erna Solberg شكرا Oslo', '𝔊otisk 👩‍👩‍👧 Bergen']) {
    for (const strategy of ['none', 'simple', 'first'] as const) {
      const entities = await ner(text, { aggregationStrategy: strategy })
      // Marks cannot overlap: by start, the longer first, an entity overlapping a drawn one is
      // left out (the bytes of one emoji share a span in strategy none).
      let end = 0
      const drawn = [...entities].sort((a, b) => a.start - b.start || b.end - a.end).filter((e) => (e.start >= end ? ((end = e.end), true) : false))
      t.true(entities.every((e) => e.word === text.slice(e.start, e.end)))
      t.deepEqual(marked(renderHtml(text, entities)), drawn.map((e) => e.word), `${strategy}: ${text}`)
    }
  }
  ner.dispose()
})

test('--format html streams one self-contained page for all documents', (t) => {
  const r = spawnSync(process.execPath, [CLI, '-m', TINY_MODEL, '--threads', '1', '--format', 'html', 'Erna <Solberg> & Oslo', 'Bergen'], { encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.true(r.stdout.startsWith('<!doctype html>'))
  t.true(r.stdout.trimEnd().endsWith('</html>'))
  t.is((r.stdout.match(/<div class="doc"/g) ?? []).length, 2)
  t.true(r.stdout.includes('Erna &lt;Solberg&gt; &amp; Oslo') || /Erna/.test(r.stdout))
  t.false(/https?:\/\//.test(r.stdout.replace(/https:\/\/bford\.info/g, '')), 'nothing loaded from the network')
  t.is((r.stdout.match(/class="legend"/g) ?? []).length, 1)
})

test('serve hands out the page at GET /, which renders with the same function', async (t) => {
  const server = await serve({ model: TINY_MODEL, threads: 1, port: 0 })
  t.teardown(() => server.close())
  const page = await (await fetch(`${server.url}/`)).text()
  t.true(page.includes('<textarea') && page.includes('<select id="strategy">'))
  // The page's own copy of the renderer, run here: it must give what renderHtml gives.
  const source = page.match(/const renderHtml = ([\s\S]*?\n});\n/)?.[1]
  t.truthy(source, 'the page embeds renderHtml')
  const pageRender = new Function(`return (${source})`)() as typeof renderHtml
  const text = 'Erna Solberg <b>&</b> Oslo'
  const entities = [
    { entity_group: 'PER', score: 0.99, word: 'Erna Solberg', start: 0, end: 12 },
    { entity_group: 'GPE_LOC', score: 0.9, word: 'Oslo', start: 22, end: 26 },
  ]
  t.is(pageRender(text, entities as never), renderHtml(text, entities as never))
  t.true(pageRender(text, entities as never).includes('&lt;b&gt;'))
  t.true(page.includes("fetch('ner'"))
})

const withChromium = ['chromium', 'chromium-browser', 'google-chrome'].some((c) => spawnSync(c, ['--version']).status === 0) ? test : test.skip

withChromium('a page with all nine NorNE types in headless Chromium: not blank, with its legend', async (t) => {
  t.timeout(120_000)
  const { samplePage, shoot, TYPES } = await import('../scripts/screenshot.mjs')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-shot-'))
  const html = path.join(dir, 'view.html')
  fs.writeFileSync(html, samplePage())
  const png = path.join(dir, 'view.png')
  const dom: string = shoot(html, png)
  const img = PNG.sync.read(fs.readFileSync(png))
  const colors = new Set<number>()
  for (let i = 0; i < img.data.length; i += 4) colors.add((img.data[i] << 16) | (img.data[i + 1] << 8) | img.data[i + 2])
  t.true(colors.size > 50, `${colors.size} distinct colors`)
  // Every NorNE type's color shows up in the pixels (the legend and the marks).
  const hex = (h: string) => parseInt(h.slice(1), 16)
  const palette: Record<string, string> = { PER: '#f4a3a8', ORG: '#9fc5f8', LOC: '#b6e3a1', GPE_LOC: '#8fe0d3', GPE_ORG: '#d4b3f2', PROD: '#f9d38a', EVT: '#f7b27a', DRV: '#c7cdfa', MISC: '#d6d6d6' }
  for (const type of TYPES) t.true(colors.has(hex(palette[type])), `${type} is drawn`)
  const legend = /<div class="legend"[\s\S]*?<\/div>/.exec(dom)?.[0] ?? ''
  t.deepEqual([...legend.matchAll(/data-label="([^"]+)"/g)].map((m) => m[1]), TYPES)
})
