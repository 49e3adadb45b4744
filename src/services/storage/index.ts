import { statfs } from 'node:fs/promises'
import { logger } from '@libp2p/logger'
import { Key, type Datastore } from 'interface-datastore'
import { Units } from '../../market/units.ts'
import { Reader, Writer } from '../../protocols/rpc/encoding.ts'
import { AccessDeniedError, BadRequestError, BodyTooLargeError, InsufficientStorageError, InvalidSignatureError, NotFoundError, RequestDeclinedError, ServerError } from '../../protocols/rpc/errors.ts'
import { contractIdOf, decodeSigned, decodeTerms, encodeRevision, encodeSigned, nextRevision, rentPerPeriod, signRevision, signTerms, transferCost, verifyRevision, verifyTerms, type ContractTerms } from '../../storage/contract.ts'
import { openRating, signRating } from '../../storage/rating.ts'
import { ShardCorruptError, ShardMismatchError, ShardStore } from './shard-store.ts'
import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import type { Service, ServiceContext } from '../interface.ts'

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
  rentPaidPeriods: number
  endedAt?: number
  /** why it ended early: "by its renter", "rent unpaid" */
  endedReason?: string
  /** the signed ratings exchanged when it ended, base64 */
  ratings?: { renter?: string, host: string }
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

function b64 (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}

const HEX32 = /^[0-9a-f]{64}$/

function hexArg (value: string | undefined, what: string): string {
  if (value == null || !HEX32.test(value)) {
    throw new BadRequestError(`${what} is 64 lowercase hex digits`)
  }
  return value
}

function intArg (value: string | undefined, what: string, min: number, max: number): number {
  const n = Number(value)
  if (value == null || !/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new BadRequestError(`${what} is a whole number from ${min} to ${max}, not "${value ?? ''}"`)
  }
  return n
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
  private readonly locks = new Map<string, Promise<void>>()

  constructor (components: StorageServiceComponents, init: StorageServiceInit) {
    this.components = components
    this.dir = init.dir
    this.capacity = init.capacity ?? DEFAULT_CAPACITY
    this.maxDurationMs = init.maxDurationMs ?? 366 * 24 * 3600_000
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
      this.contracts.set(raw.id, {
        id: raw.id,
        terms,
        signed,
        revision: raw.revision,
        signedRevision: raw.signedRevision == null ? undefined : Buffer.from(raw.signedRevision, 'base64'),
        shards: new Map(raw.shards),
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
      await this.locked(c.id, async () => {
        if (c.endedAt != null) {
          return
        }
        const periods = Math.ceil((c.terms.end - c.terms.start) / c.terms.rentPeriodMs)
        const paid = c.rentPaidPeriods >= periods
        c.endedAt = now
        c.endedReason = paid ? 'expired' : 'expired, rent unpaid'
        c.shards = new Map()
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
      await this.locked(c.id, async () => {
        if (c.endedAt != null) {
          return
        }
        c.endedAt = now
        c.endedReason = 'rent unpaid'
        c.shards = new Map()
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

  private async locked<T> (id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>(resolve => { release = resolve })
    const chained = previous.then(async () => mine)
    this.locks.set(id, chained)
    await previous
    try {
      return await fn()
    } finally {
      release()
      if (this.locks.get(id) === chained) {
        this.locks.delete(id)
      }
    }
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
      for (const length of c.shards.values()) {
        n += length
      }
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
    const c = this.contracts.get(id)
    if (c == null) {
      throw new NotFoundError(`this host has no contract ${id}`)
    }
    if (c.terms.renter !== caller) {
      throw new AccessDeniedError(`contract ${id} belongs to another renter`)
    }
    if (c.endedAt != null) {
      throw new NotFoundError(`contract ${id} has ended (${c.endedReason ?? 'by its renter'}); its shards are deleted`)
    }
    if (!readOnly && c.terms.end <= Date.now()) {
      throw new NotFoundError(`contract ${id} expired at ${new Date(c.terms.end).toISOString()}`)
    }
    return c
  }

  /** What a call under a contract costs at the contract's prices */
  cost (method: 'put' | 'get' | 'rent', args: string[], bodyLength: number): bigint | undefined {
    const c = this.contracts.get(args[0] ?? '')
    if (c == null) {
      return undefined
    }
    switch (method) {
      case 'put':
        return transferCost(c.terms.uploadPrice, bodyLength)
      case 'get': {
        const length = Number(args[3])
        return Number.isSafeInteger(length) && length >= 0 ? transferCost(c.terms.downloadPrice, length) : undefined
      }
      case 'rent': {
        const periods = Number(args[1] ?? '1')
        return Number.isSafeInteger(periods) && periods > 0 ? rentPerPeriod(c.terms) * BigInt(periods) : undefined
      }
    }
  }

  async contract (ctx: ServiceContext): Promise<unknown> {
    const { encoded, renterSignature, terms } = await this.proposal(ctx)
    const id = hex(contractIdOf(encoded))
    return this.locked(id, async () => {
      const known = this.contracts.get(id)
      if (known != null) {
        // the same proposal again (its answer was lost): the same answer
        return this.contractAnswer(known)
      }
      await this.checkTerms(terms)
      const hostSignature = signTerms(encoded, this.components.signer)
      const c: HostContract = { id, terms, signed: encodeSigned(encoded, renterSignature, hostSignature), revision: 0, shards: new Map(), rentPaidPeriods: 0 }
      this.contracts.set(id, c)
      await this.save(c)
      log('contract %s with %s: %d bytes until %s', id, terms.renter, terms.maxBytes, new Date(terms.end).toISOString())
      return this.contractAnswer(c)
    })
  }

  /**
   * The host's conditions for signing terms: its clock, the longest
   * contract, the rent period, its prices, its capacity and its disk.
   * `freed`: bytes a renewed contract gives back.
   */
  private async checkTerms (terms: ContractTerms, freed = 0): Promise<void> {
    const now = Date.now()
    if (Math.abs(terms.start - now) > this.clockSkewMs) {
      throw new RequestDeclinedError(`the contract starts at ${new Date(terms.start).toISOString()}, but it is ${new Date(now).toISOString()} here: check your clock`)
    }
    if (terms.end - terms.start > this.maxDurationMs) {
      throw new RequestDeclinedError(`this host signs contracts of at most ${Math.floor(this.maxDurationMs / 86_400_000)} days`)
    }
    if (terms.rentPeriodMs < this.minRentPeriodMs || terms.rentPeriodMs > terms.end - terms.start) {
      throw new RequestDeclinedError(`the rent period must be from ${this.minRentPeriodMs} ms to the contract's length`)
    }
    const prices = this.components.prices()
    if (terms.storagePrice < prices.storage || terms.uploadPrice < prices.upload || terms.downloadPrice < prices.download) {
      throw new RequestDeclinedError(`the terms offer less than this host's prices: ${prices.storage} sat per GiB-month stored, ${prices.upload} sat per GiB uploaded, ${prices.download} sat per GiB downloaded`)
    }
    if (terms.maxBytes < 1) {
      throw new BadRequestError('a contract holds at least one byte')
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
   */
  async renew (ctx: ServiceContext): Promise<unknown> {
    const oldId = hexArg(ctx.args[0], 'the contract id')
    const { encoded, renterSignature, terms } = await this.proposal(ctx)
    const id = hex(contractIdOf(encoded))
    return this.locked(oldId, async () => {
      const done = this.contracts.get(id)
      if (done != null && this.contracts.get(oldId)?.endedReason === `renewed as ${id}` && done.signedRevision != null) {
        // the same renewal again (its answer was lost): the same answer
        return { contract: id, hostSignature: b64(decodeSigned(done.signed).hostSignature), revision: done.revision, revisionSignature: b64(decodeSigned(done.signedRevision).hostSignature) }
      }
      const old = this.live(oldId, ctx.caller)
      const held = [...old.shards.values()].reduce((n, l) => n + l, 0)
      if (terms.maxBytes < held) {
        throw new BadRequestError(`the new terms allow ${terms.maxBytes} bytes, but contract ${oldId} holds ${held}`)
      }
      if (this.contracts.has(id)) {
        throw new BadRequestError(`contract ${id} exists already`)
      }
      await this.checkTerms(terms, old.terms.maxBytes)
      const c: HostContract = { id, terms, signed: encodeSigned(encoded, renterSignature, signTerms(encoded, this.components.signer)), revision: 0, shards: new Map(old.shards), rentPaidPeriods: 0 }
      const answer = this.revise(c, c.shards, ctx.args[1])
      c.revision = answer.revision
      c.signedRevision = encodeSigned(answer.encoded, answer.renterSignature, Buffer.from(answer.hostSignature, 'base64'))
      // the new contract is saved before the old one ends: a crash between
      // leaves both, never neither
      this.contracts.set(id, c)
      await this.save(c)
      await this.store.moveContract(oldId, id)
      old.endedAt = Date.now()
      old.endedReason = `renewed as ${id}`
      old.shards = new Map()
      await this.save(old)
      log('contract %s renewed as %s until %s', oldId, id, new Date(terms.end).toISOString())
      return { contract: id, hostSignature: b64(decodeSigned(c.signed).hostSignature), revision: answer.revision, revisionSignature: answer.hostSignature }
    })
  }

  /** The body of `contract` and `renew`: bytes terms || bytes renter signature, checked */
  private async proposal (ctx: ServiceContext): Promise<{ encoded: Uint8Array, renterSignature: Uint8Array, terms: ContractTerms }> {
    if (ctx.body.length > 4096) {
      throw new BodyTooLargeError('a contract proposal is under 4 KiB')
    }
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
    verifyTerms(encoded, terms.renter, renterSignature)
    return { encoded, renterSignature, terms }
  }

  private contractAnswer (c: HostContract): unknown {
    return { contract: c.id, hostSignature: b64(decodeSigned(c.signed).hostSignature) }
  }

  /**
   * Apply a change to a contract's shard set: the renter signed the revision
   * that follows it; the host checks that it is exactly that, and
   * countersigns. Nothing changes when the signature does not match.
   */
  private revise (c: HostContract, shards: Map<string, number>, renterSignatureB64: string | undefined): { revision: number, hostSignature: string, encoded: Uint8Array, renterSignature: Uint8Array } {
    const rev = nextRevision(Buffer.from(c.id, 'hex'), c.revision, [...shards].map(([root, length]) => ({ root: Buffer.from(root, 'hex'), length })))
    const encoded = encodeRevision(rev)
    const renterSignature = Buffer.from(renterSignatureB64 ?? '', 'base64')
    try {
      verifyRevision(encoded, c.terms.renter, renterSignature)
    } catch {
      throw new InvalidSignatureError(`the renter's signature is not over revision ${rev.number} (${rev.shards} shards, ${rev.bytes} bytes, data root ${hex(rev.root)}); list the contract to resynchronise`)
    }
    return { revision: rev.number, hostSignature: b64(signRevision(encoded, this.components.signer)), encoded, renterSignature }
  }

  async put (ctx: ServiceContext): Promise<unknown> {
    const id = hexArg(ctx.args[0], 'the contract id')
    const root = hexArg(ctx.args[1], 'the shard root')
    return this.locked(id, async () => {
      const c = this.live(id, ctx.caller)
      if (c.shards.has(root)) {
        // sent again after a lost answer: the current revision, if it is what the renter signed
        for await (const _ of ctx.body) {}
        const shards = new Map(c.shards)
        shards.delete(root)
        const rev = nextRevision(Buffer.from(c.id, 'hex'), c.revision - 1, [...c.shards].map(([r, length]) => ({ root: Buffer.from(r, 'hex'), length })))
        verifyRevision(encodeRevision(rev), c.terms.renter, Buffer.from(ctx.args[2] ?? '', 'base64'))
        return { revision: c.revision, hostSignature: b64(decodeSigned(c.signedRevision!).hostSignature) }
      }
      const held = [...c.shards.values()].reduce((n, l) => n + l, 0)
      if (held + ctx.body.length > c.terms.maxBytes) {
        throw new BodyTooLargeError(`the shard of ${ctx.body.length} bytes is over contract ${id}'s maximum of ${c.terms.maxBytes} bytes: it holds ${held}`)
      }
      if (ctx.body.length === 0) {
        throw new BadRequestError('a shard is at least one byte')
      }
      let length: number
      try {
        length = await this.store.write(id, Buffer.from(root, 'hex'), ctx.body, ctx.signal)
      } catch (err: any) {
        if (err instanceof ShardMismatchError) {
          throw new BadRequestError(err.message)
        }
        throw err
      }
      const shards = new Map(c.shards).set(root, length)
      let answer
      try {
        answer = this.revise(c, shards, ctx.args[2])
      } catch (err) {
        await this.store.delete(id, root)
        throw err
      }
      c.shards = shards
      c.revision = answer.revision
      c.signedRevision = encodeSigned(answer.encoded, answer.renterSignature, Buffer.from(answer.hostSignature, 'base64'))
      await this.save(c)
      return { revision: answer.revision, hostSignature: answer.hostSignature }
    })
  }

  async get (ctx: ServiceContext): Promise<ReturnType<ShardStore['range']>> {
    const id = hexArg(ctx.args[0], 'the contract id')
    const root = hexArg(ctx.args[1], 'the shard root')
    const c = this.live(id, ctx.caller, true)
    const size = c.shards.get(root)
    if (size == null) {
      throw new NotFoundError(`contract ${id} holds no shard ${root}`)
    }
    const offset = intArg(ctx.args[2], 'the offset', 0, size)
    const length = intArg(ctx.args[3], 'the length', 0, size - offset)
    try {
      return await this.store.range(id, root, offset, length, size, ctx.signal)
    } catch (err: any) {
      if (err instanceof ShardCorruptError) {
        log.error('%s', err.message)
        throw new ServerError(err.message)
      }
      throw err
    }
  }

  async prove (ctx: ServiceContext): Promise<Uint8Array> {
    const id = hexArg(ctx.args[0], 'the contract id')
    const root = hexArg(ctx.args[1], 'the shard root')
    const challenge = hexArg(ctx.args[2], 'the challenge')
    const count = intArg(ctx.args[3] ?? '1', 'the number of leaves', 1, 64)
    const c = this.live(id, ctx.caller)
    const size = c.shards.get(root)
    if (size == null) {
      throw new NotFoundError(`contract ${id} holds no shard ${root}`)
    }
    try {
      return encodeProofs(await this.store.prove(id, root, Buffer.from(challenge, 'hex'), count, size))
    } catch (err: any) {
      if (err instanceof ShardCorruptError) {
        throw new ServerError(err.message)
      }
      throw err
    }
  }

  async delete (ctx: ServiceContext): Promise<unknown> {
    const id = hexArg(ctx.args[0], 'the contract id')
    const root = hexArg(ctx.args[1], 'the shard root')
    return this.locked(id, async () => {
      const c = this.live(id, ctx.caller)
      if (!c.shards.has(root)) {
        throw new NotFoundError(`contract ${id} holds no shard ${root}`)
      }
      const shards = new Map(c.shards)
      shards.delete(root)
      const answer = this.revise(c, shards, ctx.args[2])
      c.shards = shards
      c.revision = answer.revision
      c.signedRevision = encodeSigned(answer.encoded, answer.renterSignature, Buffer.from(answer.hostSignature, 'base64'))
      await this.save(c)
      await this.store.delete(id, root)
      return { revision: answer.revision, hostSignature: answer.hostSignature }
    })
  }

  async list (ctx: ServiceContext): Promise<unknown> {
    const id = hexArg(ctx.args[0], 'the contract id')
    const c = this.live(id, ctx.caller, true)
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
    const id = hexArg(ctx.args[0], 'the contract id')
    const periods = intArg(ctx.args[1] ?? '1', 'the number of periods', 1, 10_000)
    return this.locked(id, async () => {
      const c = this.live(id, ctx.caller)
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
    const id = hexArg(ctx.args[0], 'the contract id')
    if (ctx.body.length > 2048) {
      throw new BodyTooLargeError('a rating is under 2 KiB')
    }
    const chunks: Uint8Array[] = []
    for await (const chunk of ctx.body) {
      chunks.push(chunk)
    }
    const renterRating = chunks.length === 0 ? undefined : Buffer.concat(chunks)
    return this.locked(id, async () => {
      const c = this.live(id, ctx.caller, true)
      if (renterRating != null) {
        let rating
        try {
          rating = openRating(renterRating)
        } catch (err: any) {
          throw new BadRequestError(`the rating does not verify: ${err.message}`)
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

/** proofs = varint count || (varint index || bytes leaf || varint n || n x 32-byte hash)* */
export function encodeProofs (proofs: Array<{ index: number, leaf: Uint8Array, path: Uint8Array[] }>): Uint8Array {
  const w = new Writer().varint(proofs.length)
  for (const p of proofs) {
    w.varint(p.index).bytes(p.leaf).varint(p.path.length)
    for (const hash of p.path) {
      w.raw(hash)
    }
  }
  return w.finish()
}

export function decodeProofs (bytes: Uint8Array): Array<{ index: number, leaf: Uint8Array, path: Uint8Array[] }> {
  const r = new Reader(bytes)
  const count = r.varint('the proof count')
  if (count > 64) {
    throw new BadRequestError('at most 64 proofs')
  }
  const proofs = []
  for (let i = 0; i < count; i++) {
    const index = r.varint('the leaf index')
    const leaf = r.bytes(4096, 'the leaf')
    const n = r.varint('the path length')
    if (n > 64) {
      throw new BadRequestError('a Merkle path is at most 64 hashes')
    }
    const path: Uint8Array[] = []
    for (let j = 0; j < n; j++) {
      path.push(r.raw(32, 'a path hash'))
    }
    proofs.push({ index, leaf, path })
  }
  r.end('the proofs')
  return proofs
}

export function storageService (host: StorageHost): Service {
  return {
    name: STORAGE_SERVICE,
    version: '1.0.0',
    description: 'paid storage of encrypted shards under signed contracts',
    start: async () => host.start(),
    stop: async () => host.stop(),
    methods: {
      contract: {
        description: 'propose contract terms (body: bytes terms || bytes renter signature); answers the host signature',
        unit: Units.CALL,
        handle: async (ctx) => ({ json: await host.contract(ctx) })
      },
      renew: {
        description: 'renew a contract (body as for contract): its shards pass to the new one at revision 1, and it ends',
        args: '<contract id> <renter signature of the new contract\'s revision 1, base64>',
        unit: Units.CALL,
        handle: async (ctx) => ({ json: await host.renew(ctx) })
      },
      rent: {
        description: 'pay rent for the next periods of a contract',
        args: '<contract id> [periods]',
        unit: Units.GIB_MONTH,
        advertise: true,
        cost: ({ args, bodyLength }) => host.cost('rent', args, bodyLength),
        handle: async (ctx) => ({ json: await host.rent(ctx) })
      },
      put: {
        description: 'store the body as a shard under its Merkle root; answers the host signature of the next revision',
        args: '<contract id> <shard root> <renter signature of the next revision, base64>',
        unit: Units.GIB,
        cost: ({ args, bodyLength }) => host.cost('put', args, bodyLength),
        handle: async (ctx) => ({ json: await host.put(ctx) })
      },
      get: {
        description: 'a byte range of a shard',
        args: '<contract id> <shard root> <offset> <length>',
        unit: Units.GIB,
        cost: ({ args, bodyLength }) => host.cost('get', args, bodyLength),
        handle: async (ctx) => ({ body: await host.get(ctx) })
      },
      prove: {
        description: 'Merkle proofs of the leaves a challenge picks (the audit primitive)',
        args: '<contract id> <shard root> <challenge, 32 bytes hex> [leaves, 1-64]',
        unit: Units.CALL,
        handle: async (ctx) => ({ body: await host.prove(ctx) })
      },
      delete: {
        description: 'delete a shard; answers the host signature of the next revision',
        args: '<contract id> <shard root> <renter signature of the next revision, base64>',
        unit: Units.CALL,
        handle: async (ctx) => ({ json: await host.delete(ctx) })
      },
      list: {
        description: 'the contract, its latest signed revision and its shards',
        args: '<contract id>',
        unit: Units.CALL,
        handle: async (ctx) => ({ json: await host.list(ctx) })
      },
      end: {
        description: 'end a contract early: its shards are deleted (body: the renter\'s signed rating of the host, optional; answers the host\'s of the renter)',
        args: '<contract id>',
        unit: Units.CALL,
        handle: async (ctx) => ({ json: await host.end(ctx) })
      }
    }
  }
}
