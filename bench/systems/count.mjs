// Tokens in the workload (special tokens included), with the model's own tokenizer.
import { createRequire } from 'node:module'
import { args, workload } from './common.mjs'

const require = createRequire(import.meta.url)
const { EuroBertModel } = require('../../dist/index.js')
const a = args()
const w = workload(a.work)
const model = await EuroBertModel.load(a.model, { threads: 1 })
const count = async (texts) => (await model.tokenize(texts)).reduce((n, t) => n + t.ids.length, 0)
console.log(JSON.stringify({ short: await count(w.short), long: await count(w.long) }))
