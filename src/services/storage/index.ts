import { statfs } from 'node:fs/promises'
import { logger } from '@libp2p/logger'
import { Key, type Datastore } from 'interface-datastore'
import { formatAmount, Units } from '../../protocols/units.ts'
import { canonicalDecimal } from '../../protocols/args.ts'
import { base64Signature } from '../../protocols/signed.ts'
import { DecodeError, Reader, Writer } from '../../protocols/codec.ts'
import { AccessDeniedError, BadRequestError, BodyTooLargeError, InsufficientStorageError, InvalidSignatureError, NotFoundError, RequestDeclinedError } from '../../protocols/rpc/errors.ts'
import { contractIdOf, decodeSigned, decodeTerms, encodeRevision, encodeSigned, nextRevision, overMaxMoney, rentPerPeriod, rentPeriods, signRevision, signTerms, transferCost, verifyRevision, verifyTerms, type ContractTerms, MAX_CONTRACT_MS } from '../../storage/protocol/contract.ts'
import { openRating, signRating } from '../../storage/protocol/rating.ts'
import { ShardCorruptError, ShardMismatchError, ShardStore } from './shard-store.ts'
import { encodeProofs } from '../../storage/protocol/proofs.ts'
import { KeyedLock } from '../../utils/keyed-lock.ts'
import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import type { CostQuery, MethodSpec, Service, ServiceContext } from '../interface.ts'

const log = logger('opencloud:storage:host')

export const STORAGE_SERVICE = 'storage'
const GIB = 1024 ** 3
const CONTRACTS = '/storage/host/contracts'

/** The host's current prices, satoshis: per GiB-month stored, per GiB uploaded, per GiB downloaded */
export interface HostPrices {
  storage: bigint
  upload: bigint
  download: bigint
}

export interface StorageServiceComponents {
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
}

export interface StorageServiceInit {
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

export const DEFAULT_CAPACITY = 10 * GIB

interface HostContract {
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
interface SignedRevision {
  encoded: Uint8Array
  renterSignature: Uint8Array
  number: number
  /** the shards it holds, and the sum of their sizes */
  shards: Map<string, number>
  bytes: number
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

function b64 (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}

const HEX32 = /^[0-9a-f]{64}$/

function hexArg (value: string, what: string): string {
  if (!HEX32.test(value)) {
    throw new BadRequestError(`${what} is 64 lowercase hex digits, not "${value}"`)
  }
  return value
}

/** A whole number written canonically (no "007", "+1" or "1e3"), from min to max */
function intArg (value: string, what: string, min: number, max: number): number {
  const n = canonicalDecimal(value, min, max)
  if (n == null) {
    throw new BadRequestError(`${what} is a whole number from ${min} to ${max} written as plain decimal digits, not "${value}"`)
  }
  return n
}

function signatureArg (value: string, what: string): Uint8Array {
  try {
    return base64Signature(value, what)
  } catch (err: any) {
    throw new BadRequestError(err.message)
  }
}

type StorageMethod = 'contract' | 'renew' | 'rent' | 'put' | 'get' | 'prove' | 'delete' | 'list' | 'end'

/**
 * Each method's args: their usage (for `methods` and refusals) and how
 * many may be given. More args than a method takes are refused rather than
 * ignored, so an argument a host does not understand is never dropped in
 * silence (PROTOCOL.md 8d, "Methods").
 */
const ARGS: Record<StorageMethod, { usage: string, min: number, max: number }> = {
  contract: { usage: '', min: 0, max: 0 },
  renew: { usage: '<contract id> <renter signature of the new contract\'s revision 1, base64>', min: 2, max: 2 },
  rent: { usage: '<contract id> [periods]', min: 1, max: 2 },
  put: { usage: '<contract id> <shard root> <renter signature of the next revision, base64>', min: 3, max: 3 },
  get: { usage: '<contract id> <shard root> <offset> <length>', min: 4, max: 4 },
  prove: { usage: '<contract id> <shard root> <challenge, 32 bytes hex> [leaves, 1-64]', min: 3, max: 4 },
  delete: { usage: '<contract id> <shard root> <renter signature of the next revision, base64>', min: 3, max: 3 },
  list: { usage: '<contract id>', min: 1, max: 1 },
  end: { usage: '<contract id>', min: 1, max: 1 }
}

/** The largest body of `contract` and `renew` (terms and a signature are about 200 bytes) */
const MAX_PROPOSAL_BYTES = 4096
/** The largest body of `end`: a signed rating (its rating at most MAX_RATING_BYTES) */
const MAX_END_BODY_BYTES = 2048

/** A call checked against its contract: what the handler needs of it, and its price */
interface CheckedCall {
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
  /** satoshis at the contract's prices; undefined: free (the list price applies) */
  price?: bigint
}

/** What a CheckedCall holds for the args its method does not take */
const NO_ARGS = { root: '', signature: new Uint8Array(0), offset: 0, length: 0, periods: 0, challenge: new Uint8Array(0), count: 0 }

function checkArgCount (method: StorageMethod, args: string[]): void {
  const { usage, min, max } = ARGS[method]
  if (args.length < min || args.length > max) {
    throw new BadRequestError(`storage.${method} takes ${usage === '' ? 'no args' : usage}; the request has ${args.length}`)
  }
}

function queryOf (ctx: ServiceContext): CostQuery {
  return { args: ctx.args, bodyLength: ctx.body.length, caller: ctx.caller }
}

/**
 * The storage host (PROTOCOL.md, "Storage"): contracts signed by both sides,
 * shards stored under their Merkle roots, revisions signed by both sides
 * after every change, ranged reads checked leaf by leaf, and Merkle proofs
 * of challenged leaves for audits. Shard bytes live as files under the data
 * directory; contracts in the datastore.
 */
export class StorageHost {
  private readonly components: StorageServiceComponents
  readonly capacity: number
  private readonly maxDurationMs: number
  private readonly minRentPeriodMs: number
  private readonly clockSkewMs: number
  private readonly rentGraceMs: number
  private readonly checkMs: number
  private checkTimer?: ReturnType<typeof setInterval>
  private checking?: Promise<unknown>
  readonly store: ShardStore
  private readonly dir: string
  private readonly contracts = new Map<string, HostContract>()
  /** one change at a time per contract, so revisions follow each other */
  private readonly locks = new KeyedLock()

  constructor (components: StorageServiceComponents, init: StorageServiceInit) {
    this.components = components
    this.dir = init.dir
    this.capacity = init.capacity ?? DEFAULT_CAPACITY
    this.maxDurationMs = init.maxDurationMs ?? MAX_CONTRACT_MS
    this.minRentPeriodMs = init.minRentPeriodMs ?? 60_000
    this.clockSkewMs = init.clockSkewMs ?? 600_000
    this.rentGraceMs = init.rentGraceMs ?? 7 * 24 * 3600_000
    this.checkMs = init.checkMs ?? 60_000
    this.store = new ShardStore(init.dir)
  }

  async start (): Promise<void> {
    await this.store.start()
    for await (const { value } of this.components.datastore.query({ prefix: CONTRACTS })) {
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
        endedAt: raw.endedAt ?? undefined,
        endedReason: raw.endedReason ?? undefined,
        ratings: raw.ratings ?? undefined
      })
    }
    log('%d contracts, %d bytes reserved of %d', this.contracts.size, this.reserved(), this.capacity)
    this.checkTimer = setInterval(() => {
      this.checking ??= this.endOverdue().catch(err => { log.error('looking for unpaid and expired contracts failed - %e', err) }).finally(() => { this.checking = undefined })
    }, this.checkMs)
    this.checkTimer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.checkTimer)
    await this.checking
  }

  /** Both checks the timer runs: unpaid rent, then expiry */
  async endOverdue (now = Date.now()): Promise<string[]> {
    return [...await this.endUnpaid(now), ...await this.endExpired(now)]
  }

  /**
   * End the contracts that expired more than the grace period ago without
   * being renewed or ended by the renter (a renewal moves the shards to the
   * new contract and ends the old one): the shards are deleted, so a host's
   * disk does not fill with data nobody pays for, and the renter is rated
   * by whether it paid every period. The grace is the rent grace: a renter
   * whose node was off over the end date can still fetch and move its data.
   */
  async endExpired (now = Date.now()): Promise<string[]> {
    const ended: string[] = []
    for (const c of [...this.contracts.values()]) {
      if (c.endedAt != null || now <= c.terms.end + this.rentGraceMs) {
        continue
      }
      await this.locks.run(c.id, async () => {
        if (c.endedAt != null) {
          return
        }
        const paid = c.rentPaidPeriods >= rentPeriods(c.terms)
        c.endedAt = now
        c.endedReason = paid ? 'expired' : 'expired, rent unpaid'
        c.shards = new Map()
        c.bytes = 0
        await this.save(c)
        await this.store.deleteContract(c.id)
        this.components.recordRenter?.(c.terms.renter, paid ? 'satisfactory' : 'unsatisfactory', paid ? 'contract-expired' : 'rent-unpaid')
        log('contract %s with %s expired at %s, shards deleted', c.id, c.terms.renter, new Date(c.terms.end).toISOString())
        ended.push(c.id)
      })
    }
    return ended
  }

  /**
   * End the contracts whose rent is unpaid past the grace period: the shards
   * are deleted, the space is free again, and the renter is rated. Resolves
   * with the contracts ended.
   */
  async endUnpaid (now = Date.now()): Promise<string[]> {
    const ended: string[] = []
    for (const c of [...this.contracts.values()]) {
      if (c.endedAt != null || c.terms.end <= now) {
        continue
      }
      const paidThrough = c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs
      if (now <= paidThrough + this.rentGraceMs) {
        continue
      }
      await this.locks.run(c.id, async () => {
        if (c.endedAt != null) {
          return
        }
        c.endedAt = now
        c.endedReason = 'rent unpaid'
        c.shards = new Map()
        c.bytes = 0
        await this.save(c)
        await this.store.deleteContract(c.id)
        this.components.rateRenter?.(c.terms.renter, 'rent-unpaid')
        log('contract %s with %s ended: rent paid through %s only', c.id, c.terms.renter, new Date(paidThrough).toISOString())
        ended.push(c.id)
      })
    }
    return ended
  }

  private async save (c: HostContract): Promise<void> {
    const raw = {
      id: c.id,
      signed: b64(c.signed),
      revision: c.revision,
      signedRevision: c.signedRevision == null ? null : b64(c.signedRevision),
      shards: [...c.shards],
      rentPaidPeriods: c.rentPaidPeriods,
      endedAt: c.endedAt ?? null,
      endedReason: c.endedReason ?? null,
      ratings: c.ratings ?? null
    }
    await this.components.datastore.put(new Key(`${CONTRACTS}/${c.id}`), new TextEncoder().encode(JSON.stringify(raw)))
  }

  /** Bytes promised to live contracts */
  reserved (now = Date.now()): number {
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

  contractsHeld (): number {
    return [...this.contracts.values()].filter(c => c.endedAt == null).length
  }

  /**
   * The caller's contract, if it has not ended. Past its end date it is
   * still there for `get`, `list` and `end` (readOnly) until the grace runs
   * out: a renter whose node was off over the end date can take its data
   * out, but cannot store more or pay rent into an expired contract.
   */
  private live (id: string, caller: string, readOnly = false): HostContract {
    const c = this.known(id, caller)
    if (c.endedAt != null) {
      const renewed = /^renewed as ([0-9a-f]{64})$/.exec(c.endedReason ?? '')
      throw new NotFoundError(renewed != null
        ? `contract ${id} was renewed as ${renewed[1]}; its shards moved there`
        : `contract ${id} has ended (${c.endedReason ?? 'by its renter'}); its shards are deleted`)
    }
    if (!readOnly && c.terms.end <= Date.now()) {
      throw new NotFoundError(`contract ${id} expired at ${new Date(c.terms.end).toISOString()}`)
    }
    return c
  }

  /** The caller's contract, ended or not */
  private known (id: string, caller: string): HostContract {
    const c = this.contracts.get(id)
    if (c == null) {
      throw new NotFoundError(`this host has no contract ${id}`)
    }
    if (c.terms.renter !== caller) {
      throw new AccessDeniedError(`contract ${id} belongs to another renter`)
    }
    return c
  }

  /**
   * The agreement check of a call (PROTOCOL.md section 8, step 5, and 8d,
   * "Methods"): its args in their one form, the contract held, live and the
   * caller's, the shard held, the range within it, the body within the
   * contract's room; with its price at the contract's prices. The pipeline
   * asks it before payment, so nobody pays for a refusal; each method asks
   * it again (under the contract's lock where it changes the contract),
   * since the contract may have changed in between.
   */
  cost (method: StorageMethod, q: CostQuery): bigint | undefined {
    if (method === 'contract') {
      checkArgCount(method, q.args)
      if (q.bodyLength > MAX_PROPOSAL_BYTES) {
        throw new BodyTooLargeError(`a contract proposal is at most ${MAX_PROPOSAL_BYTES} bytes`)
      }
      return undefined
    }
    return this.check(method, q).price
  }

  /** The agreement check of a call under a contract (see cost) */
  private check (method: Exclude<StorageMethod, 'contract'>, q: CostQuery): CheckedCall {
    const { args, bodyLength } = q
    checkArgCount(method, args)
    // the form of the args first, so a malformed call is told so whatever
    // the contract's state; then the contract; then what depends on it
    // (a revision signature's form last, next to the revision it signs)
    const id = hexArg(args[0], 'the contract id')
    switch (method) {
      case 'renew': {
        // a renewal sent again finds its old contract ended: renew() answers it
        const c = this.known(id, q.caller)
        if (bodyLength > MAX_PROPOSAL_BYTES) {
          throw new BodyTooLargeError(`a contract proposal is at most ${MAX_PROPOSAL_BYTES} bytes`)
        }
        // its form only: it signs the new contract's revision 1, whose id the body gives
        return { ...NO_ARGS, c, signature: signatureArg(args[1], 'the renter\'s signature of revision 1') }
      }
      case 'rent': {
        const periods = args[1] ?? '1'
        intArg(periods, 'the number of periods', 1, 10_000)
        const c = this.live(id, q.caller)
        // rent past the end would buy nothing: the host keeps no data then
        const left = rentPeriods(c.terms) - c.rentPaidPeriods
        if (left < 1) {
          throw new BadRequestError(`contract ${id} is paid through its end (all ${c.rentPaidPeriods} periods)`)
        }
        const n = intArg(periods, 'the number of periods', 1, Math.min(10_000, left))
        return { ...NO_ARGS, c, periods: n, price: rentPerPeriod(c.terms) * BigInt(n) }
      }
      case 'put':
      case 'delete': {
        const root = hexArg(args[1], 'the shard root')
        const c = this.live(id, q.caller)
        const held = c.shards.get(root)
        if (method === 'delete') {
          if (held == null) {
            throw new NotFoundError(`contract ${id} holds no shard ${root}`)
          }
          const signature = signatureArg(args[2], 'the renter\'s revision signature')
          return { ...NO_ARGS, c, root, held, signature, next: this.expectRevision(c, root, 'delete', signature) }
        }
        if (bodyLength === 0) {
          throw new BadRequestError('a shard is at least one byte')
        }
        if (held != null && bodyLength !== held) {
          // a shard's root fixes its bytes: another length is another shard
          throw new BadRequestError(`contract ${id} holds shard ${root} of ${held} bytes; the body is ${bodyLength}`)
        }
        if (held == null && c.bytes + bodyLength > c.terms.maxBytes) {
          throw new BodyTooLargeError(`the shard of ${bodyLength} bytes is over contract ${id}'s maximum of ${c.terms.maxBytes} bytes: it holds ${c.bytes}`)
        }
        // the revision the put leads to is known from the head: a forged
        // signature is refused here, before payment (so no attached payment
        // is kept for it) and before CONTINUE (so no byte is sent)
        const signature = signatureArg(args[2], 'the renter\'s revision signature')
        const next = this.expectRevision(c, root, held == null ? bodyLength : 'held', signature)
        return { ...NO_ARGS, c, root, held, signature, next, price: transferCost(c.terms.uploadPrice, bodyLength) }
      }
      case 'get': {
        const root = hexArg(args[1], 'the shard root')
        const offset = intArg(args[2], 'the offset', 0, Number.MAX_SAFE_INTEGER)
        const length = intArg(args[3], 'the length', 0, Number.MAX_SAFE_INTEGER)
        const c = this.live(id, q.caller, true)
        const held = this.held(c, root)
        // a range past the end is refused, not cut short: a renter asking
        // for bytes the shard does not have has the wrong size on record
        if (offset > held || length > held - offset) {
          throw new BadRequestError(`bytes ${offset} to ${offset + length} are past the end of shard ${root}, which is ${held} bytes`)
        }
        return { ...NO_ARGS, c, root, held, offset, length, price: transferCost(c.terms.downloadPrice, length) }
      }
      case 'prove': {
        const root = hexArg(args[1], 'the shard root')
        const challenge = Buffer.from(hexArg(args[2], 'the challenge'), 'hex')
        const count = intArg(args[3] ?? '1', 'the number of leaves', 1, 64)
        const c = this.live(id, q.caller)
        return { ...NO_ARGS, c, root, held: this.held(c, root), challenge, count }
      }
      case 'list':
        return { ...NO_ARGS, c: this.live(id, q.caller, true) }
      case 'end':
        if (bodyLength > MAX_END_BODY_BYTES) {
          throw new BodyTooLargeError(`the body of end is a signed rating of at most ${MAX_END_BODY_BYTES} bytes`)
        }
        return { ...NO_ARGS, c: this.live(id, q.caller, true) }
    }
  }

  /** The size of a shard the contract holds */
  private held (c: HostContract, root: string): number {
    const size = c.shards.get(root)
    if (size == null) {
      throw new NotFoundError(`contract ${c.id} holds no shard ${root}`)
    }
    return size
  }

  async contract (ctx: ServiceContext): Promise<unknown> {
    this.cost('contract', queryOf(ctx))
    const { encoded, renterSignature, terms } = await this.proposal(ctx)
    const id = hex(contractIdOf(encoded))
    return this.locks.run(id, async () => {
      const known = this.contracts.get(id)
      if (known != null) {
        // the same proposal again (its answer was lost): the same answer
        return this.contractAnswer(known)
      }
      await this.checkTerms(terms)
      const hostSignature = signTerms(encoded, this.components.signer)
      const c: HostContract = { id, terms, signed: encodeSigned(encoded, renterSignature, hostSignature), revision: 0, shards: new Map(), bytes: 0, rentPaidPeriods: 0 }
      this.contracts.set(id, c)
      await this.save(c)
      log('contract %s with %s: %d bytes until %s', id, terms.renter, terms.maxBytes, new Date(terms.end).toISOString())
      return this.contractAnswer(c)
    })
  }

  /**
   * What no host could sign (`bad-request`, PROTOCOL.md 8d, "Refused
   * terms"): a contract of no bytes, a rent period longer than the
   * contract, amounts over all the bitcoin there will ever be. Checked
   * before the renter's signature, like the rest of the terms' form.
   */
  private checkForm (terms: ContractTerms): void {
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

  /**
   * This host's own conditions for signing terms (`request-declined`, then
   * `insufficient-storage`): its clock, the longest contract, the shortest
   * rent period, its prices and whether it can be paid, then its capacity
   * and its disk. `freed`: bytes a renewed contract gives back.
   */
  private async checkTerms (terms: ContractTerms, freed = 0): Promise<void> {
    const now = Date.now()
    if (Math.abs(terms.start - now) > this.clockSkewMs) {
      throw new RequestDeclinedError(`the contract starts at ${new Date(terms.start).toISOString()}, but it is ${new Date(now).toISOString()} here: check your clock`)
    }
    if (terms.end - terms.start > this.maxDurationMs) {
      throw new RequestDeclinedError(`this host signs contracts of at most ${Math.floor(this.maxDurationMs / 86_400_000)} days`)
    }
    if (terms.rentPeriodMs < this.minRentPeriodMs) {
      throw new RequestDeclinedError(`this host signs rent periods of at least ${this.minRentPeriodMs} ms`)
    }
    if (!this.components.takesPayments && (terms.storagePrice > 0n || terms.uploadPrice > 0n || terms.downloadPrice > 0n)) {
      // it could never be paid: every priced call would be refused
      throw new RequestDeclinedError('this host takes no payments (its payments.chain is empty), so it signs only free terms: propose storage, upload and download prices of 0')
    }
    const prices = this.components.prices()
    if (terms.storagePrice < prices.storage || terms.uploadPrice < prices.upload || terms.downloadPrice < prices.download) {
      throw new RequestDeclinedError(`the terms offer less than this host's prices: ${formatAmount(prices.storage)} per GiB-month stored, ${formatAmount(prices.upload)} per GiB uploaded, ${formatAmount(prices.download)} per GiB downloaded`)
    }
    const free = this.capacity - this.reserved(now) + freed
    if (terms.maxBytes > free) {
      throw new InsufficientStorageError(`this host is full: ${terms.maxBytes} bytes asked, ${Math.max(0, free)} of its ${this.capacity} bytes free`)
    }
    const disk = await statfs(this.dir)
    const diskFree = Number(disk.bavail) * Number(disk.bsize)
    if (terms.maxBytes > diskFree - this.used() + freed) {
      throw new InsufficientStorageError(`this host's disk is full: ${terms.maxBytes} bytes asked, ${diskFree} bytes free on disk`)
    }
  }

  /**
   * Renew a contract: the same host and renter sign new terms, the shards
   * pass to the new contract at its revision 1 (no bytes are sent again),
   * and the old contract ends. Args: the old contract id and the renter's
   * signature of the new contract's revision 1; body as for `contract`.
   * A contract that holds nothing renews too (its revision 1 holds
   * nothing): a renter keeps its place with the host. Rent paid on the old
   * contract is not carried over (PROTOCOL.md 8d says why).
   */
  async renew (ctx: ServiceContext): Promise<unknown> {
    const { signature } = this.check('renew', queryOf(ctx))
    const oldId = ctx.args[0]
    const { encoded, renterSignature, terms } = await this.proposal(ctx)
    const id = hex(contractIdOf(encoded))
    return this.locks.run(oldId, async () => {
      const done = this.contracts.get(id)
      if (done != null && this.contracts.get(oldId)?.endedReason === `renewed as ${id}` && done.signedRevision != null) {
        // the same renewal again (its answer was lost): the same answer
        return { contract: id, hostSignature: b64(decodeSigned(done.signed).hostSignature), revision: done.revision, revisionSignature: b64(decodeSigned(done.signedRevision).hostSignature) }
      }
      const old = this.live(oldId, ctx.caller)
      if (terms.maxBytes < old.bytes) {
        throw new BadRequestError(`the new terms allow ${terms.maxBytes} bytes, but contract ${oldId} holds ${old.bytes}`)
      }
      if (this.contracts.has(id)) {
        throw new BadRequestError(`contract ${id} exists already`)
      }
      await this.checkTerms(terms, old.terms.maxBytes)
      const c: HostContract = { id, terms, signed: encodeSigned(encoded, renterSignature, signTerms(encoded, this.components.signer)), revision: 0, shards: new Map(old.shards), bytes: old.bytes, rentPaidPeriods: 0 }
      // revision 1 holds what the old contract held
      this.countersign(c, this.revisionSigned(c, c.shards, 1, signature))
      // the new contract is saved before the old one ends: a crash between
      // leaves both, never neither
      this.contracts.set(id, c)
      await this.save(c)
      await this.store.moveContract(oldId, id)
      old.endedAt = Date.now()
      old.endedReason = `renewed as ${id}`
      old.shards = new Map()
      old.bytes = 0
      await this.save(old)
      log('contract %s renewed as %s until %s', oldId, id, new Date(terms.end).toISOString())
      return { contract: id, hostSignature: b64(decodeSigned(c.signed).hostSignature), revision: c.revision, revisionSignature: b64(decodeSigned(c.signedRevision!).hostSignature) }
    })
  }

  /**
   * The body of `contract` and `renew`: bytes terms || bytes renter
   * signature, checked in the order of PROTOCOL.md 8d, "Refused terms":
   * its form, the parties, then the signature
   */
  private async proposal (ctx: ServiceContext): Promise<{ encoded: Uint8Array, renterSignature: Uint8Array, terms: ContractTerms }> {
    const chunks: Uint8Array[] = []
    for await (const chunk of ctx.body) {
      chunks.push(chunk)
    }
    const r = new Reader(Buffer.concat(chunks))
    const encoded = r.bytes(1024, 'the contract terms')
    const renterSignature = r.bytes(128, 'the renter signature')
    r.end('the contract proposal')
    const terms = decodeTerms(encoded)
    if (terms.host !== this.components.peerId) {
      throw new BadRequestError(`the terms name host ${terms.host}, but this host is ${this.components.peerId}`)
    }
    if (terms.renter !== ctx.caller) {
      throw new BadRequestError(`the terms name renter ${terms.renter}, but the caller is ${ctx.caller}`)
    }
    this.checkForm(terms)
    verifyTerms(encoded, terms.renter, renterSignature)
    return { encoded, renterSignature, terms }
  }

  private contractAnswer (c: HostContract): unknown {
    return { contract: c.id, hostSignature: b64(decodeSigned(c.signed).hostSignature) }
  }

  /**
   * The revision a put or delete of `root` leads to, checked against the
   * renter's signature: `change` is the new shard's length for a put of a
   * shard the contract does not hold, `held` for a put of one it holds
   * (the revision stays), `delete` for a delete. The last one checked is
   * kept with the contract, so the handler's check after the pipeline's
   * does not hash the shard set again.
   */
  private expectRevision (c: HostContract, root: string, change: number | 'held' | 'delete', renterSignature: Uint8Array): SignedRevision {
    const key = `${c.revision} ${root} ${change} ${b64(renterSignature)}`
    if (c.checked?.key !== key) {
      let next: SignedRevision
      if (change === 'held') {
        next = this.revisionSigned(c, c.shards, c.revision, renterSignature)
      } else {
        const shards = new Map(c.shards)
        if (change === 'delete') {
          shards.delete(root)
        } else {
          shards.set(root, change)
        }
        next = this.revisionSigned(c, shards, c.revision + 1, renterSignature)
      }
      c.checked = { key, next }
    }
    return c.checked.next
  }

  /**
   * The revision `number` of a contract holding `shards`, checked against
   * the renter's signature: nothing may change unless the renter signed
   * exactly what the host would countersign.
   */
  private revisionSigned (c: HostContract, shards: Map<string, number>, number: number, renterSignature: Uint8Array): SignedRevision {
    const rev = nextRevision(Buffer.from(c.id, 'hex'), number - 1, [...shards].map(([root, length]) => ({ root: Buffer.from(root, 'hex'), length })))
    const encoded = encodeRevision(rev)
    try {
      verifyRevision(encoded, c.terms.renter, renterSignature)
    } catch {
      throw new InvalidSignatureError(`the renter's signature is not over revision ${rev.number} (${rev.shards} shards, ${rev.bytes} bytes, data root ${hex(rev.root)}); list the contract to resynchronise`)
    }
    return { encoded, renterSignature, number: rev.number, bytes: rev.bytes, shards }
  }

  /** Move a contract to a revision the renter signed, with this host's signature (saved by the caller) */
  private countersign (c: HostContract, rev: SignedRevision): string {
    const hostSignature = signRevision(rev.encoded, this.components.signer)
    c.shards = rev.shards
    c.bytes = rev.bytes
    c.checked = undefined
    c.revision = rev.number
    c.signedRevision = encodeSigned(rev.encoded, rev.renterSignature, hostSignature)
    return b64(hostSignature)
  }

  /**
   * Store a shard. The renter's signature of the next revision is checked
   * before the body is read (the revision depends only on the root and the
   * body's length, which the head gives), so a forged put is refused before
   * CONTINUE and sends no bytes. A shard the contract already holds (a
   * retry after a lost answer, or a copy this host found corrupt) is
   * checked like a first put and written again: the revision stays, and the
   * renter signs it as it is.
   */
  async put (ctx: ServiceContext): Promise<unknown> {
    return this.locks.run(ctx.args[0] ?? '', async () => {
      // checked again under the lock: the contract may have changed since the pipeline's check
      const { c, root, held, next } = this.check('put', queryOf(ctx))
      try {
        await this.store.write(c.id, Buffer.from(root, 'hex'), ctx.body, ctx.signal)
      } catch (err: any) {
        if (err instanceof ShardMismatchError) {
          throw new BadRequestError(err.message)
        }
        throw err
      }
      if (held != null) {
        log('shard %s of contract %s written again', root, c.id)
        return { revision: c.revision, hostSignature: b64(decodeSigned(c.signedRevision!).hostSignature) }
      }
      const hostSignature = this.countersign(c, next!)
      await this.save(c)
      return { revision: c.revision, hostSignature }
    })
  }

  async get (ctx: ServiceContext): Promise<ReturnType<ShardStore['range']>> {
    const { c, root, held, offset, length } = this.check('get', queryOf(ctx))
    return shardLost(async () => this.store.range(c.id, root, offset, length, held ?? 0, ctx.signal))
  }

  async prove (ctx: ServiceContext): Promise<Uint8Array> {
    const { c, root, held, challenge, count } = this.check('prove', queryOf(ctx))
    return encodeProofs(await shardLost(async () => this.store.prove(c.id, root, challenge, count, held ?? 0)))
  }

  async delete (ctx: ServiceContext): Promise<unknown> {
    return this.locks.run(ctx.args[0] ?? '', async () => {
      const { c, root, next } = this.check('delete', queryOf(ctx))
      const hostSignature = this.countersign(c, next!)
      await this.save(c)
      await this.store.delete(c.id, root)
      return { revision: c.revision, hostSignature }
    })
  }

  async list (ctx: ServiceContext): Promise<unknown> {
    const { c } = this.check('list', queryOf(ctx))
    return {
      contract: b64(c.signed),
      revision: c.revision,
      signedRevision: c.signedRevision == null ? null : b64(c.signedRevision),
      shards: [...c.shards].map(([root, bytes]) => ({ root, bytes })),
      rentPaidPeriods: c.rentPaidPeriods,
      paidThrough: new Date(c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs).toISOString()
    }
  }

  async rent (ctx: ServiceContext): Promise<unknown> {
    return this.locks.run(ctx.args[0] ?? '', async () => {
      const { c, periods } = this.check('rent', queryOf(ctx))
      c.rentPaidPeriods += periods
      await this.save(c)
      return { rentPaidPeriods: c.rentPaidPeriods, paidThrough: new Date(c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs).toISOString() }
    })
  }

  /**
   * End a contract at its renter's word: the shards are deleted. The body
   * may carry the renter's signed rating of this host; the answer carries
   * this host's signed rating of the renter (rent paid as agreed or not).
   */
  async end (ctx: ServiceContext): Promise<unknown> {
    const id = this.check('end', queryOf(ctx)).c.id
    const chunks: Uint8Array[] = []
    for await (const chunk of ctx.body) {
      chunks.push(chunk)
    }
    const renterRating = chunks.length === 0 ? undefined : Buffer.concat(chunks)
    return this.locks.run(id, async () => {
      const { c } = this.check('end', queryOf(ctx))
      if (renterRating != null) {
        let rating
        try {
          rating = openRating(renterRating)
        } catch (err: any) {
          throw new BadRequestError(err instanceof DecodeError ? `the rating is malformed: ${err.message}` : `the rating does not verify: ${err.message}`)
        }
        if (hex(rating.contractId) !== id || rating.rater !== c.terms.renter || rating.rated !== this.components.peerId) {
          throw new BadRequestError(`the rating is not the renter's rating of this host under contract ${id}`)
        }
        this.components.recordRenter?.(c.terms.renter, rating.satisfactory ? 'satisfactory' : 'unsatisfactory', 'contract-rated-by-renter')
      }
      const now = Date.now()
      const paid = c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs >= Math.min(now, c.terms.end)
      const mine = signRating({ contractId: Buffer.from(id, 'hex'), rater: this.components.peerId, rated: c.terms.renter, satisfactory: paid, reason: paid ? 'rent paid as agreed' : 'rent unpaid', at: now }, this.components.signer)
      c.ratings = { renter: renterRating == null ? undefined : b64(renterRating), host: b64(mine) }
      this.components.recordRenter?.(c.terms.renter, paid ? 'satisfactory' : 'unsatisfactory', 'contract-ended')
      c.endedAt = now
      c.endedReason = 'by its renter'
      c.shards = new Map()
      await this.save(c)
      await this.store.deleteContract(id)
      log('contract %s ended by its renter', id)
      return { contract: id, ended: new Date(c.endedAt).toISOString(), rating: b64(mine) }
    })
  }
}

/**
 * A shard this host knows is corrupt or missing on its disk is answered
 * `not-found` with the reason, as a shard it does not hold: the renter has
 * lost this copy either way, and counts it lost (PROTOCOL.md 8d, "Storing
 * and serving shards"). Any other failure (a full disk, a bug) is the RPC
 * server's generic `server-error`, which a renter takes as transient.
 */
async function shardLost<T> (read: () => Promise<T>): Promise<T> {
  try {
    return await read()
  } catch (err: any) {
    if (err instanceof ShardCorruptError) {
      log.error('%s', err.message)
      throw new NotFoundError(err.message)
    }
    throw err
  }
}

export function storageService (host: StorageHost): Service {
  /** every method's agreement check runs before payment; priced ones answer their price */
  const spec = (method: StorageMethod, description: string, unit: MethodSpec['unit'], handle: MethodSpec['handle'], extra: Partial<MethodSpec> = {}): MethodSpec => ({
    description,
    ...(ARGS[method].usage === '' ? {} : { args: ARGS[method].usage }),
    unit,
    cost: (query) => host.cost(method, query),
    handle,
    ...extra
  })
  return {
    name: STORAGE_SERVICE,
    version: '1.0.0',
    description: 'paid storage of encrypted shards under signed contracts',
    start: async () => host.start(),
    stop: async () => host.stop(),
    methods: {
      contract: spec('contract', 'propose contract terms (body: bytes terms || bytes renter signature); answers the host signature', Units.CALL,
        async (ctx) => ({ json: await host.contract(ctx) })),
      renew: spec('renew', 'renew a contract (body as for contract): its shards pass to the new one at revision 1, and it ends', Units.CALL,
        async (ctx) => ({ json: await host.renew(ctx) })),
      rent: spec('rent', 'pay rent for the next periods of a contract', Units.GIB_MONTH,
        async (ctx) => ({ json: await host.rent(ctx) }), { advertise: true }),
      put: spec('put', 'store the body as a shard under its Merkle root; answers the host signature of the next revision', Units.GIB,
        async (ctx) => ({ json: await host.put(ctx) })),
      get: spec('get', 'a byte range of a shard', Units.GIB,
        async (ctx) => ({ body: await host.get(ctx) })),
      prove: spec('prove', 'Merkle proofs of the leaves a challenge picks (the audit primitive)', Units.CALL,
        async (ctx) => ({ body: await host.prove(ctx) })),
      delete: spec('delete', 'delete a shard; answers the host signature of the next revision', Units.CALL,
        async (ctx) => ({ json: await host.delete(ctx) })),
      list: spec('list', 'the contract, its latest signed revision and its shards', Units.CALL,
        async (ctx) => ({ json: await host.list(ctx) })),
      end: spec('end', 'end a contract early: its shards are deleted (body: the renter\'s signed rating of the host, optional; answers the host\'s of the renter)', Units.CALL,
        async (ctx) => ({ json: await host.end(ctx) }))
    }
  }
}
