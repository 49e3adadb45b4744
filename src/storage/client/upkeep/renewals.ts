import { logger } from '@libp2p/logger'
import { renewalDue } from '../health.ts'
import type { Contracts } from '../contracts.ts'
import type { HostOffer } from '../interface.ts'
import type { Records } from '../records.ts'

const log = logger('opencloud:storage:client:renewals')

export { renewalDue }

export interface RenewalsComponents {
  records: Records
  contracts: Pick<Contracts, 'renew' | 'payPeriod' | 'inUse'>
  hosts: () => Promise<HostOffer[]>
}

export interface RenewalsInit {
  /** a contract is renewed when this little is left, or a third of its length if that is less */
  renewBeforeMs: number
}

/**
 * Renew the contracts that end soon (see renewBeforeMs) with the same
 * hosts: new terms of the same length at the host's current prices, the
 * shards carried over without sending them again. Each contract is renewed
 * once for all the objects with shards under it, and each of those objects
 * then names the new contract. A contract no object names and no put uses
 * is left to end (collectGarbage ends it). A host that refuses is asked
 * again at the next check; once its contract has ended, its shards count as
 * lost and repair moves them. Resolves with how many were renewed. The
 * caller holds the records.
 */
export async function renewDue ({ records, contracts, hosts }: RenewalsComponents, init: RenewalsInit, now: number, signal: AbortSignal): Promise<number> {
  let renewed = 0
  const offers = new Map((await hosts()).map(h => [h.peer, h]))
  const objects = await records.list()
  for (const [id, c] of records.contracts.entries()) {
    if (!renewalDue(c, now, init.renewBeforeMs)) {
      continue
    }
    const users = objects.filter(o => o.contracts[id] != null && o.segments.some(s => s.shards.some(x => x.contract === id)))
    if (users.length === 0 && !contracts.inUse(id)) {
      continue
    }
    signal.throwIfAborted()
    try {
      const next = await contracts.renew(id, c, c.end - c.start, offers.get(c.host), signal)
      for (const object of users) {
        object.contracts[next.id] = next.record
        for (const segment of object.segments) {
          for (const shard of segment.shards) {
            if (shard.contract === id) {
              shard.contract = next.id
            }
          }
        }
        // saved before it is paid: the host has already moved the shards
        await records.saveIfStored(object)
      }
      renewed++
      await contracts.payPeriod(next.id, next.record, signal).catch((err: any) => { log.error('the first rent of contract %s is not paid yet; paid at the next check - %s', next.id, err.message) })
      log('renewed contract %s with %s as %s, until %s', id, c.host, next.id, new Date(next.record.end).toISOString())
    } catch (err: any) {
      if (signal.aborted) {
        throw err
      }
      log.error('renewing contract %s with %s failed; tried again at the next check - %s', id, c.host, err.message)
    }
  }
  return renewed
}
