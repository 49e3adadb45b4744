import { logger } from '@libp2p/logger'
import type { Contracts } from '../contracts.ts'
import type { HostOffer } from '../interface.ts'
import type { ContractRecord, Records } from '../records.ts'

const log = logger('opencloud:storage:client:renewals')

export interface RenewalsComponents {
  records: Records
  contracts: Pick<Contracts, 'renew' | 'payPeriod'>
  hosts: () => Promise<HostOffer[]>
}

export interface RenewalsInit {
  /** a contract is renewed when this little is left, or a third of its length if that is less */
  renewBeforeMs: number
}

/** Whether a contract is due for renewal at `now`: live, and within renewBeforeMs (or a third of its length) of its end */
export function renewalDue (c: ContractRecord, now: number, renewBeforeMs: number): boolean {
  const length = c.end - c.start
  return c.ended == null && c.lost == null && c.end > now && c.end - now <= Math.min(renewBeforeMs, length / 3)
}

/**
 * Renew the contracts that end soon (see renewBeforeMs) with the same
 * hosts: new terms of the same length at the host's current prices, the
 * shards carried over without sending them again. A host that refuses is
 * asked again at the next check; once its contract has ended, its shards
 * count as lost and repair moves them. Resolves with how many were
 * renewed. The caller holds the records.
 */
export async function renewDue ({ records, contracts, hosts }: RenewalsComponents, init: RenewalsInit, now: number, signal: AbortSignal): Promise<number> {
  let renewed = 0
  const offers = new Map((await hosts()).map(h => [h.peer, h]))
  for (const object of await records.list()) {
    let changed = false
    for (const [id, c] of Object.entries(object.contracts)) {
      if (!renewalDue(c, now, init.renewBeforeMs)) {
        continue
      }
      signal.throwIfAborted()
      try {
        const next = await contracts.renew(id, c, c.end - c.start, offers.get(c.host), signal)
        object.contracts[next.id] = next.record
        c.ended = Date.now()
        c.renewedAs = next.id
        for (const segment of object.segments) {
          for (const shard of segment.shards) {
            if (shard.contract === id) {
              shard.contract = next.id
            }
          }
        }
        changed = true
        renewed++
        // saved before it is paid: the host has already moved the shards
        await records.saveObject(object)
        await contracts.payPeriod(next.id, next.record, signal).catch((err: any) => { log.error('the first rent of contract %s is not paid yet; paid at the next check - %s', next.id, err.message) })
        log('renewed contract %s with %s as %s, until %s', id, c.host, next.id, new Date(next.record.end).toISOString())
      } catch (err: any) {
        if (signal.aborted) {
          throw err
        }
        log.error('renewing contract %s with %s failed; tried again at the next check - %s', id, c.host, err.message)
      }
    }
    if (changed) {
      await records.saveIfStored(object)
    }
  }
  return renewed
}
