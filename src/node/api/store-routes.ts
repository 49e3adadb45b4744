import { isAbsolute } from 'node:path'
import { MAX_CONTRACT_MS } from '../../storage/contract.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import { parseAmount } from '../../protocols/units.ts'
import { parseRedundancy, type Progress } from '../../storage/client.ts'
import { objectInfo, objectSummary } from '../../storage/views.ts'
import type { OpenCloudNode } from '../opencloud-node.ts'

/** Mistakes of the caller in storage requests, and the HTTP status each gets */
export const STORE_MISTAKES: Record<string, number> = {
  ObjectNotFoundError: 404,
  ObjectExistsError: 409,
  OutputExistsError: 409,
  NotEnoughHostsError: 409,
  InvalidRedundancyError: 400,
  InvalidDurationError: 400,
  InvalidPutOptionError: 400,
  InvalidNameError: 400,
  DecryptError: 422,
  IntegrityError: 502,
  ShardUnavailableError: 502,
  // what this node owes the host: the caller settles, then tries again
  PaymentRefusedError: 402,
  RepairStuckError: 409,
  StorageStoppedError: 503
}

export class InvalidDurationError extends Error {
  override name = 'InvalidDurationError'
}

/** A put's redundancy, duration or price ceiling that no host would take */
export class InvalidPutOptionError extends Error {
  override name = 'InvalidPutOptionError'
}

/** How often a long answer with nothing to report sends an empty line, so no HTTP client takes the silence for a dead daemon */
const HEARTBEAT_MS = 15_000

/** "30d", "12h", "90m": a duration in ms */
export function parseDuration (text: string, what = 'a duration'): number {
  const match = /^([0-9]+)\s*(m|h|d)$/.exec(text.trim())
  if (match == null || Number(match[1]) <= 0) {
    throw new InvalidDurationError(`${what} takes a period such as 90m, 12h or 30d, not "${text}"`)
  }
  return Number(match[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'm' | 'h' | 'd']
}

/** What a put's options are called where they come from: the API's fields, or the CLI's flags */
export interface PutOptionNames {
  redundancy: string
  duration: string
  maxPrice: string
}

export interface PutOptions {
  k?: number
  n?: number
  durationMs?: number
  maxStoragePrice?: bigint
}

/**
 * A put's redundancy, duration and price ceiling, checked as the API
 * receives them and, under the flags' names, by the CLI before it asks the
 * daemon (so a mistake is a usage error, named as the user typed it)
 */
export function parsePutOptions (input: { redundancy?: unknown, duration?: unknown, maxPrice?: unknown }, names: PutOptionNames = { redundancy: 'redundancy', duration: 'duration', maxPrice: 'maxPrice' }): PutOptions {
  const options: PutOptions = {}
  try {
    if (input.redundancy != null) {
      // parseRedundancy speaks of the CLI's flag: each caller gets its own name
      Object.assign(options, parseRedundancy(String(input.redundancy)))
    }
  } catch (err: any) {
    throw new InvalidPutOptionError(err.message.replace(/^--redundancy/, names.redundancy))
  }
  if (input.duration != null) {
    try {
      options.durationMs = parseDuration(String(input.duration), names.duration)
    } catch (err: any) {
      throw new InvalidPutOptionError(err.message)
    }
    if (options.durationMs > MAX_CONTRACT_MS) {
      throw new InvalidPutOptionError(`${names.duration} "${String(input.duration)}" is longer than hosts sign contracts for: at most ${MAX_CONTRACT_MS / 86_400_000} days`)
    }
  }
  try {
    options.maxStoragePrice = input.maxPrice == null ? undefined : parseAmount(input.maxPrice as string, names.maxPrice)
  } catch (err: any) {
    throw new InvalidPutOptionError(err.message)
  }
  return options
}

/**
 * Long work answers as NDJSON: one {"event":"progress",...} line at most
 * every 250 ms, then {"event":"done",...} or {"event":"error","httpStatus":N,
 * "error":{"name","message"}} (the status the same mistake gets elsewhere). A client
 * that hangs up aborts the work.
 */
async function streamEvents (req: IncomingMessage, res: ServerResponse, work: (onProgress: (p: Progress) => void, signal: AbortSignal) => Promise<unknown>): Promise<void> {
  const controller = new AbortController()
  res.on('close', () => { if (!res.writableFinished) controller.abort(new Error('the API client went away')) })
  res.writeHead(200, { 'content-type': 'application/x-ndjson' })
  // the head now, and a blank line (which readers skip) while nothing else
  // is sent: fetch gives up after 300 s without a head or a byte
  res.flushHeaders()
  const heartbeat = setInterval(() => { res.write('\n') }, HEARTBEAT_MS)
  heartbeat.unref()
  let last = 0
  const onProgress = (p: Progress): void => {
    const now = Date.now()
    if (now - last >= 250 || p.done === p.total) {
      last = now
      res.write(JSON.stringify({ event: 'progress', ...p }) + '\n')
    }
  }
  try {
    const result = await work(onProgress, controller.signal)
    res.end(JSON.stringify({ event: 'done', ...(result as object) }) + '\n')
  } catch (err: any) {
    res.end(JSON.stringify({ event: 'error', httpStatus: STORE_MISTAKES[err.name] ?? 500, error: { name: err.name ?? 'Error', message: err.message } }) + '\n')
  } finally {
    clearInterval(heartbeat)
  }
}

/** The /v1/store routes; false when `route` is not one of them */
export async function storeRoute (node: OpenCloudNode, route: string, req: IncomingMessage, res: ServerResponse, url: URL, sendJson: (res: ServerResponse, status: number, value: unknown) => void): Promise<boolean> {
  switch (route) {
    case 'GET /v1/store':
      sendJson(res, 200, (await node.storage.list()).map(objectSummary))
      return true
    case 'GET /v1/store/info': {
      const name = url.searchParams.get('object')
      if (name == null) {
        throw new HttpError(400, 'name the object: /v1/store/info?object=NAME')
      }
      // a removed object too: its contracts and the ratings they ended with
      sendJson(res, 200, objectInfo(await node.storage.findWithRemoved(name)))
      return true
    }
    case 'POST /v1/store/put': {
      const usage = 'send JSON: {"path": "/absolute/file", "name": "optional", "redundancy": "4-of-8", "duration": "30d", "maxPrice": "1000 sat"} (maxPrice: per GiB-month)'
      const body = await readJsonBody(req, usage)
      if (typeof body.path !== 'string' || !isAbsolute(body.path)) {
        throw new HttpError(400, usage)
      }
      const options = parsePutOptions(body)
      await streamEvents(req, res, async (onProgress, signal) => {
        const object = await node.storage.put(body.path as string, { name: typeof body.name === 'string' ? body.name : undefined, ...options, onProgress, signal })
        return { object: objectSummary(object) }
      })
      return true
    }
    case 'POST /v1/store/get': {
      const usage = 'send JSON: {"object": "NAME or id", "out": "/absolute/file", "overwrite": false}'
      const body = await readJsonBody(req, usage)
      if (typeof body.object !== 'string' || typeof body.out !== 'string' || !isAbsolute(body.out)) {
        throw new HttpError(400, usage)
      }
      await streamEvents(req, res, async (onProgress, signal) => {
        const object = await node.storage.get(body.object as string, body.out as string, { overwrite: body.overwrite === true, onProgress, signal })
        return { object: objectSummary(object), out: body.out }
      })
      return true
    }
    case 'POST /v1/store/rm': {
      const body = await readJsonBody(req, 'send JSON: {"object": "NAME or id"}')
      if (typeof body.object !== 'string') {
        throw new HttpError(400, 'send JSON: {"object": "NAME or id"}')
      }
      const controller = new AbortController()
      res.on('close', () => { if (!res.writableFinished) controller.abort(new Error('the API client went away')) })
      const { object, unreachable } = await node.storage.remove(body.object, controller.signal)
      sendJson(res, 200, { removed: objectSummary(object), unreachable })
      return true
    }
    default:
      return false
  }
}
