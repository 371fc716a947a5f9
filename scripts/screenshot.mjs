#!/usr/bin/env node
// Renders a page with all nine NorNE entity types (and an RTL line, an emoji and a CRLF) and
// takes its screenshot with headless Chromium: `node scripts/screenshot.mjs [OUT.png]`
// (default docs/ner-view.png, the README's picture). The HTML test runs the same code.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const { renderHtml, pageStart, pageEnd, entityTypes } = require(path.join(root, 'dist', 'serve', 'html.js'))

export const TYPES = ['PER', 'ORG', 'LOC', 'GPE_LOC', 'GPE_ORG', 'PROD', 'EVT', 'DRV', 'MISC']

/** Documents whose entities cover every NorNE type, with offsets found in the text itself. */
export function sampleDocs() {
  const docs = [
    ['Erna Solberg møtte styret i Equinor ved Mjøsa i Hamar.', [['Erna Solberg', 'PER'], ['Equinor', 'ORG'], ['Mjøsa', 'LOC'], ['Hamar', 'GPE_LOC']]],
    ['Norge vant over Sverige i Vinter-OL 😀, og bergenseren kjøpte en iPhone.\r\nDet var «noe annet».', [['Norge', 'GPE_ORG'], ['Sverige', 'GPE_ORG'], ['Vinter-OL', 'EVT'], ['bergenseren', 'DRV'], ['iPhone', 'PROD'], ['noe annet', 'MISC']]],
    ['مرحبا Oslo شكرا', [['Oslo', 'GPE_LOC']]],
  ]
  return docs.map(([text, ents]) => ({
    text,
    entities: ents.map(([word, label]) => {
      const start = text.indexOf(word)
      return { entity_group: label, score: 0.9, word, start, end: start + word.length }
    }),
  }))
}

export function samplePage() {
  const labels = TYPES.flatMap((t) => [`B-${t}`, `I-${t}`])
  return pageStart('eurobert-ner', entityTypes(['O', ...labels])) + sampleDocs().map((d) => renderHtml(d.text, d.entities)).join('\n') + pageEnd()
}

export function chromium() {
  for (const c of ['chromium', 'chromium-browser', 'google-chrome']) if (spawnSync(c, ['--version']).status === 0) return c
  return undefined
}

/** Screenshot and DOM of an HTML file in headless Chromium. */
export function shoot(htmlFile, png, size = '900,420') {
  const browser = chromium()
  if (!browser) throw new Error('no Chromium found (Debian: apt-get install chromium)')
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--window-size=${size}`]
  const shot = spawnSync(browser, [...args, `--screenshot=${png}`, `file://${htmlFile}`], { encoding: 'utf8', timeout: 60_000 })
  if (!fs.existsSync(png)) throw new Error(`chromium made no screenshot: ${shot.stderr}`)
  const dom = spawnSync(browser, [...args, '--dump-dom', `file://${htmlFile}`], { encoding: 'utf8', timeout: 60_000, maxBuffer: 1 << 24 })
  return dom.stdout
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = path.resolve(process.argv[2] ?? path.join(root, 'docs', 'ner-view.png'))
  const html = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-view-')), 'view.html')
  fs.writeFileSync(html, samplePage())
  shoot(html, out)
  console.log(out)
}
