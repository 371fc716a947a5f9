// Word boundaries from Unicode (UAX #29 word segmentation via Intl.Segmenter), for grouping
// sub-word tokens into words without transformers' ASCII-space heuristic: a word after a
// newline, tab, NBSP, bracket or quote starts a new word, and punctuation is its own word.
import type { PreEntity, SubwordRule } from './aggregate'

const WHITESPACE = /\s/
const EDGE = /[\s\p{P}]/u

/** A rule that treats a token as a continuation when it starts inside a Unicode word. */
export function unicodeSubwordRule(text: string): SubwordRule {
  const segmentStart = segmentStarts(text)
  return (_text: string, start: number, end: number, previous: PreEntity | undefined) => {
    // Byte pieces of one character share its span: they are one word.
    if (previous && start < previous.end) return true
    let k = start
    while (k < end && WHITESPACE.test(text[k])) k++
    // A token of only whitespace joins the word before it (and is trimmed from spans).
    if (k === end) return previous !== undefined
    return segmentStart[k] < k
  }
}

/** Longest piece given to the segmenter at once (see `pieces`). */
const PIECE = 2048

/**
 * `[start, end)` pieces of `text` of at most about PIECE units, cut after whitespace where
 * there is some (a word boundary in UAX #29), else between code points. ICU's word segmenter
 * takes superlinear time on long runs of unusual text (random bytes: 80k characters 10 s,
 * 160k 42 s), so it is given short pieces; a word longer than a piece may be split in two.
 */
export function pieces(text: string, size = PIECE): [number, number][] {
  const out: [number, number][] = []
  let start = 0
  while (text.length - start > size) {
    let cut = start + size
    while (cut > start + (size >> 1) && !WHITESPACE.test(text[cut - 1])) cut--
    if (cut === start + (size >> 1)) {
      cut = start + size
      // Never between the halves of a surrogate pair.
      if ((text.charCodeAt(cut) & 0xfc00) === 0xdc00) cut--
    }
    out.push([start, cut])
    start = cut
  }
  out.push([start, text.length])
  return out
}

/** `starts[i]` is the UTF-16 index where the segment holding unit i begins. */
function segmentStarts(text: string): Uint32Array {
  const starts = new Uint32Array(text.length + 1)
  const Segmenter = (Intl as { Segmenter?: new (l?: string, o?: object) => { segment(s: string): Iterable<{ index: number; segment: string }> } }).Segmenter
  if (Segmenter) {
    const segmenter = new Segmenter(undefined, { granularity: 'word' })
    for (const [from, to] of pieces(text)) {
      for (const { index, segment } of segmenter.segment(text.slice(from, to))) {
        starts.fill(from + index, from + index, from + index + segment.length)
      }
    }
  } else {
    // Without ICU: letters, marks and digits form words; every other character stands alone.
    const word = /[\p{L}\p{M}\p{N}]/u
    for (let i = 0; i < text.length; i++) {
      starts[i] = i > 0 && word.test(text[i]) && word.test(text[i - 1]) ? starts[i - 1] : i
    }
  }
  starts[text.length] = text.length
  return starts
}

/** Narrows `[start, end)` past surrounding whitespace, and also punctuation if asked. */
export function trimSpan(text: string, start: number, end: number, punctuation: boolean): [number, number] {
  const edge = punctuation ? EDGE : WHITESPACE
  while (start < end && edge.test(text[start])) start++
  while (end > start && edge.test(text[end - 1])) end--
  return [start, end]
}
