import { isAbsolute } from 'node:path'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import { DecryptError, IntegrityError, InvalidNameError, InvalidPutOptionError, InvalidRedundancyError, NotEnoughHostsError, ObjectBeingStoredError, ObjectExistsError, ObjectNotFoundError, OutputExistsError, PaymentRefusedError, RepairStuckError, ShardUnavailableError, StorageStoppedError, StreamSizeError } from '../../storage/errors.ts'
import { parsePutOptions } from '../../storage/put-options.ts'
import { objectInfo, objectSummary, storageCosts } from '../../storage/views.ts'
import type { Progress, StorageClient } from '../../storage/client/storage-client.ts'
import type { ErrorStatus, ModuleComponents, RouteContext, RouteTable } from '../module.ts'

/** The storage client's errors, and the HTTP status each gets in the control API */
export const STORAGE_ERRORS: ErrorStatus[] = [
  [ObjectNotFoundError, 404],
  [ObjectExistsError, 409],
  [ObjectBeingStoredError, 409],
  [OutputExistsError, 409],
  [NotEnoughHostsError, 409],
  [InvalidRedundancyError, 400],
  [InvalidPutOptionError, 400],
  [InvalidNameError, 400],
  [StreamSizeError, 400],
  [DecryptError, 422],
  [IntegrityError, 502],
  [ShardUnavailableError, 502],
  // what this node owes the host: the caller settles, then tries again
  [PaymentRefusedError, 402],
  [RepairStuckError, 409],
  [StorageStoppedError, 503]
]

/** How often a long answer with nothing to report sends an empty line, so no HTTP client takes the silence for a dead daemon */
const HEARTBEAT_MS = 15_000

/**
 * Long work answers as NDJSON: one {"event":"progress",...} line at most
 * every 250 ms, then {"event":"done",...} or {"event":"error","httpStatus":N,
 * "error":{"name","message"}} (the status the same mistake gets elsewhere:
 * the control API's error table). A client that hangs up aborts the work.
 */
export async function streamEvents ({ res, signal, statusOf }: RouteContext, work: (onProgress: (p: Progress) => void, signal: AbortSignal) => Promise<unknown>): Promise<void> {
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
    const result = await work(onProgress, signal)
    res.end(JSON.stringify({ event: 'done', ...(result as object) }) + '\n')
  } catch (err: any) {
    res.end(JSON.stringify({ event: 'error', httpStatus: statusOf(err), error: { name: err.name ?? 'Error', message: err.message } }) + '\n')
  } finally {
    clearInterval(heartbeat)
  }
}

/** The control API's /v1/store routes (README, "Storage") */
export function storageRoutes (client: StorageClient, { tabs }: Pick<ModuleComponents, 'tabs'>): RouteTable {
  return {
    'GET /v1/store': async ({ json }) => {
      json(200, {
        objects: (await client.list()).map(objectSummary),
        // a recovery from the words under way (routes-recovery.ts), or null
        recovery: client.recoveryStatus() ?? null,
        // what storage took from the wallet, fees included, beside what its calls cost
        costs: storageCosts(await tabs.costs({ service: 'storage' }))
      })
    },
    'GET /v1/store/info': async ({ url, json }) => {
      const name = url.searchParams.get('object')
      if (name == null) {
        throw new HttpError(400, 'name the object: /v1/store/info?object=NAME')
      }
      // a removed object too: its contracts and the ratings they ended with
      json(200, objectInfo(await client.findWithRemoved(name)))
    },
    'POST /v1/store/put': async (ctx) => {
      const usage = 'send JSON: {"path": "/absolute/file", "name": "optional", "redundancy": "4-of-8", "duration": "30d", "maxPrice": "2000 sat"} (maxPrice: per TiB-month)'
      const body = await readJsonBody(ctx.req, usage)
      if (typeof body.path !== 'string' || !isAbsolute(body.path)) {
        throw new HttpError(400, usage)
      }
      const options = parsePutOptions(body)
      await streamEvents(ctx, async (onProgress, signal) => {
        const object = await client.put(body.path as string, { name: typeof body.name === 'string' ? body.name : undefined, ...options, onProgress, signal })
        return { object: objectSummary(object) }
      })
    },
    'POST /v1/store/get': async (ctx) => {
      const usage = 'send JSON: {"object": "NAME or id", "out": "/absolute/file", "overwrite": false}'
      const body = await readJsonBody(ctx.req, usage)
      if (typeof body.object !== 'string' || typeof body.out !== 'string' || !isAbsolute(body.out)) {
        throw new HttpError(400, usage)
      }
      await streamEvents(ctx, async (onProgress, signal) => {
        const object = await client.get(body.object as string, body.out as string, { overwrite: body.overwrite === true, onProgress, signal })
        return { object: objectSummary(object), out: body.out }
      })
    },
    'POST /v1/store/rm': async ({ req, json, signal }) => {
      const body = await readJsonBody(req, 'send JSON: {"object": "NAME or id"}')
      if (typeof body.object !== 'string') {
        throw new HttpError(400, 'send JSON: {"object": "NAME or id"}')
      }
      const { object, unreachable } = await client.remove(body.object, signal)
      json(200, { removed: objectSummary(object), unreachable })
    }
  }
}
