import { createHash, randomBytes } from 'node:crypto'
import { link, open, rename, rm, stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { logger } from '@libp2p/logger'
import { Key, type Datastore } from 'interface-datastore'
import { bodyFromBytes } from '../protocols/rpc/body.ts'
import { Writer } from '../protocols/rpc/encoding.ts'
import { NotFoundError } from '../protocols/rpc/errors.ts'
import { contractIdOf, encodeRevision, encodeSigned, encodeTerms, GIB, MONTH_MS, nextRevision, rentPerPeriod, signRevision, signTerms, transferCost, verifyRevision, verifyTerms, type ContractTerms } from './contract.ts'
import { objectKey, openSegment, sealSegment, TAG_BYTES, DecryptError } from './crypto.ts'
import { ReedSolomon, split } from './erasure.ts'
import { equalBytes, merkleRoot } from './merkle.ts'
import { formatSize } from './size.ts'
import { releaseSegmentMemory } from './memory.ts'
import { auditContract, AuditFailedError } from './audit.ts'
import { openRating, signRating } from './rating.ts'
import type { CallRequest, CallResponse } from '../protocols/rpc/client.ts'
import type { CredentialSigner } from '../protocols/rpc/credentials.ts'

const log = logger('opencloud:storage:client')

export const STORAGE = 'storage'
const OBJECTS = '/storage/objects'
const NAMES = '/storage/names'
const UPLOADS = '/storage/uploads'
const RATINGS = '/storage/ratings'
/** a trust score a host must have had for a fall from it to move data away (1 is the average peer) */
const TRUSTED_SCORE = 0.5

export class ObjectExistsError extends Error {
  override name = 'ObjectExistsError'
}

export class ObjectNotFoundError extends Error {
  override name = 'ObjectNotFoundError'
}

export class NotEnoughHostsError extends Error {
  override name = 'NotEnoughHostsError'
}

export class ShardUnavailableError extends Error {
  override name = 'ShardUnavailableError'
}

export class IntegrityError extends Error {
  override name = 'IntegrityError'
}

export class InvalidNameError extends Error {
  override name = 'InvalidNameError'
}

/** `store get` would write over a file that is there already */
export class OutputExistsError extends Error {
  override name = 'OutputExistsError'
}

export class InvalidRedundancyError extends Error {
  override name = 'InvalidRedundancyError'
}

export { DecryptError }

/** A host's storage offer from the market: satoshis per GiB-month stored, per GiB up and down */
export interface HostOffer {
  peer: string
  storage: bigint
  upload: bigint
  download: bigint
}

export interface StorageClientComponents {
  peerId: string
  signer: CredentialSigner
  datastore: Datastore
  /** the wallet's storage key (HKDF of the BIP39 seed) */
  storageKey: () => Uint8Array
  /** hosts offering storage, best first by price and trust */
  hosts: () => Promise<HostOffer[]>
  /** a host's trust score (1 is the average peer, 0 none); hosts below minTrust are migrated away from */
  trust?: (peer: string) => number
  /** a call to a host that pays `sats` (0: unpaid), deferred where the host gives credit */
  call: (peer: string, request: CallRequest, sats: bigint) => Promise<CallResponse>
  /** a reputation record of a host that failed or cheated */
  rate?: (peer: string, event: 'corrupt' | 'failed', method: string) => void
  /** a reputation record of a host when its contract ends: how it served */
  rateContract?: (peer: string, satisfactory: boolean) => void
}

export interface StorageClientInit {
  /**
   * plaintext bytes per segment, default 4 MiB: the unit held in memory while
   * it is coded (about 4x over, with its shards). A daemon storing 192 MiB
   * peaked over 300 MB with 8 MiB segments and stays under it with 4 MiB
   * (test/storage/cli.test.ts); in bench/storage 8 MiB put at the same speed
   * and got about 20% faster.
   */
  segmentSize?: number
  /**
   * segments coded and uploaded at once, default 1: a host takes its shards
   * one at a time anyway (each is a new signed revision), so a second
   * segment only overlapped coding with sending; bench/storage measured the
   * same speed and 70 MB less
   */
  segmentsInFlight?: number
  /** contract length, default 30 days */
  durationMs?: number
  /** how often rent falls due, default 1 day */
  rentPeriodMs?: number
  /** how often the daemon checks for rent to pay, default 60 s */
  rentCheckMs?: number
  /** a shard upload slower than this many bytes per second is given to another host, default 64 KiB/s */
  minThroughput?: number
  /** a download that has not finished after this long asks another host too, default 5 s plus its size at 1 MiB/s */
  hedgeMs?: number
  /**
   * each contract is audited (one shard, 4 leaves) about this often, default
   * 6 h, spread at random over 0.5x to 1.5x so audits do not come in bursts
   */
  auditIntervalMs?: number
  /**
   * a host that cannot be reached is audited again, and condemned only when
   * it has been unreachable this long, default 1 h: a restart is not cheating
   */
  auditGraceMs?: number
  /**
   * how many of a segment's N shards may be lost before the object is
   * repaired, default half the margin, ceil((N-K)/2) (4-of-8: 2; 2-of-4: 1;
   * 10-of-30: 10). A repair fetches K shards per segment however many it
   * rebuilds, so waiting for a second loss halves the repair traffic, while
   * half the margin is still left to survive the losses until it is done
   */
  repairAfterLost?: (k: number, n: number) => number
  /**
   * contracts are renewed (same host, same length, shards carried over)
   * when this little is left, default 7 days or a third of the contract's
   * length if that is less
   */
  renewBeforeMs?: number
  /**
   * a host whose storage price has risen above this multiple of the
   * market's median is migrated away from, default 3
   */
  migrateAbovePrice?: number
  /**
   * a host whose trust score falls below this is migrated away from, default
   * 0 (off): a score of 0 is also what a host nobody has rated yet gets, and
   * moving off every new host would be a migration storm
   */
  minTrust?: number
  /**
   * a host whose trust score falls under this fraction of what it was when
   * its contract formed is migrated away from, default 0.25. Only hosts
   * that had a score of at least 0.5 then (half the average peer) are held
   * to it: a new host's 0 cannot fall, and small scores swing with every
   * record
   */
  trustDrop?: number
}

export interface AuditRecord {
  /** when the last audit ran, and the last one that passed */
  at?: number
  passedAt?: number
  passed: number
  failed: number
  /** the host could not be reached since then (audits retry until auditGraceMs) */
  unreachableSince?: number
  lastError?: string
  next: number
}

export interface ContractRecord {
  host: string
  /** encodeSigned(terms, renter signature, host signature), base64 */
  signed: string
  start: number
  end: number
  maxBytes: number
  storagePrice: string
  uploadPrice: string
  downloadPrice: string
  rentPeriodMs: number
  rentPaidPeriods: number
  revision: number
  /** encodeSigned(revision, renter signature, host signature), base64 */
  signedRevision?: string
  /** [root hex, bytes] */
  shards: Array<[string, number]>
  /** satoshis paid or promised: uploads, downloads, rent */
  spent: { upload: string, download: string, rent: string }
  ended?: number
  audit?: AuditRecord
  /** the contract that took this one's place when it was renewed */
  renewedAs?: string
  /** the signed ratings exchanged when it ended (base64), and what each said */
  ratings?: { renter: string, host?: string, renterSatisfied: boolean, hostSatisfied?: boolean }
  /** the host's trust score when the contract formed (the highest since, across renewals) */
  trustAtStart?: number
  /** why its shards are being moved off a host that did nothing wrong (its price rose, its trust fell) */
  migrating?: string
  /** when the host was caught (a failed audit, or unreachable past the grace): its shards no longer count */
  lost?: number
  lostReason?: string
}

export interface ShardRecord {
  host: string
  contract: string
  root: string
}

export interface SegmentRecord {
  plainLength: number
  shardSize: number
  shards: ShardRecord[]
}

export interface StoredObject {
  id: string
  name: string
  size: number
  sha256: string
  createdAt: number
  k: number
  n: number
  segmentSize: number
  segments: SegmentRecord[]
  contracts: Record<string, ContractRecord>
}

export interface Progress {
  phase: 'contracts' | 'upload' | 'download'
  done: number
  total: number
  message?: string
}

export interface PutOptions {
  name?: string
  /** K-of-N; default from the number of hosts (defaultRedundancy) */
  k?: number
  n?: number
  durationMs?: number
  /** the most to pay per GiB-month stored, satoshis */
  maxStoragePrice?: bigint
  signal?: AbortSignal
  onProgress?: (p: Progress) => void
}

export interface GetOptions {
  signal?: AbortSignal
  /** replace a file already at `out` (default false: refuse, before fetching anything) */
  overwrite?: boolean
  onProgress?: (p: Progress) => void
}

/**
 * The default K-of-N for a network of `hosts` storage hosts: every host up
 * to 30 (Sia's N) holds a shard; up to 12 hosts K is half of N (2x the
 * file's size stored, N-K hosts may vanish), from 13 a third (3x, as Sia's
 * 10-of-30), which survives far more failures for the same cost per host.
 */
export function defaultRedundancy (hosts: number): { k: number, n: number } {
  const n = Math.min(30, hosts)
  const k = n <= 12 ? Math.max(1, Math.floor(n / 2)) : Math.ceil(n / 3)
  return { k, n }
}

/** "4-of-8" */
export function parseRedundancy (text: string): { k: number, n: number } {
  const match = /^([0-9]+)-of-([0-9]+)$/.exec(text.trim())
  const k = Number(match?.[1])
  const n = Number(match?.[2])
  if (match == null || k < 1 || n < k || n > 255) {
    throw new InvalidRedundancyError(`--redundancy takes K-of-N with 1 <= K <= N <= 255, e.g. 4-of-8 (any 4 of 8 shards rebuild the file), not "${text}"`)
  }
  return { k, n }
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

/** One host's column of an upload: its contract, and its shards in order */
interface Slot {
  index: number
  host: HostOffer
  contract: string
  record: ContractRecord
  /** puts to one contract go one at a time: each signs the revision after the last */
  queue: Promise<void>
  replacements: number
}

/**
 * The client side of storage (README, "Storage"): `put` encrypts a file,
 * erasure-codes it segment by segment, forms a contract with each of N
 * hosts and uploads one shard per segment to each, replacing a host that
 * fails or stalls; `get` fetches the first K good shards of each segment,
 * checks each against its Merkle root, decodes and decrypts. An object is
 * recorded only once every shard of every segment is stored.
 */
export class StorageClient {
  private readonly components: StorageClientComponents
  private readonly segmentSize: number
  private readonly segmentsInFlight: number
  private readonly durationMs: number
  private readonly rentPeriodMs: number
  private readonly rentCheckMs: number
  private readonly minThroughput: number
  private readonly hedgeMs: number
  private readonly auditIntervalMs: number
  private readonly auditGraceMs: number
  private readonly repairAfterLost: (k: number, n: number) => number
  private readonly renewBeforeMs: number
  readonly migrateAbovePrice: number
  readonly minTrust: number
  readonly trustDrop: number
  private serial: Promise<void> = Promise.resolve()
  /** uploads running in this process: their pending records are not leftovers of a crash */
  private readonly uploading = new Set<string>()
  /** objects being repaired: never two repairs of one object at once */
  private readonly repairing = new Set<string>()
  private rentTimer?: ReturnType<typeof setInterval>
  private renting?: Promise<void>

  constructor (components: StorageClientComponents, init: StorageClientInit = {}) {
    this.components = components
    this.segmentSize = init.segmentSize ?? 4 * 1024 * 1024
    this.segmentsInFlight = init.segmentsInFlight ?? 1
    this.durationMs = init.durationMs ?? MONTH_MS
    this.rentPeriodMs = init.rentPeriodMs ?? 24 * 3600_000
    this.rentCheckMs = init.rentCheckMs ?? 60_000
    this.minThroughput = init.minThroughput ?? 64 * 1024
    this.hedgeMs = init.hedgeMs ?? 5_000
    this.auditIntervalMs = init.auditIntervalMs ?? 6 * 3600_000
    this.auditGraceMs = init.auditGraceMs ?? 3600_000
    this.renewBeforeMs = init.renewBeforeMs ?? 7 * 24 * 3600_000
    this.migrateAbovePrice = init.migrateAbovePrice ?? 3
    this.minTrust = init.minTrust ?? 0
    this.trustDrop = init.trustDrop ?? 0.25
    this.repairAfterLost = init.repairAfterLost ?? ((k, n) => Math.max(1, Math.ceil((n - k) / 2)))
  }

  start (): void {
    this.rentTimer = setInterval(() => {
      this.renting ??= this.cleanUploads().then(async () => this.payRent()).then(async () => this.audit()).then(async () => this.renewAll()).then(async () => this.repairAll()).then(() => {}, err => { log.error('paying rent failed; tried again at the next check - %e', err) }).finally(() => { this.renting = undefined })
    }, this.rentCheckMs)
    this.rentTimer.unref()
    // contracts of uploads a crash interrupted: nothing refers to them, so end them
    void this.cleanUploads().catch(err => { log.error('ending the contracts of interrupted uploads failed - %e', err) })
  }

  async stop (): Promise<void> {
    clearInterval(this.rentTimer)
    await this.renting
  }

  // ---- audits ----

  /**
   * Audit the contracts that are due (see auditIntervalMs). A host that
   * fails is condemned at once and rated; one that cannot be reached is
   * tried again at each check and condemned only after auditGraceMs.
   * Resolves with what was audited.
   */
  async audit (now = Date.now()): Promise<{ passed: number, failed: number, unreachable: number }> {
    return this.exclusive(async () => this.auditNow(now))
  }

  private async auditNow (now: number): Promise<{ passed: number, failed: number, unreachable: number }> {
    const counts = { passed: 0, failed: 0, unreachable: 0 }
    const changed: StoredObject[] = []
    const unreachable: Array<{ id: string, c: ContractRecord, err: Error }> = []
    for (const object of await this.list()) {
      let touched = false
      for (const [id, c] of Object.entries(object.contracts)) {
        if (c.ended != null || c.lost != null || c.end <= now || c.shards.length === 0) {
          continue
        }
        c.audit ??= { passed: 0, failed: 0, next: c.start + Math.random() * this.auditIntervalMs }
        if (c.audit.next > now) {
          continue
        }
        touched = true
        c.audit.at = now
        try {
          await auditContract({ contract: id, host: c.host, signedRevision: c.signedRevision, shards: c.shards }, async (peer, request) => this.components.call(peer, { ...request, signal: AbortSignal.timeout(30_000) }, 0n))
          c.audit.passed++
          c.audit.passedAt = now
          c.audit.unreachableSince = undefined
          c.audit.lastError = undefined
          c.audit.next = now + this.auditIntervalMs * (0.5 + Math.random())
          counts.passed++
        } catch (err: any) {
          c.audit.lastError = err.message
          if (err instanceof AuditFailedError) {
            c.audit.failed++
            c.lost = now
            c.lostReason = err.message
            counts.failed++
            this.components.rate?.(c.host, 'corrupt', 'prove')
            log.error('audit: %s', err.message)
          } else {
            unreachable.push({ id, c, err })
            counts.unreachable++
            // tried again at the next check, not after a whole interval
            c.audit.next = now
          }
        }
      }
      if (touched) {
        changed.push(object)
      }
    }
    // when no host at all answered, this node is the one offline: nobody's
    // grace starts running until it can reach someone again
    const online = counts.passed + counts.failed > 0
    if (!online && unreachable.length > 0) {
      log('audit: no host answered; this node seems offline, so no host is held to it')
    }
    for (const { id, c, err } of unreachable) {
      const audit = c.audit as AuditRecord
      if (!online) {
        continue
      }
      audit.unreachableSince ??= now
      if (now - audit.unreachableSince >= this.auditGraceMs) {
        audit.failed++
        c.lost = now
        c.lostReason = `unreachable since ${new Date(audit.unreachableSince).toISOString()} (${err.message})`
        this.components.rate?.(c.host, 'failed', 'prove')
        log.error('audit: host %s of contract %s condemned: %s', c.host, id, c.lostReason)
      } else {
        log('audit: host %s of contract %s unreachable, tried again - %s', c.host, id, err.message)
      }
    }
    for (const object of changed) {
      await this.saveIfStored(object)
    }
    return counts
  }

  // ---- renewal ----

  /**
   * Renew the contracts that end soon (see renewBeforeMs) with the same
   * hosts: new terms of the same length at the host's current prices, the
   * shards carried over without sending them again. A host that refuses is
   * asked again at the next check; once its contract has ended, its shards
   * count as lost and repair moves them. Resolves with how many were renewed.
   */
  async renewAll (now = Date.now()): Promise<number> {
    return this.exclusive(async () => this.renewAllNow(now))
  }

  private async renewAllNow (now: number): Promise<number> {
    let renewed = 0
    const offers = new Map((await this.components.hosts()).map(h => [h.peer, h]))
    for (const object of await this.list()) {
      let changed = false
      for (const [id, c] of Object.entries(object.contracts)) {
        const length = c.end - c.start
        if (c.ended != null || c.lost != null || c.end <= now || c.end - now > Math.min(this.renewBeforeMs, length / 3)) {
          continue
        }
        try {
          const next = await this.renewContract(id, c, length, offers.get(c.host))
          object.contracts[next.id] = next.record
          c.ended = Date.now()
          c.renewedAs = next.id
          for (const segment of object.segments) {
            for (const shard of segment.shards) {
              if (shard.contract === id) {
                shard.contract = next.id
              }
            }
          }
          changed = true
          renewed++
          // saved before it is paid: the host has already moved the shards
          await this.saveObject(object)
          await this.payPeriod(next.id, next.record).catch((err: any) => { log.error('the first rent of contract %s is not paid yet; paid at the next check - %s', next.id, err.message) })
          log('renewed contract %s with %s as %s, until %s', id, c.host, next.id, new Date(next.record.end).toISOString())
        } catch (err: any) {
          log.error('renewing contract %s with %s failed; tried again at the next check - %s', id, c.host, err.message)
        }
      }
      if (changed) {
        await this.saveIfStored(object)
      }
    }
    return renewed
  }

  private async renewContract (oldId: string, old: ContractRecord, length: number, offer?: HostOffer): Promise<{ id: string, record: ContractRecord }> {
    const start = Date.now()
    // the host's current prices (it signs nothing below them)
    const prices = offer ?? { storage: BigInt(old.storagePrice), upload: BigInt(old.uploadPrice), download: BigInt(old.downloadPrice) }
    const terms: ContractTerms = {
      renter: this.components.peerId,
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
    const renterSignature = signTerms(encoded, this.components.signer)
    const revision = encodeRevision(nextRevision(Buffer.from(id, 'hex'), 0, old.shards.map(([root, length]) => ({ root: Buffer.from(root, 'hex'), length }))))
    const revisionSignature = signRevision(revision, this.components.signer)
    const body = new Writer().bytes(encoded).bytes(renterSignature).finish()
    const response = await this.components.call(old.host, { service: STORAGE, method: 'renew', args: [oldId, Buffer.from(revisionSignature).toString('base64')], body: bodyFromBytes(body) }, 0n)
    const answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
    if (answer.contract !== id || answer.revision !== 1) {
      throw new IntegrityError(`host ${old.host} answered contract ${String(answer.contract)} at revision ${String(answer.revision)}, not ${id} at revision 1`)
    }
    const hostSignature = Buffer.from(String(answer.hostSignature), 'base64')
    verifyTerms(encoded, old.host, hostSignature)
    const hostRevisionSignature = Buffer.from(String(answer.revisionSignature), 'base64')
    verifyRevision(revision, old.host, hostRevisionSignature)
    const record: ContractRecord = {
      host: old.host,
      signed: Buffer.from(encodeSigned(encoded, renterSignature, hostSignature)).toString('base64'),
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
      signedRevision: Buffer.from(encodeSigned(revision, revisionSignature, hostRevisionSignature)).toString('base64'),
      shards: [...old.shards],
      spent: { upload: '0', download: '0', rent: '0' },
      audit: old.audit
    }
    return { id, record }
  }

  // ---- repair ----

  /** Repair every object that has lost enough shards; resolves with how many shards were rebuilt */
  async repairAll (): Promise<number> {
    return this.exclusive(async () => this.repairAllNow())
  }

  private async repairAllNow (): Promise<number> {
    let rebuilt = 0
    const offers = await this.components.hosts()
    const prices = offers.map(o => o.storage).sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
    const median = prices.length === 0 ? undefined : prices[Math.floor(prices.length / 2)]
    const priceOf = new Map(offers.map(o => [o.peer, o.storage]))
    for (const object of await this.list()) {
      // hosts to move away from although they did nothing wrong
      let migrate = false
      for (const c of Object.values(object.contracts)) {
        if (c.ended != null || c.lost != null || c.migrating != null) {
          continue
        }
        const reason = migrationReason(c, { price: priceOf.get(c.host), median, trust: this.components.trust?.(c.host) }, this)
        if (reason == null) {
          continue
        }
        c.migrating = reason
        migrate = true
        log('migrating the shards of "%s" off %s: %s', object.name, c.host, c.migrating)
      }
      if (migrate) {
        await this.saveObject(object)
      }
      const health = healthOf(object)
      migrate ||= Object.values(object.contracts).some(c => c.migrating != null && c.ended == null)
      if (migrate || (object.n - health.healthy >= this.repairAfterLost(object.k, object.n) && health.healthy >= object.k)) {
        try {
          rebuilt += await this.repairNow(object.id)
        } catch (err: any) {
          log.error('repairing "%s" failed; tried again at the next check - %e', object.name, err)
        }
      }
    }
    return rebuilt
  }

  /**
   * Rebuild the shards of an object held under lost contracts (condemned,
   * ended or expired) onto new hosts: K healthy shards of each segment are
   * fetched and checked, the missing ones regenerated (the code is
   * deterministic, so each comes back with its original root), and each lost
   * slot goes to a new host under a new contract that ends with the others.
   * The record changes only when the slot is whole; the old contract is
   * then ended and paid no more.
   */
  async repair (nameOrId: string, signal: AbortSignal = new AbortController().signal): Promise<number> {
    return this.exclusive(async () => this.repairNow(nameOrId, signal))
  }

  private async repairNow (nameOrId: string, signal: AbortSignal = new AbortController().signal): Promise<number> {
    const object = await this.find(nameOrId)
    if (this.repairing.has(object.id)) {
      return 0
    }
    this.repairing.add(object.id)
    try {
      const now = Date.now()
      const bad = (contract: string): boolean => {
        const c = object.contracts[contract]
        return c == null || c.ended != null || c.lost != null || c.migrating != null || c.end <= now
      }
      // per slot, the segments whose shard there is lost
      const lostSlots = new Map<number, number[]>()
      object.segments.forEach((segment, i) => {
        segment.shards.forEach((shard, slot) => {
          if (bad(shard.contract)) {
            lostSlots.set(slot, [...(lostSlots.get(slot) ?? []), i])
          }
        })
      })
      if (lostSlots.size === 0) {
        return 0
      }
      const liveEnds = Object.values(object.contracts).filter(c => c.ended == null && c.lost == null && c.end > now).map(c => c.end)
      const durationMs = Math.max(60_000, Math.min(...liveEnds, now + this.durationMs) - now)
      const inUse = new Set(Object.values(object.contracts).map(c => c.host))
      const offers = (await this.components.hosts()).filter(h => !inUse.has(h.peer))
      const rs = new ReedSolomon(object.k, object.n)
      const avoid = new Set(Object.values(object.contracts).filter(c => c.lost != null).map(c => c.host))
      let rebuilt = 0
      for (const [slotIndex, segments] of lostSlots) {
        const bytes = segments.reduce((n, i) => n + object.segments[i].shardSize, 0)
        let slot: Slot | undefined
        const refusals: string[] = []
        while (slot == null && offers.length > 0) {
          const host = offers.shift() as HostOffer
          try {
            const formed = await this.formContract(host, bytes, durationMs)
            slot = { index: slotIndex, host, contract: formed.id, record: formed.record, queue: Promise.resolve(), replacements: 0 }
          } catch (err: any) {
            refusals.push(`${host.peer}: ${err.message}`)
          }
        }
        if (slot == null) {
          throw new NotEnoughHostsError(`no new host for shard ${slotIndex + 1} of "${object.name}"; the hosts tried said:\n  ${refusals.join('\n  ') || '(the market knows no other host)'}`)
        }
        object.contracts[slot.contract] = slot.record
        const moved: Array<[number, ShardRecord]> = []
        for (const i of segments) {
          signal.throwIfAborted()
          const segment = object.segments[i]
          const shards = rs.reconstruct(await this.fetchSegment(object, segment, avoid, signal))
          const root = merkleRoot(shards[slotIndex])
          if (hex(root) !== segment.shards[slotIndex].root) {
            throw new IntegrityError(`shard ${slotIndex + 1} of segment ${i} of "${object.name}" rebuilt to another root`)
          }
          await this.putShard(slot, shards[slotIndex], root, signal)
          moved.push([i, { host: slot.host.peer, contract: slot.contract, root: hex(root) }])
          releaseSegmentMemory()
        }
        const old = new Set(segments.map(i => object.segments[i].shards[slotIndex].contract))
        for (const [i, record] of moved) {
          object.segments[i].shards[slotIndex] = record
        }
        rebuilt += moved.length
        // a lost contract that no segment uses any more is ended: no more rent
        for (const id of old) {
          if (object.segments.some(s => s.shards.some(x => x.contract === id))) {
            continue
          }
          await this.endContract(id, object.contracts[id]).catch(() => {})
        }
        await this.saveObject(object)
        log('repaired shard %d of "%s": %d segments moved to %s', slotIndex + 1, object.name, moved.length, slot.host.peer)
      }
      return rebuilt
    } finally {
      this.repairing.delete(object.id)
    }
  }

  // ---- records ----

  async list (): Promise<StoredObject[]> {
    const out: StoredObject[] = []
    for await (const { value } of this.components.datastore.query({ prefix: OBJECTS })) {
      out.push(dec<StoredObject>(value))
    }
    return out.sort((a, b) => a.name.localeCompare(b.name))
  }

  /** An object by name or by id */
  async find (nameOrId: string): Promise<StoredObject> {
    let id = nameOrId
    try {
      id = dec<string>(await this.components.datastore.get(new Key(`${NAMES}/${encodeURIComponent(nameOrId)}`)))
    } catch {}
    try {
      return dec<StoredObject>(await this.components.datastore.get(new Key(`${OBJECTS}/${id}`)))
    } catch {
      throw new ObjectNotFoundError(`no stored object is named "${nameOrId}" or has that id; "store ls" lists them`)
    }
  }

  /**
   * One change to the object records at a time: audits, rent, renewals,
   * repairs and removals each read records, talk to hosts and write them
   * back, and two at once would write over each other's changes
   */
  private async exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn)
    this.serial = run.then(() => {}, () => {})
    return run
  }

  /** Save an object changed by upkeep, unless it was removed meanwhile */
  private async saveIfStored (object: StoredObject): Promise<void> {
    try {
      await this.find(object.id)
      await this.saveObject(object)
    } catch {}
  }

  private async saveObject (object: StoredObject): Promise<void> {
    await this.components.datastore.put(new Key(`${OBJECTS}/${object.id}`), enc(object))
  }

  // ---- contracts ----

  private async formContract (host: HostOffer, maxBytes: number, durationMs: number): Promise<{ id: string, record: ContractRecord }> {
    const start = Date.now()
    const terms: ContractTerms = {
      renter: this.components.peerId,
      host: host.peer,
      nonce: randomBytes(16),
      start,
      end: start + durationMs,
      maxBytes,
      storagePrice: host.storage,
      uploadPrice: host.upload,
      downloadPrice: host.download,
      rentPeriodMs: Math.min(this.rentPeriodMs, durationMs)
    }
    const encoded = encodeTerms(terms)
    const renterSignature = signTerms(encoded, this.components.signer)
    const body = new Writer().bytes(encoded).bytes(renterSignature).finish()
    const response = await this.components.call(host.peer, { service: STORAGE, method: 'contract', body: bodyFromBytes(body) }, 0n)
    const answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
    const id = hex(contractIdOf(encoded))
    if (answer.contract !== id) {
      throw new IntegrityError(`host ${host.peer} answered contract ${String(answer.contract)}, not ${id}`)
    }
    const hostSignature = Buffer.from(String(answer.hostSignature), 'base64')
    verifyTerms(encoded, host.peer, hostSignature)
    const record: ContractRecord = {
      host: host.peer,
      signed: Buffer.from(encodeSigned(encoded, renterSignature, hostSignature)).toString('base64'),
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
    await this.payPeriod(id, record)
    return { id, record }
  }

  private termsOf (record: ContractRecord): ContractTerms {
    return { renter: this.components.peerId, host: record.host, nonce: new Uint8Array(16), start: record.start, end: record.end, maxBytes: record.maxBytes, storagePrice: BigInt(record.storagePrice), uploadPrice: BigInt(record.uploadPrice), downloadPrice: BigInt(record.downloadPrice), rentPeriodMs: record.rentPeriodMs }
  }

  private async payPeriod (id: string, record: ContractRecord): Promise<void> {
    const sats = rentPerPeriod(this.termsOf(record))
    await this.components.call(record.host, { service: STORAGE, method: 'rent', args: [id, '1'] }, sats)
    record.rentPaidPeriods++
    record.spent.rent = String(BigInt(record.spent.rent) + sats)
  }

  /** Pay the next period of every live contract whose paid time runs out within half a period */
  async payRent (now = Date.now()): Promise<number> {
    return this.exclusive(async () => this.payRentNow(now))
  }

  private async payRentNow (now: number): Promise<number> {
    let paid = 0
    for (const object of await this.list()) {
      let changed = false
      for (const [id, c] of Object.entries(object.contracts)) {
        // a condemned host is paid no more
        if (c.ended != null || c.lost != null || c.end <= now) {
          continue
        }
        while (c.start + c.rentPaidPeriods * c.rentPeriodMs < Math.min(c.end, now + c.rentPeriodMs / 2)) {
          try {
            await this.payPeriod(id, c)
            paid++
            changed = true
          } catch (err: any) {
            log.error('rent for contract %s with %s not paid - %s', id, c.host, err.message)
            break
          }
        }
      }
      if (changed) {
        await this.saveIfStored(object)
      }
    }
    return paid
  }

  private async putShard (slot: Slot, shard: Uint8Array, root: Uint8Array, signal: AbortSignal): Promise<void> {
    const c = slot.record
    const shards: Array<[string, number]> = [...c.shards, [hex(root), shard.byteLength]]
    const rev = nextRevision(Buffer.from(slot.contract, 'hex'), c.revision, shards.map(([r, length]) => ({ root: Buffer.from(r, 'hex'), length })))
    const encoded = encodeRevision(rev)
    const renterSignature = signRevision(encoded, this.components.signer)
    const sats = transferCost(BigInt(c.uploadPrice), shard.byteLength)
    // a host slower than minThroughput is given up on, and its shard goes elsewhere
    const timeout = AbortSignal.timeout(10_000 + Math.ceil(shard.byteLength / this.minThroughput) * 1000)
    const started = performance.now()
    const response = await this.components.call(slot.host.peer, {
      service: STORAGE,
      method: 'put',
      args: [slot.contract, hex(root), Buffer.from(renterSignature).toString('base64')],
      body: bodyFromBytes(shard),
      signal: AbortSignal.any([signal, timeout])
    }, sats)
    const answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
    log('put %d bytes on %s in %d ms', shard.byteLength, slot.host.peer, Math.round(performance.now() - started))
    const hostSignature = Buffer.from(String(answer.hostSignature), 'base64')
    verifyRevision(encoded, slot.host.peer, hostSignature)
    c.shards = shards
    c.revision = rev.number
    c.signedRevision = Buffer.from(encodeSigned(encoded, renterSignature, hostSignature)).toString('base64')
    c.spent.upload = String(BigInt(c.spent.upload) + sats)
  }

  // ---- put ----

  async put (path: string, options: PutOptions = {}): Promise<StoredObject> {
    const signal = options.signal ?? new AbortController().signal
    const { size } = await stat(path)
    const name = options.name ?? basename(path)
    // eslint-disable-next-line no-control-regex
    if (name === '' || name.length > 255 || /[\u0000-\u001f]/.test(name)) {
      throw new InvalidNameError(`"${name}" is not a usable name: 1 to 255 printable characters`)
    }
    if (await this.components.datastore.has(new Key(`${NAMES}/${encodeURIComponent(name)}`))) {
      throw new ObjectExistsError(`an object named "${name}" is stored already; remove it first (store rm ${JSON.stringify(name)}) or choose another --name`)
    }
    const ceiling = options.maxStoragePrice
    const offers = (await this.components.hosts()).filter(h => ceiling == null || h.storage <= ceiling)
    const { k, n } = options.k != null && options.n != null ? { k: options.k, n: options.n } : defaultRedundancy(offers.length)
    if (n < 1 || offers.length < n) {
      throw new NotEnoughHostsError(`storing ${k}-of-${n} needs ${n} hosts, and the market knows ${offers.length}${ceiling == null ? '' : ` at or under ${ceiling} sat per GiB-month`}; wait for more offers (market prices --service storage), raise --max-price, or choose a smaller --redundancy`)
    }
    const rs = new ReedSolomon(k, n)
    const segmentCount = Math.max(1, Math.ceil(size / this.segmentSize))
    const plainLength = (i: number): number => Math.min(this.segmentSize, size - i * this.segmentSize)
    const shardSize = (i: number): number => Math.max(1, Math.ceil((plainLength(i) + TAG_BYTES) / k))
    const bytesFrom = (i: number): number => { let b = 0; for (let s = i; s < segmentCount; s++) b += shardSize(s); return b }
    const durationMs = options.durationMs ?? this.durationMs
    const id = randomBytes(16)
    const objectId = hex(id)
    const key = objectKey(this.components.storageKey(), id)
    const progress = (p: Progress): void => { options.onProgress?.(p) }

    // contracts with N hosts, taking the next offer whenever one refuses
    const contracts: Record<string, ContractRecord> = {}
    const pending = { id: objectId, name, contracts }
    // a check running meanwhile must not take this upload for a crashed one
    this.uploading.add(objectId)
    try {
      const savePending = async (): Promise<void> => { await this.components.datastore.put(new Key(`${UPLOADS}/${objectId}`), enc(pending)) }
      let next = 0
      const refusals: string[] = []
      const used = new Set<string>()
      const newSlotHost = async (index: number, bytes: number): Promise<{ host: HostOffer, contract: string, record: ContractRecord }> => {
        while (next < offers.length) {
          const host = offers[next++]
          if (used.has(host.peer)) {
            continue
          }
          used.add(host.peer)
          try {
            signal.throwIfAborted()
            const formed = await this.formContract(host, bytes, durationMs)
            contracts[formed.id] = formed.record
            await savePending()
            return { host, contract: formed.id, record: formed.record }
          } catch (err: any) {
            if (signal.aborted) {
              throw err
            }
            refusals.push(`${host.peer}: ${err.message}`)
            log('host %s refused slot %d - %s', host.peer, index, err.message)
          }
        }
        throw new NotEnoughHostsError(`no host left to hold shard ${index + 1} of ${n} (${k}-of-${n}); the hosts tried said:\n  ${refusals.join('\n  ')}`)
      }
      await savePending()
      progress({ phase: 'contracts', done: 0, total: n })
      const slots: Slot[] = []
      let formedCount = 0
      await Promise.all(Array.from({ length: n }, async (_, index) => {
        const s = await newSlotHost(index, bytesFrom(0))
        slots[index] = { index, ...s, queue: Promise.resolve(), replacements: 0 }
        progress({ phase: 'contracts', done: ++formedCount, total: n })
      }))

      const segments: SegmentRecord[] = []
      const totalShardBytes = bytesFrom(0) * n
      let shardBytesDone = 0
      const fileHash = createHash('sha256')
      const file = await open(path, 'r')
      const putOnSlot = async (slot: Slot, segment: number, shard: Uint8Array, root: Uint8Array): Promise<ShardRecord> => {
        // queued behind the slot's earlier shards: revisions follow each other
        const run = slot.queue.then(async () => {
          for (;;) {
            signal.throwIfAborted()
            try {
              await this.putShard(slot, shard, root, signal)
              return { host: slot.host.peer, contract: slot.contract, root: hex(root) }
            } catch (err: any) {
              if (signal.aborted || slot.replacements >= 3) {
                throw err
              }
              this.components.rate?.(slot.host.peer, 'failed', 'put')
              log('shard %d of segment %d failed on %s, moving the slot to another host - %s', slot.index, segment, slot.host.peer, err.message)
              slot.replacements++
              const s = await newSlotHost(slot.index, bytesFrom(segment))
              Object.assign(slot, s)
            }
          }
        })
        slot.queue = run.then(() => {}, () => {})
        return run
      }
      try {
        const inFlight = new Set<Promise<void>>()
        let failure: unknown
        for (let i = 0; i < segmentCount && failure == null; i++) {
          while (inFlight.size >= this.segmentsInFlight) {
            await Promise.race(inFlight)
          }
          if (failure != null) {
            break
          }
          signal.throwIfAborted()
          const plain = Buffer.allocUnsafe(plainLength(i))
          const { bytesRead } = await file.read(plain, 0, plain.byteLength, i * this.segmentSize)
          if (bytesRead !== plain.byteLength) {
            throw new Error(`${path} changed while it was being stored`)
          }
          fileHash.update(plain)
          const segment = i
          const task = (async () => {
            const sealed = sealSegment(key, id, segment, plain)
            const data = split(sealed, k)
            const shards = [...data, ...rs.encode(data)]
            const roots = shards.map(merkleRoot)
            const records = await Promise.all(shards.map(async (shard, s) => {
              const record = await putOnSlot(slots[s], segment, shard, roots[s])
              shardBytesDone += shard.byteLength
              progress({ phase: 'upload', done: Math.floor(shardBytesDone / totalShardBytes * size), total: size })
              return record
            }))
            segments[segment] = { plainLength: plainLength(segment), shardSize: shardSize(segment), shards: records }
            releaseSegmentMemory()
          })().catch(err => { failure ??= err })
          const tracked = task.finally(() => { inFlight.delete(tracked) })
          inFlight.add(tracked)
        }
        await Promise.all(inFlight)
        if (failure != null) {
          throw failure
        }
      } finally {
        await file.close()
      }
      const object: StoredObject = {
        id: objectId,
        name,
        size,
        sha256: fileHash.digest('hex'),
        createdAt: Date.now(),
        k,
        n,
        segmentSize: this.segmentSize,
        segments,
        contracts
      }
      // the object and its name appear together, and only now that every shard is stored
      const batch = this.components.datastore.batch()
      batch.put(new Key(`${OBJECTS}/${objectId}`), enc(object))
      batch.put(new Key(`${NAMES}/${encodeURIComponent(name)}`), enc(objectId))
      batch.delete(new Key(`${UPLOADS}/${objectId}`))
      await batch.commit()
      log('stored %s (%s) as %d-of-%d on %d contracts', name, formatSize(size), k, n, Object.keys(contracts).length)
      return object
    } finally {
      this.uploading.delete(objectId)
    }
  }

  /**
   * End the contracts of uploads that never finished (a crash, kill -9).
   * An upload's record goes once every host has been told; hosts that could
   * not be reached are tried again at the next rent check.
   */
  async cleanUploads (): Promise<number> {
    let ended = 0
    for await (const { key, value } of this.components.datastore.query({ prefix: UPLOADS })) {
      const pending = dec<{ id: string, contracts: Record<string, ContractRecord> }>(value)
      if (this.uploading.has(pending.id)) {
        continue
      }
      let left = 0
      for (const [id, c] of Object.entries(pending.contracts)) {
        if (c.ended != null) {
          continue
        }
        try {
          await this.components.call(c.host, { service: STORAGE, method: 'end', args: [id] }, 0n)
          c.ended = Date.now()
          ended++
        } catch (err: any) {
          if (err instanceof NotFoundError) {
            // the host has no such contract (it expired, or never formed)
            c.ended = Date.now()
            continue
          }
          left++
          log('could not end contract %s of an interrupted upload with %s - %s', id, c.host, err.message)
        }
      }
      if (left === 0) {
        await this.components.datastore.delete(key)
        log('ended the %d contracts of interrupted upload %s', Object.keys(pending.contracts).length, pending.id)
      } else {
        await this.components.datastore.put(key, enc(pending))
      }
    }
    return ended
  }

  // ---- get ----

  private async fetchShard (object: StoredObject, segment: SegmentRecord, index: number, signal: AbortSignal): Promise<Uint8Array> {
    const shard = segment.shards[index]
    const c = object.contracts[shard.contract]
    const sats = transferCost(BigInt(c.downloadPrice), segment.shardSize)
    const response = await this.components.call(shard.host, {
      service: STORAGE,
      method: 'get',
      args: [shard.contract, shard.root, '0', String(segment.shardSize)],
      signal
    }, sats)
    const bytes = await response.body.bytes()
    c.spent.download = String(BigInt(c.spent.download) + sats)
    if (bytes.byteLength !== segment.shardSize || !equalBytes(merkleRoot(bytes), Buffer.from(shard.root, 'hex'))) {
      this.components.rate?.(shard.host, 'corrupt', 'get')
      throw new IntegrityError(`host ${shard.host} sent bytes that do not match shard ${shard.root}`)
    }
    return bytes
  }

  /**
   * The first K good shards of a segment: K requests at once, data shards
   * first (they need no decoding); a failed or wrong one, or one slower than
   * the hedge time, starts the next host, and the rest are cancelled once K
   * have arrived.
   */
  private async fetchSegment (object: StoredObject, segment: SegmentRecord, avoid: Set<string>, signal: AbortSignal): Promise<Array<Uint8Array | undefined>> {
    const { k, n } = object
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => Number(avoid.has(segment.shards[a].host)) - Number(avoid.has(segment.shards[b].host)))
    const got: Array<Uint8Array | undefined> = new Array(n).fill(undefined)
    const controller = new AbortController()
    const both = AbortSignal.any([signal, controller.signal])
    const errors: string[] = []
    let cursor = 0
    let good = 0
    let running = 0
    return new Promise((resolve, reject) => {
      const hedgeMs = this.hedgeMs + Math.ceil(segment.shardSize / (1024 * 1024)) * 1000
      let hedge: ReturnType<typeof setTimeout> | undefined
      const finish = (err?: Error): void => {
        clearTimeout(hedge)
        controller.abort()
        if (err != null) {
          reject(err)
        } else {
          resolve(got)
        }
      }
      const launch = (): void => {
        if (cursor >= n) {
          if (running === 0 && good < k) {
            finish(new ShardUnavailableError(`only ${good} of the ${k} shards needed for a segment of "${object.name}" could be fetched:\n  ${errors.join('\n  ')}`))
          }
          return
        }
        const index = order[cursor++]
        running++
        this.fetchShard(object, segment, index, both).then(bytes => {
          running--
          if (good >= k) {
            return
          }
          got[index] = bytes
          if (++good === k) {
            finish()
          }
        }, (err: any) => {
          running--
          if (good >= k || signal.aborted) {
            if (signal.aborted) finish(err)
            return
          }
          if (!(err instanceof IntegrityError)) {
            this.components.rate?.(segment.shards[index].host, 'failed', 'get')
          }
          avoid.add(segment.shards[index].host)
          errors.push(`${segment.shards[index].host}: ${err.message}`)
          launch()
        })
      }
      const armHedge = (): void => {
        hedge = setTimeout(() => {
          if (good < k && cursor < n) {
            launch()
            armHedge()
          }
        }, hedgeMs)
        hedge.unref?.()
      }
      for (let i = 0; i < k; i++) {
        launch()
      }
      armHedge()
    })
  }

  /** Fetch, check, decode and decrypt an object into `out` (written beside it first, renamed when whole) */
  async get (nameOrId: string, out: string, options: GetOptions = {}): Promise<StoredObject> {
    // a failure stops the fetch running ahead too, before get() returns
    const stopAhead = new AbortController()
    const signal = options.signal == null ? stopAhead.signal : AbortSignal.any([options.signal, stopAhead.signal])
    const object = await this.find(nameOrId)
    if (options.overwrite !== true && await stat(out).then(() => true, () => false)) {
      throw new OutputExistsError(`${out} exists already; choose another --out or pass --force to replace it`)
    }
    const rs = new ReedSolomon(object.k, object.n)
    const id = Buffer.from(object.id, 'hex')
    const key = objectKey(this.components.storageKey(), id)
    const tmp = `${out}.${randomBytes(4).toString('hex')}.part`
    const file = await open(tmp, 'wx', 0o600)
    const hash = createHash('sha256')
    // condemned hosts are asked last, only if the others cannot give K shards
    const avoid = new Set(Object.values(object.contracts).filter(c => c.lost != null).map(c => c.host))
    let done = 0
    // one segment ahead: the next is fetched while this one is decoded and written
    let ahead: Promise<Array<Uint8Array | undefined>> = Promise.resolve([])
    try {
      ahead = this.fetchSegment(object, object.segments[0], avoid, signal)
      for (let i = 0; i < object.segments.length; i++) {
        const segment = object.segments[i]
        const shards = await ahead
        if (i + 1 < object.segments.length) {
          ahead = this.fetchSegment(object, object.segments[i + 1], avoid, signal)
          ahead.catch(() => {})
        }
        const data = shards.slice(0, object.k).every(s => s != null) ? shards.slice(0, object.k) as Uint8Array[] : rs.reconstruct(shards).slice(0, object.k)
        const sealed = Buffer.concat(data).subarray(0, segment.plainLength + TAG_BYTES)
        const plain = openSegment(key, id, i, sealed)
        hash.update(plain)
        await file.write(plain)
        done += plain.byteLength
        options.onProgress?.({ phase: 'download', done, total: object.size })
        releaseSegmentMemory()
      }
      if (hash.digest('hex') !== object.sha256) {
        throw new IntegrityError(`"${object.name}" decrypted, but its SHA-256 is not the one recorded when it was stored`)
      }
      await file.sync()
      await file.close()
      if (options.overwrite === true) {
        await rename(tmp, out)
      } else {
        // link fails where a file appeared meanwhile: never replaced unasked
        try {
          await link(tmp, out)
        } catch (err: any) {
          throw err.code === 'EEXIST' ? new OutputExistsError(`${out} appeared while the object was fetched; it is left as it was`) : err
        }
        await rm(tmp, { force: true })
      }
    } catch (err) {
      stopAhead.abort()
      await ahead.catch(() => {})
      await file.close().catch(() => {})
      await rm(tmp, { force: true })
      throw err
    }
    // what the download cost goes into the record as it is now (an audit or
    // a repair may have changed it meanwhile), without waiting for them
    void this.exclusive(async () => {
      const current = await this.find(object.id)
      for (const [id, c] of Object.entries(object.contracts)) {
        if (current.contracts[id] != null) {
          current.contracts[id].spent.download = c.spent.download
        }
      }
      await this.saveObject(current)
    }).catch(() => {})
    return object
  }

  /**
   * End a contract with its host: this node's signed rating of the host goes
   * with the request (satisfactory unless the host was caught), and the
   * host's rating of this node comes back. Both are kept with the contract
   * and under /storage/ratings, after the object is gone too.
   */
  private async endContract (id: string, c: ContractRecord): Promise<void> {
    const satisfied = c.lost == null && (c.audit?.failed ?? 0) === 0
    const reason = c.lost != null ? `condemned: ${c.lostReason ?? 'lost'}`.slice(0, 200) : `served as agreed; ${c.audit?.passed ?? 0} audits passed`
    const mine = signRating({ contractId: Buffer.from(id, 'hex'), rater: this.components.peerId, rated: c.host, satisfactory: satisfied, reason, at: Date.now() }, this.components.signer)
    c.ratings = { renter: Buffer.from(mine).toString('base64'), renterSatisfied: satisfied }
    this.components.rateContract?.(c.host, satisfied)
    try {
      const response = await this.components.call(c.host, { service: STORAGE, method: 'end', args: [id], body: bodyFromBytes(mine) }, 0n)
      const answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
      if (typeof answer.rating === 'string') {
        const theirs = Buffer.from(answer.rating, 'base64')
        const rating = openRating(theirs)
        if (rating.rater === c.host && rating.rated === this.components.peerId && hex(rating.contractId) === id) {
          c.ratings.host = answer.rating
          c.ratings.hostSatisfied = rating.satisfactory
        }
      }
    } finally {
      c.ended ??= Date.now()
      try {
        await this.components.datastore.put(new Key(`${RATINGS}/${id}`), enc({ host: c.host, ...c.ratings }))
      } catch {}
    }
  }

  // ---- rm ----

  /** End every contract of an object (the hosts delete its shards) and forget it */
  async remove (nameOrId: string): Promise<{ object: StoredObject, unreachable: string[] }> {
    return this.exclusive(async () => this.removeNow(nameOrId))
  }

  private async removeNow (nameOrId: string): Promise<{ object: StoredObject, unreachable: string[] }> {
    const object = await this.find(nameOrId)
    const unreachable: string[] = []
    await Promise.all(Object.entries(object.contracts).map(async ([id, c]) => {
      if (c.ended != null) {
        return
      }
      try {
        await this.endContract(id, c)
      } catch (err: any) {
        if (err.name !== 'NotFoundError') {
          unreachable.push(`${c.host} (${err.message}); its contract ends on ${new Date(c.end).toISOString()} anyway`)
        }
      }
      c.ended = Date.now()
    }))
    const batch = this.components.datastore.batch()
    batch.delete(new Key(`${OBJECTS}/${object.id}`))
    batch.delete(new Key(`${NAMES}/${encodeURIComponent(object.name)}`))
    await batch.commit()
    return { object, unreachable }
  }
}

/** What an object costs per month in rent: each contract's rent per period, scaled to 30 days */
export function monthlyRent (object: StoredObject): bigint {
  let total = 0n
  for (const c of Object.values(object.contracts)) {
    if (c.ended != null) {
      continue
    }
    const perPeriod = rentPerPeriod({ storagePrice: BigInt(c.storagePrice), maxBytes: c.maxBytes, rentPeriodMs: c.rentPeriodMs } as ContractTerms)
    total += perPeriod * BigInt(Math.round(MONTH_MS / c.rentPeriodMs))
  }
  return total
}

/** Satoshis spent on an object so far, by kind */
export interface ObjectHealth {
  /** the fewest healthy shards of any segment, and how many are needed */
  healthy: number
  needed: number
  total: number
  state: 'healthy' | 'degraded' | 'at-risk' | 'lost'
  /** contracts whose host was caught or condemned */
  lostContracts: number
  lastAudit?: number
}

/**
 * Why a contract's shards should move off a host that did nothing wrong, or
 * undefined: its storage price rose over `migrateAbovePrice` times the
 * market median, its trust score fell under `minTrust`, or it fell under
 * `trustDrop` of what it was when the contract formed (only for hosts that
 * were trusted then, TRUSTED_SCORE).
 */
export function migrationReason (
  c: Pick<ContractRecord, 'trustAtStart'>,
  now: { price?: bigint, median?: bigint, trust?: number },
  policy: { migrateAbovePrice: number, minTrust: number, trustDrop: number }
): string | undefined {
  const { price, median, trust } = now
  if (price != null && median != null && median > 0n && Number(price) > Number(median) * policy.migrateAbovePrice) {
    return `its price rose to ${price} sat per GiB-month, over ${policy.migrateAbovePrice}x the market median of ${median}`
  }
  if (trust != null && policy.minTrust > 0 && trust < policy.minTrust) {
    return `its trust score fell to ${trust.toFixed(2)}, under ${policy.minTrust}`
  }
  if (trust != null && c.trustAtStart != null && c.trustAtStart >= TRUSTED_SCORE && trust < c.trustAtStart * policy.trustDrop) {
    return `its trust score fell to ${trust.toFixed(2)} from ${c.trustAtStart.toFixed(2)} when the contract formed`
  }
  return undefined
}

/**
 * How many shards of each segment still count: those whose contract has
 * not ended, expired or been condemned. "at-risk" is one loss from losing
 * a segment; "degraded", below N.
 */
export function healthOf (object: StoredObject, now = Date.now()): ObjectHealth {
  const good = (contract: string): boolean => {
    const c = object.contracts[contract]
    return c != null && c.ended == null && c.lost == null && c.end > now
  }
  const healthy = Math.min(...object.segments.map(s => s.shards.filter(x => good(x.contract)).length))
  const audits = Object.values(object.contracts).map(c => c.audit?.passedAt ?? 0).filter(t => t > 0)
  return {
    healthy,
    needed: object.k,
    total: object.n,
    state: healthy >= object.n ? 'healthy' : healthy > object.k ? 'degraded' : healthy === object.k ? 'at-risk' : 'lost',
    lostContracts: Object.values(object.contracts).filter(c => c.lost != null).length,
    lastAudit: audits.length === 0 ? undefined : Math.max(...audits)
  }
}

export function spentOn (object: StoredObject): { upload: bigint, download: bigint, rent: bigint } {
  const out = { upload: 0n, download: 0n, rent: 0n }
  for (const c of Object.values(object.contracts)) {
    out.upload += BigInt(c.spent.upload)
    out.download += BigInt(c.spent.download)
    out.rent += BigInt(c.spent.rent)
  }
  return out
}

export { GIB }
