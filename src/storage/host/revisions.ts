import { InvalidSignatureError } from '../../protocols/rpc/errors.ts'
import { encodeRevision, encodeSigned, nextRevision, signRevision, verifyRevision } from '../protocol/contract.ts'
import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import type { HostContract, SignedRevision } from './contract-book.ts'

/**
 * The revision a put or delete of `root` leads to, checked against the
 * renter's signature: `change` is the new shard's length for a put of a
 * shard the contract does not hold, `held` for a put of one it holds
 * (the revision stays), `delete` for a delete. The last one checked is
 * kept with the contract, so the handler's check after the pipeline's
 * does not hash the shard set again.
 */
export function expectRevision (c: HostContract, root: string, change: number | 'held' | 'delete', renterSignature: Uint8Array): SignedRevision {
  const key = `${c.revision} ${root} ${change} ${Buffer.from(renterSignature).toString('base64')}`
  if (c.checked?.key !== key) {
    let next: SignedRevision
    if (change === 'held') {
      next = revisionSigned(c, c.shards, c.revision, renterSignature)
    } else {
      const shards = new Map(c.shards)
      if (change === 'delete') {
        shards.delete(root)
      } else {
        shards.set(root, change)
      }
      next = revisionSigned(c, shards, c.revision + 1, renterSignature)
    }
    c.checked = { key, next }
  }
  return c.checked.next
}

/**
 * The revision `number` of a contract holding `shards`, checked against
 * the renter's signature: nothing may change unless the renter signed
 * exactly what the host would countersign.
 */
export function revisionSigned (c: HostContract, shards: Map<string, number>, number: number, renterSignature: Uint8Array): SignedRevision {
  const rev = nextRevision(Buffer.from(c.id, 'hex'), number - 1, [...shards].map(([root, length]) => ({ root: Buffer.from(root, 'hex'), length })))
  const encoded = encodeRevision(rev)
  try {
    verifyRevision(encoded, c.terms.renter, renterSignature)
  } catch {
    throw new InvalidSignatureError(`the renter's signature is not over revision ${rev.number} (${rev.shards} shards, ${rev.bytes} bytes, data root ${Buffer.from(rev.root).toString('hex')}); list the contract to resynchronise`)
  }
  return { encoded, renterSignature, number: rev.number, bytes: rev.bytes, shards }
}

/** Move a contract to a revision the renter signed, with this host's signature (saved by the caller); answers that signature, base64 */
export function countersign (c: HostContract, rev: SignedRevision, signer: CredentialSigner): string {
  const hostSignature = signRevision(rev.encoded, signer)
  c.shards = rev.shards
  c.bytes = rev.bytes
  c.checked = undefined
  c.revision = rev.number
  c.signedRevision = encodeSigned(rev.encoded, rev.renterSignature, hostSignature)
  return Buffer.from(hostSignature).toString('base64')
}
