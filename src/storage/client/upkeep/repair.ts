import { logger } from '@libp2p/logger'
import { ReedSolomon } from '../../protocol/erasure.ts'
import { merkleRoot } from '../../protocol/merkle.ts'
import { MAX_FAILED_REPAIR_UPLOADS, MAX_REPAIR_RETRY_MS } from '../../constants.ts'
import { IntegrityError, RepairStuckError } from '../../errors.ts'
import { hex, type Contracts, type Lease } from '../contracts.ts'
import { healthOf, lostKind, referenced, shardCounts } from '../health.ts'
import { inTransfer, releaseSegmentMemory, type SegmentSlots } from '../memory.ts'
import { applyTransfer, newTransfer, type Transfer } from '../transfer.ts'
import { markMigrations, marketView, type MigrationPolicy } from './migration.ts'
import type { Downloader } from '../download.ts'
import type { HostOffer, StorageClientComponents } from '../interface.ts'
import type { Records, ShardRecord, StoredObject } from '../records.ts'

const log = logger('opencloud:storage:client:repair')

/** hosts that failed an upload of an object's repair, each with how often and until when it is held off */
export type Backoff = Map<string, { failures: number, until: number }>

/**
 * How long a repair stuck `attempts` times in a row waits before the next
 * (repairRetryMs, doubling, at most MAX_REPAIR_RETRY_MS); a host that
 * failed `failures` uploads of it is held off for the wait of one attempt
 * more, twice the object's, so the next attempt asks other hosts first
 */
export function repairWaitMs (repairRetryMs: number, attempts: number): number {
  return Math.min(MAX_REPAIR_RETRY_MS, repairRetryMs * 2 ** (attempts - 1))
}

/**
 * Hosts that may take a lost shard of `segments`, best first, or why there
 * is none. A host qualifies if it holds no shard that counts in any of those
 * segments: two shards of one segment on one host would make one failure
 * cost two, and K-of-N would no longer mean that any N-K hosts may vanish,
 * so a host already holding one is never used (repair waits instead, and
 * says so). Hosts caught cheating and hosts being moved off are never
 * used, nor, for now, those `heldOff` (they failed an upload of this
 * object's repair: see repairRetryMs). New hosts come first; then hosts this object used that hold nothing
 * of those segments now, such as one condemned only for being unreachable
 * (or replaced during the upload) that answers again; last, hosts that said
 * they lost a shard of it.
 */
export function repairCandidates (object: StoredObject, segments: number[], offers: HostOffer[], now: number, heldOff: Set<string> = new Set()): { hosts: HostOffer[], why: string } {
  const contracts = Object.values(object.contracts)
  const cheated = new Set(contracts.filter(c => lostKind(c) === 'cheated').map(c => c.host))
  const leaving = new Set(contracts.filter(c => c.migrating != null && c.ended == null).map(c => c.host))
  const holding = new Set(segments.flatMap(i => object.segments[i].shards.filter(x => shardCounts(object, x, now)).map(x => x.host)))
  const used = new Set(contracts.map(c => c.host))
  const eligible = offers.filter(h => !cheated.has(h.peer) && !leaving.has(h.peer) && !holding.has(h.peer) && !heldOff.has(h.peer))
  // of those used before, hosts that lost shards of this file come last
  const lostShards = new Set(contracts.filter(c => (c.shardsLost ?? 0) > 0).map(c => c.host))
  const again = eligible.filter(h => used.has(h.peer))
  const hosts = [...eligible.filter(h => !used.has(h.peer)), ...again.filter(h => !lostShards.has(h.peer)), ...again.filter(h => lostShards.has(h.peer))]
  const busy = offers.filter(h => holding.has(h.peer)).length
  const caught = offers.filter(h => cheated.has(h.peer)).length
  const moving = offers.filter(h => leaving.has(h.peer)).length
  const failed = offers.filter(h => heldOff.has(h.peer) && !holding.has(h.peer) && !cheated.has(h.peer)).length
  const parts = [`${busy} hold a shard of those segments already`, ...(caught > 0 ? [`${caught} were caught cheating`] : []), ...(moving > 0 ? [`${moving} are being moved off`] : []), ...(failed > 0 ? [`${failed} failed an upload of this repair recently and are asked again later`] : [])]
  const why = `of the ${offers.length} hosts the market knows, ${parts.join(', ')}; a shard needs a host that holds no other shard of its segment, so repair waits for a new host to join or a lost one to come back`
  return { hosts, why }
}

export interface RepairComponents extends Pick<StorageClientComponents, 'hosts' | 'trust' | 'rate'> {
  records: Records
  contracts: Pick<Contracts, 'acquire' | 'putShard'>
  downloader: Pick<Downloader, 'fetchSegment'>
  slots: SegmentSlots
}

export interface RepairInit extends MigrationPolicy {
  /** how many of a segment's N shards may be lost before the object is repaired */
  repairAfterLost: (k: number, n: number) => number
  /** a stuck repair waits this long before the next attempt, doubling */
  repairRetryMs: number
  /** the longest a repair's new contract runs (it ends with the object's others) */
  durationMs: number
}

/**
 * Repair and migration (renterd's autopilot): objects that lost enough
 * shards, or that are moving off hosts whose price rose or whose trust
 * fell, have their lost shards rebuilt onto other hosts
 */
export class Repairer {
  private readonly components: RepairComponents
  private readonly init: RepairInit
  /** objects being repaired, each with what stops its repair (store rm does): never two at once */
  private readonly repairing = new Map<string, AbortController>()

  constructor (components: RepairComponents, init: RepairInit) {
    this.components = components
    this.init = init
  }

  isRepairing (id: string): boolean {
    return this.repairing.has(id)
  }

  /** Stop the repair of an object under way, if any (store rm of it does) */
  stopRepair (id: string, reason: Error): void {
    this.repairing.get(id)?.abort(reason)
  }

  /**
   * Repair every object that has lost enough shards, unless its last repair
   * was stuck and its retry time (repairRetryMs) has not come; resolves
   * with how many shards were rebuilt. The caller holds the records.
   */
  async repairDue (now: number, signal: AbortSignal): Promise<number> {
    const { records } = this.components
    let rebuilt = 0
    const offers = await this.components.hosts()
    const market = marketView(offers, this.components.trust)
    for (const object of await records.list()) {
      signal.throwIfAborted()
      // hosts to move away from although they did nothing wrong
      const marked = markMigrations(object, market, this.init, now)
      if (marked.changed) {
        await records.saveObject(object)
      }
      const health = healthOf(object)
      const migrate = marked.migrate || Object.values(object.contracts).some(c => c.migrating != null && c.ended == null)
      if (migrate || (object.n - health.healthy >= this.init.repairAfterLost(object.k, object.n) && health.healthy >= object.k)) {
        if (object.repair?.retryAt != null && now < object.repair.retryAt) {
          log('the repair of "%s" is stuck; tried again at %s', object.name, new Date(object.repair.retryAt).toISOString())
          continue
        }
        try {
          rebuilt += await this.repairObject(object, offers, signal, now)
        } catch (err: any) {
          if (signal.aborted) {
            throw err
          }
          // a stuck repair says so once per change of problem (repairObject)
          if (!(err instanceof RepairStuckError)) {
            log.error('repairing "%s" failed; tried again at the next check - %s', object.name, err.message)
          }
        }
      }
    }
    return rebuilt
  }

  /**
   * Rebuild the shards of an object that no longer count (their contract
   * condemned, ended or expired, or the host said the shard is gone) onto
   * other hosts: K healthy shards of each segment are fetched and checked,
   * the missing ones regenerated (the code is deterministic, so each comes
   * back with its original root), and each lost slot goes to a host that
   * holds no other shard of those segments, under a new contract that ends
   * with the others. The new contract is in the object's record before
   * anything is uploaded, and ended if the slot cannot be finished; the
   * segments point at it only once the slot is whole, and the old contract
   * is then ended and paid no more. Why a slot could not be repaired is
   * kept in the record (`store status` shows it). `now` is the time of the
   * check that asked (the repair's retry time and its hosts' backoff count
   * from it); its transfers run on the clock. The caller holds the records.
   */
  async repairObject (object: StoredObject, offers: HostOffer[], signal: AbortSignal, now: number): Promise<number> {
    if (this.repairing.has(object.id)) {
      return 0
    }
    // store rm of this object stops its repair rather than wait for it
    const stop = new AbortController()
    this.repairing.set(object.id, stop)
    const both = AbortSignal.any([signal, stop.signal])
    const transfer = newTransfer(object)
    const problems: string[] = []
    // hosts that failed an upload of this object's repair: those still
    // held off are offered nothing, and each one's failures count on after
    // its wait is over, so a host that fails again waits twice as long
    // (until the repair succeeds and the state goes)
    const backoff: Backoff = new Map(Object.entries(object.repair?.hosts ?? {}))
    let rebuilt = 0
    try {
      // per slot, the segments whose shard there no longer counts or is moving off its host
      const lostSlots = new Map<number, number[]>()
      object.segments.forEach((segment, i) => {
        segment.shards.forEach((shard, slot) => {
          if (!shardCounts(object, shard, now) || object.contracts[shard.contract]?.migrating != null) {
            lostSlots.set(slot, [...(lostSlots.get(slot) ?? []), i])
          }
        })
      })
      const liveEnds = Object.values(object.contracts).filter(c => c.ended == null && c.lost == null && c.end > now).map(c => c.end)
      const durationMs = Math.max(60_000, Math.min(...liveEnds, now + this.init.durationMs) - now)
      for (const [slot, segments] of lostSlots) {
        try {
          rebuilt += await inTransfer(async () => this.repairSlot(object, slot, segments, offers, durationMs, transfer, both, backoff, now))
        } catch (err: any) {
          if (both.aborted) {
            throw err
          }
          problems.push(err.message)
        }
      }
    } finally {
      this.repairing.delete(object.id)
      // what the fetches found (shards gone, hosts that lied) counts from now on
      applyTransfer(object, transfer, Date.now())
      if (problems.length > 0) {
        const problem = problems.join('\n')
        const attempts = (object.repair?.attempts ?? 0) + 1
        const retryAt = now + repairWaitMs(this.init.repairRetryMs, attempts)
        if (problem !== object.repair?.problem) {
          // once per change of problem, not at every attempt
          log.error('the repair of "%s" is stuck; tried again at %s - %s', object.name, new Date(retryAt).toISOString(), problem)
        }
        object.repair = { problem, at: object.repair?.at ?? now, attempts, retryAt, hosts: Object.fromEntries(backoff) }
      } else if (!both.aborted) {
        delete object.repair
      }
      await this.components.records.saveIfStored(object)
    }
    if (problems.length > 0) {
      throw new RepairStuckError(problems.join('\n'))
    }
    return rebuilt
  }

  /**
   * Put one slot's lost shards (of `segments`) on one host; resolves with
   * how many were moved. A host that signs and then fails the upload is
   * held off in `backoff` (see repairRetryMs).
   */
  private async repairSlot (object: StoredObject, slot: number, segments: number[], offers: HostOffer[], durationMs: number, transfer: Transfer, signal: AbortSignal, backoff: Backoff, now: number): Promise<number> {
    const { records, contracts, downloader, slots } = this.components
    const bytes = segments.reduce((n, i) => n + object.segments[i].shardSize, 0)
    const heldOff = new Set([...backoff].filter(([, b]) => b.until > now).map(([peer]) => peer))
    const { hosts, why } = repairCandidates(object, segments, offers, Date.now(), heldOff)
    if (hosts.length === 0) {
      throw new RepairStuckError(`no host can take shard ${slot + 1} of ${segments.length} segments of "${object.name}": ${why}`)
    }
    const rs = new ReedSolomon(object.k, object.n)
    const refusals: string[] = []
    let failedUploads = 0
    for (const host of hosts) {
      // hosts that sign and then fail the upload: a few, then the next check
      if (failedUploads >= MAX_FAILED_REPAIR_UPLOADS) {
        break
      }
      signal.throwIfAborted()
      let lease: Lease
      try {
        lease = await contracts.acquire(host, bytes, durationMs, signal)
      } catch (err: any) {
        if (signal.aborted) {
          throw err
        }
        refusals.push(`${host.peer}: ${err.message}`)
        continue
      }
      // in the record before anything is sent: a failure or a crash from
      // here on leaves shards that nothing names (collectGarbage deletes them)
      object.contracts[lease.id] = lease.record
      await records.saveObject(object)
      const moved: Array<[number, ShardRecord]> = []
      let uploading = false
      try {
        for (const i of segments) {
          const segment = object.segments[i]
          const give = await slots.take(signal)
          try {
            const shards = rs.reconstruct(await downloader.fetchSegment(object, i, transfer, signal))
            const root = merkleRoot(shards[slot])
            if (hex(root) !== segment.shards[slot].root) {
              throw new IntegrityError(`shard ${slot + 1} of segment ${i} of "${object.name}" rebuilt to another root`)
            }
            uploading = true
            const under = await contracts.putShard(lease.id, lease.record, shards[slot], root, signal)
            uploading = false
            if (object.contracts[under] == null) {
              object.contracts[under] = records.contracts.get(under) ?? lease.record
            }
            moved.push([i, { host: host.peer, contract: under, root: hex(root) }])
          } finally {
            give()
            releaseSegmentMemory()
          }
        }
      } catch (err: any) {
        lease.release()
        const hostFailed = uploading && !signal.aborted
        if (hostFailed) {
          // rated, and held off for this object (backoff); its contract is
          // shared with other objects, which a failed put does not condemn
          this.components.rate?.(host.peer, 'failed', 'put')
        }
        // the shards it took are named by no object: collectGarbage deletes
        // them (or ends the contract, when nothing else is under it)
        if (!referenced(object, lease.id)) {
          delete object.contracts[lease.id]
        }
        await records.saveObject(object)
        if (hostFailed) {
          failedUploads++
          const failures = (backoff.get(host.peer)?.failures ?? 0) + 1
          // twice the object's wait: its next attempt asks other hosts first
          backoff.set(host.peer, { failures, until: now + repairWaitMs(this.init.repairRetryMs, failures + 1) })
          refusals.push(`${host.peer}: ${err.message}`)
          log('host %s failed the repair of shard %d of "%s"; trying the next - %s', host.peer, slot + 1, object.name, err.message)
          continue
        }
        throw err
      }
      for (const [i, record] of moved) {
        object.segments[i].shards[slot] = record
      }
      // the old shards are named by nothing now: collectGarbage deletes
      // them, or ends a contract that nothing else is under (no more rent)
      await records.saveObject(object)
      lease.release()
      log('repaired shard %d of "%s": %d segments moved to %s', slot + 1, object.name, moved.length, host.peer)
      return moved.length
    }
    throw new RepairStuckError(`no host took shard ${slot + 1} of "${object.name}"; the hosts tried said:\n  ${refusals.join('\n  ')}`)
  }
}
