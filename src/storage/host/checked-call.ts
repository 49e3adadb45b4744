import type { HostContract, SignedRevision } from './contract-book.ts'

/**
 * What the agreement check (agreement.ts) and the share check
 * (share-check.ts) answer of a call: a leaf file, so the two check the
 * same shape without importing each other
 */

/** A call checked against its contract: what the handler needs of it, and its price */
export interface CheckedCall {
  c: HostContract
  /** the shard named ('' when the method names none) */
  root: string
  /** its size, when the contract holds it */
  held?: number
  signature: Uint8Array
  offset: number
  length: number
  periods: number
  challenge: Uint8Array
  count: number
  /** the revision a put or delete leads to, its renter signature checked */
  next?: SignedRevision
  /** satoshis at the contract's prices (0n: free); undefined: the list price applies */
  price?: bigint
  /**
   * put and get: the fraction of a satoshi the transfer leaves over its
   * price, in rent units (transferRemainder; 0n for version 1), which the
   * handler adds to the contract's rent-accrued once it serves the call
   */
  remainder?: bigint
  /** rent: the contract's accrued rent once these periods are paid (rentCharge) */
  accrued?: bigint
}

/** What a CheckedCall holds for the args its method does not take */
export const NO_ARGS = { root: '', signature: new Uint8Array(0), offset: 0, length: 0, periods: 0, challenge: new Uint8Array(0), count: 0 }
