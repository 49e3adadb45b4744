import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { InsufficientStorageError, InvalidSignatureError, NotFoundError, PaymentTooLowError } from '../../protocols/rpc/errors.ts'
import { formatAmount, parseAmount } from '../../protocols/units.ts'
import { KeyedLock } from '../../utils/keyed-lock.ts'
import { CONTRACT_VERSION, contractIdOf, decodeRevision, decodeSigned, encodeRevision, encodeSigned, encodeTerms, nextRevision, RENT_UNITS_PER_SAT, rentCharge, signRevision, signTerms, transferCost, transferRemainder, verifyRevision, verifyTerms, type ContractTerms, type Revision } from '../protocol/contract.ts'
import { openRating, signRating } from '../protocol/rating.ts'
import { CONTRACT_GROWTH, DEFAULT_CONTRACT_ALLOWANCE, DEFAULT_RENEW_BEFORE_MS, END_CALL_MS, MAX_CONTRACT_ALLOWANCE, TRANSFER_BASE_MS } from '../constants.ts'
import { IntegrityError } from '../errors.ts'
import { bytesHeld, renewalDue, servedWell } from './health.ts'
import { callSignal, type StorageSession } from './session.ts'
import type { HostOffer, StorageClientComponents } from './interface.ts'
import type { ContractRecord, Records } from './records.ts'

const log = logger('opencloud:storage:client')

export function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

/**
 * The most satoshis of rent a host may count over this node's own sum
 * before this node takes its figures: the fractions of transfers whose
 * count a crash lost (each under a satoshi). A host claiming more is not
 * paid, and says so in the log.
 */
const MAX_RENT_CATCH_UP = 1000n

/** The revision after `previous` of a contract holding `shards` ([root hex, bytes]) */
function revisionOver (contract: string, previous: number, shards: Array<[string, number]>): Revision {
  return nextRevision(Buffer.from(contract, 'hex'), previous, shards.map(([root, length]) => ({ root: Buffer.from(root, 'hex'), length })))
}

/**
 * This node's record of a contract both sides signed: its terms, nothing
 * paid or spent yet unless `state` says otherwise (a contract recovered
 * from its host carries the host's revision and sums)
 */
export function recordOf (terms: ContractTerms, signed: Uint8Array, state: Pick<ContractRecord, 'revision' | 'shards'> & Partial<ContractRecord>): ContractRecord {
  return {
    version: CONTRACT_VERSION,
    host: terms.host,
    signed: Buffer.from(signed).toString('base64'),
    start: terms.start,
    end: terms.end,
    maxBytes: terms.maxBytes,
    storagePrice: String(terms.storagePrice),
    uploadPrice: String(terms.uploadPrice),
    downloadPrice: String(terms.downloadPrice),
    rentPeriodMs: terms.rentPeriodMs,
    rentPaidPeriods: 0,
    rentAccrued: '0',
    rentCounted: '0',
    rentPaid: '0',
    spent: { upload: '0', download: '0', rent: '0' },
    ...state
  }
}

/**
 * The most a shard transfer may take: 10 s plus its size at minThroughput
 * (26 s for a 1 MiB shard at 64 KiB/s). A host slower than that, or one
 * that stopped answering (a frozen process keeps its connection open),
 * is given up on rather than waited for.
 */
export function transferTimeoutMs (bytes: number, minThroughput: number): number {
  return TRANSFER_BASE_MS + Math.ceil(bytes / minThroughput) * 1000
}

export interface ContractsComponents extends Pick<StorageClientComponents, 'peerId' | 'signer' | 'trust' | 'rateContract'> {
  session: StorageSession
  records: Records
}

export interface ContractsInit {
  /** how often rent falls due (a contract shorter than that has one period) */
  rentPeriodMs: number
  /** a shard upload slower than this many bytes per second is given up on */
  minThroughput: number
  /** the room a new contract reserves beyond what its put needs, default DEFAULT_CONTRACT_ALLOWANCE (256 MiB) */
  allowance?: number
  /** contracts this close to their end take no new shards (they are renewed first), default 7 days */
  renewBeforeMs?: number
}

/** A contract lent to a put or a repair: its room for `bytes` is held until release() */
export interface Lease {
  id: string
  record: ContractRecord
  release: () => void
}

/**
 * This node's contracts with hosts, one per host shared by every object
 * with shards there (ContractTable): finding one with room or forming it
 * (terms both sides sign), renewing, paying rent a period at a time on the
 * bytes held, adding and deleting shards (the revision after the last,
 * countersigned) and ending them with a rating. One change at a time per
 * contract (locks): puts of two objects, a removal and the rent may all
 * reach one contract at once, and each revision follows the one before.
 */
export class Contracts {
  private readonly components: ContractsComponents
  private readonly init: ContractsInit
  /** one revision, rent payment or renewal at a time per contract */
  readonly locks = new KeyedLock()
  /** bytes promised to puts and repairs under way, per contract */
  private readonly reserved = new Map<string, number>()
  /** one search-or-form at a time per host: puts that start together share the contract the first one forms */
  private readonly hostLocks = new KeyedLock()
  /** contracts being ended: no new put may lease them */
  private readonly closing = new Set<string>()

  constructor (components: ContractsComponents, init: ContractsInit) {
    this.components = components
    this.init = init
  }

  /** Whether a put or a repair under way holds room in the contract (its shards there may not be named by any object yet) */
  inUse (id: string): boolean {
    if (this.locks.held(id) || this.closing.has(id)) {
      return true
    }
    // a lease taken on a contract renewed since holds room in the one that took its place
    const table = this.components.records.contracts
    for (const [leased, bytes] of this.reserved) {
      if (bytes > 0 && (leased === id || table.current(leased) === id)) {
        return true
      }
    }
    return false
  }

  /**
   * A contract with `host` that has room for `bytes` more: the one this
   * node holds already when it has the room and is not near its end (nor
   * condemned, nor being moved off), else a new one reserving the
   * allowance (twice the largest before it with that host, so a renter with
   * much data holds few contracts), or just `bytes` if the host has no room
   * for more. The room stays held until the lease is released.
   */
  async acquire (host: HostOffer, bytes: number, durationMs: number, signal: AbortSignal, options: { maxStoragePrice?: bigint } = {}): Promise<Lease> {
    return this.hostLocks.run(host.peer, async () => this.acquireLocked(host, bytes, durationMs, signal, options), { signal })
  }

  private async acquireLocked (host: HostOffer, bytes: number, durationMs: number, signal: AbortSignal, options: { maxStoragePrice?: bigint }): Promise<Lease> {
    await this.components.records.ready()
    const table = this.components.records.contracts
    const now = Date.now()
    let largest = 0
    for (const [id, c] of table.entries()) {
      if (c.host !== host.peer) {
        continue
      }
      if (c.ended == null) {
        // the live ones: a renter that removed everything and stores again starts from the allowance
        largest = Math.max(largest, c.maxBytes)
      }
      const usable = (c.version ?? 1) === CONTRACT_VERSION && c.ended == null && c.lost == null && c.migrating == null && !this.closing.has(id) &&
        !renewalDue(c, now, this.init.renewBeforeMs ?? DEFAULT_RENEW_BEFORE_MS) && c.end - now > this.init.rentPeriodMs &&
        (options.maxStoragePrice == null || BigInt(c.storagePrice) <= options.maxStoragePrice)
      if (usable && c.maxBytes - bytesHeld(c) - (this.reserved.get(id) ?? 0) >= bytes) {
        return this.lease(id, c, bytes)
      }
    }
    const allowance = largest === 0 ? this.init.allowance ?? DEFAULT_CONTRACT_ALLOWANCE : Math.min(MAX_CONTRACT_ALLOWANCE, largest * CONTRACT_GROWTH)
    let formed: { id: string, record: ContractRecord }
    try {
      formed = await this.form(host, Math.max(bytes, allowance), durationMs, signal)
    } catch (err) {
      if (!(err instanceof InsufficientStorageError) || allowance <= bytes) {
        throw err
      }
      // room for this put only
      formed = await this.form(host, bytes, durationMs, signal)
    }
    return this.lease(formed.id, formed.record, bytes)
  }

  private lease (id: string, record: ContractRecord, bytes: number): Lease {
    this.reserved.set(id, (this.reserved.get(id) ?? 0) + bytes)
    let released = false
    return {
      id,
      record,
      release: () => {
        if (released) {
          return
        }
        released = true
        const left = (this.reserved.get(id) ?? 0) - bytes
        if (left > 0) {
          this.reserved.set(id, left)
        } else {
          this.reserved.delete(id)
        }
      }
    }
  }

  /**
   * A contract with `host` for `maxBytes` over `durationMs`, in the table,
   * its first period paid up front (nothing is held yet: a version 2
   * contract's first rent is 0, and the call tells the host the renter is
   * there)
   */
  async form (host: HostOffer, maxBytes: number, durationMs: number, signal: AbortSignal): Promise<{ id: string, record: ContractRecord }> {
    const { peerId, signer, session } = this.components
    const start = Date.now()
    const terms: ContractTerms = {
      version: CONTRACT_VERSION,
      renter: peerId,
      host: host.peer,
      nonce: randomBytes(16),
      start,
      end: start + durationMs,
      maxBytes,
      storagePrice: host.storage,
      uploadPrice: host.upload,
      downloadPrice: host.download,
      rentPeriodMs: Math.min(this.init.rentPeriodMs, durationMs)
    }
    const encoded = encodeTerms(terms)
    const renterSignature = signTerms(encoded, signer)
    const answer = await session.contract(host.peer, encoded, renterSignature, signal)
    const id = hex(contractIdOf(encoded))
    if (answer.contract !== id) {
      throw new IntegrityError(`host ${host.peer} answered contract ${answer.contract}, not ${id}`)
    }
    verifyTerms(encoded, host.peer, answer.hostSignature)
    const record = recordOf(terms, encodeSigned(encoded, renterSignature, answer.hostSignature), { revision: 0, trustAtStart: this.components.trust?.(host.peer), shards: [] })
    const table = this.components.records.contracts
    table.adopt(id, record)
    await table.save(id)
    // the first period is paid up front: a host holds space only for a renter that pays
    await this.payPeriod(id, record, signal)
    return { id, record }
  }

  /**
   * A contract that takes `old`'s place with the same host: new terms
   * (version 2) of the same length at the host's current prices, the
   * shards carried over without sending them again. The new contract is in
   * the table and the old one names it (renewedAs), so a put under way on
   * the old one goes on under the new (putShard follows renewedAs).
   */
  async renew (oldId: string, old: ContractRecord, length: number, offer: HostOffer | undefined, signal: AbortSignal): Promise<{ id: string, record: ContractRecord }> {
    return this.locks.run(oldId, async () => {
      try {
        return await this.renewLocked(oldId, old, length, offer, signal)
      } catch (err) {
        // the host is ahead of this node's record (a crash after its revision): the new revision 1 is over its shards
        if (!(err instanceof InvalidSignatureError) || signal.aborted || !await this.resync(oldId, old, signal)) {
          throw err
        }
        return this.renewLocked(oldId, old, length, offer, signal)
      }
    }, { signal })
  }

  private async renewLocked (oldId: string, old: ContractRecord, length: number, offer: HostOffer | undefined, signal: AbortSignal): Promise<{ id: string, record: ContractRecord }> {
    const { peerId, signer, session } = this.components
    const start = Date.now()
    // the host's current prices (it signs nothing below them)
    const prices = offer ?? { storage: BigInt(old.storagePrice), upload: BigInt(old.uploadPrice), download: BigInt(old.downloadPrice) }
    const terms: ContractTerms = {
      version: CONTRACT_VERSION,
      renter: peerId,
      host: old.host,
      nonce: randomBytes(16),
      start,
      end: start + length,
      maxBytes: Math.max(old.maxBytes, bytesHeld(old)),
      storagePrice: prices.storage,
      uploadPrice: prices.upload,
      downloadPrice: prices.download,
      rentPeriodMs: old.rentPeriodMs
    }
    const encoded = encodeTerms(terms)
    const id = hex(contractIdOf(encoded))
    const renterSignature = signTerms(encoded, signer)
    const revision = encodeRevision(revisionOver(id, 0, old.shards))
    const revisionSignature = signRevision(revision, signer)
    const answer = await session.renew(old.host, oldId, encoded, renterSignature, revisionSignature, signal)
    if (answer.contract !== id || answer.revision !== 1) {
      throw new IntegrityError(`host ${old.host} answered contract ${answer.contract} at revision ${String(answer.revision)}, not ${id} at revision 1`)
    }
    verifyTerms(encoded, old.host, answer.hostSignature)
    verifyRevision(revision, old.host, answer.revisionSignature)
    const record = recordOf(terms, encodeSigned(encoded, renterSignature, answer.hostSignature), {
      revision: 1,
      trustAtStart: Math.max(old.trustAtStart ?? 0, this.components.trust?.(old.host) ?? 0),
      signedRevision: Buffer.from(encodeSigned(revision, revisionSignature, answer.revisionSignature)).toString('base64'),
      shards: [...old.shards],
      audit: old.audit
    })
    const table = this.components.records.contracts
    table.adopt(id, record)
    old.ended = Date.now()
    old.renewedAs = id
    // the new one first: a crash between leaves both, and the old one names the new
    await table.save(id)
    await table.save(oldId)
    return { id, record }
  }

  termsOf (record: ContractRecord): ContractTerms {
    return { version: record.version ?? 1, renter: this.components.peerId, host: record.host, nonce: new Uint8Array(16), start: record.start, end: record.end, maxBytes: record.maxBytes, storagePrice: BigInt(record.storagePrice), uploadPrice: BigInt(record.uploadPrice), downloadPrice: BigInt(record.downloadPrice), rentPeriodMs: record.rentPeriodMs }
  }

  /**
   * Pay one more period of a contract's rent: on the bytes it holds now,
   * accrued exactly with the fractions of the transfers since, in the whole
   * satoshis that bring what was paid up to the accrued sum (rentCharge;
   * often 0 for a small contract), and saved. This node counts a
   * transfer's fraction when it asks (the host when it serves), so its sum
   * is under the host's only when a crash lost its count of some: it takes
   * the host's sums from the answer when they are at most MAX_RENT_CATCH_UP
   * over its own. When the host refuses the payment as too low (this node's
   * record is behind), its revision and sums are taken (resync) and the
   * period paid again.
   */
  async payPeriod (id: string, record: ContractRecord, signal: AbortSignal): Promise<void> {
    await this.locks.run(id, async () => {
      try {
        await this.payLocked(id, record, signal)
      } catch (err) {
        // this node's record is behind the host's: a crash lost its count of some transfers, or of a revision
        if (!(err instanceof PaymentTooLowError) || signal.aborted || !await this.resync(id, record, signal)) {
          throw err
        }
        await this.payLocked(id, record, signal)
      }
      await this.components.records.contracts.save(id)
    }, { signal })
  }

  private async payLocked (id: string, record: ContractRecord, signal: AbortSignal): Promise<void> {
    const state = { accrued: BigInt(record.rentAccrued ?? '0'), paid: BigInt(record.rentPaid ?? '0') }
    const { accrued, price } = rentCharge(this.termsOf(record), state, bytesHeld(record), 1)
    const period = accrued - state.accrued
    const answer = await this.components.session.rent(record.host, id, 1, price, signal)
    // added, not set: gets under way meanwhile counted their fractions (they take no lock)
    record.rentAccrued = String(BigInt(record.rentAccrued ?? '0') + period)
    record.rentCounted = String(BigInt(record.rentCounted ?? record.rentAccrued) + period)
    record.rentPaid = String(state.paid + price)
    record.spent.rent = String(BigInt(record.spent.rent) + price)
    // the host's count of the periods paid, when a crash lost this node's record of one
    record.rentPaidPeriods = Math.max(record.rentPaidPeriods + 1, Number.isSafeInteger(answer.rentPaidPeriods) ? answer.rentPaidPeriods : 0)
    // the host's sums are what the next rent starts from, when they pass hostSums
    if (answer.rentAccrued != null && answer.rentPaid != null) {
      this.takeHostSums(id, record, answer.rentAccrued, answer.rentPaid, state.paid, true)
    }
  }

  /**
   * Take a host's rent sums as this node's, when they are believable: its
   * accrued sum at most MAX_RENT_CATCH_UP over this node's own count of
   * everything it asked for (rentCounted: its rent and every transfer's
   * fraction, never replaced by a host's figure, so a host cannot ratchet
   * it up answer by answer); its paid sum at most what this node paid, at
   * least what it said before (`paidFloor`: a host that said it was paid
   * nothing would be paid everything again) and, right after a rent,
   * covering its accrued sum as the rent rule leaves it. Resolves with
   * whether they were taken.
   */
  private takeHostSums (id: string, record: ContractRecord, accruedText: string, paidText: string, paidFloor: bigint, afterRent: boolean): boolean {
    let hostAccrued: bigint
    let hostPaid: bigint
    try {
      hostAccrued = BigInt(accruedText)
      hostPaid = parseAmount(paidText)
    } catch {
      return false
    }
    const counted = BigInt(record.rentCounted ?? record.rentAccrued ?? '0')
    const believable = hostAccrued <= counted + MAX_RENT_CATCH_UP * RENT_UNITS_PER_SAT &&
      hostPaid <= BigInt(record.spent.rent) && hostPaid >= paidFloor &&
      // right after a rent the rule leaves the paid sum covering the accrued one
      (!afterRent || hostPaid * RENT_UNITS_PER_SAT >= hostAccrued)
    if (!believable) {
      log.error('contract %s: host %s counts %s rent units and %s paid; this node counted %s units and paid %s sat: not taken', id, record.host, hostAccrued, paidText, counted, record.spent.rent)
      return false
    }
    record.rentAccrued = String(hostAccrued)
    record.rentPaid = String(hostPaid)
    return true
  }

  /** A transfer's fraction of a satoshi past what its call pays, counted when it is asked for (the host's count is never more) */
  private accrue (c: ContractRecord, price: string, bytes: number): void {
    const remainder = transferRemainder(c.version ?? 1, BigInt(price), bytes)
    if (remainder > 0n) {
      c.rentCounted = String(BigInt(c.rentCounted ?? c.rentAccrued ?? '0') + remainder)
      c.rentAccrued = String(BigInt(c.rentAccrued ?? '0') + remainder)
    }
  }

  /** What a get of `bytes` under a contract pays with the call; its fraction of a satoshi is counted for the next rent */
  downloadCost (c: ContractRecord, bytes: number): bigint {
    this.accrue(c, c.downloadPrice, bytes)
    return transferCost(c.version ?? 1, BigInt(c.downloadPrice), bytes)
  }

  /**
   * Put one shard under a contract: the revision after the last, signed by
   * both sides, paid at the contract's upload price, and saved. A contract
   * renewed meanwhile is followed to the one that took its place; a host
   * whose revision is ahead of this node's record (a crash between its
   * answer and the record) is resynchronised from its signed revision and
   * asked again. A host slower than minThroughput is given up on (and its
   * shard goes elsewhere). Resolves with the contract the shard is under.
   */
  async putShard (contract: string, c: ContractRecord, shard: Uint8Array, root: Uint8Array, signal: AbortSignal): Promise<string> {
    const table = this.components.records.contracts
    let id = table.current(contract)
    for (;;) {
      const held = await this.locks.run(id, async () => {
        const now = table.current(id)
        if (now !== id) {
          return now
        }
        const record = table.get(id) ?? c
        try {
          await this.putLocked(id, record, shard, root, signal)
        } catch (err) {
          if (!(err instanceof InvalidSignatureError) || signal.aborted || !await this.resync(id, record, signal)) {
            throw err
          }
          await this.putLocked(id, record, shard, root, signal)
        }
        await table.save(id)
        return id
      }, { signal })
      if (held === id) {
        return id
      }
      id = held
    }
  }

  private async putLocked (contract: string, c: ContractRecord, shard: Uint8Array, root: Uint8Array, signal: AbortSignal): Promise<void> {
    const key = hex(root)
    if (c.shards.some(([r]) => r === key)) {
      // held already (a put sent again): the revision stays, and the host answers it as it is
      const sats = transferCost(c.version ?? 1, BigInt(c.uploadPrice), shard.byteLength)
      this.accrue(c, c.uploadPrice, shard.byteLength)
      const encoded = decodeSigned(Buffer.from(c.signedRevision ?? '', 'base64')).message
      const renterSignature = signRevision(encoded, this.components.signer)
      const hostSignature = await this.components.session.put(c.host, contract, key, renterSignature, shard, sats, callSignal(signal, transferTimeoutMs(shard.byteLength, this.init.minThroughput)))
      verifyRevision(encoded, c.host, hostSignature)
      return
    }
    const shards: Array<[string, number]> = [...c.shards, [key, shard.byteLength]]
    const rev = revisionOver(contract, c.revision, shards)
    const encoded = encodeRevision(rev)
    const renterSignature = signRevision(encoded, this.components.signer)
    const sats = transferCost(c.version ?? 1, BigInt(c.uploadPrice), shard.byteLength)
    this.accrue(c, c.uploadPrice, shard.byteLength)
    const started = performance.now()
    const hostSignature = await this.components.session.put(c.host, contract, key, renterSignature, shard, sats, callSignal(signal, transferTimeoutMs(shard.byteLength, this.init.minThroughput)))
    log('put %d bytes on %s in %d ms', shard.byteLength, c.host, Math.round(performance.now() - started))
    verifyRevision(encoded, c.host, hostSignature)
    c.shards = shards
    c.revision = rev.number
    c.signedRevision = Buffer.from(encodeSigned(encoded, renterSignature, hostSignature)).toString('base64')
    c.spent.upload = String(BigInt(c.spent.upload) + sats)
  }

  /**
   * Delete shards from a contract, one signed revision each (an object
   * removed, or shards no object names). A shard the host no longer holds
   * is dropped from the record. Resolves with how many went.
   */
  async deleteShards (contract: string, c: ContractRecord, roots: Iterable<string>, signal: AbortSignal): Promise<number> {
    const table = this.components.records.contracts
    return this.locks.run(contract, async () => {
      let deleted = 0
      try {
        for (const root of roots) {
          signal.throwIfAborted()
          if (!c.shards.some(([r]) => r === root)) {
            continue
          }
          const shards = c.shards.filter(([r]) => r !== root)
          const rev = revisionOver(contract, c.revision, shards)
          const encoded = encodeRevision(rev)
          const renterSignature = signRevision(encoded, this.components.signer)
          let answer
          try {
            answer = await this.components.session.delete(c.host, contract, root, renterSignature, callSignal(signal, END_CALL_MS))
          } catch (err) {
            if (err instanceof InvalidSignatureError && !signal.aborted && await this.resync(contract, c, signal)) {
              // the host was ahead: the shard set is the host's now; try this root again
              continue
            }
            throw err
          }
          verifyRevision(encoded, c.host, answer.hostSignature)
          c.shards = shards
          c.revision = rev.number
          c.signedRevision = Buffer.from(encodeSigned(encoded, renterSignature, answer.hostSignature)).toString('base64')
          deleted++
        }
      } finally {
        await table.save(contract)
      }
      return deleted
    }, { signal })
  }

  /**
   * Take the host's latest revision when it is ahead of this node's
   * record: it must be signed by this node and by the host and match the
   * shard list the host answers (so nothing this node did not sign is
   * taken); and its periods paid when more, and its rent sums when they
   * differ and are believable (takeHostSums). The caller holds the
   * contract's lock. Resolves with whether the record changed.
   */
  async resync (id: string, c: ContractRecord, signal: AbortSignal): Promise<boolean> {
    const answer = await this.components.session.list(c.host, id, signal)
    let changed = false
    if (answer.signedRevision != null && answer.revision > c.revision) {
      const signed = Buffer.from(answer.signedRevision, 'base64')
      const { message, renterSignature, hostSignature } = decodeSigned(signed)
      verifyRevision(message, this.components.peerId, renterSignature)
      verifyRevision(message, c.host, hostSignature)
      const rev = decodeRevision(message)
      const shards: Array<[string, number]> = answer.shards.map(s => [s.root, s.bytes])
      const expected = encodeRevision(revisionOver(id, rev.number - 1, shards))
      if (hex(rev.contractId) !== id || rev.number !== answer.revision || !Buffer.from(expected).equals(Buffer.from(message))) {
        throw new IntegrityError(`host ${c.host} answered a revision of contract ${id} that does not match the shards it lists`)
      }
      log('contract %s with %s resynchronised from revision %d to the host\'s %d', id, c.host, c.revision, rev.number)
      const had = new Set(c.shards.map(([root]) => root))
      const now = new Set(shards.map(([root]) => root))
      c.learned = [...new Set([...(c.learned ?? []), ...now].filter(root => now.has(root) && (!had.has(root) || c.learned?.includes(root) === true)))].sort()
      c.shards = shards
      c.revision = rev.number
      c.signedRevision = answer.signedRevision
      changed = true
    }
    if (answer.rentPaidPeriods > c.rentPaidPeriods) {
      // rent whose answer was lost: paid, as the host says
      c.rentPaidPeriods = answer.rentPaidPeriods
      changed = true
    }
    // its rent sums, if they are believable (a crash lost this node's count of some transfers)
    if (answer.rentAccrued != null && answer.rentPaid != null && (answer.rentAccrued !== c.rentAccrued || answer.rentPaid !== formatAmount(BigInt(c.rentPaid ?? '0')))) {
      changed = this.takeHostSums(id, c, answer.rentAccrued, answer.rentPaid, BigInt(c.rentPaid ?? '0'), false) || changed
    }
    if (changed) {
      await this.components.records.contracts.save(id)
    }
    return changed
  }

  /**
   * End a contract with its host: this node's signed rating of the host goes
   * with the request (satisfactory unless the host was caught or lost
   * shards), and the host's rating of this node comes back. Both are kept
   * with the contract and under /storage/ratings, after the object is gone
   * too. The contract counts as ended even when the host could not be told
   * (it keeps the shards until the contract's end), unless `untilTold`:
   * then only once the host answered, so the caller can try again.
   */
  async end (id: string, c: ContractRecord, signal: AbortSignal, options: { untilTold?: boolean } = {}): Promise<void> {
    // from the call on (before any wait), no put leases it
    this.closing.add(id)
    try {
      await this.locks.run(id, async () => { await this.endLocked(id, c, signal, options) }, { signal })
    } finally {
      this.closing.delete(id)
    }
  }

  private async endLocked (id: string, c: ContractRecord, signal: AbortSignal, options: { untilTold?: boolean }): Promise<void> {
    const { peerId, signer, session } = this.components
    const satisfied = servedWell(c)
    const reason = c.lost != null
      ? `condemned: ${c.lostReason ?? 'lost'}`.slice(0, 200)
      : (c.shardsLost ?? 0) > 0 ? `lost ${c.shardsLost ?? 0} shards` : `served as agreed; ${c.audit?.passed ?? 0} audits passed`
    const mine = signRating({ contractId: Buffer.from(id, 'hex'), rater: peerId, rated: c.host, satisfactory: satisfied, reason, at: Date.now() }, signer)
    c.ratings = { renter: Buffer.from(mine).toString('base64'), renterSatisfied: satisfied }
    let told = false
    try {
      const answer = await session.end(c.host, id, mine, signal)
      told = true
      if (answer.rating != null) {
        const rating = openRating(Buffer.from(answer.rating, 'base64'))
        if (rating.rater === c.host && rating.rated === peerId && hex(rating.contractId) === id) {
          c.ratings.host = answer.rating
          c.ratings.hostSatisfied = rating.satisfactory
        }
      }
    } catch (err) {
      // the host no longer has it (expired, ended on its side): as good as told
      told ||= err instanceof NotFoundError
      throw err
    } finally {
      if (told || options.untilTold !== true) {
        await this.close(id, c)
      }
    }
  }

  /** A contract ends on this node's side: rated, and its ratings kept under /storage/ratings */
  async close (id: string, c: ContractRecord): Promise<void> {
    c.ended ??= Date.now()
    this.components.rateContract?.(c.host, servedWell(c))
    try {
      await this.components.records.saveRatings(id, c)
      await this.components.records.contracts.save(id)
    } catch {}
  }
}
