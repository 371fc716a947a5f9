// Python's `format(x, '.Nf')`: correctly rounded like JS toFixed, except that exact binary
// ties go to the even digit (Python prints 0.125 as '0.12' where toFixed gives '0.13').

export function formatFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan'
  const rounded = x.toFixed(digits)
  if (Math.abs(x) >= 1e21) return rounded
  // toFixed(100) is exact for every double that can be a tie at `digits` places.
  const exact = Math.abs(x).toFixed(100)
  const point = exact.indexOf('.')
  const rest = exact.slice(point + 1 + digits)
  if (!/^50*$/.test(rest)) return rounded
  const last = digits > 0 ? exact[point + digits] : exact[point - 1]
  if (Number(last) % 2 === 1) return rounded // toFixed rounded away from zero: odd → even
  const truncated = exact.slice(0, digits > 0 ? point + 1 + digits : point)
  return (x < 0 || Object.is(x, -0) ? '-' : '') + truncated
}
