import { isAbsolute } from 'node:path'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import type { Progress } from '../../storage/client/storage-client.ts'
import { parsePutOptions } from '../../storage/put-options.ts'
import { objectInfo, objectSummary, storageCosts } from '../../storage/views.ts'
import type { OpenCloudNode } from '../opencloud-node.ts'

/** Mistakes of the caller in storage requests, and the HTTP status each gets */
export const STORE_MISTAKES: Record<string, number> = {
  ObjectNotFoundError: 404,
  ObjectExistsError: 409,
  ObjectBeingStoredError: 409,
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

/** How often a long answer with nothing to report sends an empty line, so no HTTP client takes the silence for a dead daemon */
const HEARTBEAT_MS = 15_000

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
      sendJson(res, 200, {
        objects: (await node.storage.list()).map(objectSummary),
        // what storage took from the wallet, fees included, beside what its calls cost
        costs: storageCosts(await node.tabs.costs({ service: 'storage' }))
      })
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
