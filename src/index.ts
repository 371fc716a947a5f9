// eurobert-ner: EuroBERT token classification for Node.js.
export { EuroBertModel } from './model'
export type { DType, Device, LoadOptions, RunOptions, Tokenization, TokenLogits } from './model'
