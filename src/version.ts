// The package's version, read once from its package.json (the CLI's --version, serve's /info).
import * as fs from 'node:fs'
import * as path from 'node:path'

export const VERSION: string = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version
