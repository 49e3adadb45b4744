import { isAbsolute } from 'node:path'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import { InvalidShareError, ShareExpiredError, ShareHolderError, ShareNotFoundError, ShareNotHeldError, ShareRevokedError, ShareScopeError, ShareSignatureError } from '../../storage/errors.ts'
import { parseShareExpiry, type ShareRecord } from '../../storage/client/shares.ts'
import { MAX_GRANT_BYTES } from '../../storage/protocol/share.ts'
import { streamEvents } from './routes.ts'
import type { StorageClient } from '../../storage/client/storage-client.ts'
import type { ErrorStatus, RouteTable } from '../module.ts'

/** The sharing errors, and the HTTP status each gets in the control API */
export const SHARE_ERRORS: ErrorStatus[] = [
  // a host's refusal of the share: the holder asks the owner for a new one
  [ShareExpiredError, 403],
  [ShareRevokedError, 403],
  [ShareScopeError, 403],
  [ShareHolderError, 403],
  [ShareSignatureError, 403],
  [ShareNotHeldError, 502],
  [InvalidShareError, 400],
  [ShareNotFoundError, 404]
]

/** A share as `store shares` shows it */
export function shareView (s: ShareRecord, now = Date.now()): Record<string, unknown> {
  return {
    id: s.id,
    what: s.what,
    objects: s.objects.map(o => o.name),
    // null: anyone holding the share text (a link)
    holder: s.holder,
    created: new Date(s.createdAt).toISOString(),
    expires: new Date(s.expires).toISOString(),
    state: s.revokedAt != null ? 'revoked' : s.expires <= now ? 'expired' : 'live',
    revoked: s.revokedAt == null ? null : new Date(s.revokedAt).toISOString(),
    hostsNotTold: s.untold ?? []
  }
}

/** The largest JSON body of /v1/store/fetch: a share text of the largest grant, with its objects' shard lists */
const MAX_FETCH_BODY = 4 * MAX_GRANT_BYTES

/** The control API's sharing routes (PROTOCOL.md 8h; README, "Storage") */
export function shareRoutes (client: StorageClient): RouteTable {
  return {
    'POST /v1/store/share': async ({ req, json }) => {
      const usage = 'send JSON: {"object": "NAME or PREFIX/", "to": "PEERID (or omit it with \\"link\\": true)", "expires": "7d", "version": N (optional: an older version of NAME)}'
      const body = await readJsonBody(req, usage)
      if (typeof body.object !== 'string' || (body.to != null && typeof body.to !== 'string')) {
        throw new HttpError(400, usage)
      }
      if ((body.to == null) === (body.link !== true)) {
        throw new HttpError(400, `give exactly one of "to" (the PeerId that may use it) and "link": true (anyone holding it); ${usage}`)
      }
      const expiresInMs = parseShareExpiry(body.expires as string | undefined, 'expires')
      if (body.version != null && (typeof body.version !== 'number' || !Number.isSafeInteger(body.version) || body.version < 1)) {
        throw new HttpError(400, `"version" is a version number from 1, not ${JSON.stringify(body.version)}`)
      }
      const { share, text } = await client.share(body.object, { to: body.to as string | undefined, expiresInMs, version: body.version as number | undefined })
      json(200, { share: shareView(share), text })
    },
    'GET /v1/store/shares': async ({ json }) => {
      json(200, { shares: (await client.shares()).map(s => shareView(s)) })
    },
    'POST /v1/store/unshare': async ({ req, json, signal }) => {
      const usage = 'send JSON: {"share": "SHARE ID or NAME"}'
      const body = await readJsonBody(req, usage)
      if (typeof body.share !== 'string') {
        throw new HttpError(400, usage)
      }
      const { revoked, unreachable } = await client.unshare(body.share, signal)
      json(200, { revoked: revoked.map(s => shareView(s)), unreachable })
    },
    'POST /v1/store/fetch': async (ctx) => {
      const usage = 'send JSON: {"share": "ocshare1...", "out": "/absolute/file (one object)", "dir": "/absolute/dir (default for several)", "overwrite": false}'
      const body = await readJsonBody(ctx.req, usage, MAX_FETCH_BODY)
      const absolute = (v: unknown): boolean => v == null || (typeof v === 'string' && isAbsolute(v))
      if (typeof body.share !== 'string' || !absolute(body.out) || !absolute(body.dir) || (body.out == null && body.dir == null)) {
        throw new HttpError(400, usage)
      }
      await streamEvents(ctx, async (onProgress, signal) => {
        const objects = await client.fetchShared(body.share as string, { out: body.out as string | undefined, dir: body.dir as string | undefined }, { overwrite: body.overwrite === true, onProgress, signal })
        return { objects }
      })
    }
  }
}
