import { createReadStream, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { readApiInfo, dataDirPaths, removeApiInfo } from '../node/data-dir.ts'
import { readFile } from 'node:fs/promises'
import { API_HEADERS } from '../node/api/http-status.ts'
import { CLI } from '../utils/cli-name.ts'
import { shellWord } from './command.ts'

export class DaemonNotRunningError extends Error {
  override name = 'DaemonNotRunningError'
}

/** The daemon went away while a command was talking to it */
export class DaemonStoppedError extends Error {
  override name = 'DaemonStoppedError'
}

/** How long a command waits for a daemon whose answer broke to be gone, before it calls it alive */
const EXIT_WAIT_MS = 1000

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
  /** the node's data directory, to say where to look when it stops mid-answer */
  dataDir?: string
  /** the daemon's process id (api.json), to tell a stopped daemon from a broken connection */
  pid?: number
}

/** Find the running daemon of a data directory, or the one at --api */
export async function connectApi (dataDir: string, apiFlag?: string): Promise<ApiClient> {
  const paths = dataDirPaths(dataDir)
  let token: string
  try {
    token = (await readFile(paths.apiToken, 'utf8')).trim()
  } catch {
    throw new DaemonNotRunningError(`no node has run with the data directory ${dataDir}; start one with: ${startLine(dataDir)}`)
  }
  let url: string
  let pid: number | undefined
  if (apiFlag != null) {
    url = apiFlag.startsWith('http') ? apiFlag : `http://${apiFlag}`
  } else {
    const info = await readApiInfo(paths.apiInfo)
    if (info == null) {
      throw new DaemonNotRunningError(`no node is running with the data directory ${dataDir}; start one with: ${startLine(dataDir)}`)
    }
    if (!isAlive(info.pid)) {
      // the node died without cleaning up (kill -9, a crash): its api.json is stale
      await removeApiInfo(paths.apiInfo).catch(() => {})
      throw new DaemonNotRunningError(`the node of ${dataDir} (pid ${info.pid}) is not running: it stopped without cleaning up, and its stale api.json was removed; start it again with: ${startLine(dataDir)}`)
    }
    url = info.url
    pid = info.pid
  }
  return new ApiClient({ url, token, dataDir, pid })
}

function startLine (dataDir: string): string {
  return `${CLI} --data-dir ${shellWord(dataDir)}`
}

export function isAlive (pid: number | undefined): boolean {
  if (pid == null) {
    return true
  }
  try {
    process.kill(pid, 0)
  } catch (err: any) {
    // EPERM: alive, but someone else's
    return err.code === 'EPERM'
  }
  // a killed daemon stays a zombie until its parent reaps it: it answers
  // signal 0 but is gone (Linux says so in /proc; elsewhere it counts as alive)
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
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

  private readonly dataDir?: string
  readonly pid?: number

  constructor (init: ApiClientInit) {
    this.url = init.url.replace(/\/$/, '')
    this.token = init.token
    this.dataDir = init.dataDir
    this.pid = init.pid
  }

  private async request (path: string, init: RequestInit = {}): Promise<Response> {
    let res: Response
    try {
      res = await fetch(`${this.url}${path}`, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${this.token}` }
      })
    } catch (err: any) {
      if (init.signal?.aborted === true) {
        throw err
      }
      throw await this.lost(err, false)
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

  /**
   * What to say when the connection to the daemon breaks: undici's own
   * words ("terminated", "fetch failed") say nothing to a user. A daemon
   * that is gone stopped (was killed, crashed): its log says why.
   */
  private async lost (err: any, answering: boolean): Promise<Error> {
    const cause: string = err.cause?.code ?? err.cause?.message ?? err.message
    if (this.pid != null) {
      for (let waited = 0; isAlive(this.pid) && waited < EXIT_WAIT_MS; waited += 50) {
        await sleep(50)
      }
      if (!isAlive(this.pid)) {
        return new DaemonStoppedError(`the node (pid ${this.pid}) stopped ${answering ? 'while answering' : 'before it answered'}; ${this.whereToLook()}`)
      }
    }
    if (!answering) {
      return new DaemonNotRunningError(`cannot reach the node's control API at ${this.url} (${cause}); is the daemon running?`)
    }
    return new DaemonStoppedError(`the connection to the node's control API at ${this.url} broke while it answered (${cause}); ${this.whereToLook()}`)
  }

  /** Where a node's own account of why it stopped is, true to what exists */
  private whereToLook (): string {
    if (this.dataDir == null) {
      return 'what it printed where it was started may say why'
    }
    // the testnet and bench keep each daemon's output in its data directory
    const log = join(this.dataDir, 'daemon.log')
    return existsSync(log)
      ? `see its log: ${log}`
      : `what it printed where it was started may say why; start it again with: ${startLine(this.dataDir)}`
  }

  /** A JSON answer; a body cut off by the daemon going away says so */
  private async json<T> (res: Response): Promise<T> {
    let text: string
    try {
      text = await res.text()
    } catch (err) {
      throw await this.lost(err, true)
    }
    return JSON.parse(text) as T
  }

  /** A streamed answer whose break says what happened, as json() does */
  private guarded (body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const reader = body.getReader()
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let next: Awaited<ReturnType<typeof reader.read>>
        try {
          next = await reader.read()
        } catch (err: any) {
          // the command's own abort (Ctrl-C) is no news about the daemon
          controller.error(err?.name === 'AbortError' ? err : await this.lost(err, true))
          return
        }
        if (next.done) {
          controller.close()
        } else {
          controller.enqueue(next.value)
        }
      },
      cancel: async (reason) => { await reader.cancel(reason) }
    })
  }

  async get<T> (path: string): Promise<T> {
    return this.json<T>(await this.request(path))
  }

  /** A text answer (GET /metrics) */
  async getText (path: string): Promise<string> {
    const res = await this.request(path)
    try {
      return await res.text()
    } catch (err) {
      throw await this.lost(err, true)
    }
  }

  async post<T> (path: string, body?: unknown): Promise<T> {
    return this.json<T>(await this.request(path, { method: 'POST', body: body == null ? undefined : JSON.stringify(body), headers: { 'content-type': 'application/json' } }))
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
    for await (const chunk of this.guarded(res.body as ReadableStream<Uint8Array>) as unknown as AsyncIterable<Uint8Array>) {
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
        } else if (event.event === 'file') {
          // a folder's put or get: one file done (event.event says which kind of line it is)
          onProgress(event)
        } else if (event.event === 'done') {
          return event as T
        } else if (event.event === 'error') {
          throw new ApiError(event.httpStatus ?? 500, event.error ?? {})
        }
      }
    }
    // a daemon killed between two events can also end the answer cleanly
    throw await this.lost(new Error('the answer ended before the work was done'), true)
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
      body: res.body == null ? null : this.guarded(res.body),
      length: Number(res.headers.get('content-length') ?? 0),
      payment: res.headers.get(API_HEADERS.payment) == null ? undefined : JSON.parse(decodeURIComponent(res.headers.get(API_HEADERS.payment) as string))
    }
  }
}
