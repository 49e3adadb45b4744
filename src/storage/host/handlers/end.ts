import { logger } from '@libp2p/logger'
import { DecodeError } from '../../../protocols/codec.ts'
import { BadRequestError } from '../../../protocols/rpc/errors.ts'
import { openRating, signRating } from '../../protocol/rating.ts'
import { checkCall } from '../agreement.ts'
import { queryOf, readBody, type HostRequest } from '../request.ts'
import type { HostContext } from '../context.ts'

const log = logger('opencloud:storage:host')

/** The answer of `end`: when it ended, and this host's signed rating of the renter, base64 */
export interface EndAnswer {
  contract: string
  ended: string
  rating: string
}

/**
 * storage.end: end a contract at its renter's word: the shards are
 * deleted. The body may carry the renter's signed rating of this host; the
 * answer carries this host's signed rating of the renter (rent paid as
 * agreed or not).
 */
export async function end (host: Pick<HostContext, 'peerId' | 'signer' | 'book' | 'store' | 'recordRenter'>, req: HostRequest): Promise<EndAnswer> {
  const { book } = host
  const id = checkCall(book, 'end', queryOf(req)).c.id
  const body = await readBody(req)
  const renterRating = body.byteLength === 0 ? undefined : body
  return book.locks.run(id, async () => {
    const { c } = checkCall(book, 'end', queryOf(req))
    if (renterRating != null) {
      let rating
      try {
        rating = openRating(renterRating)
      } catch (err: any) {
        throw new BadRequestError(err instanceof DecodeError ? `the rating is malformed: ${err.message}` : `the rating does not verify: ${err.message}`)
      }
      if (Buffer.from(rating.contractId).toString('hex') !== id || rating.rater !== c.terms.renter || rating.rated !== host.peerId) {
        throw new BadRequestError(`the rating is not the renter's rating of this host under contract ${id}`)
      }
      host.recordRenter?.(c.terms.renter, rating.satisfactory ? 'satisfactory' : 'unsatisfactory', 'contract-rated-by-renter')
    }
    const now = book.now()
    const paid = c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs >= Math.min(now, c.terms.end)
    const mine = signRating({ contractId: Buffer.from(id, 'hex'), rater: host.peerId, rated: c.terms.renter, satisfactory: paid, reason: paid ? 'rent paid as agreed' : 'rent unpaid', at: now }, host.signer)
    c.ratings = { renter: renterRating == null ? undefined : Buffer.from(renterRating).toString('base64'), host: Buffer.from(mine).toString('base64') }
    host.recordRenter?.(c.terms.renter, paid ? 'satisfactory' : 'unsatisfactory', 'contract-ended')
    c.endedAt = now
    c.endedReason = 'by its renter'
    c.shards = new Map()
    c.bytes = 0
    await book.save(c)
    await host.store.deleteContract(id)
    log('contract %s ended by its renter', id)
    return { contract: id, ended: new Date(c.endedAt).toISOString(), rating: Buffer.from(mine).toString('base64') }
  }, { signal: req.signal })
}
