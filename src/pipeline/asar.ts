// Electron packs an app into `app.asar`, an archive its patched `fs` reads as folders. The Rust
// core opens files with the operating system, which cannot see inside it, so a model folder
// there must be read from the twin Electron's packagers unpack beside it (`asarUnpack` →
// `app.asar.unpacked`), as native packages resolve their binaries.
import * as fs from 'node:fs'

/** A path segment that is an archive: `…/app.asar/…` or a path ending in `app.asar`. */
const ARCHIVE = /\.asar(?=[\\/]|$)/

/**
 * `p` with its first `.asar` archive segment replaced by `.asar.unpacked` when that twin
 * exists; `p` itself otherwise.
 */
export function unpacked(p: string): string {
  if (!ARCHIVE.test(p)) return p
  const twin = p.replace(ARCHIVE, '.asar.unpacked')
  return fs.existsSync(twin) ? twin : p
}

/** Whether `p` lies inside an asar archive that exists (after `unpacked`: one not unpacked). */
export function insideArchive(p: string): boolean {
  const m = ARCHIVE.exec(p)
  return m !== null && fs.existsSync(p.slice(0, m.index + '.asar'.length))
}
