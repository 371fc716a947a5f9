// Argument checks shared by the public entry points: clear TypeError/RangeError messages
// before anything reaches the native addon.

export function textList(method: string, texts: string | readonly string[]): string[] {
  const list = typeof texts === 'string' ? [texts] : texts
  if (!Array.isArray(list)) {
    throw new TypeError(`${method}: expected a string or an array of strings, got ${describe(texts)}`)
  }
  // An index loop, not forEach: forEach skips the holes of a sparse array (['a', , 'c']).
  for (let i = 0; i < list.length; i++) {
    if (typeof list[i] !== 'string') {
      throw new TypeError(`${method}: texts[${i}] is ${describe(list[i])}, expected a string`)
    }
  }
  return Array.from(list)
}

export function checkOptions(method: string, options: object, ints: Record<string, 'int'>): void {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${method}: options must be an object, got ${describe(options)}`)
  }
  for (const key of Object.keys(ints)) {
    const v = (options as Record<string, unknown>)[key]
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 0xffffffff)) {
      throw new RangeError(`${method}: ${key} must be a positive integer, got ${describe(v)}`)
    }
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null'
  if (v === undefined) return 'undefined'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}
