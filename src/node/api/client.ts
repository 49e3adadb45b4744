import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import { readApiInfo, dataDirPaths, removeApiInfo } from '../data-dir.ts'
import { readFile } from 'node:fs/promises'
import { API_HEADERS } from './http-status.ts'
import { CLI } from '../../cli/cli-name.ts'

export class DaemonNotRunningError extends Error {
  override name = 'DaemonNotRunningError'
}

export class ApiError extends Error {
  readonly httpStatus: number
  readonly detail: Record<string, any>
  constructor (httpStatus: number, detail: Record<string, any>) {
    super(detail.message ?? `the control API answered HTTP ${httpStatus}`)
    this.name = detail.name ?? 'ApiError'
    this.httpStatus = httpStatus
    this.detail = detail
  }
}

export interface ApiClientInit {
  url: string
  token: string
}

/** Find the running daemon of a data directory, or the one at --api */
export async function connectApi (dataDir: string, apiFlag?: string): Promise<ApiClient> {
  const paths = dataDirPaths(dataDir)
  let token: string
  try {
    token = (await readFile(paths.apiToken, 'utf8')).trim()
  } catch {
    throw new DaemonNotRunningError(`no node has run with the data directory ${dataDir}; start one with: ${CLI} --data-dir ${dataDir}`)
  }
  let url: string
  if (apiFlag != null) {
    url = apiFlag.startsWith('http') ? apiFlag : `http://${apiFlag}`
  } else {
    const info = await readApiInfo(paths.apiInfo)
    if (info == null) {
      throw new DaemonNotRunningError(`no node is running with the data directory ${dataDir}; start one with: ${CLI} --data-dir ${dataDir}`)
    }
    if (!isAlive(info.pid)) {
      // the node died without cleaning up (kill -9, a crash): its api.json is stale
      await removeApiInfo(paths.apiInfo).catch(() => {})
      throw new DaemonNotRunningError(`the node of ${dataDir} (pid ${info.pid}) is not running: it stopped without cleaning up, and its stale api.json was removed; start it again with: ${CLI} --data-dir ${dataDir}`)
    }
    url = info.url
  }
  return new ApiClient({ url, token })
}

function isAlive (pid: number | undefined): boolean {
  if (pid == null) {
    return true
  }
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    // EPERM: alive, but someone else's
    return err.code === 'EPERM'
  }
}

export type ApiBody =
  | { kind: 'file', path: string, length: number, sha256: Uint8Array, onChunk?: (chunk: Uint8Array) => void }
  | { kind: 'stream', stream: NodeJS.ReadableStream }

export interface ApiCallResult {
  status: string
  message: string
  server: string
  proof: string
  bodySha256: string
  body: ReadableStream<Uint8Array> | null
  length: number
  /** paid calls: { payment, decisions } */
  payment?: { payment?: Record<string, unknown>, decisions: string[] }
}

/** Query parameters of /v1/call beyond peer, service, method and args */
export interface CallOptions {
  pay?: string
  maxPrice?: string
  threshold?: string
  credential?: 'btc'
}

/** The CLI's side of the control API */
export class ApiClient {
  readonly url: string
  private readonly token: string

  constructor (init: ApiClientInit) {
    this.url = init.url.replace(/\/$/, '')
    this.token = init.token
  }

  private async request (path: string, init: RequestInit = {}): Promise<Response> {
    let res: Response
    try {
      res = await fetch(`${this.url}${path}`, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${this.token}` }
      })
    } catch (err: any) {
      throw new DaemonNotRunningError(`cannot reach the node's control API at ${this.url} (${err.cause?.code ?? err.message}); is the daemon running?`)
    }
    if (!res.ok) {
      let detail: Record<string, any>
      try {
        detail = ((await res.json()) as any).error ?? {}
      } catch {
        detail = {}
      }
      throw new ApiError(res.status, detail)
    }
    return res
  }

  async get<T> (path: string): Promise<T> {
    return (await this.request(path)).json() as Promise<T>
  }

  async post<T> (path: string, body?: unknown): Promise<T> {
    return (await this.request(path, { method: 'POST', body: body == null ? undefined : JSON.stringify(body), headers: { 'content-type': 'application/json' } })).json() as Promise<T>
  }

  /**
   * Long work that answers as NDJSON events (store put and get): progress
   * events go to `onProgress`; resolves with the "done" event, throws the
   * "error" event as an ApiError.
   */
  async events<T> (path: string, body: unknown, onProgress: (event: Record<string, any>) => void, signal?: AbortSignal): Promise<T> {
    const res = await this.request(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal })
    const decoder = new TextDecoder()
    let buffered = ''
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true })
      let newline: number
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        if (line.trim() === '') {
          continue
        }
        const event = JSON.parse(line)
        if (event.event === 'progress') {
          onProgress(event)
        } else if (event.event === 'done') {
          return event as T
        } else if (event.event === 'error') {
          throw new ApiError(event.httpStatus ?? 500, event.error ?? {})
        }
      }
    }
    throw new ApiError(502, { name: 'ApiError', message: 'the node ended the answer before the work was done; see its log' })
  }

  /**
   * `body` is a file (hashed by the caller, streamed from disk) or a stream
   * of unknown length such as stdin, which the daemon spools and hashes.
   */
  async call (peer: string, service: string, method: string, args: string[], body?: ApiBody, signal?: AbortSignal, options: CallOptions = {}): Promise<ApiCallResult> {
    const query = new URLSearchParams({ peer, service, method })
    for (const arg of args) {
      query.append('arg', arg)
    }
    for (const [key, value] of Object.entries(options)) {
      if (value != null) {
        query.set(key, value)
      }
    }
    const init: RequestInit & { duplex?: 'half' } = { method: 'POST', signal }
    if (body?.kind === 'file' && body.length > 0) {
      init.headers = {
        'content-length': String(body.length),
        [API_HEADERS.bodySha256]: Buffer.from(body.sha256).toString('hex')
      }
      const file = createReadStream(body.path)
      if (body.onChunk != null) {
        file.on('data', (chunk) => { body.onChunk?.(chunk as Buffer) })
      }
      init.body = Readable.toWeb(file) as ReadableStream
      init.duplex = 'half'
    } else if (body?.kind === 'stream') {
      init.body = Readable.toWeb(body.stream as Readable) as ReadableStream
      init.duplex = 'half'
    }
    const res = await this.request(`/v1/call?${query.toString()}`, init)
    return {
      status: res.headers.get(API_HEADERS.status) ?? 'ok',
      message: decodeURIComponent(res.headers.get(API_HEADERS.message) ?? ''),
      server: res.headers.get(API_HEADERS.server) ?? '',
      proof: res.headers.get(API_HEADERS.proof) ?? '',
      bodySha256: res.headers.get(API_HEADERS.bodySha256) ?? '',
      body: res.body,
      length: Number(res.headers.get('content-length') ?? 0),
      payment: res.headers.get(API_HEADERS.payment) == null ? undefined : JSON.parse(decodeURIComponent(res.headers.get(API_HEADERS.payment) as string))
    }
  }
}
