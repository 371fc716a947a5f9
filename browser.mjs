// The package in a browser (its `browser` export condition). napi-rs' browser loader starts the
// WebAssembly build (eurobert-ner-wasm32-wasi: the .wasm, fetched beside the loader, and its
// thread workers, which need a cross-origin isolated page: COOP same-origin, COEP
// require-corp); dist/browser.js is the rest, with package.json's `browser` field swapping in
// the modules that differ from Node's (src/browser/).
import lib from './dist/browser.js'

// The threads share one WebAssembly memory, which a browser gives only to a cross-origin
// isolated page. Elsewhere the binding is not started, and loading a model says why.
if (globalThis.crossOriginIsolated === false) {
  lib.useBinding(
    undefined,
    'eurobert-ner: this page is not cross-origin isolated, and the WebAssembly build needs a SharedArrayBuffer for its threads. ' +
      'Serve the page with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp (or credentialless).',
  )
} else {
  const binding = await import('eurobert-ner-wasm32-wasi')
  lib.useBinding(binding.default ?? binding)
}

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
