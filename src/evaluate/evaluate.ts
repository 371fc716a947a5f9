// Entity-level evaluation of a model on CoNLL-U files with IOB2 `name=` tags (NorNE):
// every gold token (word) takes the label the model gives its first sub-word token, and the
// tag sequences are scored exactly as seqeval does.
import * as fs from 'node:fs'

import { ConlluSentence, parseConllu } from './conllu'
import { argmax, softmax } from '../pipeline/aggregate'
import { parseLabels } from '../pipeline/labels'
import { TokenClassifierModel, ScoredText } from '../pipeline/model'
import { Decoding, viterbi } from '../pipeline/viterbi'
import { formatReport, Mode, Report, scores } from './seqeval'

export interface EvaluateOptions {
  /** 'default' (conlleval-compatible, seqeval's default) or 'strict' (IOB2). */
  mode?: Mode
  /** Decimals in the printed report (seqeval's default is 2). */
  digits?: number
  batchSize?: number
  maxLength?: number
  /** 'argmax' (default: each word's first token alone) or 'viterbi' (the best IOB2-valid sequence). */
  decode?: Decoding
}

export interface Evaluation {
  report: Report
  /** seqeval's classification_report text. */
  text: string
  sentences: number
  tokens: number
  /** Gold and predicted tags per sentence. */
  yTrue: string[][]
  yPred: string[][]
}

export function readConllu(files: string | readonly string[]): ConlluSentence[] {
  return (typeof files === 'string' ? [files] : files).flatMap((f) => parseConllu(fs.readFileSync(f, 'utf8'), f))
}

export async function evaluate(
  model: TokenClassifierModel,
  sentences: readonly ConlluSentence[],
  options: EvaluateOptions = {},
): Promise<Evaluation> {
  const windows = await model.scoreWindows(sentences.map((s) => s.text), { batchSize: options.batchSize, maxLength: options.maxLength })
  const yTrue = sentences.map((s) => s.tokens.map((t) => t.tag))
  const labels = parseLabels(model.labels)
  const yPred = sentences.map((s, i) => {
    const rows = s.tokens.map((t) => firstTokenRow(windows[i], t.start, t.end, model.labels.length))
    if (options.decode === 'viterbi') {
      // Words no token covers take O's certainty, so they never break a path.
      const o = model.labels.indexOf('O')
      const probs = rows.map((r) => (r ? softmax(r, r.length) : Float32Array.from(model.labels, (_, j) => (j === o ? 1 : 0))))
      return viterbi(probs, labels).map((j) => model.labels[j])
    }
    return rows.map((r) => (r ? model.labels[argmax(r)] : 'O'))
  })
  const report = scores(yTrue, yPred, options.mode ?? 'default')
  return {
    report,
    text: formatReport(report, options.digits ?? 2),
    sentences: sentences.length,
    tokens: yTrue.reduce((n, s) => n + s.length, 0),
    yTrue,
    yPred,
  }
}

/** Logits of the first model token overlapping `[start, end)`, read from the window that owns it. */
function firstTokenRow(text: ScoredText, start: number, end: number, numLabels: number): Float32Array | undefined {
  const { offsets } = text
  for (const w of text.windows) {
    for (let i = w.owns[0]; i < w.owns[1]; i++) {
      if (offsets[2 * i] < end && offsets[2 * i + 1] > start) {
        const r = i - w.from
        return w.logits.subarray(r * numLabels, (r + 1) * numLabels)
      }
    }
  }
  return undefined // a word no token covers (not seen with byte-level BPE) is tagged O
}

