// transformers' TokenClassificationPipeline post-processing, step for step: softmax scores,
// pre-entities without special tokens, word aggregation (first/average/max), B-/I- grouping,
// ignore_labels after grouping, and the merge of entities from overlapping windows.
// Scores are float32 as numpy's are (Math.fround after every float32 operation).
import type { Label } from './labels'
import { Decoding, viterbi } from './viterbi'

export type AggregationStrategy = 'none' | 'simple' | 'first' | 'average' | 'max'
export const AGGREGATION_STRATEGIES: readonly AggregationStrategy[] = ['none', 'simple', 'first', 'average', 'max']

/** Strategy 'none': one entry per token. */
export interface TokenEntity {
  entity: string
  score: number
  index: number
  word: string
  start: number
  end: number
}

/** Strategies 'simple', 'first', 'average', 'max': one entry per entity. */
export interface GroupedEntity {
  entity_group: string
  score: number
  word: string
  start: number
  end: number
}

export type Entity = TokenEntity | GroupedEntity

/** One model input (a text, or one window of a long text) with its scores. */
export interface ScoredSequence {
  /** Token strings of the whole tokenization; only transformers-style words read them. */
  tokens?: readonly string[]
  /** Token ids of the whole tokenization (to spot the unknown token). */
  ids?: ArrayLike<number>
  /** UTF-16 `[start, end)` pairs of the whole tokenization, into the full text. */
  offsets: ArrayLike<number>
  /** Content tokens `[from, to)` of the tokenization (special tokens are never entities). */
  from: number
  to: number
  /** Row r holds the softmax scores of token `from + r` (`softmax` of its logits). */
  probabilities: Float32Array
}

/**
 * A content token before aggregation. Its scores are row `at / numLabels` of its window's
 * `scores` (no view per token: a call of 1,000 sentences made 25,000 of them).
 */
export interface PreEntity {
  word: string
  scores: Float32Array
  at: number
  start: number
  end: number
  index: number
  isSubword: boolean
}

/** Decides whether a token continues the previous word; `token` is its vocabulary string. */
export type SubwordRule = (text: string, start: number, end: number, previous: PreEntity | undefined, token: string) => boolean

/**
 * transformers' fallback for tokenizers without a continuing-subword prefix (EuroBERT's
 * byte-level BPE): a token continues a word unless an ASCII space is just before or at its
 * start. `text[start - 1]`/`text[start]` are UTF-16 units; a space is never half of a pair.
 */
export const transformersSubword: SubwordRule = (text, start) =>
  start > 0 && text[start - 1] !== ' ' && text[start] !== ' '

/**
 * transformers' rule for tokenizers with a continuing-subword prefix (`##`): a token continues
 * a word when its string is not as long as the text it covers, counted in code points as
 * Python's `len` counts.
 */
export const wordAwareSubword: SubwordRule = (text, start, end, _previous, token) =>
  codePoints(token) !== codePoints(text.slice(start, end))

function codePoints(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    // A high surrogate followed by a low one is one code point; lone halves count one each.
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++
    n++
  }
  return n
}
/** Row-wise softmax, max-shifted, stored as float32: the arithmetic of the core's `softmax_rows`, which makes the pipeline's scores. */
export function softmax(logits: Float32Array, numLabels: number): Float32Array {
  const out = new Float32Array(logits.length)
  for (let row = 0; row < logits.length; row += numLabels) {
    let max = -Infinity
    for (let j = 0; j < numLabels; j++) max = Math.max(max, logits[row + j])
    let sum = 0
    for (let j = 0; j < numLabels; j++) {
      const e = Math.fround(Math.exp(Math.fround(logits[row + j] - max)))
      out[row + j] = e
      sum = Math.fround(sum + e)
    }
    for (let j = 0; j < numLabels; j++) out[row + j] = out[row + j] / sum
  }
  return out
}

export function gatherPreEntities(
  text: string,
  seq: ScoredSequence,
  numLabels: number,
  isSubword: SubwordRule,
  unkTokenId?: number,
): PreEntity[] {
  const scores = seq.probabilities
  const pre: PreEntity[] = []
  for (let i = seq.from; i < seq.to; i++) {
    const start = seq.offsets[2 * i]
    const end = seq.offsets[2 * i + 1]
    const entity: PreEntity = {
      word: seq.tokens?.[i] ?? '',
      scores,
      at: (i - seq.from) * numLabels,
      start,
      end,
      // The token's position in the whole tokenization, as transformers reports it.
      index: i,
      isSubword: false,
    }
    if (unkTokenId !== undefined && seq.ids?.[i] === unkTokenId) {
      // transformers: an unknown token's word is the text it covers, and starts a word.
      entity.word = text.slice(start, end)
    } else {
      entity.isSubword = isSubword(text, start, end, pre[pre.length - 1], entity.word)
    }
    pre.push(entity)
  }
  return pre
}

/** A pre-entity's scores as their own view. */
function rowOf(p: PreEntity, numLabels: number): Float32Array {
  return p.scores.subarray(p.at, p.at + numLabels)
}

/** A token or word with its label, before grouping. */
interface Labelled {
  label: Label
  score: number
  word: string
  start: number
  end: number
  index: number
}

export type Decode = (tokens: string[]) => string

/**
 * Entities of one window: transformers' aggregation, then `ignore_labels` (which transformers
 * applies after grouping: an ignored group still ends the one before it, so skipping it as it
 * is formed gives the same list).
 */
export function aggregate(
  pre: PreEntity[],
  strategy: AggregationStrategy,
  labels: readonly Label[],
  decode: Decode,
  decoding: Decoding = 'argmax',
  ignoreLabels: readonly string[] = ['O'],
): Entity[] {
  const ignored = new Set(ignoreLabels)
  if (strategy === 'none') {
    const n = labels.length
    const out: TokenEntity[] = []
    for (const p of pre) {
      const idx = argmaxAt(p.scores, p.at, n)
      if (!ignored.has(labels[idx].name)) out.push({ entity: labels[idx].name, score: p.scores[p.at + idx], index: p.index, word: p.word, start: p.start, end: p.end })
    }
    return out
  }
  if (strategy === 'simple') return groupTokens(pre, labels, decode, ignored)
  return groupEntities(aggregateWords(pre, strategy, labels, decode, decoding), decode, ignored)
}

/**
 * Strategy 'simple': `groupEntities` over each token's argmax, without an object per token
 * (a call of 1,000 sentences labels 25,000 tokens, most of them O).
 */
function groupTokens(pre: PreEntity[], labels: readonly Label[], decode: Decode, ignored: Set<string>): GroupedEntity[] {
  const n = labels.length
  const groups: GroupedEntity[] = []
  let first = 0
  let label: Label | undefined
  let sum = 0
  const close = (end: number) => {
    if (label === undefined || ignored.has(label.group)) return
    const words: string[] = []
    for (let i = first; i < end; i++) words.push(pre[i].word)
    groups.push({ entity_group: label.group, score: Math.fround(sum / (end - first)), word: decode(words), start: pre[first].start, end: pre[end - 1].end })
  }
  for (let i = 0; i < pre.length; i++) {
    const p = pre[i]
    const idx = argmaxAt(p.scores, p.at, n)
    const l = labels[idx]
    if (label !== undefined && !(l.tag === label.tag && l.bi !== 'B')) {
      close(i)
      label = undefined
    }
    if (label === undefined) {
      first = i
      label = l
      sum = 0
    }
    sum = Math.fround(sum + p.scores[p.at + idx])
  }
  close(pre.length)
  return groups
}

function aggregateWords(pre: PreEntity[], strategy: AggregationStrategy, labels: readonly Label[], decode: Decode, decoding: Decoding): Labelled[] {
  const groups: PreEntity[][] = []
  for (const p of pre) {
    if (groups.length > 0 && p.isSubword) groups[groups.length - 1].push(p)
    else groups.push([p])
  }
  const scores = groups.map((g) => wordScores(g, strategy, labels.length))
  const ids = decoding === 'viterbi' ? viterbi(scores, labels) : scores.map(argmax)
  return groups.map((group, i) => ({
    label: labels[ids[i]],
    score: scores[i][ids[i]],
    word: decode(group.map((p) => p.word)),
    start: group[0].start,
    end: group[group.length - 1].end,
    index: group[0].index,
  }))
}

/** The scores a word votes with: its first token's, its most confident token's, or the mean. */
function wordScores(group: PreEntity[], strategy: AggregationStrategy, numLabels: number): Float32Array {
  if (strategy === 'first') return rowOf(group[0], numLabels)
  if (strategy === 'max') {
    // Python's max(): the first entity whose best score is largest.
    let best = group[0]
    let bestMax = maxAt(best.scores, best.at, numLabels)
    for (let i = 1; i < group.length; i++) {
      const m = maxAt(group[i].scores, group[i].at, numLabels)
      if (m > bestMax) [best, bestMax] = [group[i], m]
    }
    return rowOf(best, numLabels)
  }
  // np.nanmean(axis=0) over float32 rows: rows added one after another, then divided.
  const acc = new Float32Array(numLabels)
  for (const p of group) for (let j = 0; j < numLabels; j++) acc[j] = acc[j] + p.scores[p.at + j]
  for (let j = 0; j < numLabels; j++) acc[j] = acc[j] / group.length
  return acc
}

/** `B-X` opens a group; `I-X` or bare `X` continues one only after the same type. Groups whose label is `ignored` are left out. */
function groupEntities(items: Labelled[], decode: Decode, ignored: Set<string>): GroupedEntity[] {
  const groups: GroupedEntity[] = []
  let current: Labelled[] = []
  const close = () => {
    if (current.length > 0 && !ignored.has(current[0].label.group)) groups.push(groupSubEntities(current, decode))
  }
  for (const item of items) {
    const last = current[current.length - 1]
    if (last && !(item.label.tag === last.label.tag && item.label.bi !== 'B')) {
      close()
      current = []
    }
    current.push(item)
  }
  close()
  return groups
}

function groupSubEntities(items: Labelled[], decode: Decode): GroupedEntity {
  let sum = 0
  for (const i of items) sum = Math.fround(sum + i.score)
  return {
    entity_group: items[0].label.group,
    score: Math.fround(sum / items.length),
    word: decode(items.map((i) => i.word)),
    start: items[0].start,
    end: items[items.length - 1].end,
  }
}

/**
 * Merges entities found in overlapping windows: sorted by start, an entity starting inside
 * the previous one replaces it when longer, or as long and higher-scoring.
 */
export function mergeOverlapping<E extends Entity>(entities: E[]): E[] {
  if (entities.length === 0) return entities
  const sorted = [...entities].sort((a, b) => a.start - b.start)
  const out: E[] = []
  let prev = sorted[0]
  for (const e of sorted) {
    if (prev.start <= e.start && e.start < prev.end) {
      const len = e.end - e.start
      const prevLen = prev.end - prev.start
      if (len > prevLen || (len === prevLen && e.score > prev.score)) prev = e
    } else {
      out.push(prev)
      prev = e
    }
  }
  out.push(prev)
  return out
}

/** Index of the largest value (the first on ties, as numpy's argmax). */
export function argmax(xs: ArrayLike<number>): number {
  return argmaxAt(xs, 0, xs.length)
}

/** `argmax` of `xs[at .. at + n)`, as an index into that row. */
function argmaxAt(xs: ArrayLike<number>, at: number, n: number): number {
  let best = 0
  for (let i = 1; i < n; i++) if (xs[at + i] > xs[at + best]) best = i
  return best
}

function maxAt(xs: Float32Array, at: number, n: number): number {
  let m = -Infinity
  for (let i = 0; i < n; i++) m = Math.max(m, xs[at + i])
  return m
}
