// eurobert-ner: EuroBERT token classification for Node.js.
export { EuroBertModel } from './model'
export type { DType, Device, LoadOptions, RunOptions, Tokenization, TokenLogits } from './model'
export { pipeline } from './pipeline'
export type { AggregationStrategy, Entity, GroupedEntity, Ner, NerOptions, TokenEntity } from './pipeline'
