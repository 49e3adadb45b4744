import { formatAmount } from '../../../protocols/units.ts'
import { checkCall } from '../agreement.ts'
import { queryOf, type HostRequest } from '../request.ts'
import type { HostContext } from '../context.ts'
import type { ListAnswer } from '../../protocol/answers.ts'

/** storage.list: the contract, its latest signed revision, its shards and the rent paid */
export async function list (host: Pick<HostContext, 'book'>, req: HostRequest): Promise<ListAnswer> {
  const { c } = checkCall(host.book, 'list', queryOf(req))
  return {
    contract: Buffer.from(c.signed).toString('base64'),
    revision: c.revision,
    signedRevision: c.signedRevision == null ? null : Buffer.from(c.signedRevision).toString('base64'),
    shards: [...c.shards].map(([root, bytes]) => ({ root, bytes })),
    bytes: c.bytes,
    rentPaidPeriods: c.rentPaidPeriods,
    paidThrough: new Date(c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs).toISOString(),
    rentPaid: formatAmount(c.rentPaid),
    rentAccrued: c.rentAccrued.toString()
  }
}
