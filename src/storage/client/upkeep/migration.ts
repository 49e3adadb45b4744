import { logger } from '@libp2p/logger'
import { formatAmount } from '../../../protocols/units.ts'
import { TRUSTED_SCORE } from '../../constants.ts'
import type { HostOffer } from '../interface.ts'
import type { ContractRecord, StoredObject } from '../records.ts'

const log = logger('opencloud:storage:client:migration')

/** When to move off a host that did nothing wrong (StorageClientInit: migrateAbovePrice, minTrust, trustDrop, trustGraceMs) */
export interface MigrationPolicy {
  migrateAbovePrice: number
  minTrust: number
  trustDrop: number
  trustGraceMs: number
}

/** What the market says now: each host's storage price and their median */
export interface MarketView {
  median?: bigint
  priceOf: Map<string, bigint>
  trust?: (peer: string) => number
}

export function marketView (offers: HostOffer[], trust?: (peer: string) => number): MarketView {
  const prices = offers.map(o => o.storage).sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
  const median = prices.length === 0 ? undefined : prices[Math.floor(prices.length / 2)]
  return { median, priceOf: new Map(offers.map(o => [o.peer, o.storage])), trust }
}

/**
 * Why a contract's shards should move off a host that did nothing wrong, or
 * undefined: its storage price rose over `migrateAbovePrice` times the
 * market median, its trust score fell under `minTrust`, or it fell under
 * `trustDrop` of what it was when the contract formed (only for hosts that
 * were trusted then, TRUSTED_SCORE).
 */
export function migrationReason (
  c: Pick<ContractRecord, 'trustAtStart'>,
  now: { price?: bigint, median?: bigint, trust?: number },
  policy: { migrateAbovePrice: number, minTrust: number, trustDrop: number }
): string | undefined {
  const { price, median, trust } = now
  if (price != null && median != null && median > 0n && Number(price) > Number(median) * policy.migrateAbovePrice) {
    return `its price rose to ${formatAmount(price)} per TiB-month, over ${policy.migrateAbovePrice}x the market median of ${formatAmount(median)}`
  }
  if (trust != null && policy.minTrust > 0 && trust < policy.minTrust) {
    return `its trust score fell to ${trust.toFixed(2)}, under ${policy.minTrust}`
  }
  if (trust != null && c.trustAtStart != null && c.trustAtStart >= TRUSTED_SCORE && trust < c.trustAtStart * policy.trustDrop) {
    return `its trust score fell to ${trust.toFixed(2)} from ${c.trustAtStart.toFixed(2)} when the contract formed`
  }
  return undefined
}

/**
 * Mark the contracts of an object whose hosts should be moved off
 * (`migrating`, which repair reads): a reason from the price applies at
 * once; one that is only the trust score must have lasted trustGraceMs
 * (noted in `trustLowSince`, forgotten when the score is back). Resolves
 * with whether a contract was newly marked, and whether the record changed.
 */
export function markMigrations (object: StoredObject, market: MarketView, policy: MigrationPolicy, now: number): { migrate: boolean, changed: boolean } {
  let migrate = false
  let changed = false
  for (const c of Object.values(object.contracts)) {
    if (c.ended != null || c.lost != null || c.migrating != null) {
      continue
    }
    const price = market.priceOf.get(c.host)
    const reason = migrationReason(c, { price, median: market.median, trust: market.trust?.(c.host) }, policy)
    // a reason that is only the trust score must last (trustGraceMs)
    const byTrust = reason != null && migrationReason(c, { price, median: market.median }, policy) == null
    if (!byTrust && c.trustLowSince != null) {
      c.trustLowSince = undefined
      changed = true
    }
    if (reason == null) {
      continue
    }
    if (byTrust) {
      if (c.trustLowSince == null) {
        c.trustLowSince = now
        changed = true
      }
      if (now - c.trustLowSince < policy.trustGraceMs) {
        continue
      }
    }
    c.migrating = reason
    migrate = true
    log('migrating the shards of "%s" off %s: %s', object.name, c.host, c.migrating)
  }
  return { migrate, changed: changed || migrate }
}
