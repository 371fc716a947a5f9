// CoNLL-U with NER tags in the MISC column (`name=B-PER`, NorNE's layout). Sentence text is
// rebuilt from the tokens and their `SpaceAfter=No` flags so every token's span is exact.

export interface ConlluToken {
  form: string
  /** IOB2 tag from `name=`. */
  tag: string
  spaceAfter: boolean
  /** UTF-16 span of the token in `ConlluSentence.text`. */
  start: number
  end: number
}

export interface ConlluSentence {
  id?: string
  /** Tokens joined with a space unless `SpaceAfter=No`. */
  text: string
  tokens: ConlluToken[]
  /** Where the sentence starts, as `file:line`, for messages. */
  source: string
}

export function parseConllu(content: string, file = '<input>'): ConlluSentence[] {
  const sentences: ConlluSentence[] = []
  let tokens: Omit<ConlluToken, 'start' | 'end'>[] = []
  let id: string | undefined
  let startLine = 1
  const finish = () => {
    if (tokens.length > 0) {
      let text = ''
      const placed = tokens.map((t) => {
        const start = text.length
        text += t.form
        const token = { ...t, start, end: text.length }
        if (t.spaceAfter) text += ' '
        return token
      })
      sentences.push({ id, text: text.replace(/ $/, ''), tokens: placed, source: `${file}:${startLine}` })
    }
    tokens = []
    id = undefined
  }
  const lines = content.split(/\r?\n/)
  lines.forEach((line, i) => {
    const where = `${file}:${i + 1}`
    if (line.trim() === '') return finish()
    if (tokens.length === 0 && id === undefined) startLine = i + 1
    if (line.startsWith('#')) {
      const m = /^#\s*sent_id\s*=\s*(.*)$/.exec(line)
      if (m) id = m[1].trim()
      return
    }
    const cols = line.split('\t')
    if (cols.length !== 10) throw new SyntaxError(`${where}: expected 10 tab-separated columns, found ${cols.length}`)
    // Multi-word ranges (1-2) and empty nodes (1.1) carry no tags of their own.
    if (/[-.]/.test(cols[0])) return
    const misc = cols[9] === '_' ? [] : cols[9].split('|')
    const name = misc.find((m) => m.startsWith('name='))
    if (!name) throw new SyntaxError(`${where}: token ${JSON.stringify(cols[1])} has no name= tag in the MISC column`)
    tokens.push({ form: cols[1], tag: name.slice(5), spaceAfter: !misc.includes('SpaceAfter=No') })
  })
  finish()
  return sentences
}
