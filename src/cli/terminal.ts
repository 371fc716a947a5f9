// What the terminal takes: color (NO_COLOR, FORCE_COLOR, TERM=dumb) and redrawn progress lines.

/**
 * Whether to color what goes to `stream`: FORCE_COLOR (not 0) forces it; NO_COLOR (any value,
 * no-color.org) and TERM=dumb turn it off; otherwise a terminal gets it.
 */
export function colors(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '') return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false'
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  if (env.TERM === 'dumb') return false
  return stream.isTTY === true
}

/** Whether a progress line, redrawn with `\r`, suits the stream: a terminal that is not TERM=dumb. */
export function redraws(stream: { isTTY?: boolean }): boolean {
  return stream.isTTY === true && process.env.TERM !== 'dumb'
}
