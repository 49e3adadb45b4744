import { logger } from '@libp2p/logger'
import { BadRequestError } from '../../../protocols/rpc/errors.ts'
import { contractIdOf, decodeSigned, encodeSigned, signTerms } from '../../protocol/contract.ts'
import { checkCall } from '../agreement.ts'
import { queryOf, type HostRequest } from '../request.ts'
import { countersign, revisionSigned } from '../revisions.ts'
import { readProposal } from '../terms.ts'
import type { HostContext } from '../context.ts'
import type { HostContract } from '../contract-book.ts'
import type { ContractAnswer } from './contract.ts'

const log = logger('opencloud:storage:host')

/** The answer of `renew`: the new contract, and this host's signature of its revision 1, base64 */
export interface RenewAnswer extends ContractAnswer {
  revision: number
  revisionSignature: string
}

function b64 (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}

function renewAnswer (c: HostContract): RenewAnswer {
  return { contract: c.id, hostSignature: b64(decodeSigned(c.signed).hostSignature), revision: c.revision, revisionSignature: b64(decodeSigned(c.signedRevision!).hostSignature) }
}

/**
 * storage.renew: the same host and renter sign new terms, the shards
 * pass to the new contract at its revision 1 (no bytes are sent again),
 * and the old contract ends. Args: the old contract id and the renter's
 * signature of the new contract's revision 1; body as for `contract`.
 * A contract that holds nothing renews too (its revision 1 holds
 * nothing): a renter keeps its place with the host. Rent paid on the old
 * contract is not carried over (PROTOCOL.md 8d says why).
 */
export async function renew (host: Pick<HostContext, 'peerId' | 'signer' | 'book' | 'store' | 'terms'>, req: HostRequest): Promise<RenewAnswer> {
  const { book } = host
  const { signature } = checkCall(book, 'renew', queryOf(req))
  const oldId = req.args[0]
  const { encoded, renterSignature, terms } = await readProposal(req, host.peerId)
  const id = Buffer.from(contractIdOf(encoded)).toString('hex')
  return book.locks.run(oldId, async () => {
    const done = book.get(id)
    if (done != null && book.get(oldId)?.endedReason === `renewed as ${id}` && done.signedRevision != null) {
      // the same renewal again (its answer was lost): the same answer
      return renewAnswer(done)
    }
    const old = book.live(oldId, req.caller)
    if (terms.maxBytes < old.bytes) {
      throw new BadRequestError(`the new terms allow ${terms.maxBytes} bytes, but contract ${oldId} holds ${old.bytes}`)
    }
    if (book.has(id)) {
      throw new BadRequestError(`contract ${id} exists already`)
    }
    await host.terms.check(terms, old.terms.maxBytes)
    const c: HostContract = { id, terms, signed: encodeSigned(encoded, renterSignature, signTerms(encoded, host.signer)), revision: 0, shards: new Map(old.shards), bytes: old.bytes, rentPaidPeriods: 0, rentAccrued: 0n, rentPaid: 0n }
    // revision 1 holds what the old contract held
    countersign(c, revisionSigned(c, c.shards, 1, signature), host.signer)
    // the new contract is saved before the old one ends: a crash between
    // leaves both, never neither
    book.add(c)
    await book.save(c)
    await host.store.moveContract(oldId, id)
    old.endedAt = book.now()
    old.endedReason = `renewed as ${id}`
    old.shards = new Map()
    old.bytes = 0
    await book.save(old)
    log('contract %s renewed as %s until %s', oldId, id, new Date(terms.end).toISOString())
    return renewAnswer(c)
  }, { signal: req.signal })
}
