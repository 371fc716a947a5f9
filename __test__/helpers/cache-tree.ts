// A Hugging Face cache folder as a sorted listing (the same shape tools/record_hub_cache.py
// records for Python's huggingface_hub): regular files with their size, symlinks with their
// target; lock files left out.
import * as fs from 'node:fs'
import * as path from 'node:path'

export type Entry = [string, 'file', number] | [string, 'link', string]

export function cacheTree(root: string): Entry[] {
  const out: Entry[] = []
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name)
      const rel = path.relative(root, p).split(path.sep).join('/')
      if (rel === '.locks') continue
      const st = fs.lstatSync(p)
      if (st.isSymbolicLink()) out.push([rel, 'link', fs.readlinkSync(p).split(path.sep).join('/')])
      else if (st.isDirectory()) walk(p)
      else out.push([rel, 'file', st.size])
    }
  }
  walk(root)
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}
