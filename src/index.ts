// eurobert-ner: EuroBERT token classification for Node.js. The main entry loads the pipeline
// and the model only; the server (prom-client) is `eurobert-ner/serve`, the queue (BullMQ)
// `eurobert-ner/queue`.
import type { Server, ServeOptions } from './serve'

export { AbortError } from './abort'
export { cpuKernels, EuroBertModel } from './model'
export type { DType, Device, LoadOptions, RunOptions, ScoredText, ScoredWindow, Tokenization, TokenLogits, WindowOptions } from './model'
export { pipeline } from './pipeline'
export type { AggregationStrategy, Entity, EntityFor, GroupedEntity, GroupingStrategy, Ner, NerOptions, PipelineOptions, StrategyName, StreamInput, StreamOptions, StreamResult, TokenEntity, TransformersJsOptions } from './pipeline'
export { evaluate, readConllu } from './evaluate'
export type { EvaluateOptions, Evaluation } from './evaluate'
export { parseConllu } from './conllu'
export type { ConlluSentence, ConlluToken } from './conllu'
export { classificationReport, formatReport, getEntities, scores } from './seqeval'
export type { Mode, Report, ReportOptions, Scores } from './seqeval'
export { BUNDLED_MODEL } from './bundled'
export { checkRevision, HubError, parseHubId, resolveModel } from './hub'
export type { DownloadProgress, HubOptions } from './hub'
export { entityTypes, pageEnd, pageStart, renderHtml, renderLegend } from './html'
export type { HtmlEntity, RenderOptions } from './html'
export type { RequestLog, Server, ServeOptions } from './serve'

/** `serve` from `eurobert-ner/serve`, loaded on first use so the main import stays light. */
export async function serve(options?: ServeOptions): Promise<Server> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./serve') as typeof import('./serve')).serve(options)
}
