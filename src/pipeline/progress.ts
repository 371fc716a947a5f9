// Loading events with transformers.js' shape (its `progress_callback`), so progress UIs written
// for it work unchanged: per file `initiate`, `download`, `progress` (each one preceded by a
// `progress_total` over all files) and `done`, then `ready` once the pipeline can run. Hub
// downloads report their bytes as they arrive; a file already on disk (a folder, the cache)
// reports itself complete at once, as transformers.js does for a cached file.
// No Node modules: this file runs in browsers (the folder's files come from hub.ts).
import type { DownloadProgress } from './hub'

export type ProgressInfo =
  | { status: 'initiate' | 'download' | 'done'; name: string; file: string }
  | { status: 'progress'; name: string; file: string; progress: number; loaded: number; total: number }
  | { status: 'progress_total'; name: string; progress: number; loaded: number; total: number; files: Record<string, { loaded: number; total: number }> }
  | { status: 'ready'; task: string; model: string }

export type ProgressCallback = (info: ProgressInfo) => void

export class ProgressEvents {
  private readonly files: Record<string, { loaded: number; total: number }> = {}
  private readonly started = new Set<string>()
  private readonly finished = new Set<string>()

  constructor(
    private readonly callback: ProgressCallback,
    private readonly name: string,
  ) {}

  private emit(info: ProgressInfo): void {
    // A throwing callback is the caller's bug; it must not fail the load it watches.
    try {
      this.callback(info)
    } catch {
      // ignored
    }
  }

  private start(file: string, total: number): void {
    if (this.started.has(file)) return
    this.started.add(file)
    this.files[file] ??= { loaded: 0, total }
    this.emit({ status: 'initiate', name: this.name, file })
    this.emit({ status: 'download', name: this.name, file })
  }

  private progress(file: string, loaded: number, total: number): void {
    this.files[file] = { loaded, total }
    let sumLoaded = 0
    let sumTotal = 0
    for (const f of Object.values(this.files)) {
      sumLoaded += f.loaded
      sumTotal += f.total
    }
    this.emit({ status: 'progress_total', name: this.name, progress: sumTotal > 0 ? (100 * sumLoaded) / sumTotal : 0, loaded: sumLoaded, total: sumTotal, files: structuredClone(this.files) })
    this.emit({ status: 'progress', name: this.name, file, progress: total > 0 ? (100 * loaded) / total : 100, loaded, total })
  }

  private finish(file: string): void {
    if (this.finished.has(file)) return
    this.finished.add(file)
    this.emit({ status: 'done', name: this.name, file })
  }

  /** A Hub transfer's bytes (the Hub loader's `onProgress`). */
  readonly download = (p: DownloadProgress): void => {
    this.start(p.file, p.total)
    this.progress(p.file, p.loaded, p.total)
    if (p.loaded >= p.total) this.finish(p.file)
  }

  /**
   * The files the load reads (a folder's, or files given as bytes): every one that no transfer
   * reported is reported complete at once, as transformers.js does for a cached file.
   */
  present(files: readonly { file: string; size: number }[]): void {
    // The totals cover every file from the first event on, as transformers.js' do.
    for (const { file, size } of files) this.files[file] ??= { loaded: 0, total: size }
    for (const { file, size } of files) {
      if (!this.started.has(file)) {
        this.start(file, size)
        this.progress(file, size, size)
      }
      this.finish(file)
    }
  }

  /** The pipeline is ready to run. */
  ready(): void {
    this.emit({ status: 'ready', task: 'token-classification', model: this.name })
  }
}
