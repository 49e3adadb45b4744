import { logger } from '@libp2p/logger'
import { contractIdOf, decodeSigned, encodeSigned, signTerms } from '../../protocol/contract.ts'
import { checkProposal } from '../agreement.ts'
import { queryOf, type HostRequest } from '../request.ts'
import { readProposal } from '../terms.ts'
import type { HostContext } from '../context.ts'
import type { HostContract } from '../contract-book.ts'

const log = logger('opencloud:storage:host')

/** The answer of `contract`: the contract's id and this host's signature of its terms, base64 */
export interface ContractAnswer {
  contract: string
  hostSignature: string
}

export function contractAnswer (c: HostContract): ContractAnswer {
  return { contract: c.id, hostSignature: Buffer.from(decodeSigned(c.signed).hostSignature).toString('base64') }
}

/**
 * storage.contract: sign terms a renter proposes (body: bytes terms ||
 * bytes renter signature), if this host signs such terms. The same
 * proposal sent again (its answer was lost) gets the same answer.
 */
export async function contract (host: Pick<HostContext, 'peerId' | 'signer' | 'book' | 'terms'>, req: HostRequest): Promise<ContractAnswer> {
  checkProposal(queryOf(req))
  const { encoded, renterSignature, terms } = await readProposal(req, host.peerId)
  const id = Buffer.from(contractIdOf(encoded)).toString('hex')
  return host.book.locks.run(id, async () => {
    const known = host.book.get(id)
    if (known != null) {
      // the same proposal again (its answer was lost): the same answer
      return contractAnswer(known)
    }
    await host.terms.check(terms)
    const hostSignature = signTerms(encoded, host.signer)
    const c: HostContract = { id, terms, signed: encodeSigned(encoded, renterSignature, hostSignature), revision: 0, shards: new Map(), bytes: 0, rentPaidPeriods: 0, rentAccrued: 0n, rentPaid: 0n }
    host.book.add(c)
    await host.book.save(c)
    log('contract %s with %s: %d bytes until %s', id, terms.renter, terms.maxBytes, new Date(terms.end).toISOString())
    return contractAnswer(c)
  }, { signal: req.signal })
}
