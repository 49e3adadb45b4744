import { logger } from '@libp2p/logger'
import type { Contracts } from '../contracts.ts'
import type { Records } from '../records.ts'
import type { StorageClientComponents } from '../interface.ts'
import { MONTH_MS, TIB } from '../../protocol/contract.ts'

const log = logger('opencloud:storage:client:rent')

export interface RentComponents {
  records: Records
  contracts: Pick<Contracts, 'payPeriod'>
  /** open channels to the hosts about to be paid, in one funding transaction, where the payment strategy says (StorageClientComponents.prepay) */
  prepay?: StorageClientComponents['prepay']
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
export async function payRentDue ({ records, contracts, prepay }: RentComponents, now: number, signal: AbortSignal): Promise<number> {
  let paid = 0
  await records.ready()
  // live contracts with a period falling due (a condemned host is paid no more)
  const due = [...records.contracts.entries()].filter(([, c]) => c.ended == null && c.lost == null && c.end > now &&
    c.start + c.rentPaidPeriods * c.rentPeriodMs < Math.min(c.end, now + c.rentPeriodMs / 2))
  if (prepay != null && due.length > 0) {
    // the hosts about to be paid, each about its rent to the contract's end:
    // channels that ran out or reached their end are opened again together
    const payees = new Map<string, { peer: string, sats: bigint, calls: number, method: string }>()
    for (const [, c] of due) {
      const bytes = c.shards.reduce((sum, [, b]) => sum + b, 0)
      const months = (c.end - now) / MONTH_MS
      const p = payees.get(c.host) ?? { peer: c.host, sats: 0n, calls: 0, method: 'storage.rent' }
      p.sats += BigInt(Math.ceil(Number(c.storagePrice) * bytes * months / TIB))
      p.calls += Math.ceil((c.end - now) / c.rentPeriodMs)
      payees.set(c.host, p)
    }
    await prepay([...payees.values()], signal)
  }
  for (const [id, c] of due) {
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
