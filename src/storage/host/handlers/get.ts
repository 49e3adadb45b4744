import { checkCall } from '../agreement.ts'
import { shardLost } from '../errors.ts'
import { queryOf, type HostRequest } from '../request.ts'
import type { OutgoingBody } from '../../../protocols/rpc/body.ts'
import type { HostContext } from '../context.ts'

/**
 * storage.get: a byte range of a shard, every leaf it covers checked
 * against the shard's root before it is sent. A shard corrupt or missing
 * on this host's disk is answered not-found (see shardLost). Once the
 * range is checked and its bytes are about to go out, a version 2
 * contract accrues the fraction of a satoshi the call's price left out
 * (PROTOCOL.md 8d, "Rent"), in memory only: see ContractBook.accrue.
 */
export async function get (host: Pick<HostContext, 'book' | 'store'>, req: HostRequest): Promise<OutgoingBody> {
  const { c, root, held, offset, length, remainder } = checkCall(host.book, 'get', queryOf(req))
  const body = await shardLost(async () => host.store.range(c.id, root, offset, length, held ?? 0, req.signal))
  host.book.accrue(c, remainder ?? 0n)
  return body
}
