import { logger } from '@libp2p/logger'
import { BadRequestError } from '../../../protocols/rpc/errors.ts'
import { decodeSigned } from '../../protocol/contract.ts'
import { checkCall } from '../agreement.ts'
import { ShardMismatchError } from '../errors.ts'
import { queryOf, type HostRequest } from '../request.ts'
import { countersign } from '../revisions.ts'
import type { HostContext } from '../context.ts'

const log = logger('opencloud:storage:host')

/** The answer of `put` and `delete`: the contract's revision now, and this host's signature of it, base64 */
export interface RevisionAnswer {
  revision: number
  hostSignature: string
}

/**
 * storage.put: store a shard. The renter's signature of the next revision
 * is checked before the body is read (the revision depends only on the
 * root and the body's length, which the head gives), so a forged put is
 * refused before CONTINUE and sends no bytes. A shard the contract already
 * holds (a retry after a lost answer, or a copy this host found corrupt)
 * is checked like a first put and written again: the revision stays, and
 * the renter signs it as it is. Either way the shard moved, so once it is
 * on disk a version 2 contract accrues the fraction of a satoshi the put's
 * price left out (PROTOCOL.md 8d, "Rent"), saved with the contract.
 */
export async function put (host: Pick<HostContext, 'signer' | 'book' | 'store'>, req: HostRequest): Promise<RevisionAnswer> {
  return host.book.locks.run(req.args[0] ?? '', async () => {
    // checked again under the lock: the contract may have changed since the pipeline's check
    const { c, root, held, next, remainder } = checkCall(host.book, 'put', queryOf(req))
    try {
      await host.store.write(c.id, Buffer.from(root, 'hex'), req.body, req.signal)
    } catch (err: any) {
      if (err instanceof ShardMismatchError) {
        throw new BadRequestError(err.message)
      }
      throw err
    }
    host.book.accrue(c, remainder ?? 0n)
    if (held != null) {
      log('shard %s of contract %s written again', root, c.id)
      if (remainder != null && remainder > 0n) {
        await host.book.save(c)
      }
      return { revision: c.revision, hostSignature: Buffer.from(decodeSigned(c.signedRevision!).hostSignature).toString('base64') }
    }
    const hostSignature = countersign(c, next!, host.signer)
    await host.book.save(c)
    return { revision: c.revision, hostSignature }
  }, { signal: req.signal })
}
