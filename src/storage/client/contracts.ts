import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { NotFoundError } from '../../protocols/rpc/errors.ts'
import { contractIdOf, encodeRevision, encodeSigned, encodeTerms, nextRevision, rentPerPeriod, signRevision, signTerms, transferCost, verifyRevision, verifyTerms, type ContractTerms } from '../protocol/contract.ts'
import { openRating, signRating } from '../protocol/rating.ts'
import { TRANSFER_BASE_MS } from '../constants.ts'
import { IntegrityError } from '../errors.ts'
import { servedWell } from './health.ts'
import { callSignal, type StorageSession } from './session.ts'
import type { HostOffer, StorageClientComponents } from './interface.ts'
import type { ContractRecord, Records } from './records.ts'

const log = logger('opencloud:storage:client')

export function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
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
}

/**
 * This node's contracts with hosts: forming and renewing them (terms both
 * sides sign), paying their rent a period at a time, adding a shard (the
 * revision after the last, countersigned) and ending them with a rating
 */
export class Contracts {
  private readonly components: ContractsComponents
  private readonly init: ContractsInit

  constructor (components: ContractsComponents, init: ContractsInit) {
    this.components = components
    this.init = init
  }

  /** A contract with `host` for `maxBytes` over `durationMs`, its first period paid up front */
  async form (host: HostOffer, maxBytes: number, durationMs: number, signal: AbortSignal): Promise<{ id: string, record: ContractRecord }> {
    const { peerId, signer, session } = this.components
    const start = Date.now()
    const terms: ContractTerms = {
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
    const record: ContractRecord = {
      host: host.peer,
      signed: Buffer.from(encodeSigned(encoded, renterSignature, answer.hostSignature)).toString('base64'),
      start: terms.start,
      end: terms.end,
      maxBytes,
      storagePrice: String(host.storage),
      uploadPrice: String(host.upload),
      downloadPrice: String(host.download),
      rentPeriodMs: terms.rentPeriodMs,
      rentPaidPeriods: 0,
      revision: 0,
      trustAtStart: this.components.trust?.(host.peer),
      shards: [],
      spent: { upload: '0', download: '0', rent: '0' }
    }
    // the first period is paid up front: a host holds space only for a renter that pays
    await this.payPeriod(id, record, signal)
    return { id, record }
  }

  /**
   * A contract that takes `old`'s place with the same host: new terms of
   * the same length at the host's current prices, the shards carried over
   * without sending them again
   */
  async renew (oldId: string, old: ContractRecord, length: number, offer: HostOffer | undefined, signal: AbortSignal): Promise<{ id: string, record: ContractRecord }> {
    const { peerId, signer, session } = this.components
    const start = Date.now()
    // the host's current prices (it signs nothing below them)
    const prices = offer ?? { storage: BigInt(old.storagePrice), upload: BigInt(old.uploadPrice), download: BigInt(old.downloadPrice) }
    const terms: ContractTerms = {
      renter: peerId,
      host: old.host,
      nonce: randomBytes(16),
      start,
      end: start + length,
      maxBytes: old.maxBytes,
      storagePrice: prices.storage,
      uploadPrice: prices.upload,
      downloadPrice: prices.download,
      rentPeriodMs: old.rentPeriodMs
    }
    const encoded = encodeTerms(terms)
    const id = hex(contractIdOf(encoded))
    const renterSignature = signTerms(encoded, signer)
    const revision = encodeRevision(nextRevision(Buffer.from(id, 'hex'), 0, old.shards.map(([root, length]) => ({ root: Buffer.from(root, 'hex'), length }))))
    const revisionSignature = signRevision(revision, signer)
    const answer = await session.renew(old.host, oldId, encoded, renterSignature, revisionSignature, signal)
    if (answer.contract !== id || answer.revision !== 1) {
      throw new IntegrityError(`host ${old.host} answered contract ${answer.contract} at revision ${String(answer.revision)}, not ${id} at revision 1`)
    }
    verifyTerms(encoded, old.host, answer.hostSignature)
    verifyRevision(revision, old.host, answer.revisionSignature)
    const record: ContractRecord = {
      host: old.host,
      signed: Buffer.from(encodeSigned(encoded, renterSignature, answer.hostSignature)).toString('base64'),
      start,
      end: terms.end,
      maxBytes: old.maxBytes,
      storagePrice: String(prices.storage),
      uploadPrice: String(prices.upload),
      downloadPrice: String(prices.download),
      rentPeriodMs: old.rentPeriodMs,
      rentPaidPeriods: 0,
      revision: 1,
      trustAtStart: Math.max(old.trustAtStart ?? 0, this.components.trust?.(old.host) ?? 0),
      signedRevision: Buffer.from(encodeSigned(revision, revisionSignature, answer.revisionSignature)).toString('base64'),
      shards: [...old.shards],
      spent: { upload: '0', download: '0', rent: '0' },
      audit: old.audit
    }
    return { id, record }
  }

  termsOf (record: ContractRecord): ContractTerms {
    return { renter: this.components.peerId, host: record.host, nonce: new Uint8Array(16), start: record.start, end: record.end, maxBytes: record.maxBytes, storagePrice: BigInt(record.storagePrice), uploadPrice: BigInt(record.uploadPrice), downloadPrice: BigInt(record.downloadPrice), rentPeriodMs: record.rentPeriodMs }
  }

  /** Pay one more period of a contract's rent */
  async payPeriod (id: string, record: ContractRecord, signal: AbortSignal): Promise<void> {
    const sats = rentPerPeriod(this.termsOf(record))
    await this.components.session.rent(record.host, id, 1, sats, signal)
    record.rentPaidPeriods++
    record.spent.rent = String(BigInt(record.spent.rent) + sats)
  }

  /**
   * Put one shard under a contract: the revision after the last, signed by
   * both sides, paid at the contract's upload price. A host slower than
   * minThroughput is given up on (and its shard goes elsewhere).
   */
  async putShard (contract: string, c: ContractRecord, shard: Uint8Array, root: Uint8Array, signal: AbortSignal): Promise<void> {
    const shards: Array<[string, number]> = [...c.shards, [hex(root), shard.byteLength]]
    const rev = nextRevision(Buffer.from(contract, 'hex'), c.revision, shards.map(([r, length]) => ({ root: Buffer.from(r, 'hex'), length })))
    const encoded = encodeRevision(rev)
    const renterSignature = signRevision(encoded, this.components.signer)
    const sats = transferCost(BigInt(c.uploadPrice), shard.byteLength)
    const started = performance.now()
    const hostSignature = await this.components.session.put(c.host, contract, hex(root), renterSignature, shard, sats, callSignal(signal, transferTimeoutMs(shard.byteLength, this.init.minThroughput)))
    log('put %d bytes on %s in %d ms', shard.byteLength, c.host, Math.round(performance.now() - started))
    verifyRevision(encoded, c.host, hostSignature)
    c.shards = shards
    c.revision = rev.number
    c.signedRevision = Buffer.from(encodeSigned(encoded, renterSignature, hostSignature)).toString('base64')
    c.spent.upload = String(BigInt(c.spent.upload) + sats)
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
    } catch {}
  }
}
