// IOB2-valid decoding: the label sequence with the highest total log-probability in which
// `I-X` only follows `B-X` or `I-X` (never `O`, another type, or the start). Argmax picks each
// label alone and can open an entity with `I-X`; this repairs such sequences by the scores.
import type { Label } from './labels'

export type Decoding = 'argmax' | 'viterbi'
export const DECODINGS: readonly Decoding[] = ['argmax', 'viterbi']

/** Whether label `cur` may follow `prev` (`undefined`: the start of the sequence). */
function allowed(labels: readonly Label[], prev: number | undefined, cur: number): boolean {
  const c = labels[cur]
  if (!(c.prefixed && c.bi === 'I')) return true
  if (prev === undefined) return false
  return labels[prev].prefixed && labels[prev].tag === c.tag
}

/**
 * Label ids, one per position, maximizing the sum of `log(probs[i][label])` under the IOB2
 * constraint. `probs` are softmax scores (one row per word).
 */
export function viterbi(probs: readonly ArrayLike<number>[], labels: readonly Label[]): number[] {
  const n = probs.length
  const L = labels.length
  if (n === 0) return []
  const logp = (i: number, j: number) => Math.log(Math.max(probs[i][j], 1e-30))
  let score = Array.from({ length: L }, (_, j) => (allowed(labels, undefined, j) ? logp(0, j) : -Infinity))
  const back: Int32Array[] = []
  for (let i = 1; i < n; i++) {
    const next = new Array<number>(L).fill(-Infinity)
    const from = new Int32Array(L).fill(-1)
    for (let j = 0; j < L; j++) {
      for (let k = 0; k < L; k++) {
        if (score[k] === -Infinity || !allowed(labels, k, j)) continue
        if (score[k] > next[j]) {
          next[j] = score[k]
          from[j] = k
        }
      }
      next[j] += logp(i, j)
    }
    back.push(from)
    score = next
  }
  let best = 0
  for (let j = 1; j < L; j++) if (score[j] > score[best]) best = j
  const path = [best]
  for (let i = n - 2; i >= 0; i--) path.push(back[i][path[path.length - 1]])
  return path.reverse()
}
