import { formatAmount } from '../protocols/units.ts'
import { monthlyRentOf, type TermsVersion } from './protocol/contract.ts'
import { bytesHeld, healthOf, lostKind, monthlyRent, objectBytesByContract, spentOn, type ObjectHealth, type StoredObject } from './client/storage-client.ts'
import { formatSize } from '../utils/size.ts'

/**
 * How stored objects look in the control API and `store ... --json`: every
 * amount with its unit ("0.00001 BTC"), sizes in bytes with a readable form
 * beside them.
 */

export function objectSummary (o: StoredObject): Record<string, unknown> {
  const spent = spentOn(o)
  // once per object: it walks every shard of every segment
  const health = healthOf(o)
  return {
    id: o.id,
    name: o.name,
    // which version of its name (1-based), and whether a newer one replaced it
    version: o.version ?? 1,
    current: o.supersededAt == null,
    supersededAt: o.supersededAt == null ? null : new Date(o.supersededAt).toISOString(),
    size: o.size,
    sizeText: formatSize(o.size),
    sha256: o.sha256,
    redundancy: `${o.k}-of-${o.n}`,
    redundancyText: redundancyText(o, health),
    segments: o.segmentCount ?? o.segments.length,
    // hosts holding shards that count (not those condemned, ended or replaced)
    hosts: o.removedAt != null ? 0 : health.hosts,
    removed: o.removedAt == null ? null : new Date(o.removedAt).toISOString(),
    contracts: Object.keys(o.contracts).length,
    storedAt: new Date(o.createdAt).toISOString(),
    // the contracts in force: an ended, renewed or condemned one's end is past or moot
    expires: new Date(Math.min(...liveEnds(o))).toISOString(),
    // exact rent is often a fraction of a satoshi a month: shown rounded up
    rentPerMonth: formatAmount(BigInt(Math.ceil(monthlyRent(o)))),
    health: healthView(o, health),
    spent: {
      upload: formatAmount(spent.upload),
      download: formatAmount(spent.download),
      rent: formatAmount(spent.rent),
      total: formatAmount(spent.upload + spent.download + spent.rent)
    }
  }
}

/** One line of `store versions NAME`: its number, size, date, sha256, rent, and whether it is current */
export function versionView (o: StoredObject): Record<string, unknown> {
  return {
    version: o.version ?? 1,
    id: o.id,
    size: o.size,
    sizeText: formatSize(o.size),
    storedAt: new Date(o.createdAt).toISOString(),
    sha256: o.sha256,
    rentPerMonth: formatAmount(BigInt(Math.ceil(monthlyRent(o)))),
    current: o.supersededAt == null,
    supersededAt: o.supersededAt == null ? null : new Date(o.supersededAt).toISOString()
  }
}

/**
 * "4-of-8 (any 4 of its 8 hosts rebuild it)" only while that is true:
 * every segment has its N shards, on N hosts of their own; else what is
 * (a put that replaced a host, or a shard lost, leaves fewer)
 */
export function redundancyText (o: StoredObject, h: ObjectHealth = healthOf(o)): string {
  const redundancy = `${o.k}-of-${o.n}`
  if (o.removedAt != null) {
    return `${redundancy} (removed ${new Date(o.removedAt).toISOString()})`
  }
  if (h.hosts === o.n && h.healthy === o.n) {
    return `${redundancy} (any ${o.k} of its ${o.n} hosts rebuild it)`
  }
  return `${redundancy} (any ${o.k} of a segment's ${o.n} shards rebuild it; its weakest segment has ${h.healthy} that count, on ${h.hosts} hosts)`
}

/**
 * Healthy shards per segment (the fewest of any segment) against K and N,
 * how many of those are on hosts audits cannot reach now, what was lost,
 * the last audit, and why repair is stuck if it is
 */
export function healthView (o: StoredObject, h: ObjectHealth = healthOf(o)): Record<string, unknown> {
  const paidThrough = Object.values(o.contracts).filter(c => c.ended == null && c.lost == null).map(c => c.start + c.rentPaidPeriods * c.rentPeriodMs)
  return {
    state: o.removedAt != null ? 'removed' : h.state,
    healthyShards: h.healthy,
    reachableShards: h.reachable,
    neededShards: h.needed,
    totalShards: h.total,
    unreachableHosts: h.unreachableHosts,
    lostContracts: h.lostContracts,
    lostShards: h.lostShards,
    lastAudit: h.lastAudit == null ? null : new Date(h.lastAudit).toISOString(),
    rentPaidThrough: paidThrough.length === 0 ? null : new Date(Math.min(...paidThrough)).toISOString(),
    repairProblem: o.repair?.problem ?? null,
    repairProblemSince: o.repair == null ? null : new Date(o.repair.at).toISOString()
  }
}

/** The unit a contract's prices are per: TiB from version 2, GiB before */
function unitOf (version: TermsVersion): string {
  return version === 1 ? 'GiB' : 'TiB'
}

/** A fraction as a percentage with the digits that matter: "100%", "12.5%", "0.0031%" */
function percent (fraction: number): string {
  if (fraction >= 1 || fraction <= 0) {
    return `${Math.round(fraction * 100)}%`
  }
  return `${Number((fraction * 100).toPrecision(2))}%`
}

export function objectInfo (o: StoredObject): Record<string, unknown> {
  const mine = objectBytesByContract(o)
  return {
    ...objectSummary(o),
    // what a gateway kept with it (the S3 gateway's ETag, Content-Type, x-amz-meta-*), or null
    meta: o.meta ?? null,
    contracts: Object.entries(o.contracts).map(([id, c]) => {
      const version = c.version ?? 1
      const held = c.shards.length === 0 && o.removedAt != null ? 0 : bytesHeld(c)
      const own = o.removedAt != null ? 0 : mine.get(id) ?? 0
      const terms = { version, storagePrice: BigInt(c.storagePrice), maxBytes: c.maxBytes }
      return {
      id,
      host: c.host,
      version,
      maxBytes: c.maxBytes,
      bytesHeld: held,
      shards: c.shards.length,
      // this object's part of the contract, which other objects share: what its rent is on
      objectBytes: own,
      objectShare: held === 0 ? '0%' : percent(own / held),
      revision: c.revision,
      start: new Date(c.start).toISOString(),
      end: new Date(c.end).toISOString(),
      storagePrice: `${formatAmount(BigInt(c.storagePrice))} per ${unitOf(version)}-month`,
      uploadPrice: `${formatAmount(BigInt(c.uploadPrice))} per ${unitOf(version)}`,
      downloadPrice: `${formatAmount(BigInt(c.downloadPrice))} per ${unitOf(version)}`,
      // rent is accrued exactly and paid in whole satoshis (PROTOCOL.md 8d, "Rent"): these are rounded up to show
      rentPerMonth: formatAmount(BigInt(Math.ceil(monthlyRentOf(terms, held)))),
      objectRentPerMonth: formatAmount(BigInt(Math.ceil(version === 1 ? monthlyRentOf(terms, held) : monthlyRentOf(terms, own)))),
      rentPaid: formatAmount(BigInt(c.rentPaid ?? c.spent.rent)),
      rentPeriodMs: c.rentPeriodMs,
      rentPaidThrough: new Date(c.start + c.rentPaidPeriods * c.rentPeriodMs).toISOString(),
      ended: c.ended == null ? null : new Date(c.ended).toISOString(),
      lost: c.lost == null ? null : { at: new Date(c.lost).toISOString(), reason: c.lostReason, for: lostKind(c) },
      shardsLost: c.shardsLost ?? 0,
      renewedAs: c.renewedAs ?? null,
      migrating: c.migrating ?? null,
      ratings: c.ratings == null
        ? null
        : {
            byYou: c.ratings.renterSatisfied ? 'satisfactory' : 'unsatisfactory',
            byHost: c.ratings.hostSatisfied == null ? null : c.ratings.hostSatisfied ? 'satisfactory' : 'unsatisfactory',
            signedByYou: c.ratings.renter,
            signedByHost: c.ratings.host ?? null
          },
      audits: c.audit == null
        ? null
        : {
            passed: c.audit.passed,
            failed: c.audit.failed,
            lastPassed: c.audit.passedAt == null ? null : new Date(c.audit.passedAt).toISOString(),
            unreachableSince: c.audit.unreachableSince == null ? null : new Date(c.audit.unreachableSince).toISOString(),
            lastError: c.audit.lastError ?? null
          }
      }
    }),
    segmentList: o.segments.map((s, i) => ({
      index: i,
      bytes: s.plainLength,
      shardSize: s.shardSize,
      shards: s.shards.map(x => ({ host: x.host, contract: x.contract, root: x.root, lost: x.lost == null ? null : { at: new Date(x.lost).toISOString(), reason: x.lostReason } }))
    }))
  }
}

/**
 * What storage has cost, from the payments book (TabBook.costs of the
 * storage service): what the calls cost (uploads, downloads, rent: the
 * objects' `spent`), and what paying for them took from the wallet on
 * chain, the transactions' fees included. The two differ: a settlement
 * pays at least the dust limit, and pays deferred calls later.
 */
export function storageCosts (costs: { promised: bigint, unpaid: bigint, paidOnChain: bigint, fees: bigint, throughChannels: bigint }): Record<string, string> {
  return {
    calls: formatAmount(costs.promised),
    throughChannels: formatAmount(costs.throughChannels),
    unpaid: formatAmount(costs.unpaid),
    paidOnChain: formatAmount(costs.paidOnChain),
    fees: formatAmount(costs.fees),
    onChain: formatAmount(costs.paidOnChain + costs.fees)
  }
}

/** When each contract still in force ends; every contract's end when none is (a removed object) */
function liveEnds (o: StoredObject): number[] {
  const all = Object.values(o.contracts)
  const live = all.filter(c => c.ended == null && c.lost == null)
  return (live.length > 0 ? live : all).map(c => c.end)
}
