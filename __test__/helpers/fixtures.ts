// Paths and readers for the committed transformers fixtures (tools/make_fixtures.py).
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export const FIXTURES = path.join(__dirname, '..', 'fixtures')
export const TINY_MODEL = path.join(FIXTURES, 'tiny-eurobert')
/**
 * How much slower than native this machine runs the suite: 1 here; `npm run test:emulated`
 * sets EUROBERT_TEST_SLOWDOWN for the arm64 run under qemu, and the tests that bound a wait or
 * a duration scale those bounds by it.
 */
export const SLOWDOWN = Math.max(1, Number(process.env.EUROBERT_TEST_SLOWDOWN) || 1)

export interface SingleRecord {
  text: string
  ids: number[]
  tokens: string[]
  offsets_codepoint: [number, number][]
  offsets_utf16: [number, number][]
  special_tokens_mask: number[]
  attention_mask: number[]
  word_ids: number[]
  logits: number[][]
}

export interface Expected {
  versions: Record<string, string>
  labels: string[]
  singles: SingleRecord[]
  batch: { texts: string[]; logits: number[][][] }
}

export function expected(): Expected {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, 'tiny-eurobert.expected.json'), 'utf8'))
}

/** Largest |a - b| over a flat Float32Array and nested expected rows. */
export function maxAbsDiff(actual: Float32Array, rows: number[][]): number {
  const flat = rows.flat()
  if (flat.length !== actual.length) throw new Error(`length ${actual.length} != expected ${flat.length}`)
  let worst = 0
  flat.forEach((v, i) => (worst = Math.max(worst, Math.abs(actual[i] - v))))
  return worst
}

/** A fresh copy of the tiny model folder that a test may damage. */
export function copyOfTinyModel(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eurobert-ner-test-'))
  for (const f of fs.readdirSync(TINY_MODEL)) fs.copyFileSync(path.join(TINY_MODEL, f), path.join(dir, f))
  return dir
}

/** An entity as transformers' pipeline returned it, with offsets also in UTF-16 units. */
export interface PyEntity {
  entity?: string
  entity_group?: string
  score: number
  index?: number
  word: string
  start: number
  end: number
  start_utf16: number
  end_utf16: number
}
