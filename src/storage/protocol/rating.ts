import { DecodeError, Reader, Writer } from '../../protocols/codec.ts'

import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import { peerBytes, peerText, verifySignedBy, withDomain } from '../../protocols/signed.ts'

/**
 * The rating each side of a storage contract signs when it ends (PROTOCOL.md
 * section 8d, "Ratings"): the renter rates the host on service (audits
 * passed, shards served), the host rates the renter on payment (rent paid as
 * agreed). Each side keeps both, so either can show what the other said.
 */

export const RATING_VERSION = 1
export const RATING_DOMAIN = new TextEncoder().encode('opencloud-storage-rating-v1\n')

export interface Rating {
  /** the contract's id, 32 bytes */
  contractId: Uint8Array
  /** PeerIds */
  rater: string
  rated: string
  satisfactory: boolean
  /** a short reason: "audits passed", "rent paid", "failed an audit", "rent unpaid" */
  reason: string
  /** ms since the Unix epoch */
  at: number
}

export function encodeRating (r: Rating): Uint8Array {
  return new Writer()
    .u8(RATING_VERSION)
    .bytes(r.contractId)
    .bytes(peerBytes(r.rater))
    .bytes(peerBytes(r.rated))
    .u8(r.satisfactory ? 1 : 0)
    .string(r.reason)
    .varint(r.at)
    .finish()
}

/** The most bytes an encoded rating may take (PROTOCOL.md 8d, "Ratings"): a valid one is under 600 */
export const MAX_RATING_BYTES = 1024

export function decodeRating (bytes: Uint8Array): Rating {
  const r = new Reader(bytes)
  r.version(RATING_VERSION, 'rating')
  const contractId = r.bytes(32, 'the contract id')
  const rater = peerText(r.bytes(128, 'the rater'), 'the rater')
  const rated = peerText(r.bytes(128, 'the rated'), 'the rated')
  const outcome = r.u8('the outcome')
  // one encoding per value (section 2): 2 or 255 is no outcome at all, and
  // reading it as "unsatisfactory" would let a byte nobody meant end a contract
  if (outcome !== 0 && outcome !== 1) {
    throw new DecodeError(`a rating's outcome is 1 (satisfactory) or 0 (unsatisfactory), not ${outcome}`)
  }
  const rating: Rating = {
    contractId,
    rater,
    rated,
    satisfactory: outcome === 1,
    reason: r.string(256, 'the reason'),
    at: r.varint('the time')
  }
  r.end('the rating')
  if (contractId.byteLength !== 32) {
    throw new DecodeError('a rating\'s contract id is 32 bytes')
  }
  return rating
}

/** bytes rating || bytes signature */
export function signRating (rating: Rating, signer: CredentialSigner): Uint8Array {
  const encoded = encodeRating(rating)
  return new Writer().bytes(encoded).bytes(signer.sign(withDomain(RATING_DOMAIN, encoded))).finish()
}

/** Decode a signed rating and check the rater signed it; throws otherwise */
export function openRating (signed: Uint8Array): Rating {
  const r = new Reader(signed)
  const encoded = r.bytes(MAX_RATING_BYTES, 'the rating')
  const signature = r.bytes(128, 'the rating signature')
  r.end('the signed rating')
  const rating = decodeRating(encoded)
  verifySignedBy(rating.rater, signature, withDomain(RATING_DOMAIN, encoded))
  return rating
}
