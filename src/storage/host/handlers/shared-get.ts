import { shardLost } from '../errors.ts'
import { queryOf, readBody, type HostRequest } from '../request.ts'
import { checkGrant, checkShareCall } from '../share-check.ts'
import type { OutgoingBody } from '../../../protocols/rpc/body.ts'
import type { HostContext } from '../context.ts'
import type { Revocations } from '../revocations.ts'

/**
 * storage.shared-get (PROTOCOL.md 8h): a byte range of a shard for the
 * holder of a share, the grant and its signature in the body. The args and
 * the range are checked before payment (checkShareCall), the grant once the
 * body is read (checkGrant); then it is served as `get` serves, every leaf
 * checked against the root. Nothing is accrued on the renter's contract:
 * the holder paid for its own download with the call.
 */
export async function sharedGet (host: Pick<HostContext, 'book' | 'store'> & { revocations: Revocations }, req: HostRequest): Promise<OutgoingBody> {
  const { root, offset, length } = checkShareCall(host.book, 'shared-get', queryOf(req))
  const { c } = checkGrant(host.book, host.revocations, req.caller, root, await readBody(req))
  const held = host.book.held(c, root)
  return shardLost(async () => host.store.range(c.id, root, offset, length, held, req.signal))
}
