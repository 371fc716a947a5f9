// Entities as highlighted spans, in the style displaCy made familiar: each entity a colored
// mark with its label as a small tag and its score in a tooltip, a legend of labels, and
// every piece of input text HTML-escaped. Offsets are UTF-16, so emoji, CRLF and
// right-to-left runs slice correctly; each document is isolated with `dir="auto"` and marks
// with `<bdi>`, so right-to-left text keeps its order.
//
// `renderHtml` is self-contained (no imports, no outer names): the page `serve` hands out
// embeds its source, so the browser renders with the very same function.

export interface HtmlEntity {
  entity_group?: string
  entity?: string
  score: number
  start: number
  end: number
}

export interface RenderOptions {
  /** Label → CSS color; labels not given get one from a palette, the same for the same name. */
  colors?: Record<string, string>
}

/** One document's text with its entities marked, as an HTML fragment. */
export function renderHtml(text: string, entities: readonly HtmlEntity[], options: RenderOptions = {}): string {
  const NORNE: Record<string, string> = {
    PER: '#f4a3a8', ORG: '#9fc5f8', LOC: '#b6e3a1', GPE_LOC: '#8fe0d3', GPE_ORG: '#d4b3f2',
    PROD: '#f9d38a', EVT: '#f7b27a', DRV: '#c7cdfa', MISC: '#d6d6d6',
  }
  const PALETTE = ['#f6c1d5', '#c9e7a6', '#a8d8f0', '#f3e19b', '#e2c4f5', '#b9efe0', '#f7c9a8', '#cfd8dc']
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string)
  const color = (label: string) => {
    if (options.colors?.[label]) return options.colors[label]
    if (NORNE[label]) return NORNE[label]
    let h = 0
    for (let i = 0; i < label.length; i++) h = (h * 31 + label.charCodeAt(i)) >>> 0
    return PALETTE[h % PALETTE.length]
  }
  const label = (e: HtmlEntity) => (e.entity_group ?? e.entity ?? '').replace(/^[BI]-/, '')
  let html = ''
  let at = 0
  for (const e of [...entities].sort((a, b) => a.start - b.start || b.end - a.end)) {
    if (e.start < at || e.end <= e.start || e.end > text.length) continue
    const l = label(e)
    const safeColor = /^#[0-9a-fA-F]{3,8}$|^[a-zA-Z]+$/.test(color(l)) ? color(l) : '#ddd'
    html += esc(text.slice(at, e.start))
    html +=
      `<mark class="ent" data-label="${esc(l)}" style="background:${safeColor}" title="${esc(l)} ${e.score.toFixed(3)}">` +
      `<bdi>${esc(text.slice(e.start, e.end))}</bdi><span class="tag">${esc(l)}</span></mark>`
    at = e.end
  }
  return `<div class="doc" dir="auto">${html}${esc(text.slice(at))}</div>`
}

/** The legend: one colored sample per label. */
export function renderLegend(labels: readonly string[], options: RenderOptions = {}): string {
  // Each label as its own mark, without the tag that would repeat it.
  const marks = labels.map((l) =>
    renderHtml(l, [{ entity_group: l, score: 1, start: 0, end: l.length }], options)
      .replace(/^<div class="doc" dir="auto">|<\/div>$/g, '')
      .replace(/<span class="tag">[^<]*<\/span>/, '')
      .replace(/ title="[^"]*"/, ''),
  )
  return `<div class="legend" aria-label="labels">${marks.join(' ')}</div>`
}

/** The page's styles; no fonts or anything else from the network. */
export const HTML_STYLE = `
body { font: 16px/1.9 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; background: #fff; }
.doc { white-space: pre-wrap; margin: 0 0 1.2rem; padding: 0 0 1rem; border-bottom: 1px solid #eee; }
.legend { margin: 0 0 1.5rem; }
mark.ent { padding: 0.15em 0.35em; margin: 0 0.1em; border-radius: 0.35em; color: #111; box-decoration-break: clone; -webkit-box-decoration-break: clone; }
mark.ent .tag { font-size: 0.62em; font-weight: 700; letter-spacing: 0.03em; margin-left: 0.4em; vertical-align: middle; text-transform: uppercase; color: #333; }
`

/** The start of a self-contained page (inline CSS, a legend); documents and `pageEnd()` follow. */
export function pageStart(title: string, labels: readonly string[], options: RenderOptions = {}): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string)
  return `<!doctype html>\n<html lang="no">\n<head>\n<meta charset="utf-8">\n<title>${esc(title)}</title>\n<style>${HTML_STYLE}</style>\n</head>\n<body>\n${renderLegend(labels, options)}\n`
}

export function pageEnd(): string {
  return '</body>\n</html>\n'
}

export { entityTypes } from '../pipeline/labels'
