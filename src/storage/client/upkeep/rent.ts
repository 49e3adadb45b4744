import { logger } from '@libp2p/logger'
import type { Contracts } from '../contracts.ts'
import type { Records } from '../records.ts'

const log = logger('opencloud:storage:client:rent')

export interface RentComponents {
  records: Records
  contracts: Pick<Contracts, 'payPeriod'>
}

/**
 * Pay the next period of every live contract whose paid time runs out
 * within half a period, as many periods as have fallen due (a node that was
 * off for days catches up); a host that cannot be paid now is paid at the
 * next check. Each contract is paid once for all the objects with shards
 * under it, on the bytes it holds (Contracts.payPeriod). A condemned or
 * ended contract is paid no more. Resolves with how many periods were
 * paid. The caller holds the records.
 */
export async function payRentDue ({ records, contracts }: RentComponents, now: number, signal: AbortSignal): Promise<number> {
  let paid = 0
  await records.ready()
  for (const [id, c] of records.contracts.entries()) {
    // a condemned host is paid no more
    if (c.ended != null || c.lost != null || c.end <= now) {
      continue
    }
    while (c.start + c.rentPaidPeriods * c.rentPeriodMs < Math.min(c.end, now + c.rentPeriodMs / 2)) {
      try {
        await contracts.payPeriod(id, c, signal)
        paid++
      } catch (err: any) {
        if (signal.aborted) {
          throw err
        }
        log.error('rent for contract %s with %s not paid - %s', id, c.host, err.message)
        break
      }
    }
  }
  return paid
}
