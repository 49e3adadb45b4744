import { randomBytes } from 'node:crypto'
import { judgeHostError } from './host-answers.ts'
import { decodeProofs } from './protocol/proofs.ts'
import { decodeRevision, decodeSigned } from './protocol/contract.ts'
import { challengeLeaves, dataRoot, equalBytes, LEAF_SIZE, leafCount, verifyPath } from './protocol/merkle.ts'
import type { CallRequest, CallResponse } from '../protocols/rpc/rpc-client.ts'

/**
 * One audit of one shard (PROTOCOL.md section 8d, `prove`): a fresh random
 * challenge picks leaves the host cannot predict, and their proofs must lead
 * to the shard's root, which must be among the roots of the revision both
 * sides signed. A host that dropped the shard, or keeps only its root, fails.
 */

/** How many leaves one audit checks: 4 x 4 KiB plus their paths, per shard */
export const AUDIT_LEAVES = 4

/** The host answered, and the answer is wrong or says the shard is gone */
export class AuditFailedError extends Error {
  override name = 'AuditFailedError'
}

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

export type AuditCall = (peer: string, request: CallRequest) => Promise<CallResponse>

/**
 * Audit one shard of a contract, chosen at random. Resolves when the proofs
 * verify; throws AuditFailedError when the host is caught (it says the
 * shard is lost, or its proof is wrong), and any other error when it could
 * not be asked or failed on its side (unreachable, timed out, server-error).
 */
export async function auditContract (target: AuditTarget, call: AuditCall, signal?: AbortSignal): Promise<{ root: string, leaves: number[] }> {
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
    const response = await call(target.host, { service: 'storage', method: 'prove', args: [target.contract, root, challenge.toString('hex'), String(count)], signal })
    bytes = await response.body.bytes()
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
