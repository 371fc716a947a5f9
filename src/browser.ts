// eurobert-ner in a browser (the package's `browser` export condition, through browser.mjs):
// the pipeline, the model and the evaluation, on the WebAssembly build. Models come from a URL,
// a Hub id or their files as bytes; what needs Node (folders, the disk cache, serve, the queue,
// createStream) is not here.
export { AbortError } from './pipeline/abort'
export { cpuKernels, EuroBertModel, TokenClassifierModel } from './pipeline/model'
export type { DType, Device, LoadOptions, RunOptions, ScoredText, ScoredWindow, Tokenization, TokenLogits, WindowOptions } from './pipeline/model'
export { pipeline } from './pipeline/pipeline'
export type { AggregationStrategy, Entity, EntityFor, GroupedEntity, GroupingStrategy, ModelSource, Ner, NerOptions, PipelineOptions, StrategyName, StreamInput, StreamOptions, StreamResult, TokenEntity, TransformersJsOptions } from './pipeline/pipeline'
export { CACHE_NAME } from './pipeline/model-files'
export type { ModelFiles } from './pipeline/model-files'
export { parseConllu } from './evaluate/conllu'
export type { ConlluSentence, ConlluToken } from './evaluate/conllu'
export { classificationReport, formatReport, getEntities, scores } from './evaluate/seqeval'
export type { Mode, Report, ReportOptions, Scores } from './evaluate/seqeval'
export { TooLargeError } from './pipeline/cost'
export { checkRevision, parseHubId } from './pipeline/hub-id'
export type { ProgressCallback, ProgressInfo } from './pipeline/progress'
export { entityTypes, pageEnd, pageStart, renderHtml, renderLegend } from './serve/html'
export type { HtmlEntity, RenderOptions } from './serve/html'
export { useBinding } from './browser/native'
