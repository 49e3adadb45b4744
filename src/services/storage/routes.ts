import { stat } from 'node:fs/promises'
import { basename, isAbsolute } from 'node:path'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import { formatSize } from '../../utils/size.ts'
import { DecryptError, HostStalledError, IntegrityError, InvalidNameError, InvalidPutOptionError, InvalidRedundancyError, NotEnoughHostsError, ObjectBeingStoredError, ObjectNotFoundError, OutputExistsError, PaymentRefusedError, RepairStuckError, ShardUnavailableError, StorageStoppedError, StreamSizeError, ObjectUnchangedError, VersionPrunedError, FolderNotEmptyError, TreeIncompleteError, TreeRefusedError } from '../../storage/errors.ts'
import { parsePutOptions } from '../../storage/put-options.ts'
import { objectInfo, objectSummary, storageCosts, versionView } from '../../storage/views.ts'
import { checkPrefix, isFolder, type Progress, type StorageClient, type StoredObject, type TreeFileResult } from '../../storage/client/storage-client.ts'
import type { ErrorStatus, ModuleComponents, RouteContext, RouteTable } from '../module.ts'

/** The storage client's errors, and the HTTP status each gets in the control API */
export const STORAGE_ERRORS: ErrorStatus[] = [
  [ObjectNotFoundError, 404],
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
  // a slot moved MAX_SLOT_REPLACEMENTS times and its last host stalled too
  [HostStalledError, 504],
  // what this node owes the host: the caller settles, then tries again
  [PaymentRefusedError, 402],
  [RepairStuckError, 409],
  [StorageStoppedError, 503],
  // a put of an unchanged file is answered 200 with unchanged: true; this is for any other path to it
  [ObjectUnchangedError, 409],
  [VersionPrunedError, 410],
  [FolderNotEmptyError, 409],
  [TreeRefusedError, 400],
  [TreeIncompleteError, 502]
]

/** A version number from the API (?version=N, or "version": N) */
function versionOf (value: unknown): number | undefined {
  if (value == null || value === '') {
    return undefined
  }
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new HttpError(400, `a version is a whole number from 1 (store versions NAME lists them), not ${JSON.stringify(value)}`)
  }
  return n
}

/** A tree put's line for one file */
function fileView (r: TreeFileResult): Record<string, unknown> {
  return { name: r.name, path: r.path, size: r.size, status: r.status, why: r.why ?? null, version: r.object?.version ?? null, id: r.object?.id ?? null }
}

/** How often a long answer with nothing to report sends an empty line, so no HTTP client takes the silence for a dead daemon */
const HEARTBEAT_MS = 15_000

/**
 * Long work answers as NDJSON: one {"event":"progress",...} line at most
 * every 250 ms, then {"event":"done",...} or {"event":"error","httpStatus":N,
 * "error":{"name","message"}} (the status the same mistake gets elsewhere:
 * the control API's error table). A client that hangs up aborts the work.
 */
export async function streamEvents ({ res, signal, statusOf }: RouteContext, work: (onProgress: (p: Progress) => void, signal: AbortSignal, emit: (event: string, body: object) => void) => Promise<unknown>): Promise<void> {
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
    const emit = (event: string, body: object): void => { res.write(JSON.stringify({ event, ...body }) + '\n') }
    const result = await work(onProgress, signal, emit)
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
    'GET /v1/store': async ({ url, json }) => {
      // the current version of each name, with how many versions are kept;
      // ?prefix=docs/ lists that folder: its objects and its sub-folders
      const prefix = url.searchParams.get('prefix')
      const summary = ({ object, versions }: { object: StoredObject, versions: number }): Record<string, unknown> => ({ ...objectSummary(object), versions })
      if (prefix != null && prefix !== '') {
        const folder = await client.listFolder(prefix)
        json(200, { prefix, objects: folder.objects.map(summary), folders: folder.folders.map(f => ({ ...f, sizeText: formatSize(f.size) })) })
        return
      }
      json(200, {
        objects: (await client.current()).map(summary),
        // a recovery from the words under way (routes-recovery.ts), or null
        recovery: client.recoveryStatus() ?? null,
        // what storage took from the wallet, fees included, beside what its calls cost
        costs: storageCosts(await tabs.costs({ service: 'storage' }))
      })
    },
    'GET /v1/store/versions': async ({ url, json }) => {
      const name = url.searchParams.get('object')
      if (name == null) {
        throw new HttpError(400, 'name the object: /v1/store/versions?object=NAME')
      }
      const versions = await client.versions(name)
      if (versions.length === 0) {
        // by id: that object's name
        const found = await client.find(name)
        versions.push(...await client.versions(found.name))
      }
      json(200, { name: versions[0].name, versions: versions.map(versionView) })
    },
    'GET /v1/store/info': async ({ url, json }) => {
      const name = url.searchParams.get('object')
      if (name == null) {
        throw new HttpError(400, 'name the object: /v1/store/info?object=NAME[&version=N]')
      }
      const version = versionOf(url.searchParams.get('version'))
      // a removed object too: its contracts and the ratings they ended with
      json(200, objectInfo(version == null ? await client.findWithRemoved(name) : await client.findVersion(name, version)))
    },
    'POST /v1/store/put': async (ctx) => {
      const usage = 'send JSON: {"path": "/absolute/file/or/folder", "paths": ["/several", "/paths"], "name": "optional (a prefix for folders)", "redundancy": "4-of-8", "duration": "30d", "maxPrice": "2000 sat", "force": false} (maxPrice: per TiB-month)'
      const body = await readJsonBody(ctx.req, usage)
      const paths = Array.isArray(body.paths) ? body.paths : [body.path]
      if (paths.length === 0 || !paths.every(p => typeof p === 'string' && isAbsolute(p))) {
        throw new HttpError(400, usage)
      }
      const options = parsePutOptions(body)
      let name = typeof body.name === 'string' ? body.name : undefined
      const force = body.force === true
      const oneFile = paths.length === 1 && (await stat(paths[0] as string).catch(() => undefined))?.isFile() === true
      if (oneFile && name?.endsWith('/') === true) {
        // a folder to put the file in
        name = `${name}${basename(paths[0] as string)}`
      }
      await streamEvents(ctx, async (onProgress, signal, emit) => {
        if (!oneFile) {
          // a folder, or several paths: one object per file, each said as it is done
          const { files } = await client.putTree(paths as string[], { name, ...options, force, onProgress, signal, onFile: r => { emit('file', fileView(r)) } })
          return { files: files.map(fileView) }
        }
        try {
          const object = await client.put(paths[0] as string, { name, ...options, force, onProgress, signal })
          return { object: objectSummary(object), unchanged: false }
        } catch (err) {
          if (err instanceof ObjectUnchangedError && err.object != null) {
            return { object: objectSummary(err.object as StoredObject), unchanged: true, message: err.message }
          }
          throw err
        }
      })
    },
    'POST /v1/store/get': async (ctx) => {
      const usage = 'send JSON: {"object": "NAME, id or folder/", "out": "/absolute/file (a folder for folder/)", "version": N, "overwrite": false}'
      const body = await readJsonBody(ctx.req, usage)
      if (typeof body.object !== 'string' || typeof body.out !== 'string' || !isAbsolute(body.out)) {
        throw new HttpError(400, usage)
      }
      const version = versionOf(body.version)
      const object = body.object
      if (isFolder(object)) {
        if (version != null) {
          throw new HttpError(400, 'a folder is fetched as its current versions: --version takes one object')
        }
        checkPrefix(object)
        await streamEvents(ctx, async (onProgress, signal, emit) => {
          const { files } = await client.getTree(object, body.out as string, { overwrite: body.overwrite === true, onProgress, signal, onFile: (o, out) => { emit('file', { name: o.name, out, size: o.size, version: o.version ?? 1 }) } })
          return { folder: object, out: body.out, files: files.map(f => ({ name: f.object.name, out: f.out, size: f.object.size, version: f.object.version ?? 1 })) }
        })
        return
      }
      await streamEvents(ctx, async (onProgress, signal) => {
        const got = await client.get(object, body.out as string, { overwrite: body.overwrite === true, version, onProgress, signal })
        return { object: objectSummary(got), out: body.out }
      })
    },
    'POST /v1/store/rm': async ({ req, json, signal }) => {
      const usage = 'send JSON: {"object": "NAME, id or folder/", "version": N, "recursive": false}'
      const body = await readJsonBody(req, usage)
      if (typeof body.object !== 'string') {
        throw new HttpError(400, usage)
      }
      const version = versionOf(body.version)
      if (isFolder(body.object)) {
        const prefix = checkPrefix(body.object)
        if (version != null) {
          throw new HttpError(400, 'a folder is removed with every version of everything in it: --version takes one object')
        }
        const under = (await client.list()).filter(o => o.name.startsWith(prefix))
        if (under.length === 0) {
          throw new ObjectNotFoundError(`nothing is stored under "${prefix}"; "store ls" lists what is`)
        }
        if (body.recursive !== true) {
          const names = new Set(under.map(o => o.name)).size
          throw new FolderNotEmptyError(`"${prefix}" is a folder of ${names} object${names === 1 ? '' : 's'} (${under.length} version${under.length === 1 ? '' : 's'} with the older ones): store rm ${prefix} --recursive removes them all`)
        }
        const { removed, unreachable } = await client.removeTree(prefix, signal)
        json(200, { folder: prefix, removed: removed.map(objectSummary), unreachable })
        return
      }
      const { object, unreachable, versions } = await client.remove(body.object, signal, { version })
      json(200, { removed: objectSummary(object), versions: versions.map(v => v.version ?? 1), unreachable })
    }
  }
}
