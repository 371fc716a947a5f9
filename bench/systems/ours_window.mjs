// One window of `--tokens` tokens (8,192 by default, EuroBERT's model_max_length) through our
// pipeline: its time, and the peak memory above what the loaded model held.
import { createRequire } from 'node:module'
import { args, report, timed, workload } from './common.mjs'

const require = createRequire(import.meta.url)
const { pipeline } = require('../../dist/index.js')
const a = args()
const w = workload(a.work)
const tokens = Number(a.tokens ?? 8192)
const ner = await pipeline(a.model, { threads: Number(a.threads) })
// Grow a document from the workload's sentences until it has just under `tokens` tokens.
let text = ''
for (let i = 0; ; i++) {
  const next = text + w.short[i % w.short.length] + ' '
  const [tok] = await ner.model.tokenize(next)
  if (tok.ids.length > tokens) break
  text = next
}
const [tok] = await ner.model.tokenize(text)
const rssAfterLoadMB = process.memoryUsage().rss / 2 ** 20
const run = await timed(() => ner(text, { maxLength: tokens, aggregationStrategy: 'simple' }))
const peakMB = process.resourceUsage().maxRSS / 1024
report({ system: 'eurobert-ner', windowTokens: tok.ids.length, windowMs: run.ms, rssAfterLoadMB, aboveWeightsMB: peakMB - rssAfterLoadMB })
