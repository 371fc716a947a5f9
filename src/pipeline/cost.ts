// What a call really costs: the tokens its windows run (special tokens included), known once
// its texts are tokenized and cut into windows, before any forward pass. A budget on it is the
// only bound that holds whatever the options: a shorter window or a larger stride multiplies
// the windows of the same text.

/** A call whose windows would run more tokens than its budget; nothing was computed. */
export class TooLargeError extends RangeError {
  readonly code = 'ERR_TOO_LARGE'
  constructor(
    message: string,
    /** Tokens the call's windows would run. */
    readonly tokens: number,
    /** The budget it was checked against. */
    readonly limit: number,
  ) {
    super(message)
    this.name = 'TooLargeError'
  }
}

/** Throws a TooLargeError when `tokens` (over `windows` windows) exceed `limit`. */
export function checkCost(method: string, tokens: number, windows: number, limit: number | undefined): void {
  if (limit !== undefined && tokens > limit) {
    throw new TooLargeError(`${method}: the ${windows} window${windows === 1 ? '' : 's'} of this call would run ${tokens} tokens; the limit is ${limit}`, tokens, limit)
  }
}

/**
 * The bound `serve` and the queue worker put on the window geometry of work that comes from
 * others: the stride may be at most half the text a window holds (its `maxLength` less the
 * tokenizer's special tokens), so the windows of a text run at most about twice its tokens.
 * The library itself takes any stride transformers does, up to one window per token.
 */
export function checkServedStride(stride: unknown, maxLength: number, specialTokens: number, name: string, where: string): void {
  const budget = Math.max(0, maxLength - specialTokens)
  const most = Math.floor(budget / 2)
  if (typeof stride === 'number' && stride > most) {
    throw new RangeError(`${name} may be at most ${most} on ${where} (half the ${budget} text tokens a window of ${maxLength} holds), got ${stride}`)
  }
}

/** The window a served call asks for: its maxLength when usable (ner() checks it), else the model's. */
export function windowOf(maxLength: unknown, model: { maxLength: number; modelMaxLength: number }): number {
  return Number.isInteger(maxLength) && (maxLength as number) >= 1 ? Math.min(maxLength as number, model.maxLength) : model.modelMaxLength
}
