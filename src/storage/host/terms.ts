import { statfs } from 'node:fs/promises'
import { Reader } from '../../protocols/codec.ts'
import { BadRequestError, InsufficientStorageError, RequestDeclinedError } from '../../protocols/rpc/errors.ts'
import { formatAmount } from '../../protocols/units.ts'
import { CONTRACT_VERSION, decodeTerms, overMaxMoney, verifyTerms, type ContractTerms } from '../protocol/contract.ts'
import { readBody, type HostRequest } from './request.ts'
import type { ContractBook } from './contract-book.ts'

/** The host's current prices, satoshis: per TiB-month held, per TiB uploaded, per TiB downloaded (the units of version 2 terms) */
export interface HostPrices {
  storage: bigint
  upload: bigint
  download: bigint
}

/** A contract proposal as read from the body of `contract` and `renew` */
export interface Proposal {
  encoded: Uint8Array
  renterSignature: Uint8Array
  terms: ContractTerms
}

/**
 * The body of `contract` and `renew`: bytes terms || bytes renter
 * signature, checked in the order of PROTOCOL.md 8d, "Refused terms":
 * its form, the parties, then the signature
 */
export async function readProposal (req: HostRequest, host: string): Promise<Proposal> {
  const r = new Reader(await readBody(req))
  const encoded = r.bytes(1024, 'the contract terms')
  const renterSignature = r.bytes(128, 'the renter signature')
  r.end('the contract proposal')
  const terms = decodeTerms(encoded)
  if (terms.host !== host) {
    throw new BadRequestError(`the terms name host ${terms.host}, but this host is ${host}`)
  }
  if (terms.renter !== req.caller) {
    throw new BadRequestError(`the terms name renter ${terms.renter}, but the caller is ${req.caller}`)
  }
  checkForm(terms)
  verifyTerms(encoded, terms.renter, renterSignature)
  return { encoded, renterSignature, terms }
}

/**
 * What no host could sign (`bad-request`, PROTOCOL.md 8d, "Refused
 * terms"): a contract of no bytes, a rent period longer than the
 * contract, amounts over all the bitcoin there will ever be. Checked
 * before the renter's signature, like the rest of the terms' form.
 */
export function checkForm (terms: ContractTerms): void {
  if (terms.maxBytes < 1) {
    throw new BadRequestError('a contract holds at least one byte')
  }
  if (terms.rentPeriodMs > terms.end - terms.start) {
    throw new BadRequestError(`the rent period of ${terms.rentPeriodMs} ms is longer than the contract's ${terms.end - terms.start} ms`)
  }
  const absurd = overMaxMoney(terms)
  if (absurd != null) {
    throw new BadRequestError(`${absurd}, more than the 21,000,000 BTC that will ever exist: no renter could pay it`)
  }
}

export interface TermsCheckInit {
  /** where the shards live: its disk's free space bounds what may be promised */
  dir: string
  /** bytes offered in all contracts together */
  capacity: number
  maxDurationMs: number
  minRentPeriodMs: number
  clockSkewMs: number
  /** the prices the registry has now */
  prices: () => HostPrices
  /** whether this node takes payments (payments.chain is set) */
  takesPayments: boolean
}

/**
 * This host's own conditions for signing terms (`request-declined`, then
 * `insufficient-storage`): the terms' version, its clock, the longest
 * contract, the shortest rent period, its prices and whether it can be
 * paid, then its capacity and its disk
 */
export class TermsCheck {
  private readonly init: TermsCheckInit
  private readonly book: ContractBook

  constructor (book: ContractBook, init: TermsCheckInit) {
    this.book = book
    this.init = init
  }

  /** Throws the refusal of terms this host does not sign; `freed`: bytes a renewed contract gives back */
  async check (terms: ContractTerms, freed = 0): Promise<void> {
    const { capacity, clockSkewMs, maxDurationMs, minRentPeriodMs } = this.init
    if (terms.version !== CONTRACT_VERSION) {
      // version 1 contracts already held run on by their rules until they
      // end; new ones, and renewals, are version 2: its prices are the
      // market's (per TiB) and its rent follows the bytes held
      throw new RequestDeclinedError(`this host signs version ${CONTRACT_VERSION} terms only (prices per TiB, rent on the bytes held), not version ${terms.version}`)
    }
    const now = this.book.now()
    if (Math.abs(terms.start - now) > clockSkewMs) {
      throw new RequestDeclinedError(`the contract starts at ${new Date(terms.start).toISOString()}, but it is ${new Date(now).toISOString()} here: check your clock`)
    }
    if (terms.end - terms.start > maxDurationMs) {
      throw new RequestDeclinedError(`this host signs contracts of at most ${Math.floor(maxDurationMs / 86_400_000)} days`)
    }
    if (terms.rentPeriodMs < minRentPeriodMs) {
      throw new RequestDeclinedError(`this host signs rent periods of at least ${minRentPeriodMs} ms`)
    }
    if (!this.init.takesPayments && (terms.storagePrice > 0n || terms.uploadPrice > 0n || terms.downloadPrice > 0n)) {
      // it could never be paid: every priced call would be refused
      throw new RequestDeclinedError('this host takes no payments (its payments.chain is empty), so it signs only free terms: propose storage, upload and download prices of 0')
    }
    const prices = this.init.prices()
    if (terms.storagePrice < prices.storage || terms.uploadPrice < prices.upload || terms.downloadPrice < prices.download) {
      throw new RequestDeclinedError(`the terms offer less than this host's prices: ${formatAmount(prices.storage)} per TiB-month held, ${formatAmount(prices.upload)} per TiB uploaded, ${formatAmount(prices.download)} per TiB downloaded`)
    }
    const free = capacity - this.book.reserved(now) + freed
    if (terms.maxBytes > free) {
      throw new InsufficientStorageError(`this host is full: ${terms.maxBytes} bytes asked, ${Math.max(0, free)} of its ${capacity} bytes free`)
    }
    const disk = await statfs(this.init.dir)
    const diskFree = Number(disk.bavail) * Number(disk.bsize)
    if (terms.maxBytes > diskFree - this.book.used() + freed) {
      throw new InsufficientStorageError(`this host's disk is full: ${terms.maxBytes} bytes asked, ${diskFree} bytes free on disk`)
    }
  }
}
