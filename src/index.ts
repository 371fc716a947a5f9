// eurobert-ner: EuroBERT token classification for Node.js. The main entry loads the pipeline
// and the model only; the server (prom-client) is `eurobert-ner/serve`, the queue (BullMQ)
// `eurobert-ner/queue`.
import type { Server, ServeOptions } from './serve'

export { AbortError } from './pipeline/abort'
export { cpuKernels, EuroBertModel, TokenClassifierModel } from './pipeline/model'
export type { DType, Device, LoadOptions, RunOptions, ScoredText, ScoredWindow, Tokenization, TokenLogits, WindowOptions } from './pipeline/model'
export { pipeline } from './pipeline/pipeline'
export type { ModelFiles } from './pipeline/model-files'
export type { AggregationStrategy, Entity, EntityFor, GroupedEntity, GroupingStrategy, ModelSource, Ner, NerOptions, PipelineOptions, StrategyName, StreamInput, StreamOptions, StreamResult, TokenEntity, TransformersJsOptions } from './pipeline/pipeline'
export { evaluate, readConllu } from './evaluate/evaluate'
export type { EvaluateOptions, Evaluation } from './evaluate/evaluate'
export { parseConllu } from './evaluate/conllu'
export type { ConlluSentence, ConlluToken } from './evaluate/conllu'
export { classificationReport, formatReport, getEntities, scores } from './evaluate/seqeval'
export type { Mode, Report, ReportOptions, Scores } from './evaluate/seqeval'
export { BUNDLED_MODEL } from './pipeline/bundled'
export { TooLargeError } from './pipeline/cost'
export { checkRevision, HubError, parseHubId, resolveModel } from './pipeline/hub'
export type { DownloadProgress, HubOptions } from './pipeline/hub'
export type { ProgressCallback, ProgressInfo } from './pipeline/progress'
export { entityTypes, pageEnd, pageStart, renderHtml, renderLegend } from './serve/html'
export type { HtmlEntity, RenderOptions } from './serve/html'
export type { RequestLog, Server, ServeOptions } from './serve'

/** `serve` from `eurobert-ner/serve`, loaded on first use so the main import stays light. */
export async function serve(options?: ServeOptions): Promise<Server> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./serve') as typeof import('./serve')).serve(options)
}
