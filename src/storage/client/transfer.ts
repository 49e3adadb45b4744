import { logger } from '@libp2p/logger'
import { retryRepairNow, type StoredObject } from './records.ts'

const log = logger('opencloud:storage:client')

/**
 * What one transfer (a get, or one repair) learns, shared by its segments:
 * hosts to ask last for the rest of it (one that failed or was slow: a
 * frozen host would otherwise cost the hedge time again on every segment),
 * and what goes into the object's record afterwards (applyTransfer).
 */
export interface Transfer {
  /** hosts that failed or were caught: asked last */
  avoid: Set<string>
  /** hosts whose answer is later than the hedge time and has not come: asked after the others */
  slow: Set<string>
  /** "segment slot" -> the shard its host said is gone or corrupt */
  lostShards: Map<string, { contract: string, root: string, reason: string }>
  /** contracts whose host sent bytes that are not the shard -> why */
  cheated: Map<string, string>
  /** contracts whose host did not answer in time: audited at the next check */
  unreachable: Set<string>
  /** satoshis paid for downloads, per contract */
  spent: Map<string, bigint>
}

export function newTransfer (object: StoredObject): Transfer {
  // condemned hosts are asked last, only if the others cannot give K shards
  const avoid = new Set(Object.values(object.contracts).filter(c => c.lost != null).map(c => c.host))
  return { avoid, slow: new Set(), lostShards: new Map(), cheated: new Map(), unreachable: new Set(), spent: new Map() }
}

/** Write what a transfer learned into an object's record; true when its health changed */
export function applyTransfer (object: StoredObject, transfer: Transfer, now: number): boolean {
  let changed = false
  for (const [id, sats] of transfer.spent) {
    const c = object.contracts[id]
    if (c != null) {
      c.spent.download = String(BigInt(c.spent.download) + sats)
    }
  }
  for (const [key, found] of transfer.lostShards) {
    const [segment, slot] = key.split(' ').map(Number)
    const shard = object.segments[segment]?.shards[slot]
    // unless a repair has moved it meanwhile
    if (shard == null || shard.contract !== found.contract || shard.root !== found.root || shard.lost != null) {
      continue
    }
    shard.lost = now
    shard.lostReason = found.reason
    const c = object.contracts[found.contract]
    if (c != null) {
      c.shardsLost = (c.shardsLost ?? 0) + 1
    }
    changed = true
    log.error('shard %d of segment %d of "%s" is lost: %s', slot + 1, segment, object.name, found.reason)
  }
  for (const [id, reason] of transfer.cheated) {
    const c = object.contracts[id]
    if (c == null || c.lost != null || c.ended != null) {
      continue
    }
    // as a failed audit: the host was paid to keep the shard, and did not
    c.audit ??= { passed: 0, failed: 0, next: now }
    c.audit.failed++
    c.lost = now
    c.lostFor = 'cheated'
    c.lostReason = reason
    changed = true
    log.error('contract %s of "%s" condemned: %s', id, object.name, reason)
  }
  if (changed) {
    retryRepairNow(object)
  }
  for (const id of transfer.unreachable) {
    const c = object.contracts[id]
    if (c != null && c.lost == null && c.ended == null) {
      // the next check audits it, which tells a restart from a host gone
      c.audit ??= { passed: 0, failed: 0, next: now }
      c.audit.next = Math.min(c.audit.next, now)
    }
  }
  return changed
}
