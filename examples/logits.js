// Per-token labels and logits from a model folder (default: the bundled compact NorNE model).
// Usage: node examples/logits.js [text] [model folder]
const { EuroBertModel } = require('..')

async function main() {
  const text = process.argv[2] ?? 'Erna Solberg besøkte Universitetet i Oslo forrige uke.'
  const dir = process.argv[3] ?? require('..').BUNDLED_MODEL
  const model = await EuroBertModel.load(dir)
  const [out] = await model.logits(text)
  for (let i = 0; i < out.tokens.length; i++) {
    const row = out.logits.subarray(i * out.numLabels, (i + 1) * out.numLabels)
    const best = row.indexOf(Math.max(...row))
    const span = JSON.stringify(text.slice(out.offsets[2 * i], out.offsets[2 * i + 1]))
    console.log(`${String(i).padStart(3)}  ${out.tokens[i].padEnd(20)} ${span.padEnd(16)} ${model.labels[best]}`)
  }
}

main().catch((e) => {
  console.error(e.message)
  process.exit(1)
})
