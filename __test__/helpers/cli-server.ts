// `eurobert-ner serve` as a child process, for tests that need a server in its own process
// (signals, a crash that must not take the test down).
import { ChildProcess, spawn } from 'node:child_process'
import * as path from 'node:path'

import { TINY_MODEL } from './fixtures'

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli', 'index.js')

export interface CliServer {
  child: ChildProcess
  url: string
  /** Everything the server printed on stdout so far. */
  output(): string
  /** Resolves with the exit code (listened for from the start, so it is never missed). */
  exited: Promise<number | null>
}

/** Starts the CLI's server on a free port with the tiny model (or `model`), resolving once it listens. */
export async function startCliServer(args: string[] = [], model: string = TINY_MODEL): Promise<CliServer> {
  const child = spawn(process.execPath, [CLI, 'serve', '-m', model, '--threads', '1', '--port', '0', ...args])
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  const url = await new Promise<string>((resolve, reject) => {
    const poll = setInterval(() => {
      const m = /"url":"([^"]+)"/.exec(out)
      if (m) {
        clearInterval(poll)
        resolve(m[1])
      }
    }, 20)
    void exited.then((code) => {
      clearInterval(poll)
      reject(new Error(`eurobert-ner serve exited with ${code} before listening: ${out}`))
    })
  })
  return { child, url, output: () => out, exited }
}
