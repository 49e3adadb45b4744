import { monthlyRentOf } from '../protocol/contract.ts'
import type { ContractRecord, ShardRecord, StoredObject } from './records.ts'

/**
 * Pure functions of the records: how healthy an object is, which shards
 * and contracts count, what it costs, and the default redundancy for a
 * network of a given size
 */

/**
 * How many of a segment's N shards may be lost before the object is
 * repaired, by default: half the margin, ceil((N-K)/2) (see
 * StorageClientInit.repairAfterLost)
 */
export function defaultRepairAfterLost (k: number, n: number): number {
  return Math.max(1, Math.ceil((n - k) / 2))
}

/**
 * K for N shards: half of N rounded down up to 12, a third rounded up from
 * 13 (as Sia's 10-of-30). The bytes stored, and the rent and uploads paid
 * for, are N/K times the file: 2x for an even N up to 12, more for an odd
 * one (1-of-3 3x, 2-of-5 2.5x, 3-of-7 2.33x), about 3x from 13 (5-of-15 3x,
 * 8-of-22 2.75x)
 */
export function defaultK (n: number): number {
  return n <= 12 ? Math.max(1, Math.floor(n / 2)) : Math.ceil(n / 3)
}

/**
 * The default K-of-N for a network of `hosts` storage hosts. N leaves spare
 * hosts: as many as the losses that start a repair (defaultRepairAfterLost),
 * so the repair that follows those losses finds new hosts for every lost
 * shard even when none of the lost hosts comes back. Repair puts a lost
 * shard only on a host that holds no other shard of that segment (two
 * shards on one host would make one failure cost two), so with every host
 * already in use it would have nowhere to go. N is the largest up to 30
 * (Sia's N) with N + spares <= hosts; K is defaultK(N): half of N rounded
 * down up to 12 (any N-K hosts may vanish), a third from 13, which
 * survives far more failures for about 3x the file stored instead of 2x.
 * Where no N with a margin (N > K) leaves a spare (1 or 2 hosts), every
 * host holds a shard: 1-of-1, 1-of-2.
 *
 * hosts: 2 -> 1-of-2 (2x the file stored), 3 -> 1-of-2 (2x), 4 -> 1-of-3
 * (3x), 5 -> 2-of-4 (2x), 7 -> 2-of-5 (2.5x), 8 -> 3-of-6 (2x), 9 -> 3-of-7
 * (2.33x), 10 -> 4-of-8 (2x), 16 -> 6-of-12 (2x), 20 -> 5-of-15 (3x), 30 ->
 * 8-of-22 (2.75x), 40 -> 10-of-30 (3x)
 */
export function defaultRedundancy (hosts: number): { k: number, n: number } {
  for (let n = Math.min(30, hosts); n >= 2; n--) {
    const k = defaultK(n)
    if (n > k && n + defaultRepairAfterLost(k, n) <= hosts) {
      return { k, n }
    }
  }
  const n = Math.min(30, hosts)
  return { k: defaultK(n), n }
}

/** The bytes a contract holds under its latest revision, for every object with shards there */
export function bytesHeld (c: ContractRecord): number {
  let n = 0
  for (const [, bytes] of c.shards) {
    n += bytes
  }
  return n
}

/** The bytes of an object's shards under each of its contracts (its share of each: what its rent is on) */
export function objectBytesByContract (object: StoredObject): Map<string, number> {
  const out = new Map<string, number>()
  for (const segment of object.segments) {
    for (const shard of segment.shards) {
      out.set(shard.contract, (out.get(shard.contract) ?? 0) + segment.shardSize)
    }
  }
  return out
}

/**
 * What an object costs per month in rent, in satoshis (exact, not
 * rounded): under a version 2 contract the rent on its own bytes there;
 * under a version 1 contract (rent on max-bytes, one per object) the whole
 * contract's
 */
export function monthlyRent (object: StoredObject): number {
  let total = 0
  const mine = objectBytesByContract(object)
  for (const [id, c] of Object.entries(object.contracts)) {
    // a condemned host is paid no more
    if (c.ended != null || c.lost != null) {
      continue
    }
    total += monthlyRentOf({ version: c.version ?? 1, storagePrice: BigInt(c.storagePrice), maxBytes: c.maxBytes }, mine.get(id) ?? 0)
  }
  return total
}

/**
 * Satoshis spent on an object so far, by kind: its share of what was
 * spent under each contract it has shards in (by the bytes it holds there
 * now), whole under a contract it alone uses
 */
export function spentOn (object: StoredObject): { upload: bigint, download: bigint, rent: bigint } {
  const out = { upload: 0n, download: 0n, rent: 0n }
  const mine = objectBytesByContract(object)
  for (const [id, c] of Object.entries(object.contracts)) {
    const all = bytesHeld(c)
    const part = (sats: string): bigint => {
      const total = BigInt(sats)
      const bytes = mine.get(id) ?? 0
      // a contract it no longer has shards in (renewed, replaced) counts whole when nothing else is there
      return all === 0 || bytes >= all ? total : (total * BigInt(bytes) + BigInt(all) - 1n) / BigInt(all)
    }
    out.upload += part(c.spent.upload)
    out.download += part(c.spent.download)
    out.rent += part(c.spent.rent)
  }
  return out
}

/** Whether a contract is due for renewal at `now`: live, and within renewBeforeMs (or a third of its length) of its end */
export function renewalDue (c: ContractRecord, now: number, renewBeforeMs: number): boolean {
  const length = c.end - c.start
  return c.ended == null && c.lost == null && c.end > now && c.end - now <= Math.min(renewBeforeMs, length / 3)
}

export interface ObjectHealth {
  /** the fewest healthy shards of any segment, and how many are needed */
  healthy: number
  needed: number
  total: number
  state: 'healthy' | 'degraded' | 'at-risk' | 'lost'
  /** contracts whose host was caught or condemned */
  lostContracts: number
  /** single shards their hosts said are gone or corrupt */
  lostShards: number
  /** the fewest shards of a segment that count and whose host audits can reach now */
  reachable: number
  /** hosts of shards that count which audits cannot reach now (not lost until the audit grace has passed) */
  unreachableHosts: number
  /** hosts holding shards that count */
  hosts: number
  lastAudit?: number
}

/** Whether a contract's shards count: not ended, expired or condemned */
export function contractCounts (object: StoredObject, contract: string, now: number): boolean {
  const c = object.contracts[contract]
  return c != null && c.ended == null && c.lost == null && c.end > now
}

/** Whether a shard counts towards its segment's health: its contract does, and its host has not said it is gone */
export function shardCounts (object: StoredObject, shard: ShardRecord, now = Date.now()): boolean {
  return shard.lost == null && contractCounts(object, shard.contract, now)
}

/** Whether any segment's shard is held under this contract */
export function referenced (object: StoredObject, contract: string): boolean {
  return object.segments.some(s => s.shards.some(x => x.contract === contract))
}

/** Roots of a contract its host said are gone or corrupt */
export function lostRootsOf (object: StoredObject, contract: string): Set<string> {
  const out = new Set<string>()
  for (const segment of object.segments) {
    for (const shard of segment.shards) {
      if (shard.contract === contract && shard.lost != null) {
        out.add(shard.root)
      }
    }
  }
  return out
}

/** Why a contract was condemned (see ContractRecord.lostFor) */
export function lostKind (c: ContractRecord): 'cheated' | 'unreachable' | 'replaced' | undefined {
  if (c.lost == null) {
    return undefined
  }
  return c.lostFor ?? (c.lostReason?.startsWith('unreachable') === true ? 'unreachable' : 'cheated')
}

/** The renter's rating of a host at a contract's end: satisfactory unless it was caught or lost shards */
export function servedWell (c: ContractRecord): boolean {
  return c.lost == null && (c.audit?.failed ?? 0) === 0 && (c.shardsLost ?? 0) === 0
}

/**
 * How many shards of each segment still count (shardCounts). "at-risk" is
 * one loss from losing a segment; "degraded", below N. Shards on hosts that
 * audits cannot reach right now still count (a restart is not a loss until
 * the audit grace has passed) but are shown beside: `reachable`.
 */
export function healthOf (object: StoredObject, now = Date.now()): ObjectHealth {
  const down = (contract: string): boolean => object.contracts[contract]?.audit?.unreachableSince != null
  const counted = object.segments.map(s => s.shards.filter(x => shardCounts(object, x, now)))
  const healthy = counted.length === 0 ? 0 : Math.min(...counted.map(c => c.length))
  const reachable = counted.length === 0 ? 0 : Math.min(...counted.map(c => c.filter(x => !down(x.contract)).length))
  const unreachableHosts = new Set(counted.flatMap(c => c.filter(x => down(x.contract)).map(x => x.host)))
  const audits = Object.values(object.contracts).map(c => c.audit?.passedAt ?? 0).filter(t => t > 0)
  return {
    healthy,
    needed: object.k,
    total: object.n,
    state: healthy >= object.n ? 'healthy' : healthy > object.k ? 'degraded' : healthy === object.k ? 'at-risk' : 'lost',
    lostContracts: Object.values(object.contracts).filter(c => c.lost != null).length,
    lostShards: object.segments.reduce((n, s) => n + s.shards.filter(x => x.lost != null).length, 0),
    reachable,
    unreachableHosts: unreachableHosts.size,
    hosts: new Set(counted.flat().map(x => x.host)).size,
    lastAudit: audits.length === 0 ? undefined : Math.max(...audits)
  }
}
