// Model labels, parsed once: the B-/I- prefix and the type, as transformers' pipeline reads them.

export interface Label {
  /** The label as in id2label, e.g. `B-GPE_LOC`. */
  name: string
  /** `get_tag`'s prefix: 'B' for `B-`, otherwise 'I' (bare labels continue like `I-`). */
  bi: 'B' | 'I'
  /** `get_tag`'s type: the name without a `B-`/`I-` prefix (`E-PER` stays `E-PER`). */
  tag: string
  /** The entity group a group starting with this label gets: the text after the first '-'. */
  group: string
  /** Whether the name carries an explicit `B-` or `I-` prefix (IOB2's constraint applies). */
  prefixed: boolean
}

export function parseLabel(name: string): Label {
  const bi = name.startsWith('B-') ? 'B' : 'I'
  const tag = name.startsWith('B-') || name.startsWith('I-') ? name.slice(2) : name
  const dash = name.indexOf('-')
  const prefixed = name.startsWith('B-') || name.startsWith('I-')
  return { name, bi, tag, group: dash >= 0 ? name.slice(dash + 1) : name, prefixed }
}

export function parseLabels(names: readonly string[]): Label[] {
  return names.map(parseLabel)
}

/** Entity types of a model's labels (`B-PER`, `I-PER` → `PER`), in label order, without `O`. */
export function entityTypes(names: readonly string[]): string[] {
  return [...new Set(parseLabels(names).filter((l) => l.name !== 'O').map((l) => l.tag))]
}
