import { peerIdFromMultihash } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import { DecodeError, Reader, Writer } from '../protocols/codec.ts'
import { CredentialType } from '../protocols/rpc/messages.ts'
import { CredentialVerifier, type CredentialSigner } from '../protocols/rpc/credentials.ts'

/**
 * A signed price offer (PROTOCOL.md, "Market"): a provider's price for one
 * method, in the method's standard unit. The provider signs it with its
 * OpenCloud ID, so an offer can be checked by anyone who holds it, long after
 * gossip delivered it.
 */
export interface Offer {
  /** PeerId of the provider */
  provider: string
  service: string
  method: string
  /** the method's pricing unit, e.g. "MiB" */
  unit: string
  /** satoshis per unit */
  price: bigint
  currency: string
  /** units the provider can serve, 0 when it does not apply */
  capacity: bigint
  /** ms since the epoch; strictly increasing per provider, service and method */
  issuedAt: number
  validUntil: number
}

export const OFFER_VERSION = 1
export const OFFER_DOMAIN = new TextEncoder().encode('opencloud-market-offer-v1\n')
const NAME = /^[a-z][a-z0-9-]*$/

export class InvalidOfferError extends Error {
  override name = 'InvalidOfferError'
}

function signedPart (offer: Offer, providerBytes: Uint8Array): Uint8Array {
  return new Writer()
    .u8(OFFER_VERSION)
    .bytes(providerBytes)
    .string(offer.service)
    .string(offer.method)
    .string(offer.unit)
    .varint(Number(offer.price))
    .string(offer.currency)
    .varint(Number(offer.capacity))
    .varint(offer.issuedAt)
    .varint(offer.validUntil)
    .finish()
}

function withDomain (signed: Uint8Array): Uint8Array {
  const out = new Uint8Array(OFFER_DOMAIN.byteLength + signed.byteLength)
  out.set(OFFER_DOMAIN, 0)
  out.set(signed, OFFER_DOMAIN.byteLength)
  return out
}

/** offer = bytes signature || signed part */
export function encodeOffer (offer: Offer, signer: CredentialSigner): Uint8Array {
  if (signer.credential.type !== CredentialType.OPENCLOUD) {
    throw new TypeError('offers are signed with an OpenCloud ID')
  }
  const signed = signedPart(offer, signer.credential.value)
  return new Writer().bytes(signer.sign(withDomain(signed))).raw(signed).finish()
}

export interface DecodedOffer {
  offer: Offer
  signature: Uint8Array
  signing: Uint8Array
  providerBytes: Uint8Array
}

export function decodeOffer (bytes: Uint8Array): DecodedOffer {
  const r = new Reader(bytes)
  const signature = r.bytes(128, 'the offer signature')
  const start = r.offset
  r.version(OFFER_VERSION, 'offer')
  const providerBytes = r.bytes(128, 'the provider')
  let provider: string
  try {
    provider = peerIdFromMultihash(Digest.decode(providerBytes)).toString()
  } catch {
    throw new DecodeError('the provider is not a PeerId')
  }
  const service = r.string(64, 'the service')
  const method = r.string(64, 'the method')
  const unit = r.string(32, 'the unit')
  const price = BigInt(r.varint('the price'))
  const currency = r.string(8, 'the currency')
  const capacity = BigInt(r.varint('the capacity'))
  const issuedAt = r.varint('issued-at')
  const validUntil = r.varint('valid-until')
  r.end('the offer')
  if (!NAME.test(service) || !NAME.test(method)) {
    throw new DecodeError('service and method are lowercase names')
  }
  if (currency !== 'BTC') {
    throw new DecodeError(`offers are priced in BTC, not ${currency}`)
  }
  if (validUntil <= issuedAt) {
    throw new DecodeError('an offer must be valid for some time after it is issued')
  }
  return {
    offer: { provider, service, method, unit, price, currency, capacity, issuedAt, validUntil },
    signature,
    signing: withDomain(bytes.subarray(start)),
    providerBytes
  }
}

const verifier = new CredentialVerifier()

/** Throws InvalidSignatureError when the provider did not sign the offer */
export function verifyOffer (decoded: DecodedOffer): void {
  verifier.verify({ type: CredentialType.OPENCLOUD, value: decoded.providerBytes }, decoded.signature, decoded.signing)
}

