// The CLI's flags for ner()'s options, made from the one options table (pipeline/options.ts):
// the flag names, their help lines and their parsing.
import { checkNerOptions, NER_OPTION_SPECS, NerOptionName, OptionSpec } from '../pipeline/options'
import type { NerOptions } from '../pipeline/pipeline'

export { cliOptionHelp, withReaderDefaults } from '../pipeline/options'

const SPECS = Object.entries(NER_OPTION_SPECS as Record<string, OptionSpec>).filter(([, s]) => s.cli) as [NerOptionName, OptionSpec & { cli: NonNullable<OptionSpec['cli']> }][]

/** `parseArgs` options for the NER flags. */
export function cliOptionFlags(): Record<string, { type: 'string'; short?: string }> {
  return Object.fromEntries(SPECS.map(([, s]) => [s.cli.flag, s.cli.short ? { type: 'string' as const, short: s.cli.short } : { type: 'string' as const }]))
}

/** NER options from the parsed flags: integers and lists converted, then checked as ner() checks them. */
export function cliNerOptions(values: Record<string, string | undefined>, usage: (m: string) => Error): NerOptions {
  const out: Record<string, unknown> = {}
  for (const [name, s] of SPECS) {
    const v = values[s.cli.flag]
    if (v === undefined) continue
    if (s.kind.type === 'int') {
      const n = Number(v)
      if (v.trim() === '' || !Number.isInteger(n) || n < s.kind.min) throw usage(`--${s.cli.flag} must be an integer ≥ ${s.kind.min}, got ${v}`)
      out[name] = n
    } else if (s.kind.type === 'strings') out[name] = v.split(',').map((x) => x.trim()).filter(Boolean)
    else out[name] = s.kind.type === 'enum' && name === 'aggregationStrategy' ? v.toLowerCase() : v
  }
  try {
    checkNerOptions('', out)
  } catch (e) {
    // "aggregationStrategy must be one of …" → "--aggregation-strategy must be one of …"
    let message = (e as Error).message.replace(/^: /, '')
    for (const [name, s] of SPECS) message = message.replace(new RegExp(`^${name}\\b`), `--${s.cli.flag}`)
    throw usage(message)
  }
  return out as NerOptions
}

