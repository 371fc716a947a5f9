#!/usr/bin/env node
// Runs a wasm32-wasip1-threads command (a `cargo test` binary) under Node's WASI, with threads
// from @emnapi/wasi-threads (one Node worker per thread, sharing the module's memory): the
// runner for `cargo test --target wasm32-wasip1-threads` (scripts/test-wasi.mjs sets it).
//
//   node scripts/wasi-run.mjs path/to/test.wasm [test args...]
//
// The host's root is preopened as `/`, so the tests read their fixtures at the absolute paths
// they were built with. The exit code is the module's.
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { WASI } from 'node:wasi'

const require = createRequire(import.meta.url)
const { WASIThreads, ThreadMessageHandler } = require('@emnapi/wasi-threads')

const wasiOptions = (args) => ({ version: 'preview1', args, env: process.env, preopens: { '/': '/' }, returnOnExit: true })

/** The module's memory import: shared, with the limits it declares. */
function memoryFor(module) {
  const imp = WebAssembly.Module.imports(module).find((i) => i.kind === 'memory')
  if (!imp) throw new Error('the module imports no memory (not a wasm32-wasip1-threads build?)')
  // 4 GiB: the maximum .cargo/config.toml links with (wasm-ld alone would declare 1 GiB).
  return new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true })
}

if (isMainThread) {
  const [file, ...rest] = process.argv.slice(2)
  const module = new WebAssembly.Module(fs.readFileSync(file))
  const wasi = new WASI(wasiOptions([file, ...rest]))
  const threads = new WASIThreads({
    wasi,
    reuseWorker: false,
    waitThreadStart: 10_000,
    onCreateWorker: () => new Worker(new URL(import.meta.url), { workerData: { worker: true }, env: process.env }),
  })
  const memory = memoryFor(module)
  const instance = new WebAssembly.Instance(module, { env: { memory }, wasi_snapshot_preview1: wasi.wasiImport, ...threads.getImportObject() })
  threads.setup(instance, module, memory)
  const code = wasi.start(instance)
  // Worker threads still parked in the pool would keep the process alive.
  process.exit(code ?? 0)
} else if (workerData?.worker) {
  globalThis.self = globalThis
  globalThis.postMessage = (msg) => parentPort.postMessage(msg)
  const handler = new ThreadMessageHandler({
    onLoad({ wasmModule, wasmMemory }) {
      const wasi = new WASI(wasiOptions(['worker']))
      const threads = new WASIThreads({ wasi, childThread: true })
      const original = new WebAssembly.Instance(wasmModule, { env: { memory: wasmMemory }, wasi_snapshot_preview1: wasi.wasiImport, ...threads.getImportObject() })
      return { module: wasmModule, instance: threads.initialize(original, wasmModule, wasmMemory) }
    },
  })
  parentPort.on('message', (data) => handler.handle({ data }))
}
