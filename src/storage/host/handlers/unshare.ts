import { checkShareCall } from '../share-check.ts'
import { queryOf, type HostRequest } from '../request.ts'
import type { Revocations } from '../revocations.ts'
import type { HostContext } from '../context.ts'

/** What a host answers to `unshare` */
export interface UnshareAnswer {
  /** the grant id revoked */
  revoked: string
  /** until when the host refuses it (its expiry); null: it had expired already, nothing is kept */
  until: string | null
}

/**
 * storage.unshare (PROTOCOL.md 8h): the renter revokes one of its grants
 * before its expiry. The host keeps the id until then (Revocations), so
 * every shared-get of it is refused as revoked; after it, as expired.
 */
export async function unshare (host: Pick<HostContext, 'book'> & { revocations: Revocations }, req: HostRequest): Promise<UnshareAnswer> {
  checkShareCall(host.book, 'unshare', queryOf(req))
  const [id, expires] = req.args
  const until = await host.revocations.revoke(req.caller, id, Number(expires))
  return { revoked: id, until: until == null ? null : new Date(until).toISOString() }
}
