import { peerIdFromMultihash, peerIdFromString } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import { DecodeError, Reader, Writer } from '../protocols/codec.ts'
import { CredentialType } from '../protocols/rpc/messages.ts'
import { CredentialVerifier, type CredentialSigner } from '../protocols/rpc/credentials.ts'

/**
 * A signed summary of one node's local trust (PROTOCOL.md, "Reputation"):
 * its opinion of up to 64 peers, each a share of 65535 (its normalized local
 * trust c_ij), newest summary per rater wins.
 */
export interface Summary {
  rater: string
  issuedAt: number
  /** peer -> normalized local trust in [0, 1] */
  opinions: Map<string, number>
}

export const SUMMARY_VERSION = 1
export const SUMMARY_DOMAIN = new TextEncoder().encode('opencloud-reputation-summary-v1\n')
export const MAX_SUMMARY_ENTRIES = 64
const SCALE = 65535

function withDomain (signed: Uint8Array): Uint8Array {
  const out = new Uint8Array(SUMMARY_DOMAIN.byteLength + signed.byteLength)
  out.set(SUMMARY_DOMAIN, 0)
  out.set(signed, SUMMARY_DOMAIN.byteLength)
  return out
}

/** summary = bytes signature || u8 version || bytes rater || varint issuedAt || list<(bytes peer, varint share)> */
export function encodeSummary (summary: Omit<Summary, 'rater'>, signer: CredentialSigner): Uint8Array {
  const entries = [...summary.opinions.entries()]
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, MAX_SUMMARY_ENTRIES)
  const w = new Writer().u8(SUMMARY_VERSION).bytes(signer.credential.value).varint(summary.issuedAt).varint(entries.length)
  for (const [peer, value] of entries) {
    w.bytes(peerIdFromString(peer).toMultihash().bytes).varint(Math.round(Math.min(1, value) * SCALE))
  }
  const signed = w.finish()
  return new Writer().bytes(signer.sign(withDomain(signed))).raw(signed).finish()
}

const verifier = new CredentialVerifier()

/** Decode and check the rater's signature; throws on anything wrong */
export function decodeSummary (bytes: Uint8Array): Summary {
  const r = new Reader(bytes)
  const signature = r.bytes(128, 'the summary signature')
  const start = r.offset
  if (r.u8('the summary version') !== SUMMARY_VERSION) {
    throw new DecodeError('unsupported summary version')
  }
  const raterBytes = r.bytes(128, 'the rater')
  const issuedAt = r.varint('issued-at')
  const n = r.count(MAX_SUMMARY_ENTRIES, 'summary entries')
  const opinions = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const peerBytes = r.bytes(128, 'a rated peer')
    const share = r.varint('a trust share')
    if (share > SCALE) {
      throw new DecodeError('a trust share is over 65535')
    }
    let peer: string
    try {
      peer = peerIdFromMultihash(Digest.decode(peerBytes)).toString()
    } catch {
      throw new DecodeError('a rated peer is not a PeerId')
    }
    opinions.set(peer, share / SCALE)
  }
  r.end('the summary')
  let rater: string
  try {
    rater = peerIdFromMultihash(Digest.decode(raterBytes)).toString()
  } catch {
    throw new DecodeError('the rater is not a PeerId')
  }
  verifier.verify({ type: CredentialType.OPENCLOUD, value: raterBytes }, signature, withDomain(bytes.subarray(start)))
  return { rater, issuedAt, opinions }
}
