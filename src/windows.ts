// Overlapping windows over a long text's tokens, as the tokenizers library makes them for
// transformers' `stride`: the content tokens (without the special tokens the post-processor
// adds) are cut into pieces of `maxLength - specials` tokens, each starting `budget - stride`
// after the previous one, until a piece reaches the end; every piece gets the special tokens.
import type { Tokenization } from './model'

export interface TokenWindow {
  ids: Uint32Array
  tokens: string[]
  offsets: Uint32Array
  specialTokensMask: Uint8Array
  /** Position of the window's first token in the unwindowed tokenization. */
  indexBase: number
  /** Token positions `[from, to)` of the unwindowed tokenization this window owns (nearest its middle). */
  owns: [number, number]
}

/** Content ranges `[start, end)` of each window (tokenizers' `Encoding::truncate` with overflow). */
export function windowRanges(length: number, budget: number, stride: number): [number, number][] {
  if (length <= budget) return [[0, length]]
  const step = budget - stride
  const ranges: [number, number][] = []
  for (let start = 0; start < length; start += step) {
    const end = Math.min(start + budget, length)
    ranges.push([start, end])
    if (end === length) break
  }
  return ranges
}

/**
 * Splits a tokenization into windows of at most `maxLength` tokens (special tokens
 * included). `stride` is how many tokens consecutive windows share; by default a quarter of
 * the text tokens a window holds.
 */
export function makeWindows(tok: Tokenization, maxLength: number, stride?: number): TokenWindow[] {
  const n = tok.ids.length
  let prefix = 0
  while (prefix < n && tok.specialTokensMask[prefix]) prefix++
  let suffix = 0
  while (suffix < n - prefix && tok.specialTokensMask[n - 1 - suffix]) suffix++
  const content = n - prefix - suffix
  const budget = maxLength - prefix - suffix
  if (content <= budget) {
    return [
      {
        ids: tok.ids,
        tokens: tok.tokens,
        offsets: tok.offsets,
        specialTokensMask: tok.specialTokensMask,
        indexBase: 0,
        owns: [prefix, prefix + content],
      },
    ]
  }
  if (budget < 1) throw new RangeError(`maxLength ${maxLength} leaves no room for text beside ${prefix + suffix} special tokens`)
  stride ??= Math.floor(budget / 4)
  if (!(stride >= 0 && stride < budget)) {
    throw new RangeError(`stride must be less than the ${budget} text tokens a window holds, got ${stride}`)
  }
  const ranges = windowRanges(content, budget, stride)
  const pick = (from: number, to: number): number[] => [
    ...range(0, prefix),
    ...range(prefix + from, prefix + to),
    ...range(n - suffix, n),
  ]
  return ranges.map(([from, to], k) => {
    const idx = pick(from, to)
    // Where windows overlap, each owns the half nearer its own middle.
    const ownFrom = k === 0 ? 0 : Math.floor((from + ranges[k - 1][1]) / 2)
    const ownTo = k === ranges.length - 1 ? content : Math.floor((ranges[k + 1][0] + to) / 2)
    return {
      ids: Uint32Array.from(idx, (i) => tok.ids[i]),
      tokens: idx.map((i) => tok.tokens[i]),
      offsets: Uint32Array.from(idx.flatMap((i) => [tok.offsets[2 * i], tok.offsets[2 * i + 1]])),
      specialTokensMask: Uint8Array.from(idx, (i) => tok.specialTokensMask[i]),
      indexBase: from,
      owns: [prefix + ownFrom, prefix + ownTo],
    }
  })
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i)
}
