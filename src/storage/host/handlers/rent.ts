import { formatAmount } from '../../../protocols/units.ts'
import { checkCall } from '../agreement.ts'
import { queryOf, type HostRequest } from '../request.ts'
import type { HostContext } from '../context.ts'

/**
 * The answer of `rent`: the periods paid for now, the ISO time they cover,
 * the whole satoshis paid in all (formatAmount) and the exact rent accrued
 * (a decimal string of 1 / RENT_UNITS_PER_SAT sat)
 */
export interface RentAnswer {
  rentPaidPeriods: number
  paidThrough: string
  rentPaid: string
  rentAccrued: string
}

/**
 * storage.rent: the next periods of a contract are paid (the pipeline took
 * the payment the agreement check priced). The charge is computed again
 * under the contract's lock and that is what the book records (accrued,
 * paid, periods), so its sums stay exact; a put or delete that landed
 * between the pipeline's check and the lock moved the price by at most
 * that shard's rent for these periods, and a put or get by its transfer
 * remainder (under a satoshi each), most often 0 sat.
 */
export async function rent (host: Pick<HostContext, 'book'>, req: HostRequest): Promise<RentAnswer> {
  return host.book.locks.run(req.args[0] ?? '', async () => {
    const { c, periods, price, accrued } = checkCall(host.book, 'rent', queryOf(req))
    c.rentAccrued = accrued ?? c.rentAccrued
    c.rentPaid += price ?? 0n
    c.rentPaidPeriods += periods
    await host.book.save(c)
    return { rentPaidPeriods: c.rentPaidPeriods, paidThrough: new Date(c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs).toISOString(), rentPaid: formatAmount(c.rentPaid), rentAccrued: c.rentAccrued.toString() }
  }, { signal: req.signal })
}
