import { checkCall } from '../agreement.ts'
import { queryOf, type HostRequest } from '../request.ts'
import type { HostContext } from '../context.ts'

/** The answer of `rent`: the periods paid for now, and the ISO time they cover */
export interface RentAnswer {
  rentPaidPeriods: number
  paidThrough: string
}

/** storage.rent: the next periods of a contract are paid (the pipeline took the payment the agreement check priced) */
export async function rent (host: Pick<HostContext, 'book'>, req: HostRequest): Promise<RentAnswer> {
  return host.book.locks.run(req.args[0] ?? '', async () => {
    const { c, periods } = checkCall(host.book, 'rent', queryOf(req))
    c.rentPaidPeriods += periods
    await host.book.save(c)
    return { rentPaidPeriods: c.rentPaidPeriods, paidThrough: new Date(c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs).toISOString() }
  }, { signal: req.signal })
}
