// The package in a browser (its `browser` export condition). napi-rs' browser loader starts the
// WebAssembly build (eurobert-ner-wasm32-wasi: the .wasm, fetched beside the loader, and its
// thread workers, which need a cross-origin isolated page: COOP same-origin, COEP
// require-corp); dist/browser.js is the rest, with package.json's `browser` field swapping in
// the modules that differ from Node's (src/browser/).
import * as binding from 'eurobert-ner-wasm32-wasi'
import lib from './dist/browser.js'

lib.useBinding(binding.default ?? binding)

export const {
  AbortError,
  CACHE_NAME,
  checkRevision,
  classificationReport,
  cpuKernels,
  entityTypes,
  EuroBertModel,
  formatReport,
  getEntities,
  pageEnd,
  pageStart,
  parseConllu,
  parseHubId,
  pipeline,
  renderHtml,
  renderLegend,
  scores,
  TokenClassifierModel,
  TooLargeError,
} = lib
