import { checkCall } from '../agreement.ts'
import { queryOf, type HostRequest } from '../request.ts'
import type { HostContext } from '../context.ts'

/** The answer of `list` (PROTOCOL.md 8d): what a renter resynchronises from */
export interface ListAnswer {
  /** encodeSigned(terms, renter signature, host signature), base64 */
  contract: string
  revision: number
  /** encodeSigned(revision, renter signature, host signature) of the latest revision, base64; null before the first */
  signedRevision: string | null
  shards: Array<{ root: string, bytes: number }>
  rentPaidPeriods: number
  /** ISO time the rent paid covers */
  paidThrough: string
}

/** storage.list: the contract, its latest signed revision and its shards */
export async function list (host: Pick<HostContext, 'book'>, req: HostRequest): Promise<ListAnswer> {
  const { c } = checkCall(host.book, 'list', queryOf(req))
  return {
    contract: Buffer.from(c.signed).toString('base64'),
    revision: c.revision,
    signedRevision: c.signedRevision == null ? null : Buffer.from(c.signedRevision).toString('base64'),
    shards: [...c.shards].map(([root, bytes]) => ({ root, bytes })),
    rentPaidPeriods: c.rentPaidPeriods,
    paidThrough: new Date(c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs).toISOString()
  }
}
