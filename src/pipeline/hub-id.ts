// Hub ids `owner/name[@revision]` and revisions: names from users and servers, checked before
// they become paths or URLs. No Node modules: the browser's Hub loader uses them too.

const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+)(?:@(.+))?$/

/** `owner/name` and the revision named with `@`, or undefined when `s` is not a Hub id. */
export function parseHubId(s: string): { repo: string; revision?: string } | undefined {
  const m = HUB_ID.exec(s)
  if (!m || m[1].includes('..') || m[2].includes('..') || m[2].startsWith('.')) return undefined
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] }
}

/**
 * Throws unless `revision` is a name the Hub would accept for a branch, tag or commit: ASCII
 * letters, digits, `._-` and `/` between non-empty parts that do not start with a dot. It
 * becomes a path under `refs/`, so this is what keeps it there.
 */
export function checkRevision(revision: string): void {
  const ok =
    typeof revision === 'string' &&
    revision.length > 0 &&
    revision.length <= 256 &&
    /^[A-Za-z0-9._\-/]+$/.test(revision) &&
    !revision.includes('..') &&
    revision.split('/').every((part) => part !== '' && !part.startsWith('.') && !part.endsWith('.lock'))
  if (!ok) throw new RangeError(`revision ${JSON.stringify(revision)} is not a branch, tag or commit name (letters, digits, '._-' and '/' between parts)`)
}
