// The model loader's Node half (src/pipeline/hub.ts) in a browser: no folders and no disk cache.
// A Hub id is fetched from the Hub's own file URLs (kept with the Cache API by model-files.ts).
import type { HubOptions } from '../pipeline/hub'
import { checkRevision, parseHubId } from '../pipeline/hub-id'

export { checkRevision, parseHubId }
export type { DownloadProgress, HubOptions } from '../pipeline/hub'

/** The URL of a Hub repo's files at a revision; anything else is not a model a browser can reach. */
export function remoteModel(model: string, options: Pick<HubOptions, 'revision' | 'endpoint'>): string {
  const id = parseHubId(model)
  if (!id) {
    throw new TypeError(
      `'${model.slice(0, 200)}' is not a Hub id (owner/name) or an http(s) URL: a browser has no folders. ` +
        `Give the URL the model's files are served at, or the files themselves (the bundled model is the folder models/norne-compact of the package).`,
    )
  }
  const revision = options.revision ?? id.revision ?? 'main'
  checkRevision(revision)
  const endpoint = (options.endpoint ?? 'https://huggingface.co').replace(/\/+$/, '')
  // As huggingface_hub's hf_hub_url: the revision quoted whole (refs/pr/1 → refs%2Fpr%2F1).
  return `${endpoint}/${id.repo}/resolve/${encodeURIComponent(revision)}/`
}

export function resolveModel(model: string): Promise<string> {
  return Promise.reject(new TypeError(`'${model.slice(0, 200)}': a browser has no folders`))
}

export function folderFiles(_dir: string): { file: string; size: number }[] {
  return []
}

export function absolute(p: string): string {
  return p
}

export function isDirectory(_p: string): boolean {
  return false
}
