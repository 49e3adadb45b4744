import { encodeProofs } from '../../protocol/proofs.ts'
import { checkCall } from '../agreement.ts'
import { shardLost } from '../errors.ts'
import { queryOf, type HostRequest } from '../request.ts'
import type { HostContext } from '../context.ts'

/**
 * storage.prove: Merkle proofs of the leaves a challenge picks (the audit
 * primitive), encoded as PROTOCOL.md 8d says. A shard corrupt or missing
 * on this host's disk is answered not-found (see shardLost).
 */
export async function prove (host: Pick<HostContext, 'book' | 'store'>, req: HostRequest): Promise<Uint8Array> {
  const { c, root, held, challenge, count } = checkCall(host.book, 'prove', queryOf(req))
  return encodeProofs(await shardLost(async () => host.store.prove(c.id, root, challenge, count, held ?? 0)))
}
