// The page of `GET /`: a text box and a strategy; it asks this server's POST /ner and renders
// the answer with `renderHtml`'s own source, so the page and the library highlight alike.
import { pageEnd, pageStart, renderHtml } from './html'
import { withReaderDefaults } from '../pipeline/options'

/** The page of `GET /`: it asks this server's POST /ner and renders with `renderHtml`'s own source. */
export function viewPage(types: string[]): string {
  const strategies = ['first', 'simple', 'average', 'max', 'none']
  return (
    pageStart('eurobert-ner', types) +
    `<form id="f"><textarea id="text" rows="5" style="width:100%;font:inherit" aria-label="text">Erna Solberg besøkte Universitetet i Oslo forrige uke.</textarea>
<p><label>Aggregation <select id="strategy">${strategies.map((s) => `<option>${s}</option>`).join('')}</select></label>
<button type="submit">Find entities</button> <span id="status" role="status"></span></p></form>
<div id="out" aria-live="polite"></div>
<script>
const renderHtml = ${renderHtml.toString()};
const withReaderDefaults = ${withReaderDefaults.toString()};
document.getElementById('f').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = document.getElementById('text').value;
  const status = document.getElementById('status');
  status.textContent = '…';
  const res = await fetch('ner', { method: 'POST', headers: { 'content-type': 'application/json' },
    // The CLI's reader defaults (pipeline/options.ts, withReaderDefaults): Viterbi where words are labelled.
    body: JSON.stringify({ text, options: withReaderDefaults({ aggregationStrategy: document.getElementById('strategy').value }) }) });
  const body = await res.json();
  status.textContent = res.ok ? body.length + ' entities' : body.error;
  if (res.ok) document.getElementById('out').innerHTML = renderHtml(text, body, {});
});
</script>
` +
    pageEnd()
  )
}
