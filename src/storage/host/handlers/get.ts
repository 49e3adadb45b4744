import { checkCall } from '../agreement.ts'
import { shardLost } from '../errors.ts'
import { queryOf, type HostRequest } from '../request.ts'
import type { OutgoingBody } from '../../../protocols/rpc/body.ts'
import type { HostContext } from '../context.ts'

/**
 * storage.get: a byte range of a shard, every leaf it covers checked
 * against the shard's root before it is sent. A shard corrupt or missing
 * on this host's disk is answered not-found (see shardLost).
 */
export async function get (host: Pick<HostContext, 'book' | 'store'>, req: HostRequest): Promise<OutgoingBody> {
  const { c, root, held, offset, length } = checkCall(host.book, 'get', queryOf(req))
  return shardLost(async () => host.store.range(c.id, root, offset, length, held ?? 0, req.signal))
}
