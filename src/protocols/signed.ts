import { peerIdFromMultihash, peerIdFromString } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import { DecodeError } from './codec.ts'
import { CredentialType } from './rpc/wire-types.ts'
import { CredentialVerifier } from './rpc/credentials.ts'

/**
 * The helpers every signed message of the protocol shares (contracts,
 * revisions, ratings, offers, the ledger's transactions and votes): a PeerId
 * as bytes and back, the domain string before the signed bytes, and one
 * check that a PeerId's key signed them.
 */

/** A PeerId's bytes (its multihash), as contracts and ratings carry them */
export function peerBytes (peer: string): Uint8Array {
  return peerIdFromString(peer).toMultihash().bytes
}

export function peerText (bytes: Uint8Array, what: string): string {
  try {
    return peerIdFromMultihash(Digest.decode(bytes)).toString()
  } catch {
    throw new DecodeError(`${what} is not a PeerId`)
  }
}

/** domain || bytes: what a domain-separated signature covers (every signed message of the protocol: PROTOCOL.md section 7) */
export function withDomain (domain: Uint8Array, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(domain.byteLength + bytes.byteLength)
  out.set(domain)
  out.set(bytes, domain.byteLength)
  return out
}

// one verifier, so one cache of public keys, for contracts, ratings and the ledger
const verifier = new CredentialVerifier()

/** Throws InvalidSignatureError unless `signature` is `peer`'s OpenCloud ID signature of `signing` */
export function verifySignedBy (peer: string, signature: Uint8Array, signing: Uint8Array): void {
  verifier.verify({ type: CredentialType.OPENCLOUD, value: peerBytes(peer) }, signature, signing)
}

/** 64 bytes in standard base64: 86 digits, the last with its 4 unused bits zero, and "==" */
const BASE64_64 = /^[A-Za-z0-9+/]{85}[AQgw]==$/

/**
 * A 64-byte signature as args and people pass it (a storage revision
 * signature, a ledger redeem authorization): standard base64 with its
 * padding, 88 characters, in its one spelling. Base64 decoders accept
 * digits whose unused bits are not zero and read them as the same bytes;
 * those are refused, so one signature has one text. Throws DecodeError
 * naming `what` otherwise.
 */
export function base64Signature (text: string, what: string): Uint8Array {
  if (!BASE64_64.test(text)) {
    throw new DecodeError(`${what} is a 64-byte signature in standard base64 (88 characters ending in "=="), not "${text}"`)
  }
  return Uint8Array.from(Buffer.from(text, 'base64'))
}
