import { checkCall } from '../agreement.ts'
import { queryOf, type HostRequest } from '../request.ts'
import { countersign } from '../revisions.ts'
import type { HostContext } from '../context.ts'
import type { RevisionAnswer } from './put.ts'

/**
 * storage.delete: delete a shard at the renter's signed word; the revision
 * without it is saved before its bytes go, so a crash between leaves a
 * file nobody pays for, never a revision holding a shard that is gone
 */
export async function deleteShard (host: Pick<HostContext, 'signer' | 'book' | 'store'>, req: HostRequest): Promise<RevisionAnswer> {
  return host.book.locks.run(req.args[0] ?? '', async () => {
    const { c, root, next } = checkCall(host.book, 'delete', queryOf(req))
    const hostSignature = countersign(c, next!, host.signer)
    await host.book.save(c)
    await host.store.delete(c.id, root)
    return { revision: c.revision, hostSignature }
  }, { signal: req.signal })
}
