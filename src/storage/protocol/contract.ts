import { createHash } from 'node:crypto'
import { DecodeError, Reader, Writer } from '../../protocols/codec.ts'
import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import { peerBytes, peerText, verifySignedBy, withDomain } from '../../protocols/signed.ts'
import { formatAmount, MAX_MONEY } from '../../protocols/units.ts'
import { dataRoot } from './merkle.ts'

/**
 * Storage contracts and their revisions (PROTOCOL.md, "Storage"). Both are
 * fixed-order binary messages in the protocol's encoding, each signed by
 * both sides with their OpenCloud IDs, so either side can later prove what
 * was agreed (the terms) and what was stored (the latest revision: how many
 * shards, how many bytes, and a Merkle root over the shard roots).
 */

/**
 * The terms opencloud-node proposes and signs: version 2 prices per TiB
 * and charges rent on the bytes held. Version 1 (prices per GiB, rent on
 * max-bytes) is still read, and its contracts run on by its rules until
 * they end or are renewed as version 2 (PROTOCOL.md 8d, "Contract terms").
 */
export const CONTRACT_VERSION = 2
export type TermsVersion = 1 | 2
/** The version byte of a revision, unchanged since the first */
export const REVISION_VERSION = 1
export const CONTRACT_DOMAIN = new TextEncoder().encode('opencloud-storage-contract-v1\n')
export const REVISION_DOMAIN = new TextEncoder().encode('opencloud-storage-revision-v1\n')

export const GIB = 1024 ** 3
/** The byte unit of version 2 prices: a tebibyte, 2^40 bytes */
export const TIB = 1024 ** 4
/** A month for rent: 30 days */
export const MONTH_MS = 30 * 24 * 3600 * 1000
/**
 * The longest contract opencloud-node's hosts sign by default (a year and a
 * day: a yearly renewal never falls short), and so the longest a put asks for
 */
export const MAX_CONTRACT_MS = 366 * 24 * 3600 * 1000

export interface ContractTerms {
  /** 2 (CONTRACT_VERSION) for every contract formed now; 1 for those formed before */
  version: TermsVersion
  /** PeerId of the renter (the client) */
  renter: string
  /** PeerId of the host */
  host: string
  /** 16 random bytes chosen by the renter, so equal terms still make distinct contracts */
  nonce: Uint8Array
  /** ms since the epoch */
  start: number
  end: number
  /** the most the renter may store under the contract */
  maxBytes: number
  /** satoshis per TiB-month of bytes held (version 1: per GiB-month of max-bytes) */
  storagePrice: bigint
  /** satoshis per TiB uploaded (version 1: per GiB) */
  uploadPrice: bigint
  /** satoshis per TiB downloaded (version 1: per GiB) */
  downloadPrice: bigint
  /** rent falls due every this many ms */
  rentPeriodMs: number
}

export interface Revision {
  /** SHA-256 of the terms */
  contractId: Uint8Array
  /** 0 for the empty contract, +1 per change */
  number: number
  bytes: number
  shards: number
  /** dataRoot() of the shard roots held */
  root: Uint8Array
}

export interface SignedContract {
  terms: ContractTerms
  id: Uint8Array
  /** the encoded terms, as signed */
  encoded: Uint8Array
  renterSignature: Uint8Array
  hostSignature: Uint8Array
}

export interface SignedRevision {
  revision: Revision
  encoded: Uint8Array
  renterSignature: Uint8Array
  hostSignature: Uint8Array
}

export class ContractError extends Error {
  override name = 'ContractError'
}

export function encodeTerms (t: ContractTerms): Uint8Array {
  return new Writer()
    .u8(t.version)
    .bytes(peerBytes(t.renter))
    .bytes(peerBytes(t.host))
    .bytes(t.nonce)
    .varint(t.start)
    .varint(t.end)
    .varint(t.maxBytes)
    .varint(Number(t.storagePrice))
    .varint(Number(t.uploadPrice))
    .varint(Number(t.downloadPrice))
    .varint(t.rentPeriodMs)
    .finish()
}

export function decodeTerms (bytes: Uint8Array): ContractTerms {
  const r = new Reader(bytes)
  const version = bytes[0]
  if (version !== 1 && version !== 2) {
    r.version(CONTRACT_VERSION, 'contract')
  }
  r.u8('the version')
  const terms: ContractTerms = {
    version: version as TermsVersion,
    renter: peerText(r.bytes(128, 'the renter'), 'the renter'),
    host: peerText(r.bytes(128, 'the host'), 'the host'),
    nonce: r.bytes(16, 'the nonce'),
    start: r.varint('start'),
    end: r.varint('end'),
    maxBytes: r.varint('max-bytes'),
    storagePrice: BigInt(r.varint('the storage price')),
    uploadPrice: BigInt(r.varint('the upload price')),
    downloadPrice: BigInt(r.varint('the download price')),
    rentPeriodMs: r.varint('the rent period')
  }
  r.end('the contract terms')
  if (terms.nonce.byteLength !== 16) {
    throw new DecodeError('the contract nonce is 16 bytes')
  }
  if (terms.end <= terms.start) {
    throw new DecodeError('a contract must end after it starts')
  }
  if (terms.rentPeriodMs <= 0) {
    throw new DecodeError('the rent period must be positive')
  }
  return terms
}

export function contractIdOf (encodedTerms: Uint8Array): Uint8Array {
  return Uint8Array.from(createHash('sha256').update(encodedTerms).digest())
}

export function signTerms (encoded: Uint8Array, signer: CredentialSigner): Uint8Array {
  return signer.sign(withDomain(CONTRACT_DOMAIN, encoded))
}

export function encodeRevision (rev: Revision): Uint8Array {
  return new Writer()
    .u8(REVISION_VERSION)
    .bytes(rev.contractId)
    .varint(rev.number)
    .varint(rev.bytes)
    .varint(rev.shards)
    .bytes(rev.root)
    .finish()
}

export function decodeRevision (bytes: Uint8Array): Revision {
  const r = new Reader(bytes)
  r.version(REVISION_VERSION, 'revision')
  const rev: Revision = {
    contractId: r.bytes(32, 'the contract id'),
    number: r.varint('the revision number'),
    bytes: r.varint('bytes held'),
    shards: r.varint('the shard count'),
    root: r.bytes(32, 'the data root')
  }
  r.end('the revision')
  if (rev.contractId.byteLength !== 32 || rev.root.byteLength !== 32) {
    throw new DecodeError('the contract id and data root are 32 bytes')
  }
  return rev
}

export function signRevision (encoded: Uint8Array, signer: CredentialSigner): Uint8Array {
  return signer.sign(withDomain(REVISION_DOMAIN, encoded))
}

/** Throws InvalidSignatureError unless `peer` signed the terms */
export function verifyTerms (encoded: Uint8Array, peer: string, signature: Uint8Array): void {
  verifySignedBy(peer, signature, withDomain(CONTRACT_DOMAIN, encoded))
}

/** Throws InvalidSignatureError unless `peer` signed the revision */
export function verifyRevision (encoded: Uint8Array, peer: string, signature: Uint8Array): void {
  verifySignedBy(peer, signature, withDomain(REVISION_DOMAIN, encoded))
}

/** The revision after adding or removing shards, from the full set of shard roots and sizes held */
export function nextRevision (contractId: Uint8Array, previous: number, shards: Array<{ root: Uint8Array, length: number }>): Revision {
  return {
    contractId,
    number: previous + 1,
    bytes: shards.reduce((n, s) => n + s.length, 0),
    shards: shards.length,
    root: dataRoot(shards.map(s => s.root))
  }
}

export function emptyRevision (contractId: Uint8Array): Revision {
  return { contractId, number: 0, bytes: 0, shards: 0, root: dataRoot([]) }
}

/** A signed contract or revision as stored and sent: message || renter signature || host signature */
export function encodeSigned (message: Uint8Array, renterSignature: Uint8Array, hostSignature: Uint8Array): Uint8Array {
  return new Writer().bytes(message).bytes(renterSignature).bytes(hostSignature).finish()
}

export function decodeSigned (bytes: Uint8Array): { message: Uint8Array, renterSignature: Uint8Array, hostSignature: Uint8Array } {
  const r = new Reader(bytes)
  const message = r.bytes(1024, 'the signed message')
  const renterSignature = r.bytes(128, 'the renter signature')
  const hostSignature = r.bytes(128, 'the host signature')
  r.end('the signed message')
  return { message, renterSignature, hostSignature }
}

/** The bytes a price is per: a GiB in version 1, a TiB in version 2 */
export function priceUnitBytes (version: TermsVersion): number {
  return version === 1 ? GIB : TIB
}

/**
 * How many of the units version 2 rent accrues in make a satoshi: 2^40 x
 * 2,592,000,000 (a TiB times a month in ms), so that storage-price (sat
 * per TiB-month) x bytes x ms is always a whole number of units
 */
export const RENT_UNITS_PER_SAT = BigInt(TIB) * BigInt(MONTH_MS)

/** A contract's rent so far: the exact rent charged, in units of 1 / RENT_UNITS_PER_SAT sat, and the whole satoshis paid for it */
export interface RentState {
  accrued: bigint
  paid: bigint
}

/**
 * What paying `periods` more periods of rent costs now, with `bytes` held
 * under the latest revision (PROTOCOL.md 8d, "Rent"). Version 2: each
 * period accrues storage-price x bytes x rent-period exactly, and the price
 * is what takes the whole satoshis paid up to the accrued sum rounded up,
 * so rent never rounds up by more than one satoshi over the contract's
 * life, whatever its size. Version 1: rent on max-bytes, each period
 * rounded up to a whole satoshi (rentPerPeriodV1).
 */
export function rentCharge (t: ContractTerms, state: RentState, bytes: number, periods: number): { accrued: bigint, price: bigint } {
  if (t.version === 1) {
    return { accrued: state.accrued, price: rentPerPeriodV1(t) * BigInt(periods) }
  }
  const accrued = state.accrued + t.storagePrice * BigInt(bytes) * BigInt(t.rentPeriodMs) * BigInt(periods)
  const due = (accrued + RENT_UNITS_PER_SAT - 1n) / RENT_UNITS_PER_SAT - state.paid
  return { accrued, price: due > 0n ? due : 0n }
}

/** Rent per month at `bytes` held, in satoshis, exact (a figure to show: what is paid is rentCharge) */
export function monthlyRentOf (t: Pick<ContractTerms, 'version' | 'storagePrice' | 'maxBytes'>, bytes: number): number {
  return t.version === 1
    ? Number(t.storagePrice) * t.maxBytes / GIB
    : Number(t.storagePrice) * bytes / TIB
}

/**
 * Version 1's rent for one period: storage price x max bytes (the space
 * the host reserves) x period, pro rata per GiB-month, rounded up to a
 * whole satoshi
 */
export function rentPerPeriodV1 (t: Pick<ContractTerms, 'storagePrice' | 'maxBytes' | 'rentPeriodMs'>): bigint {
  const num = t.storagePrice * BigInt(t.maxBytes) * BigInt(t.rentPeriodMs)
  const den = BigInt(GIB) * BigInt(MONTH_MS)
  return (num + den - 1n) / den
}

/**
 * What a `put` or `get` moving `bytes` at `price` (per TiB; version 1: per
 * GiB) pays with the call. Version 2: the whole satoshis of the exact cost,
 * rounded down; the fraction left (transferRemainder) is accrued on the
 * contract and paid with the next rent, so a shard's get of a fraction of a
 * satoshi is not rounded up to one. Version 1: rounded up to a whole satoshi.
 */
export function transferCost (version: TermsVersion, price: bigint, bytes: number): bigint {
  const den = BigInt(priceUnitBytes(version))
  return version === 1 ? (price * BigInt(bytes) + den - 1n) / den : price * BigInt(bytes) / den
}

/**
 * The fraction of a satoshi a version 2 transfer leaves after the whole
 * satoshis its call pays (transferCost), in the units rent accrues in
 * (RENT_UNITS_PER_SAT): what the host adds to the contract's rent-accrued
 * when it serves the call. 0 for version 1, whose transfers round up.
 */
export function transferRemainder (version: TermsVersion, price: bigint, bytes: number): bigint {
  if (version === 1) {
    return 0n
  }
  return (price * BigInt(bytes)) % BigInt(TIB) * BigInt(MONTH_MS)
}

/** The rent periods of a contract: the last may run past its end */
export function rentPeriods (t: Pick<ContractTerms, 'start' | 'end' | 'rentPeriodMs'>): number {
  return Math.ceil((t.end - t.start) / t.rentPeriodMs)
}

/**
 * Why terms are worth more than all the bitcoin there will ever be, or
 * undefined when they are not: the rent over the whole contract with
 * max-bytes held, or moving max-bytes up or down once, over 21,000,000
 * BTC. Prices are varints up to 2^53 - 1 satoshis per unit, so without
 * this rule a contract could quote rent no renter could ever pay and no
 * figure could show (PROTOCOL.md 8d).
 */
export function overMaxMoney (t: ContractTerms): string | undefined {
  const rent = rentCharge(t, { accrued: 0n, paid: 0n }, t.maxBytes, rentPeriods(t)).price
  if (rent > MAX_MONEY) {
    return `the rent over the whole contract is ${formatAmount(rent)}`
  }
  for (const [what, price] of [['uploading', t.uploadPrice], ['downloading', t.downloadPrice]] as const) {
    const cost = transferCost(t.version, price, t.maxBytes)
    if (cost > MAX_MONEY) {
      return `${what} max-bytes once costs ${formatAmount(cost)}`
    }
  }
  return undefined
}
