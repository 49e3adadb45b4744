import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { decodeProofs } from '../../protocol/proofs.ts'
import { decodeRevision, decodeSigned } from '../../protocol/contract.ts'
import { challengeLeaves, dataRoot, equalBytes, LEAF_SIZE, leafCount, verifyPath } from '../../protocol/merkle.ts'
import { AUDIT_LEAVES } from '../../constants.ts'
import { AuditFailedError } from '../../errors.ts'
import { lostRootsOf } from '../health.ts'
import { hostAnswered, judgeHostError } from '../host-answers.ts'
import { retryRepairNow, type AuditRecord, type ContractRecord, type Records, type StoredObject } from '../records.ts'
import type { StorageClientComponents } from '../interface.ts'
import type { StorageSession } from '../session.ts'

const log = logger('opencloud:storage:client:audits')

export { AUDIT_LEAVES, AuditFailedError }

/**
 * One audit of one shard (PROTOCOL.md section 8d, `prove`): a fresh random
 * challenge picks leaves the host cannot predict, and their proofs must lead
 * to the shard's root, which must be among the roots of the revision both
 * sides signed. A host that dropped the shard, or keeps only its root, fails.
 */

export interface AuditTarget {
  contract: string
  host: string
  /** encodeSigned(revision, renter signature, host signature), base64 */
  signedRevision?: string
  /** [root hex, bytes] of every shard the contract holds */
  shards: Array<[string, number]>
  /** roots the host already said are gone or corrupt (counted as lost already): not challenged again */
  known?: Set<string>
}

/**
 * Audit one shard of a contract, chosen at random. Resolves when the proofs
 * verify; throws AuditFailedError when the host is caught (it says the
 * shard is lost, or its proof is wrong), and any other error when it could
 * not be asked or failed on its side (unreachable, timed out, server-error).
 */
export async function auditContract (target: AuditTarget, session: Pick<StorageSession, 'prove'>, signal?: AbortSignal): Promise<{ root: string, leaves: number[] }> {
  if (target.shards.length === 0) {
    return { root: '', leaves: [] }
  }
  // the shard set must be the one the host signed for
  if (target.signedRevision != null) {
    const revision = decodeRevision(decodeSigned(Buffer.from(target.signedRevision, 'base64')).message)
    if (!equalBytes(revision.root, dataRoot(target.shards.map(([root]) => Buffer.from(root, 'hex'))))) {
      throw new Error(`the shards recorded for contract ${target.contract} are not the ones of its signed revision ${revision.number}`)
    }
  }
  const candidates = target.shards.filter(([root]) => target.known?.has(root) !== true)
  if (candidates.length === 0) {
    return { root: '', leaves: [] }
  }
  const [root, size] = candidates[Math.floor(Math.random() * candidates.length)]
  const leaves = leafCount(size)
  const count = Math.min(AUDIT_LEAVES, leaves)
  const challenge = randomBytes(32)
  let bytes: Uint8Array
  try {
    bytes = await session.prove(target.host, target.contract, root, challenge, count, signal)
  } catch (err: any) {
    // "no such shard", "corrupt here", "missing here": the host lost what
    // it was paid to keep; anything else (a server-error, no answer) is
    // transient, and the audit grace applies (judgeHostError)
    if (judgeHostError(err) === 'lost') {
      throw new AuditFailedError(`host ${target.host} no longer has shard ${root}: ${err.message}`)
    }
    throw err
  }
  const expected = challengeLeaves(challenge, leaves, count)
  let proofs
  try {
    proofs = decodeProofs(bytes)
  } catch (err: any) {
    throw new AuditFailedError(`host ${target.host} answered the audit of shard ${root} with a malformed proof: ${err.message}`)
  }
  if (proofs.length !== count) {
    throw new AuditFailedError(`host ${target.host} proved ${proofs.length} leaves of shard ${root}, not the ${count} asked`)
  }
  for (let i = 0; i < count; i++) {
    const proof = proofs[i]
    const want = Math.min(LEAF_SIZE, size - expected[i] * LEAF_SIZE)
    if (proof.index !== expected[i] || proof.leaf.byteLength !== want) {
      throw new AuditFailedError(`host ${target.host} proved leaf ${proof.index} of shard ${root}, not leaf ${expected[i]} that the challenge picked`)
    }
    try {
      verifyPath(Buffer.from(root, 'hex'), leaves, proof.index, proof.leaf, proof.path)
    } catch (err: any) {
      throw new AuditFailedError(`host ${target.host} failed the audit of shard ${root}: leaf ${proof.index} ${err.message}`)
    }
  }
  return { root, leaves: expected }
}

export interface AuditsComponents extends Pick<StorageClientComponents, 'rate'> {
  records: Records
  session: Pick<StorageSession, 'prove'>
}

export interface AuditsInit {
  /** each contract is audited about this often, spread at random over 0.5x to 1.5x */
  auditIntervalMs: number
  /** a host unreachable this long is condemned */
  auditGraceMs: number
}

export interface AuditCounts {
  passed: number
  failed: number
  unreachable: number
}

/**
 * Audit the contracts that are due (see auditIntervalMs). A host that
 * fails is condemned at once and rated; one that cannot be reached is
 * tried again at each check and condemned only after auditGraceMs, and
 * only while some host answers (when none does, this node is the one
 * offline). Resolves with what was audited. The caller holds the records.
 */
export async function auditDue ({ records, session, rate }: AuditsComponents, init: AuditsInit, now: number, signal: AbortSignal): Promise<AuditCounts> {
  const counts = { passed: 0, failed: 0, unreachable: 0 }
  // hosts that answered with a refusal of their own (a server-error): not
  // a pass or a failure, but proof that this node reaches the network
  let answered = 0
  const changed: StoredObject[] = []
  const unreachable: Array<{ object: StoredObject, id: string, c: ContractRecord, err: Error }> = []
  for (const object of await records.list()) {
    let touched = false
    for (const [id, c] of Object.entries(object.contracts)) {
      const known = lostRootsOf(object, id)
      if (c.ended != null || c.lost != null || c.end <= now || c.shards.length <= known.size) {
        continue
      }
      c.audit ??= { passed: 0, failed: 0, next: c.start + Math.random() * init.auditIntervalMs }
      if (c.audit.next > now) {
        continue
      }
      signal.throwIfAborted()
      touched = true
      c.audit.at = now
      try {
        await auditContract({ contract: id, host: c.host, signedRevision: c.signedRevision, shards: c.shards, known }, session, signal)
        c.audit.passed++
        c.audit.passedAt = now
        c.audit.unreachableSince = undefined
        c.audit.lastError = undefined
        c.audit.next = now + init.auditIntervalMs * (0.5 + Math.random())
        counts.passed++
      } catch (err: any) {
        if (signal.aborted) {
          throw err
        }
        c.audit.lastError = err.message
        if (err instanceof AuditFailedError) {
          c.audit.failed++
          c.lost = now
          c.lostReason = err.message
          c.lostFor = 'cheated'
          counts.failed++
          retryRepairNow(object)
          rate?.(c.host, 'corrupt', 'prove')
          log.error('audit: %s', err.message)
        } else {
          // unreachable, or failing on its side (server-error): transient
          // until the grace has passed (judgeHostError)
          unreachable.push({ object, id, c, err })
          counts.unreachable++
          answered += hostAnswered(err) ? 1 : 0
          // tried again at the next check, not after a whole interval
          c.audit.next = now
        }
      }
    }
    if (touched) {
      changed.push(object)
    }
  }
  // when no host at all answered, this node is the one offline: nobody's
  // grace starts running until it can reach someone again
  const online = counts.passed + counts.failed + answered > 0
  if (!online && unreachable.length > 0) {
    log('audit: no host answered; this node seems offline, so no host is held to it')
  }
  for (const { object, id, c, err } of unreachable) {
    const audit = c.audit as AuditRecord
    if (!online) {
      continue
    }
    audit.unreachableSince ??= now
    if (now - audit.unreachableSince >= init.auditGraceMs) {
      audit.failed++
      c.lost = now
      c.lostFor = 'unreachable'
      c.lostReason = `unreachable since ${new Date(audit.unreachableSince).toISOString()} (${err.message})`
      retryRepairNow(object)
      rate?.(c.host, 'failed', 'prove')
      log.error('audit: host %s of contract %s condemned: %s', c.host, id, c.lostReason)
    } else {
      log('audit: host %s of contract %s unreachable, tried again - %s', c.host, id, err.message)
    }
  }
  for (const object of changed) {
    await records.saveIfStored(object)
  }
  return counts
}
