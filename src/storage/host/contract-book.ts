import { Key, type Datastore } from 'interface-datastore'
import { AccessDeniedError, NotFoundError } from '../../protocols/rpc/errors.ts'
import { decodeSigned, decodeTerms, type ContractTerms } from '../protocol/contract.ts'
import { KeyedLock } from '../../utils/keyed-lock.ts'
import { CONTRACTS_PREFIX } from './constants.ts'

/** A contract as the host keeps it */
export interface HostContract {
  id: string
  terms: ContractTerms
  /** encodeSigned(terms, renter signature, host signature) */
  signed: Uint8Array
  revision: number
  /** encodeSigned(revision, renter signature, host signature) of the latest revision */
  signedRevision?: Uint8Array
  shards: Map<string, number>
  /**
   * the sum of the sizes of the shards held, kept with them (from the
   * revision each change signs): every put's check reads it, and summing
   * every shard there made each put cost the whole contract twice
   */
  bytes: number
  rentPaidPeriods: number
  /**
   * the exact rent charged so far, in units of 1 / RENT_UNITS_PER_SAT sat
   * (version 2: storage-price x bytes held x ms, per period paid), and the
   * whole satoshis paid for it: the next rent's price is what takes the
   * one up to the other, so nothing rounds up but the last satoshi
   */
  rentAccrued: bigint
  rentPaid: bigint
  endedAt?: number
  /** why it ended early: "by its renter", "rent unpaid" */
  endedReason?: string
  /** the signed ratings exchanged when it ended, base64 */
  ratings?: { renter?: string, host: string }
  /**
   * the last revision a renter's signature was checked against (kept in
   * memory only): the pipeline's agreement check and the handler's both
   * ask for it, and each would hash the whole shard set again
   */
  checked?: { key: string, next: SignedRevision }
}

/** A revision the renter signed and the host may countersign */
export interface SignedRevision {
  encoded: Uint8Array
  renterSignature: Uint8Array
  number: number
  /** the shards it holds, and the sum of their sizes */
  shards: Map<string, number>
  bytes: number
}

export interface ContractBookComponents {
  datastore: Datastore
  /** this host's clock, default Date.now */
  now?: () => number
}

function b64 (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}

/**
 * The contracts this host signed, in memory and in the datastore (one key
 * per contract, written after every change but a get's accrual: accrue),
 * with one lock per contract and what they take of the host's space
 */
export class ContractBook {
  private readonly datastore: Datastore
  readonly now: () => number
  private readonly contracts = new Map<string, HostContract>()
  /** the contracts whose rent-accrued grew in memory (accrue) since they were last saved */
  private readonly unsaved = new Set<string>()
  /** one change at a time per contract, so revisions follow each other */
  readonly locks = new KeyedLock()

  constructor (components: ContractBookComponents) {
    this.datastore = components.datastore
    this.now = components.now ?? Date.now
  }

  /** Read the contracts kept in the datastore */
  async load (): Promise<void> {
    for await (const { value } of this.datastore.query({ prefix: CONTRACTS_PREFIX })) {
      const raw = JSON.parse(new TextDecoder().decode(value))
      const signed = Buffer.from(raw.signed, 'base64')
      const terms = decodeTerms(decodeSigned(signed).message)
      const shards = new Map<string, number>(raw.shards)
      this.contracts.set(raw.id, {
        id: raw.id,
        terms,
        signed,
        revision: raw.revision,
        signedRevision: raw.signedRevision == null ? undefined : Buffer.from(raw.signedRevision, 'base64'),
        shards,
        bytes: [...shards.values()].reduce((n, l) => n + l, 0),
        rentPaidPeriods: raw.rentPaidPeriods,
        // records written before version 2 terms have neither: nothing accrued, nothing paid
        rentAccrued: BigInt(raw.rentAccrued ?? 0),
        rentPaid: BigInt(raw.rentPaid ?? 0),
        endedAt: raw.endedAt ?? undefined,
        endedReason: raw.endedReason ?? undefined,
        ratings: raw.ratings ?? undefined
      })
    }
  }

  async save (c: HostContract): Promise<void> {
    // what accrue added so far goes into this record; an accrual landing
    // while the datastore writes marks the contract unsaved again
    this.unsaved.delete(c.id)
    const raw = {
      id: c.id,
      signed: b64(c.signed),
      revision: c.revision,
      signedRevision: c.signedRevision == null ? null : b64(c.signedRevision),
      shards: [...c.shards],
      rentPaidPeriods: c.rentPaidPeriods,
      // decimal strings: JSON has no bigint, and a number would round past 2^53
      rentAccrued: c.rentAccrued.toString(),
      rentPaid: c.rentPaid.toString(),
      endedAt: c.endedAt ?? null,
      endedReason: c.endedReason ?? null,
      ratings: c.ratings ?? null
    }
    await this.datastore.put(new Key(`${CONTRACTS_PREFIX}/${c.id}`), new TextEncoder().encode(JSON.stringify(raw)))
  }

  /**
   * Add a transfer's remainder (rent units, transferRemainder) to a
   * contract's rent-accrued in memory only: the next save of the contract
   * (a rent, put, delete or end, the sweeper's, or flush) writes it. A get
   * accrues this way because the record carries every shard the contract
   * holds, and writing it per get would slow every download; a host that
   * crashes loses the remainders accrued since its last save (under a
   * satoshi each, its own loss: the renter is charged less, never twice).
   */
  accrue (c: HostContract, units: bigint): void {
    if (units === 0n) {
      return
    }
    c.rentAccrued += units
    this.unsaved.add(c.id)
  }

  /**
   * Save every contract with accruals not saved yet, each under its lock
   * (so a record is never written from a put's half-made change); the
   * sweeper calls it at its interval and the host when it stops. Resolves
   * with how many it saved.
   */
  async flush (options: { signal?: AbortSignal } = {}): Promise<number> {
    let saved = 0
    for (const id of [...this.unsaved]) {
      const c = this.contracts.get(id)
      if (c == null) {
        this.unsaved.delete(id)
        continue
      }
      await this.locks.run(id, async () => {
        // a rent or put may have saved it while this waited for the lock
        if (this.unsaved.has(id)) {
          await this.save(c)
          saved++
        }
      }, options)
    }
    return saved
  }

  /** A new contract, kept in memory (the caller saves it) */
  add (c: HostContract): void {
    this.contracts.set(c.id, c)
  }

  get (id: string): HostContract | undefined {
    return this.contracts.get(id)
  }

  has (id: string): boolean {
    return this.contracts.has(id)
  }

  /** Every contract, ended or not (a copy: the caller may change the book while it walks them) */
  all (): HostContract[] {
    return [...this.contracts.values()]
  }

  /**
   * The caller's contract, if it has not ended. Past its end date it is
   * still there for `get`, `list` and `end` (readOnly) until the grace runs
   * out: a renter whose node was off over the end date can take its data
   * out, but cannot store more or pay rent into an expired contract.
   */
  live (id: string, caller: string, readOnly = false): HostContract {
    const c = this.known(id, caller)
    if (c.endedAt != null) {
      const renewed = /^renewed as ([0-9a-f]{64})$/.exec(c.endedReason ?? '')
      throw new NotFoundError(renewed != null
        ? `contract ${id} was renewed as ${renewed[1]}; its shards moved there`
        : `contract ${id} has ended (${c.endedReason ?? 'by its renter'}); its shards are deleted`)
    }
    if (!readOnly && c.terms.end <= this.now()) {
      throw new NotFoundError(`contract ${id} expired at ${new Date(c.terms.end).toISOString()}`)
    }
    return c
  }

  /** The caller's contract, ended or not */
  known (id: string, caller: string): HostContract {
    const c = this.contracts.get(id)
    if (c == null) {
      throw new NotFoundError(`this host has no contract ${id}`)
    }
    if (c.terms.renter !== caller) {
      throw new AccessDeniedError(`contract ${id} belongs to another renter`)
    }
    return c
  }

  /** The size of a shard the contract holds */
  held (c: HostContract, root: string): number {
    const size = c.shards.get(root)
    if (size == null) {
      throw new NotFoundError(`contract ${c.id} holds no shard ${root}`)
    }
    return size
  }

  /** Bytes promised to live contracts */
  reserved (now = this.now()): number {
    let n = 0
    for (const c of this.contracts.values()) {
      if (c.endedAt == null && c.terms.end > now) {
        n += c.terms.maxBytes
      }
    }
    return n
  }

  /** Bytes of shards held */
  used (): number {
    let n = 0
    for (const c of this.contracts.values()) {
      n += c.bytes
    }
    return n
  }

  /** How many contracts have not ended */
  open (): number {
    return this.all().filter(c => c.endedAt == null).length
  }
}
