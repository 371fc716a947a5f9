// What `serve` needs of HTTP itself, apart from its routes: errors with TEI's body shape,
// bounded JSON bodies, request ids, and CORS as the Fetch standard describes it.
import { randomUUID } from 'node:crypto'
import type * as http from 'node:http'
import { isIP } from 'node:net'

import { TooLargeError } from '../pipeline/cost'

/**
 * An error answered as `{error, error_type}` (text-embeddings-inference's shape). The type is
 * one of a fixed set, so clients can switch on it.
 */
export type ErrorType = 'validation' | 'forbidden' | 'not_found' | 'method_not_allowed' | 'unsupported_media_type' | 'payload_too_large' | 'timeout' | 'overloaded' | 'unhealthy' | 'backend'

/** Every error type, for the OpenAPI document. */
export const ERROR_TYPES: readonly ErrorType[] = ['validation', 'forbidden', 'not_found', 'method_not_allowed', 'unsupported_media_type', 'payload_too_large', 'timeout', 'overloaded', 'unhealthy', 'backend']

const TYPE_OF_STATUS: Record<number, ErrorType> = {
  400: 'validation',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'timeout',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'overloaded',
  503: 'unhealthy',
}

export class HttpError extends Error {
  readonly type: ErrorType
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
    this.type = TYPE_OF_STATUS[status] ?? 'backend'
  }
}

/** An error as an answer: ours keep their status; over-budget work 413; argument errors 400; the rest 500. */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e
  if (e instanceof TooLargeError) return new HttpError(413, e.message)
  if (e instanceof TypeError || e instanceof RangeError) return new HttpError(400, e.message)
  return new HttpError(500, (e as Error)?.message ?? String(e))
}

/** The client's `x-request-id` when it is a sane token (printable ASCII, ≤ 128), else a new UUID. */
export function requestId(req: http.IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && /^[\x21-\x7e]{1,128}$/.test(given) ? given : randomUUID()
}

/** Reads a JSON body of at most `limit` bytes: 415 for other types or encodings, 413 over the limit. */
export function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
    if (encoding !== 'identity') return reject(new HttpError(415, `Content-Encoding ${encoding.slice(0, 40)} is not supported; send the JSON uncompressed`))
    // JSON only: a browser's cross-site form or text/plain POST cannot send this type without a preflight.
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
    if (type !== 'application/json') return reject(new HttpError(415, `Content-Type must be application/json, got ${JSON.stringify(type.slice(0, 60))}`))
    const declared = Number(req.headers['content-length'])
    if (declared > limit) return reject(new HttpError(413, `the body is ${declared} bytes; the limit is ${limit}`))
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > limit) {
        req.removeAllListeners('data')
        req.resume()
        reject(new HttpError(413, `the body is over the limit of ${limit} bytes`))
      } else chunks.push(c)
    })
    req.on('end', () => {
      if (size > limit) return
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')))
      } catch (e) {
        // The parser's message quotes the body; say where it broke instead.
        const at = /position (\d+)/.exec((e as Error).message)
        reject(new HttpError(400, `the body is not JSON${at ? ` (error at byte ${at[1]})` : ''}`))
      }
    })
    req.on('error', reject)
  })
}

export function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJson(res, status, JSON.stringify(body), headers)
}

/** Sends JSON text made by `serialize` (or JSON.stringify). */
export function sendJson(res: http.ServerResponse, status: number, json: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), ...headers })
  res.end(json)
}

/** An answer as JSON, or a 413 when it is over `maxBytes` (strategy none gives ~60 bytes per input byte). */
export function serialize(body: unknown, maxBytes: number): string {
  const json = JSON.stringify(body)
  // Length in UTF-16 units is at most the UTF-8 bytes for ASCII; measure bytes only near the cap.
  if (json.length > maxBytes / 3 && Buffer.byteLength(json) > maxBytes) {
    throw new HttpError(413, `the answer would be ${Buffer.byteLength(json)} bytes of JSON, over this server's limit of ${maxBytes}; send less text per request, or group tokens into entities (aggregation_strategy)`)
  }
  return json
}

/** Host names a server answers to: all, or names (exact, or `.suffix` for subdomains). */
export type AllowedHosts = 'all' | { names: readonly string[]; loopbackNames: boolean }

/**
 * `allowedHosts` as given, or the default for the address the server binds: loopback names
 * (`localhost`, `*.localhost`) and IP literals when bound to loopback, all otherwise (Vite's
 * and webpack-dev-server's guard against DNS rebinding).
 */
export function allowedHosts(given: 'all' | readonly string[] | undefined, bind: string): AllowedHosts {
  if (given === 'all' || (Array.isArray(given) && given.includes('all'))) return 'all'
  if (given !== undefined) {
    const names = [...(given as readonly string[])].map((h) => h.trim().toLowerCase()).filter(Boolean)
    for (const n of names) if (!/^\.?[a-z0-9_.:[\]-]+$/.test(n)) throw new RangeError(`allowedHosts: ${JSON.stringify(n)} is not a host name`)
    return { names, loopbackNames: true }
  }
  const loopback = bind === 'localhost' || /^127\./.test(bind) || bind === '::1' || bind === '[::1]'
  return loopback ? { names: [], loopbackNames: true } : 'all'
}

/** Whether a request's Host header names an allowed host (IP literals always are). */
export function hostAllowed(allowed: AllowedHosts, host: string | undefined): boolean {
  if (allowed === 'all') return true
  if (!host) return false
  const h = host.trim().toLowerCase()
  // `[v6]:port`, `[v6]`, `name:port`, `name`.
  const name = h.startsWith('[') ? h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']')) : h.replace(/:\d*$/, '')
  if (isIP(name)) return true
  if (allowed.loopbackNames && (name === 'localhost' || name.endsWith('.localhost'))) return true
  return allowed.names.some((n) => (n.startsWith('.') ? name === n.slice(1) || name.endsWith(n) : name === n))
}

export function sendError(res: http.ServerResponse, err: HttpError): void {
  if (err.status === 413 || err.status === 408) res.setHeader('connection', 'close')
  send(res, err.status, { error: err.message, error_type: err.type }, err.headers)
}

/** Which origins may call the server from a browser: none (default), any (`*`), or a list. */
export type Cors = undefined | '*' | readonly string[]

/** `--cors` as given: `*`, or comma-separated origins (`https://app.example.com`). */
export function parseCors(value: string | readonly string[] | undefined): Cors {
  if (value === undefined) return undefined
  const list = (typeof value === 'string' ? value.split(',') : [...value]).map((o) => o.trim()).filter(Boolean)
  if (list.includes('*')) return '*'
  for (const o of list) {
    if (!/^https?:\/\/[^/\s]+$/.test(o)) throw new RangeError(`cors: ${JSON.stringify(o)} is not an origin (scheme://host[:port], no path)`)
  }
  return list.map((o) => o.toLowerCase())
}

/** Request headers a preflight allows when the browser names none (or names invalid ones). */
const CORS_HEADERS = 'content-type, authorization, x-request-id'
/** A header list as a preflight's Access-Control-Request-Headers carries it: tokens and commas. */
const HEADER_LIST = /^[!#$%&'*+.^_`|~0-9a-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9a-z-]+)*$/i
const EXPOSED = 'x-request-id, x-total-time, x-inference-time, x-queue-time, retry-after'

/**
 * The CORS headers of an answer to a request from `origin` (Fetch standard, "CORS protocol"):
 * the origin allowed by name (or `*`), `Vary: Origin` when the answer depends on it. No
 * credentials are allowed, so `*` stays safe.
 */
export function corsHeaders(cors: Cors, origin: string | undefined): Record<string, string> {
  if (!cors || !origin) return cors && cors !== '*' ? { vary: 'Origin' } : {}
  if (cors === '*') return { 'access-control-allow-origin': '*', 'access-control-expose-headers': EXPOSED }
  if (!cors.includes(origin.toLowerCase())) return { vary: 'Origin' }
  return { 'access-control-allow-origin': origin, 'access-control-expose-headers': EXPOSED, vary: 'Origin' }
}

/** The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`), or undefined when it is none. */
export function preflight(cors: Cors, req: http.IncomingMessage, allowed: readonly string[]): { status: number; headers: Record<string, string> } | undefined {
  const method = req.headers['access-control-request-method']
  if (req.method !== 'OPTIONS' || typeof method !== 'string' || !req.headers.origin) return undefined
  const base = corsHeaders(cors, req.headers.origin)
  if (!base['access-control-allow-origin']) return { status: 403, headers: base }
  return {
    status: 204,
    headers: {
      ...base,
      'access-control-allow-methods': allowed.join(', '),
      // The headers the request asks for: clients send their own (the Hugging Face clients
      // add user-agent, which Firefox then asks about; Chromium leaves it out). Credentials
      // are never allowed, so this grants nothing a page could not send without a preflight.
      'access-control-allow-headers': requestedHeaders(req) ?? CORS_HEADERS,
      'access-control-max-age': '600',
    },
  }
}

/** A preflight's Access-Control-Request-Headers when it is a sane header list, lower-cased. */
function requestedHeaders(req: http.IncomingMessage): string | undefined {
  const asked = req.headers['access-control-request-headers']
  if (typeof asked !== 'string' || asked.length > 1024 || !HEADER_LIST.test(asked.trim())) return undefined
  return asked.trim().toLowerCase()
}
