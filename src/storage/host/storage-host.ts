import { logger } from '@libp2p/logger'
import type { Datastore } from 'interface-datastore'
import { costOf } from './agreement.ts'
import { ContractBook } from './contract-book.ts'
import { DEFAULT_CAPACITY, DEFAULT_CLOCK_SKEW_MS, DEFAULT_MAX_DURATION_MS, DEFAULT_MIN_RENT_PERIOD_MS, DEFAULT_RENT_GRACE_MS, DEFAULT_SWEEP_MS } from './constants.ts'
import { ShardStore } from './shard-store.ts'
import { Sweeper } from './sweeper.ts'
import { TermsCheck, type HostPrices } from './terms.ts'
import { contract, type ContractAnswer } from './handlers/contract.ts'
import { renew, type RenewAnswer } from './handlers/renew.ts'
import { put, type RevisionAnswer } from './handlers/put.ts'
import { get } from './handlers/get.ts'
import { prove } from './handlers/prove.ts'
import { deleteShard } from './handlers/delete.ts'
import { list } from './handlers/list.ts'
import type { ListAnswer } from '../protocol/answers.ts'
import { rent, type RentAnswer } from './handlers/rent.ts'
import { end, type EndAnswer } from './handlers/end.ts'
import { sharedGet } from './handlers/shared-get.ts'
import { unshare, type UnshareAnswer } from './handlers/unshare.ts'
import { Revocations } from './revocations.ts'
import { checkNoteCall, contracts, noteDelete, noteList, notePut, type NoteMethod } from './handlers/notes.ts'
import { NoteStore } from './note-store.ts'
import type { OutgoingBody } from '../../protocols/rpc/body.ts'
import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import type { StorageMethod } from './args.ts'
import type { HostContext } from './context.ts'
import type { HostQuery, HostRequest } from './request.ts'

const log = logger('opencloud:storage:host')

export interface StorageHostComponents {
  /** this host's PeerId */
  peerId: string
  signer: CredentialSigner
  datastore: Datastore
  /** the prices the registry has now (config.json, `market price set`) */
  prices: () => HostPrices
  /**
   * whether this node takes payments (payments.chain is set): a host that
   * cannot be paid signs no terms with a price above 0
   */
  takesPayments: boolean
  /** a reputation record of a renter that stopped paying rent */
  rateRenter?: (renter: string, event: 'rent-unpaid') => void
  /** a reputation record of a renter when a contract ends */
  recordRenter?: (renter: string, outcome: 'satisfactory' | 'unsatisfactory', event: string) => void
  /** this host's clock, default Date.now (tests pass a fake one) */
  now?: () => number
}

export interface StorageHostInit {
  /** where shards live: <data dir>/storage */
  dir: string
  /** bytes this host offers in all contracts together, default 10 GiB */
  capacity?: number
  /** the longest contract accepted, default 366 days */
  maxDurationMs?: number
  /** the shortest rent period accepted, default 60 s (testnets use short ones) */
  minRentPeriodMs?: number
  /** how far a contract's start may be from this host's clock, default 10 minutes */
  clockSkewMs?: number
  /**
   * how long rent may stay unpaid past the periods paid for before the
   * contract ends and its shards are deleted, default 7 days: a renter's
   * node that is off for a week loses nothing
   */
  rentGraceMs?: number
  /** how often unpaid contracts are looked for, default 60 s */
  checkMs?: number
}

/**
 * The storage host (PROTOCOL.md, "Storage"): contracts signed by both sides,
 * shards stored under their Merkle roots, revisions signed by both sides
 * after every change, ranged reads checked leaf by leaf, and Merkle proofs
 * of challenged leaves for audits. Shard bytes live as files under the data
 * directory (shard-store.ts); contracts in the datastore (contract-book.ts).
 * Each method of the storage protocol is one handler under handlers/; this
 * class assembles them over one contract book and answers with them.
 */
export class StorageHost {
  readonly capacity: number
  readonly store: ShardStore
  private readonly book: ContractBook
  private readonly sweeper: Sweeper
  /** the renters' notes: their object index (PROTOCOL.md 8g) */
  readonly notes: NoteStore
  /** what the handlers share */
  private readonly context: HostContext
  /** the grants renters revoked (PROTOCOL.md 8h), each until its expiry */
  private readonly revocations: Revocations

  constructor (components: StorageHostComponents, init: StorageHostInit) {
    this.capacity = init.capacity ?? DEFAULT_CAPACITY
    this.store = new ShardStore(init.dir)
    this.book = new ContractBook({ datastore: components.datastore, now: components.now })
    this.notes = new NoteStore(components.datastore)
    this.sweeper = new Sweeper({ book: this.book, store: this.store, notes: this.notes, rateRenter: components.rateRenter, recordRenter: components.recordRenter }, {
      graceMs: init.rentGraceMs ?? DEFAULT_RENT_GRACE_MS,
      intervalMs: init.checkMs ?? DEFAULT_SWEEP_MS
    })
    const terms = new TermsCheck(this.book, {
      dir: init.dir,
      capacity: this.capacity,
      maxDurationMs: init.maxDurationMs ?? DEFAULT_MAX_DURATION_MS,
      minRentPeriodMs: init.minRentPeriodMs ?? DEFAULT_MIN_RENT_PERIOD_MS,
      clockSkewMs: init.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS,
      prices: components.prices,
      takesPayments: components.takesPayments
    })
    this.revocations = new Revocations({ datastore: components.datastore, now: this.book.now })
    this.context = { peerId: components.peerId, signer: components.signer, book: this.book, store: this.store, terms, recordRenter: components.recordRenter }
  }

  async start (): Promise<void> {
    await this.store.start()
    await this.book.load()
    await this.revocations.load()
    await this.notes.load()
    log('%d contracts, %d bytes reserved of %d', this.contractsHeld(), this.reserved(), this.capacity)
    this.sweeper.start()
  }

  /** Stops the sweeper, then saves what gets accrued since the last save (ContractBook.flush) */
  async stop (): Promise<void> {
    await this.sweeper.stop()
    await this.book.flush()
  }

  /** Both checks the sweeper runs: unpaid rent, then expiry */
  async endOverdue (now?: number): Promise<string[]> {
    return this.sweeper.endOverdue(now)
  }

  /** End the contracts past their end by the rent grace (Sweeper.endExpired) */
  async endExpired (now?: number): Promise<string[]> {
    return this.sweeper.endExpired(now)
  }

  /** End the contracts whose rent is unpaid past the grace (Sweeper.endUnpaid) */
  async endUnpaid (now?: number): Promise<string[]> {
    return this.sweeper.endUnpaid(now)
  }

  /** Bytes promised to live contracts */
  reserved (now?: number): number {
    return this.book.reserved(now)
  }

  /** Bytes of shards held */
  used (): number {
    return this.book.used()
  }

  /** Contracts that have not ended */
  contractsHeld (): number {
    return this.book.open()
  }

  /** Who rents here: each renter's contracts not ended and the bytes they hold, most bytes first */
  renters (): Array<{ renter: string, contracts: number, bytes: number }> {
    const byRenter = new Map<string, { renter: string, contracts: number, bytes: number }>()
    for (const c of this.book.all()) {
      if (c.endedAt != null) continue
      const r = byRenter.get(c.terms.renter) ?? { renter: c.terms.renter, contracts: 0, bytes: 0 }
      r.contracts++
      r.bytes += c.bytes
      byRenter.set(c.terms.renter, r)
    }
    return [...byRenter.values()].sort((a, b) => b.bytes - a.bytes || a.renter.localeCompare(b.renter))
  }

  /**
   * The agreement check of a call and its price at the contract's prices,
   * asked before payment (agreement.ts, costOf); undefined: the list price
   */
  cost (method: StorageMethod, query: HostQuery): bigint | undefined {
    if (method === 'note-put' || method === 'note-list' || method === 'note-delete' || method === 'contracts') {
      // free: the list price, as `list`
      checkNoteCall(this.book, method, query)
      return undefined
    }
    return costOf(this.book, method, query)
  }

  // the methods of the storage protocol, one handler each

  async contract (req: HostRequest): Promise<ContractAnswer> {
    return contract(this.context, req)
  }

  async renew (req: HostRequest): Promise<RenewAnswer> {
    return renew(this.context, req)
  }

  async put (req: HostRequest): Promise<RevisionAnswer> {
    return put(this.context, req)
  }

  async get (req: HostRequest): Promise<OutgoingBody> {
    return get(this.context, req)
  }

  async prove (req: HostRequest): Promise<Uint8Array> {
    return prove(this.context, req)
  }

  async delete (req: HostRequest): Promise<RevisionAnswer> {
    return deleteShard(this.context, req)
  }

  async list (req: HostRequest): Promise<ListAnswer> {
    return list(this.context, req)
  }

  async rent (req: HostRequest): Promise<RentAnswer> {
    return rent(this.context, req)
  }

  async end (req: HostRequest): Promise<EndAnswer> {
    return end(this.context, req)
  }

  async sharedGet (req: HostRequest): Promise<OutgoingBody> {
    return sharedGet({ ...this.context, revocations: this.revocations }, req)
  }

  async unshare (req: HostRequest): Promise<UnshareAnswer> {
    return unshare({ ...this.context, revocations: this.revocations }, req)
  }

  // the object index (PROTOCOL.md 8g)

  async notePut (req: HostRequest): Promise<{ id: string, bytes: number }> {
    return notePut({ book: this.book, notes: this.notes }, req)
  }

  async noteList (req: HostRequest): Promise<{ notes: Array<{ id: string, note: string }>, more: boolean }> {
    return noteList({ book: this.book, notes: this.notes }, req)
  }

  async noteDelete (req: HostRequest): Promise<{ id: string, deleted: boolean }> {
    return noteDelete({ book: this.book, notes: this.notes }, req)
  }

  async contracts (req: HostRequest): Promise<Awaited<ReturnType<typeof contracts>>> {
    return contracts({ book: this.book }, req)
  }
}
