import { createHash, randomBytes } from 'node:crypto'
import { link, open, rename, rm, stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { logger } from '@libp2p/logger'
import { Key, type Datastore } from 'interface-datastore'
import { bodyFromBytes } from '../protocols/rpc/body.ts'
import { Writer } from '../protocols/codec.ts'
import { NotFoundError } from '../protocols/rpc/errors.ts'
import { contractIdOf, encodeRevision, encodeSigned, encodeTerms, GIB, MONTH_MS, nextRevision, rentPerPeriod, signRevision, signTerms, transferCost, verifyRevision, verifyTerms, type ContractTerms } from './protocol/contract.ts'
import { objectKey, openSegment, sealSegment, TAG_BYTES, DecryptError } from './protocol/crypto.ts'
import { ReedSolomon, split } from './protocol/erasure.ts'
import { equalBytes, merkleRoot } from './protocol/merkle.ts'
import { formatSize } from '../utils/size.ts'
import { KeyedLock } from '../utils/keyed-lock.ts'
import { formatAmount } from '../protocols/units.ts'
import { inTransfer, releaseSegmentMemory, SegmentSlots } from './memory.ts'
import { auditContract, AuditFailedError } from './audit.ts'
import { hostAnswered, judgeHostError } from './host-answers.ts'
import { openRating, signRating } from './protocol/rating.ts'
import type { CallRequest, CallResponse } from '../protocols/rpc/rpc-client.ts'
import type { CredentialSigner } from '../protocols/rpc/credentials.ts'

const log = logger('opencloud:storage:client')

export const STORAGE = 'storage'
const OBJECTS = '/storage/objects'
const NAMES = '/storage/names'
const UPLOADS = '/storage/uploads'
const RATINGS = '/storage/ratings'
/** plaintext files a get is writing (they are renamed into place when whole): swept after a crash */
const DOWNLOADS = '/storage/downloads'
/** objects removed by `store rm`, kept without their segments so `store info` still shows the contracts' ratings */
const REMOVED = '/storage/removed'
/** name -> the id of the latest removed object of that name (not under REMOVED: a prefix query of it would list these) */
const REMOVED_NAMES = '/storage/removals/names'
/** <removedAt>-<id> -> id: which removed objects to forget first (keepRemoved) */
const REMOVED_ORDER = '/storage/removals/order'
/** a trust score a host must have had for a fall from it to move data away (1 is the average peer) */
const TRUSTED_SCORE = 0.5
/**
 * The most an `end` call may take: ending is best effort (a host that
 * cannot be told keeps the shards until the contract's end, and endUnused
 * tells it at a later check), so a host that does not answer must not hold
 * up `store rm` or the upkeep for the RPC client's whole timeout
 */
const END_CALL_MS = 15_000
/** the one key of the records lock: every change to the object records takes it */
const RECORDS = 'records'
/** the longest a stuck repair, or a host that failed one, waits before it is tried again (see repairRetryMs) */
const MAX_REPAIR_RETRY_MS = 6 * 3600_000

export class ObjectExistsError extends Error {
  override name = 'ObjectExistsError'
}

/** a put of a name another put is storing right now (the name is held until it is done or fails) */
export class ObjectBeingStoredError extends Error {
  override name = 'ObjectBeingStoredError'
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

/** a host would not serve because of what this node owes it (an overdue deferred payment, credit refused) */
export class PaymentRefusedError extends Error {
  override name = 'PaymentRefusedError'
}

/** repair found no host that can take a lost shard */
export class RepairStuckError extends Error {
  override name = 'RepairStuckError'
}

/** the node is stopping: upkeep and transfers in flight end with this */
export class StorageStoppedError extends Error {
  override name = 'StorageStoppedError'
  constructor (message = 'the node is stopping') {
    super(message)
  }
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
  /**
   * segments held in memory at once by all transfers together (puts, gets
   * and repairs), default 4: concurrent transfers take turns segment by
   * segment rather than each hold their own (see SegmentSlots)
   */
  segmentSlots?: number
  /** contract length, default 30 days */
  durationMs?: number
  /** how often rent falls due, default 1 day */
  rentPeriodMs?: number
  /** how often the daemon checks for rent to pay, default 60 s */
  rentCheckMs?: number
  /** a shard upload slower than this many bytes per second is given to another host, default 64 KiB/s */
  minThroughput?: number
  /**
   * a shard download that has not finished after this long, plus its size
   * at 1 MiB/s, asks another host too, default 5 s; its host is then asked
   * last for the rest of the transfer
   */
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
   * a repair that could not put every lost shard back waits this long
   * before the upkeep tries it again, doubling with each attempt up to 6 h
   * (the audit interval), default 10 minutes; a host that signed a repair's
   * contract and then failed its upload is offered no shard of that object
   * for twice as long, doubling with each failure the same way. Each
   * attempt can pay a rent period to a new host and download K shards of
   * each segment, so a repair that cannot finish must not do so at every
   * check; a new loss (a get or an audit finds one) starts it again at
   * once, and `repair()` runs it now.
   */
  repairRetryMs?: number
  /**
   * how many removed objects `store info` can still show (their contracts
   * and the ratings they ended with), default 1,000: the oldest are
   * forgotten past that (the ratings stay under /storage/ratings)
   */
  keepRemoved?: number
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
  /**
   * a trust score under minTrust or trustDrop moves data away only once it
   * has stayed there this long, default 1 h: a node that restarts computes
   * trust from scratch (every score 0 until it is done) and hears other
   * nodes' summaries over the next minutes, and a migration is a repair of
   * every shard the host holds
   */
  trustGraceMs?: number
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
  /** since when the host's trust score has been low enough to move off it (see trustGraceMs) */
  trustLowSince?: number
  /** when the host was caught (a failed audit, or unreachable past the grace): its shards no longer count */
  lost?: number
  lostReason?: string
  /**
   * why it was condemned, which says whether repair may use the host again:
   * `cheated` (an audit failed, or it sent bytes that are not the shard)
   * never; `unreachable` (past the audit grace) and `replaced` (it failed
   * or stalled an upload) once it answers again. Records written before
   * this field: `unreachable` when lostReason says so, else `cheated`
   */
  lostFor?: 'cheated' | 'unreachable' | 'replaced'
  /** shards of this contract the host said were gone or corrupt when asked for them */
  shardsLost?: number
}

export interface ShardRecord {
  host: string
  contract: string
  root: string
  /** when the host answered that this one shard is gone or corrupt on its disk: it no longer counts */
  lost?: number
  lostReason?: string
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
  /** why the last repair could not put every lost shard back (cleared once one does) */
  repair?: RepairState
  /** when `store rm` removed it, and how many segments it had (only in the record kept for `store info`, which has no segments) */
  removedAt?: number
  segmentCount?: number
}

/** A repair that is stuck (StoredObject.repair), and when it is tried again (StorageClientInit.repairRetryMs) */
export interface RepairState {
  /** why, as the last attempt found */
  problem: string
  /** since when it has been stuck */
  at: number
  /** attempts that ended stuck, in a row */
  attempts?: number
  /** the upkeep tries again from then on (absent: at the next check) */
  retryAt?: number
  /** hosts that failed an upload of this object's repair: offered none of its shards until `until` */
  hosts?: Record<string, { failures: number, until: number }>
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
 * How many of a segment's N shards may be lost before the object is
 * repaired, by default: half the margin, ceil((N-K)/2) (see
 * StorageClientInit.repairAfterLost)
 */
export function defaultRepairAfterLost (k: number, n: number): number {
  return Math.max(1, Math.ceil((n - k) / 2))
}

/**
 * K for N shards: half of N rounded down up to 12, a third rounded up from
 * 13 (as Sia's 10-of-30). The bytes stored, and the rent and uploads paid
 * for, are N/K times the file: 2x for an even N up to 12, more for an odd
 * one (1-of-3 3x, 2-of-5 2.5x, 3-of-7 2.33x), about 3x from 13 (5-of-15 3x,
 * 8-of-22 2.75x)
 */
function defaultK (n: number): number {
  return n <= 12 ? Math.max(1, Math.floor(n / 2)) : Math.ceil(n / 3)
}

/**
 * The default K-of-N for a network of `hosts` storage hosts. N leaves spare
 * hosts: as many as the losses that start a repair (defaultRepairAfterLost),
 * so the repair that follows those losses finds new hosts for every lost
 * shard even when none of the lost hosts comes back. Repair puts a lost
 * shard only on a host that holds no other shard of that segment (two
 * shards on one host would make one failure cost two), so with every host
 * already in use it would have nowhere to go. N is the largest up to 30
 * (Sia's N) with N + spares <= hosts; K is defaultK(N): half of N rounded
 * down up to 12 (any N-K hosts may vanish), a third from 13, which
 * survives far more failures for about 3x the file stored instead of 2x.
 * Where no N with a margin (N > K) leaves a spare (1 or 2 hosts), every
 * host holds a shard: 1-of-1, 1-of-2.
 *
 * hosts: 2 -> 1-of-2 (2x the file stored), 3 -> 1-of-2 (2x), 4 -> 1-of-3
 * (3x), 5 -> 2-of-4 (2x), 7 -> 2-of-5 (2.5x), 8 -> 3-of-6 (2x), 9 -> 3-of-7
 * (2.33x), 10 -> 4-of-8 (2x), 16 -> 6-of-12 (2x), 20 -> 5-of-15 (3x), 30 ->
 * 8-of-22 (2.75x), 40 -> 10-of-30 (3x)
 */
export function defaultRedundancy (hosts: number): { k: number, n: number } {
  for (let n = Math.min(30, hosts); n >= 2; n--) {
    const k = defaultK(n)
    if (n > k && n + defaultRepairAfterLost(k, n) <= hosts) {
      return { k, n }
    }
  }
  const n = Math.min(30, hosts)
  return { k: defaultK(n), n }
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

/** A put under way, as its record under /storage/uploads names it: cleanUploads ends its contracts after a crash */
interface PendingUpload {
  id: string
  /** the name it holds (records of older versions may have none) */
  name?: string
  contracts: Record<string, ContractRecord>
}

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
  private readonly slots: SegmentSlots
  private readonly durationMs: number
  private readonly rentPeriodMs: number
  private readonly rentCheckMs: number
  private readonly minThroughput: number
  private readonly hedgeMs: number
  private readonly auditIntervalMs: number
  private readonly auditGraceMs: number
  private readonly repairAfterLost: (k: number, n: number) => number
  private readonly repairRetryMs: number
  private readonly keepRemoved: number
  private readonly renewBeforeMs: number
  readonly migrateAbovePrice: number
  readonly minTrust: number
  readonly trustDrop: number
  private readonly trustGraceMs: number
  /** one change to the object records at a time (see exclusive) */
  private readonly records = new KeyedLock()
  /** uploads running in this process: their pending records are not leftovers of a crash */
  private readonly uploading = new Set<string>()
  /** names reserved by puts running in this process (the datastore holds them too, see reserveName) */
  private readonly reservedNames = new Set<string>()
  /** gets running in this process: their partial files are not leftovers of a crash */
  private readonly downloading = new Set<string>()
  /** objects being repaired, each with what stops its repair (store rm does): never two at once */
  private readonly repairing = new Map<string, AbortController>()
  /** aborted by stop(): every upkeep step and transfer in flight ends */
  private shutdown = new AbortController()
  private checkTimer?: ReturnType<typeof setInterval>
  private checking?: Promise<void>

  constructor (components: StorageClientComponents, init: StorageClientInit = {}) {
    this.components = components
    this.segmentSize = init.segmentSize ?? 4 * 1024 * 1024
    this.segmentsInFlight = init.segmentsInFlight ?? 1
    this.slots = new SegmentSlots(Math.max(init.segmentSlots ?? 4, this.segmentsInFlight))
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
    this.trustGraceMs = init.trustGraceMs ?? 3600_000
    this.repairAfterLost = init.repairAfterLost ?? defaultRepairAfterLost
    this.repairRetryMs = init.repairRetryMs ?? 10 * 60_000
    this.keepRemoved = init.keepRemoved ?? 1000
  }

  start (): void {
    this.shutdown = new AbortController()
    this.checkTimer = setInterval(() => { this.checkNow() }, this.rentCheckMs)
    this.checkTimer.unref()
    // what a crash left: contracts of interrupted uploads (nothing refers to
    // them, so they are ended) and the plaintext of interrupted gets
    void this.cleanDownloads().catch(err => { log.error('removing the partial files of interrupted gets failed - %e', err) })
    void this.cleanUploads(this.shutdown.signal).catch(err => { log.error('ending the contracts of interrupted uploads failed - %e', err) })
    void this.indexRemoved().catch(err => { log.error('indexing the records of removed objects failed - %e', err) })
  }

  /**
   * The records `store rm` kept before they were indexed by name and by
   * time (until then they are found by id): indexed once
   */
  private async indexRemoved (): Promise<void> {
    const { datastore } = this.components
    const done = new Key('/storage/removals/indexed')
    if (await datastore.has(done)) {
      return
    }
    const latest = new Map<string, StoredObject>()
    const batch = datastore.batch()
    for await (const { value } of datastore.query({ prefix: `${REMOVED}/` })) {
      const o = dec<StoredObject>(value)
      batch.put(removedOrderKey(o.removedAt ?? 0, o.id), enc(o.id))
      if ((latest.get(o.name)?.removedAt ?? -1) < (o.removedAt ?? 0)) {
        latest.set(o.name, o)
      }
    }
    for (const [name, o] of latest) {
      batch.put(removedNameKey(name), enc(o.id))
    }
    batch.put(done, enc(Date.now()))
    await batch.commit()
    await this.pruneRemoved()
  }

  /**
   * Stop the upkeep: the check under way and any other change to the
   * records end at once (every wait takes the shutdown signal), and so do
   * transfers in flight. Resolves when nothing writes the records any more.
   */
  async stop (): Promise<void> {
    clearInterval(this.checkTimer)
    this.checkTimer = undefined
    this.shutdown.abort(new StorageStoppedError())
    await this.checking
    // after every change under way or waiting (those with the shutdown signal have stopped waiting)
    await this.records.run(RECORDS, async () => {})
  }

  /**
   * One round of upkeep, unless one is under way: end what nothing refers
   * to, pay rent, audit, renew, repair. Each step runs even when the one
   * before failed (a host that cannot be paid must not stop the audits).
   */
  private checkNow (): void {
    const signal = this.shutdown.signal
    if (signal.aborted) {
      return
    }
    const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      if (signal.aborted) {
        return
      }
      try {
        await fn()
      } catch (err: any) {
        if (!signal.aborted) {
          log.error('%s failed; tried again at the next check - %e', what, err)
        }
      }
    }
    this.checking ??= (async () => {
      await step('ending the contracts of interrupted uploads', async () => this.cleanUploads(signal))
      await step('ending contracts nothing refers to', async () => this.endUnused(signal))
      await step('paying rent', async () => this.payRent(Date.now(), signal))
      await step('auditing', async () => this.audit(Date.now(), signal))
      await step('renewing contracts', async () => this.renewAll(Date.now(), signal))
      await step('repairing', async () => this.repairAll(Date.now(), signal))
    })().finally(() => { this.checking = undefined })
  }

  /** The signal of an upkeep step: the caller's, and the node stopping */
  private upkeepSignal (signal?: AbortSignal): AbortSignal {
    return signal == null ? this.shutdown.signal : AbortSignal.any([signal, this.shutdown.signal])
  }

  // ---- audits ----

  /**
   * Audit the contracts that are due (see auditIntervalMs). A host that
   * fails is condemned at once and rated; one that cannot be reached is
   * tried again at each check and condemned only after auditGraceMs.
   * Resolves with what was audited.
   */
  async audit (now = Date.now(), signal?: AbortSignal): Promise<{ passed: number, failed: number, unreachable: number }> {
    const upkeep = this.upkeepSignal(signal)
    return this.exclusive(async () => this.auditNow(now, upkeep), upkeep)
  }

  private async auditNow (now: number, signal: AbortSignal): Promise<{ passed: number, failed: number, unreachable: number }> {
    const counts = { passed: 0, failed: 0, unreachable: 0 }
    // hosts that answered with a refusal of their own (a server-error): not
    // a pass or a failure, but proof that this node reaches the network
    let answered = 0
    const changed: StoredObject[] = []
    const unreachable: Array<{ object: StoredObject, id: string, c: ContractRecord, err: Error }> = []
    for (const object of await this.list()) {
      let touched = false
      for (const [id, c] of Object.entries(object.contracts)) {
        const known = lostRootsOf(object, id)
        if (c.ended != null || c.lost != null || c.end <= now || c.shards.length <= known.size) {
          continue
        }
        c.audit ??= { passed: 0, failed: 0, next: c.start + Math.random() * this.auditIntervalMs }
        if (c.audit.next > now) {
          continue
        }
        signal.throwIfAborted()
        touched = true
        c.audit.at = now
        try {
          await auditContract({ contract: id, host: c.host, signedRevision: c.signedRevision, shards: c.shards, known }, async (peer, request) => this.components.call(peer, { ...request, signal }, 0n))
          c.audit.passed++
          c.audit.passedAt = now
          c.audit.unreachableSince = undefined
          c.audit.lastError = undefined
          c.audit.next = now + this.auditIntervalMs * (0.5 + Math.random())
          counts.passed++
        } catch (err: any) {
          if (signal.aborted) {
            throw err
          }
          c.audit.lastError = err.message
          if (err instanceof AuditFailedError) {
            c.audit.failed++
            c.lost = now
            c.lostReason = err.message
            c.lostFor = 'cheated'
            counts.failed++
            retryRepairNow(object)
            this.components.rate?.(c.host, 'corrupt', 'prove')
            log.error('audit: %s', err.message)
          } else {
            // unreachable, or failing on its side (server-error): transient
            // until the grace has passed (judgeHostError)
            unreachable.push({ object, id, c, err })
            counts.unreachable++
            answered += hostAnswered(err) ? 1 : 0
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
    const online = counts.passed + counts.failed + answered > 0
    if (!online && unreachable.length > 0) {
      log('audit: no host answered; this node seems offline, so no host is held to it')
    }
    for (const { object, id, c, err } of unreachable) {
      const audit = c.audit as AuditRecord
      if (!online) {
        continue
      }
      audit.unreachableSince ??= now
      if (now - audit.unreachableSince >= this.auditGraceMs) {
        audit.failed++
        c.lost = now
        c.lostFor = 'unreachable'
        c.lostReason = `unreachable since ${new Date(audit.unreachableSince).toISOString()} (${err.message})`
        retryRepairNow(object)
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
  async renewAll (now = Date.now(), signal?: AbortSignal): Promise<number> {
    const upkeep = this.upkeepSignal(signal)
    return this.exclusive(async () => this.renewAllNow(now, upkeep), upkeep)
  }

  private async renewAllNow (now: number, signal: AbortSignal): Promise<number> {
    let renewed = 0
    const offers = new Map((await this.components.hosts()).map(h => [h.peer, h]))
    for (const object of await this.list()) {
      let changed = false
      for (const [id, c] of Object.entries(object.contracts)) {
        const length = c.end - c.start
        if (c.ended != null || c.lost != null || c.end <= now || c.end - now > Math.min(this.renewBeforeMs, length / 3)) {
          continue
        }
        signal.throwIfAborted()
        try {
          const next = await this.renewContract(id, c, length, offers.get(c.host), signal)
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
          await this.payPeriod(next.id, next.record, signal).catch((err: any) => { log.error('the first rent of contract %s is not paid yet; paid at the next check - %s', next.id, err.message) })
          log('renewed contract %s with %s as %s, until %s', id, c.host, next.id, new Date(next.record.end).toISOString())
        } catch (err: any) {
          if (signal.aborted) {
            throw err
          }
          log.error('renewing contract %s with %s failed; tried again at the next check - %s', id, c.host, err.message)
        }
      }
      if (changed) {
        await this.saveIfStored(object)
      }
    }
    return renewed
  }

  private async renewContract (oldId: string, old: ContractRecord, length: number, offer: HostOffer | undefined, signal: AbortSignal): Promise<{ id: string, record: ContractRecord }> {
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
    const response = await this.components.call(old.host, { service: STORAGE, method: 'renew', args: [oldId, Buffer.from(revisionSignature).toString('base64')], body: bodyFromBytes(body), signal }, 0n)
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

  /**
   * Repair every object that has lost enough shards, unless its last repair
   * was stuck and its retry time (repairRetryMs) has not come; resolves
   * with how many shards were rebuilt
   */
  async repairAll (now = Date.now(), signal?: AbortSignal): Promise<number> {
    const upkeep = this.upkeepSignal(signal)
    return this.exclusive(async () => this.repairAllNow(now, upkeep), upkeep)
  }

  private async repairAllNow (now: number, signal: AbortSignal): Promise<number> {
    let rebuilt = 0
    const offers = await this.components.hosts()
    const prices = offers.map(o => o.storage).sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
    const median = prices.length === 0 ? undefined : prices[Math.floor(prices.length / 2)]
    const priceOf = new Map(offers.map(o => [o.peer, o.storage]))
    for (const object of await this.list()) {
      signal.throwIfAborted()
      // hosts to move away from although they did nothing wrong
      let migrate = false
      let changed = false
      for (const c of Object.values(object.contracts)) {
        if (c.ended != null || c.lost != null || c.migrating != null) {
          continue
        }
        const price = priceOf.get(c.host)
        const reason = migrationReason(c, { price, median, trust: this.components.trust?.(c.host) }, this)
        // a reason that is only the trust score must last (trustGraceMs)
        const byTrust = reason != null && migrationReason(c, { price, median }, this) == null
        if (!byTrust && c.trustLowSince != null) {
          c.trustLowSince = undefined
          changed = true
        }
        if (reason == null) {
          continue
        }
        if (byTrust) {
          if (c.trustLowSince == null) {
            c.trustLowSince = now
            changed = true
          }
          if (now - c.trustLowSince < this.trustGraceMs) {
            continue
          }
        }
        c.migrating = reason
        migrate = true
        log('migrating the shards of "%s" off %s: %s', object.name, c.host, c.migrating)
      }
      if (migrate || changed) {
        await this.saveObject(object)
      }
      const health = healthOf(object)
      migrate ||= Object.values(object.contracts).some(c => c.migrating != null && c.ended == null)
      if (migrate || (object.n - health.healthy >= this.repairAfterLost(object.k, object.n) && health.healthy >= object.k)) {
        if (object.repair?.retryAt != null && now < object.repair.retryAt) {
          log('the repair of "%s" is stuck; tried again at %s', object.name, new Date(object.repair.retryAt).toISOString())
          continue
        }
        try {
          rebuilt += await this.repairObject(object, offers, signal, now)
        } catch (err: any) {
          if (signal.aborted) {
            throw err
          }
          // a stuck repair says so once per change of problem (repairObject)
          if (!(err instanceof RepairStuckError)) {
            log.error('repairing "%s" failed; tried again at the next check - %s', object.name, err.message)
          }
        }
      }
    }
    return rebuilt
  }

  /**
   * Rebuild the shards of an object that no longer count (their contract
   * condemned, ended or expired, or the host said the shard is gone) onto
   * other hosts: K healthy shards of each segment are fetched and checked,
   * the missing ones regenerated (the code is deterministic, so each comes
   * back with its original root), and each lost slot goes to a host that
   * holds no other shard of those segments, under a new contract that ends
   * with the others. The new contract is in the object's record before
   * anything is uploaded, and ended if the slot cannot be finished; the
   * segments point at it only once the slot is whole, and the old contract
   * is then ended and paid no more. Why a slot could not be repaired is
   * kept in the record (`store status` shows it).
   */
  async repair (nameOrId: string, signal?: AbortSignal): Promise<number> {
    const upkeep = this.upkeepSignal(signal)
    return this.exclusive(async () => this.repairObject(await this.find(nameOrId), await this.components.hosts(), upkeep, Date.now()), upkeep)
  }

  /**
   * `now` is the time of the check that asked (the repair's retry time and
   * its hosts' backoff count from it); its transfers run on the clock
   */
  private async repairObject (object: StoredObject, offers: HostOffer[], signal: AbortSignal, now: number): Promise<number> {
    if (this.repairing.has(object.id)) {
      return 0
    }
    // store rm of this object stops its repair rather than wait for it
    const stop = new AbortController()
    this.repairing.set(object.id, stop)
    const both = AbortSignal.any([signal, stop.signal])
    const transfer = newTransfer(object)
    const problems: string[] = []
    // hosts that failed an upload of this object's repair, still held off
    const backoff = new Map(Object.entries(object.repair?.hosts ?? {}).filter(([, b]) => b.until > now))
    let rebuilt = 0
    try {
      // per slot, the segments whose shard there no longer counts or is moving off its host
      const lostSlots = new Map<number, number[]>()
      object.segments.forEach((segment, i) => {
        segment.shards.forEach((shard, slot) => {
          if (!shardCounts(object, shard, now) || object.contracts[shard.contract]?.migrating != null) {
            lostSlots.set(slot, [...(lostSlots.get(slot) ?? []), i])
          }
        })
      })
      const liveEnds = Object.values(object.contracts).filter(c => c.ended == null && c.lost == null && c.end > now).map(c => c.end)
      const durationMs = Math.max(60_000, Math.min(...liveEnds, now + this.durationMs) - now)
      for (const [slot, segments] of lostSlots) {
        try {
          rebuilt += await inTransfer(async () => this.repairSlot(object, slot, segments, offers, durationMs, transfer, both, backoff, now))
        } catch (err: any) {
          if (both.aborted) {
            throw err
          }
          problems.push(err.message)
        }
      }
    } finally {
      this.repairing.delete(object.id)
      // what the fetches found (shards gone, hosts that lied) counts from now on
      applyTransfer(object, transfer, Date.now())
      if (problems.length > 0) {
        const problem = problems.join('\n')
        const attempts = (object.repair?.attempts ?? 0) + 1
        const retryAt = now + Math.min(MAX_REPAIR_RETRY_MS, this.repairRetryMs * 2 ** (attempts - 1))
        if (problem !== object.repair?.problem) {
          // once per change of problem, not at every attempt
          log.error('the repair of "%s" is stuck; tried again at %s - %s', object.name, new Date(retryAt).toISOString(), problem)
        }
        object.repair = { problem, at: object.repair?.at ?? now, attempts, retryAt, hosts: Object.fromEntries(backoff) }
      } else if (!both.aborted) {
        delete object.repair
      }
      await this.saveIfStored(object)
    }
    if (problems.length > 0) {
      throw new RepairStuckError(problems.join('\n'))
    }
    return rebuilt
  }

  /**
   * Put one slot's lost shards (of `segments`) on one host; resolves with
   * how many were moved. A host that signs and then fails the upload is
   * held off in `backoff` (see repairRetryMs).
   */
  private async repairSlot (object: StoredObject, slot: number, segments: number[], offers: HostOffer[], durationMs: number, transfer: Transfer, signal: AbortSignal, backoff: Map<string, { failures: number, until: number }>, now: number): Promise<number> {
    const bytes = segments.reduce((n, i) => n + object.segments[i].shardSize, 0)
    const { hosts, why } = repairCandidates(object, segments, offers, Date.now(), new Set(backoff.keys()))
    if (hosts.length === 0) {
      throw new RepairStuckError(`no host can take shard ${slot + 1} of ${segments.length} segments of "${object.name}": ${why}`)
    }
    const rs = new ReedSolomon(object.k, object.n)
    const refusals: string[] = []
    let failedUploads = 0
    for (const host of hosts) {
      // hosts that sign and then fail the upload: a few, then the next check
      if (failedUploads >= 3) {
        break
      }
      signal.throwIfAborted()
      let formed: { id: string, record: ContractRecord }
      try {
        formed = await this.formContract(host, bytes, durationMs, signal)
      } catch (err: any) {
        if (signal.aborted) {
          throw err
        }
        refusals.push(`${host.peer}: ${err.message}`)
        continue
      }
      // in the record before anything is sent: a failure or a crash from
      // here on leaves no contract that nothing names (endUnused ends it)
      object.contracts[formed.id] = formed.record
      await this.saveObject(object)
      const target: Slot = { index: slot, host, contract: formed.id, record: formed.record, queue: Promise.resolve(), replacements: 0 }
      const moved: Array<[number, ShardRecord]> = []
      let uploading = false
      try {
        for (const i of segments) {
          const segment = object.segments[i]
          const give = await this.slots.take(signal)
          try {
            const shards = rs.reconstruct(await this.fetchSegment(object, i, transfer, signal))
            const root = merkleRoot(shards[slot])
            if (hex(root) !== segment.shards[slot].root) {
              throw new IntegrityError(`shard ${slot + 1} of segment ${i} of "${object.name}" rebuilt to another root`)
            }
            uploading = true
            await this.putShard(target, shards[slot], root, signal)
            uploading = false
            moved.push([i, { host: host.peer, contract: formed.id, root: hex(root) }])
          } finally {
            give()
            releaseSegmentMemory()
          }
        }
      } catch (err: any) {
        const hostFailed = uploading && !signal.aborted
        if (hostFailed) {
          formed.record.lost = Date.now()
          formed.record.lostFor = 'replaced'
          formed.record.lostReason = `failed an upload of the repair: ${err.message}`
          this.components.rate?.(host.peer, 'failed', 'put')
        }
        // nothing refers to its shards: the host is told to delete them
        // (endUnused tries again if it cannot be told now)
        await this.endContract(formed.id, formed.record, AbortSignal.timeout(END_CALL_MS), { untilTold: true }).catch(() => {})
        await this.saveObject(object)
        if (hostFailed) {
          failedUploads++
          const failures = (backoff.get(host.peer)?.failures ?? 0) + 1
          // twice the object's wait: its next attempt asks other hosts first
          backoff.set(host.peer, { failures, until: now + Math.min(MAX_REPAIR_RETRY_MS, this.repairRetryMs * 2 ** failures) })
          refusals.push(`${host.peer}: ${err.message}`)
          log('host %s failed the repair of shard %d of "%s"; trying the next - %s', host.peer, slot + 1, object.name, err.message)
          continue
        }
        throw err
      }
      const old = new Set(segments.map(i => object.segments[i].shards[slot].contract))
      for (const [i, record] of moved) {
        object.segments[i].shards[slot] = record
      }
      // a lost contract that no segment uses any more is ended: no more rent
      for (const id of old) {
        if (!referenced(object, id) && object.contracts[id]?.ended == null) {
          await this.endContract(id, object.contracts[id], callSignal(signal, END_CALL_MS)).catch(() => {})
        }
      }
      await this.saveObject(object)
      log('repaired shard %d of "%s": %d segments moved to %s', slot + 1, object.name, moved.length, host.peer)
      return moved.length
    }
    throw new RepairStuckError(`no host took shard ${slot + 1} of "${object.name}"; the hosts tried said:\n  ${refusals.join('\n  ')}`)
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
      const named = dec<string | { reserved: string }>(await this.components.datastore.get(nameKey(nameOrId)))
      if (typeof named !== 'string') {
        throw new ObjectNotFoundError(`"${nameOrId}" is being stored right now; it can be used once its put is done ("store ls" lists what is stored)`)
      }
      id = named
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        throw err
      }
    }
    try {
      return dec<StoredObject>(await this.components.datastore.get(new Key(`${OBJECTS}/${id}`)))
    } catch {
      throw new ObjectNotFoundError(`no stored object is named "${nameOrId}" or has that id; "store ls" lists them`)
    }
  }

  /**
   * An object by name or id, or else the record `store rm` kept of the
   * latest removed object of that name or id: its contracts, with the
   * ratings both sides signed when they ended
   */
  async findWithRemoved (nameOrId: string): Promise<StoredObject> {
    try {
      return await this.find(nameOrId)
    } catch (err) {
      const { datastore } = this.components
      try {
        // an id, else the latest removed object of that name
        const id = /^[0-9a-f]{32}$/.test(nameOrId) && await datastore.has(new Key(`${REMOVED}/${nameOrId}`))
          ? nameOrId
          : dec<string>(await datastore.get(removedNameKey(nameOrId)))
        return dec<StoredObject>(await datastore.get(new Key(`${REMOVED}/${id}`)))
      } catch {
        throw err
      }
    }
  }

  /**
   * One change to the object records at a time: audits, rent, renewals,
   * repairs and removals each read records, talk to hosts and write them
   * back, and two at once would write over each other's changes. A caller
   * whose signal aborts stops waiting for its turn.
   */
  private async exclusive<T> (fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.records.run(RECORDS, fn, { signal })
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

  /**
   * Write what a get learned about the hosts into the object's record as it
   * is now (an audit or a repair may have changed it meanwhile): shards
   * found gone or corrupt, hosts that sent wrong bytes, what the download
   * cost, and hosts to audit soon because they did not answer. Resolves with
   * whether the object's health changed. A node that stops meanwhile drops
   * it (the next get or audit finds the same again).
   */
  private async recordTransfer (id: string, transfer: Transfer): Promise<boolean> {
    const signal = this.shutdown.signal
    return this.exclusive(async () => {
      let current: StoredObject
      try {
        current = await this.find(id)
      } catch {
        return false
      }
      const changed = applyTransfer(current, transfer, Date.now())
      await this.saveObject(current)
      return changed
    }, signal)
  }

  /**
   * Hold a name for a put from its start: one name, one object, whichever
   * put asks first. Held in this process (a set, checked and taken before
   * any wait) and in the datastore (so it outlives a crash until
   * cleanUploads releases it, and the name cannot be taken meanwhile). The
   * datastore's hold is written with the upload's record in one batch: a
   * crash at any point after leaves a record that cleanUploads finds, so no
   * name stays held by a put that is gone.
   */
  private async reserveName (name: string, pending: PendingUpload): Promise<void> {
    if (this.reservedNames.has(name)) {
      throw new ObjectBeingStoredError(`an object named "${name}" is being stored right now by another put; wait for it (store ls), or choose another --name`)
    }
    this.reservedNames.add(name)
    try {
      if (await this.components.datastore.has(nameKey(name))) {
        const held = dec<string | { reserved: string }>(await this.components.datastore.get(nameKey(name)))
        throw typeof held === 'string'
          ? new ObjectExistsError(`an object named "${name}" is stored already; remove it first (store rm ${JSON.stringify(name)}) or choose another --name`)
          : new ObjectBeingStoredError(`an object named "${name}" is being stored right now by another put; wait for it (store ls), or choose another --name`)
      }
      const batch = this.components.datastore.batch()
      batch.put(nameKey(name), enc({ reserved: pending.id }))
      batch.put(new Key(`${UPLOADS}/${pending.id}`), enc(pending))
      await batch.commit()
    } catch (err) {
      this.reservedNames.delete(name)
      throw err
    }
  }

  /** Let a name go that a put reserved and did not use (it failed, or crashed) */
  private async releaseName (name: string, objectId: string): Promise<void> {
    this.reservedNames.delete(name)
    try {
      const held = dec<string | { reserved: string }>(await this.components.datastore.get(nameKey(name)))
      if (typeof held !== 'string' && held.reserved === objectId) {
        await this.components.datastore.delete(nameKey(name))
      }
    } catch {}
  }

  // ---- contracts ----

  private async formContract (host: HostOffer, maxBytes: number, durationMs: number, signal: AbortSignal): Promise<{ id: string, record: ContractRecord }> {
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
    const response = await this.components.call(host.peer, { service: STORAGE, method: 'contract', body: bodyFromBytes(body), signal }, 0n)
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
    await this.payPeriod(id, record, signal)
    return { id, record }
  }

  private termsOf (record: ContractRecord): ContractTerms {
    return { renter: this.components.peerId, host: record.host, nonce: new Uint8Array(16), start: record.start, end: record.end, maxBytes: record.maxBytes, storagePrice: BigInt(record.storagePrice), uploadPrice: BigInt(record.uploadPrice), downloadPrice: BigInt(record.downloadPrice), rentPeriodMs: record.rentPeriodMs }
  }

  private async payPeriod (id: string, record: ContractRecord, signal: AbortSignal): Promise<void> {
    const sats = rentPerPeriod(this.termsOf(record))
    await this.components.call(record.host, { service: STORAGE, method: 'rent', args: [id, '1'], signal }, sats)
    record.rentPaidPeriods++
    record.spent.rent = String(BigInt(record.spent.rent) + sats)
  }

  /** Pay the next period of every live contract whose paid time runs out within half a period */
  async payRent (now = Date.now(), signal?: AbortSignal): Promise<number> {
    const upkeep = this.upkeepSignal(signal)
    return this.exclusive(async () => this.payRentNow(now, upkeep), upkeep)
  }

  private async payRentNow (now: number, signal: AbortSignal): Promise<number> {
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
            await this.payPeriod(id, c, signal)
            paid++
            changed = true
          } catch (err: any) {
            if (signal.aborted) {
              throw err
            }
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

  /**
   * The most a shard transfer may take: 10 s plus its size at minThroughput
   * (26 s for a 1 MiB shard at 64 KiB/s). A host slower than that, or one
   * that stopped answering (a frozen process keeps its connection open),
   * is given up on rather than waited for.
   */
  private transferTimeoutMs (bytes: number): number {
    return 10_000 + Math.ceil(bytes / this.minThroughput) * 1000
  }

  private async putShard (slot: Slot, shard: Uint8Array, root: Uint8Array, signal: AbortSignal): Promise<void> {
    const c = slot.record
    const shards: Array<[string, number]> = [...c.shards, [hex(root), shard.byteLength]]
    const rev = nextRevision(Buffer.from(slot.contract, 'hex'), c.revision, shards.map(([r, length]) => ({ root: Buffer.from(r, 'hex'), length })))
    const encoded = encodeRevision(rev)
    const renterSignature = signRevision(encoded, this.components.signer)
    const sats = transferCost(BigInt(c.uploadPrice), shard.byteLength)
    const started = performance.now()
    const response = await this.components.call(slot.host.peer, {
      service: STORAGE,
      method: 'put',
      args: [slot.contract, hex(root), Buffer.from(renterSignature).toString('base64')],
      body: bodyFromBytes(shard),
      // a host slower than minThroughput is given up on, and its shard goes elsewhere
      signal: callSignal(signal, this.transferTimeoutMs(shard.byteLength))
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
    const signal = options.signal == null ? this.shutdown.signal : AbortSignal.any([options.signal, this.shutdown.signal])
    const { size } = await stat(path)
    const name = options.name ?? basename(path)
    // eslint-disable-next-line no-control-regex
    if (name === '' || name.length > 255 || /[\u0000-\u001f]/.test(name)) {
      throw new InvalidNameError(`"${name}" is not a usable name: 1 to 255 printable characters`)
    }
    const id = randomBytes(16)
    const objectId = hex(id)
    // the upload's record, which names every contract formed: a check
    // running meanwhile must not take it for one a crash left
    const pending: PendingUpload = { id: objectId, name, contracts: {} }
    this.uploading.add(objectId)
    try {
      // one name, one object: the name is held from here until the object
      // is stored, or let go when the put fails
      await this.reserveName(name, pending)
      let stored = false
      try {
        const object = await inTransfer(async () => this.putReserved(path, size, pending, id, options, signal))
        stored = true
        return object
      } finally {
        if (!stored) {
          await this.releaseName(name, objectId)
          if (Object.keys(pending.contracts).length === 0) {
            // nothing for cleanUploads to end
            await this.components.datastore.delete(new Key(`${UPLOADS}/${objectId}`))
          }
        }
        this.reservedNames.delete(name)
      }
    } finally {
      this.uploading.delete(objectId)
    }
  }

  private async putReserved (path: string, size: number, pending: PendingUpload, id: Uint8Array, options: PutOptions, signal: AbortSignal): Promise<StoredObject> {
    const { id: objectId, contracts } = pending
    const name = pending.name ?? objectId
    const ceiling = options.maxStoragePrice
    const offers = (await this.components.hosts()).filter(h => ceiling == null || h.storage <= ceiling)
    const { k, n } = options.k != null && options.n != null ? { k: options.k, n: options.n } : defaultRedundancy(offers.length)
    const atPrice = ceiling == null ? '' : ` at or under ${formatAmount(ceiling)} per GiB-month`
    if (n < 1 || offers.length < n) {
      throw new NotEnoughHostsError(`storing ${k}-of-${n} needs ${n} hosts, and the market knows ${offers.length}${atPrice}; wait for more offers (market prices --service storage), raise --max-price, or choose a smaller --redundancy`)
    }
    const rs = new ReedSolomon(k, n)
    const segmentCount = Math.max(1, Math.ceil(size / this.segmentSize))
    const plainLength = (i: number): number => Math.min(this.segmentSize, size - i * this.segmentSize)
    const shardSize = (i: number): number => Math.max(1, Math.ceil((plainLength(i) + TAG_BYTES) / k))
    const bytesFrom = (i: number): number => { let b = 0; for (let s = i; s < segmentCount; s++) b += shardSize(s); return b }
    const durationMs = options.durationMs ?? this.durationMs
    const key = objectKey(this.components.storageKey(), id)
    const progress = (p: Progress): void => { options.onProgress?.(p) }

    // contracts with N hosts, taking the next offer whenever one refuses
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
          const formed = await this.formContract(host, bytes, durationMs, signal)
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
      throw new NotEnoughHostsError(refusals.length === 0
        ? `no host left to hold shard ${index + 1} of ${n} (${k}-of-${n}): each of the ${offers.length} hosts the market knows${atPrice} holds a shard of this file already or failed it, and every shard needs a host of its own; wait for more offers (market prices --service storage), or choose a smaller --redundancy`
        : `no host left to hold shard ${index + 1} of ${n} (${k}-of-${n}); the hosts tried said:\n  ${refusals.join('\n  ')}`)
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
            // a refusal over what this node owes is not the host failing
            if (judgeHostError(err) !== 'owed') {
              this.components.rate?.(slot.host.peer, 'failed', 'put')
            }
            log('shard %d of segment %d failed on %s, moving the slot to another host - %s', slot.index, segment, slot.host.peer, err.message)
            // the shards it took before count as lost from now on: repair
            // moves them (and a contract left with none is ended)
            slot.record.lost = Date.now()
            slot.record.lostFor = 'replaced'
            slot.record.lostReason = `replaced during the upload after it failed shard ${slot.index + 1} of segment ${segment}: ${err.message}`
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
        const give = await this.slots.take(signal)
        const plain = Buffer.allocUnsafe(plainLength(i))
        const { bytesRead } = await file.read(plain, 0, plain.byteLength, i * this.segmentSize).catch((err: Error) => { give(); throw err })
        if (bytesRead !== plain.byteLength) {
          give()
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
        })().catch(err => { failure ??= err }).finally(() => {
          give()
          releaseSegmentMemory()
        })
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
    batch.put(nameKey(name), enc(objectId))
    batch.delete(new Key(`${UPLOADS}/${objectId}`))
    await batch.commit()
    log('stored %s (%s) as %d-of-%d on %d contracts', name, formatSize(size), k, n, Object.keys(contracts).length)
    return object
  }

  /**
   * End the contracts of uploads that never finished (a crash, kill -9, a
   * failure) and let their names go. An upload's record goes once every
   * host has been told; hosts that could not be reached are tried again at
   * the next check.
   */
  async cleanUploads (signal: AbortSignal = this.shutdown.signal): Promise<number> {
    let ended = 0
    for await (const { key, value } of this.components.datastore.query({ prefix: UPLOADS })) {
      const pending = dec<PendingUpload>(value)
      if (this.uploading.has(pending.id)) {
        continue
      }
      if (pending.name != null) {
        await this.releaseName(pending.name, pending.id)
      }
      let left = 0
      for (const [id, c] of Object.entries(pending.contracts)) {
        if (c.ended != null) {
          continue
        }
        signal.throwIfAborted()
        try {
          await this.components.call(c.host, { service: STORAGE, method: 'end', args: [id], signal: callSignal(signal, END_CALL_MS) }, 0n)
          c.ended = Date.now()
          ended++
        } catch (err: any) {
          if (signal.aborted) {
            throw err
          }
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

  /**
   * End the live contracts no segment of their object refers to: those of a
   * repair that failed or was interrupted, and those of hosts replaced
   * during a put before they held anything. Nothing would read them, and
   * rent would go on being paid. A host that cannot be told now is told at
   * a later check.
   */
  async endUnused (signal?: AbortSignal): Promise<number> {
    const upkeep = this.upkeepSignal(signal)
    return this.exclusive(async () => {
      let ended = 0
      const now = Date.now()
      for (const object of await this.list()) {
        if (this.repairing.has(object.id)) {
          continue
        }
        let changed = false
        for (const [id, c] of Object.entries(object.contracts)) {
          if (c.ended != null || referenced(object, id)) {
            continue
          }
          upkeep.throwIfAborted()
          changed = true
          if (c.end <= now) {
            // over anyway: the host deletes its shards after its grace
            c.ended = now
            continue
          }
          try {
            await this.endContract(id, c, callSignal(upkeep, END_CALL_MS), { untilTold: true })
            ended++
          } catch (err: any) {
            if (upkeep.aborted) {
              throw err
            }
            log('could not end unused contract %s with %s; tried again at the next check - %s', id, c.host, err.message)
          }
        }
        if (changed) {
          await this.saveIfStored(object)
        }
      }
      return ended
    }, upkeep)
  }

  /** Remove the partial plaintext files of gets a crash interrupted */
  async cleanDownloads (): Promise<number> {
    let removed = 0
    for await (const { key, value } of this.components.datastore.query({ prefix: DOWNLOADS })) {
      const { tmp } = dec<{ tmp: string }>(value)
      if (this.downloading.has(tmp)) {
        continue
      }
      await rm(tmp, { force: true })
      await this.components.datastore.delete(key)
      removed++
      log('removed %s, the partial file of an interrupted get', tmp)
    }
    return removed
  }

  // ---- get ----

  /**
   * One shard from its host, checked against its root. What the answer
   * says about the host goes into `transfer`, read by judgeHostError: a
   * shard the host says is gone or corrupt (`not-found`) counts as lost;
   * bytes that do not match condemn the contract (as a failed audit does);
   * a refusal over money (PaymentRefusedError) and any other failure
   * (`server-error`, no answer in time) have the host asked last for the
   * rest of the transfer, and the latter audited at the next check.
   */
  private async fetchShard (object: StoredObject, index: number, slot: number, transfer: Transfer, signal: AbortSignal): Promise<Uint8Array> {
    const segment = object.segments[index]
    const shard = segment.shards[slot]
    const c = object.contracts[shard.contract]
    const sats = transferCost(BigInt(c.downloadPrice), segment.shardSize)
    let bytes: Uint8Array
    try {
      const response = await this.components.call(shard.host, {
        service: STORAGE,
        method: 'get',
        args: [shard.contract, shard.root, '0', String(segment.shardSize)],
        signal: callSignal(signal, this.transferTimeoutMs(segment.shardSize))
      }, sats)
      bytes = await response.body.bytes()
    } catch (err: any) {
      if (signal.aborted) {
        throw err
      }
      const judged = judgeHostError(err)
      if (judged === 'owed') {
        // what this node owes it, not how it serves: not rated, asked last
        transfer.avoid.add(shard.host)
        throw new PaymentRefusedError(`host ${shard.host} refuses to serve it: ${err.message}`)
      }
      this.components.rate?.(shard.host, 'failed', 'get')
      if (judged === 'lost') {
        transfer.lostShards.set(`${index} ${slot}`, { contract: shard.contract, root: shard.root, reason: `host ${shard.host} answered: ${err.message}` })
      } else {
        transfer.avoid.add(shard.host)
        transfer.unreachable.add(shard.contract)
      }
      throw err
    }
    transfer.spent.set(shard.contract, (transfer.spent.get(shard.contract) ?? 0n) + sats)
    if (bytes.byteLength !== segment.shardSize || !equalBytes(merkleRoot(bytes), Buffer.from(shard.root, 'hex'))) {
      this.components.rate?.(shard.host, 'corrupt', 'get')
      const reason = `host ${shard.host} sent bytes that do not match shard ${shard.root} (segment ${index})`
      transfer.cheated.set(shard.contract, reason)
      transfer.avoid.add(shard.host)
      throw new IntegrityError(reason)
    }
    return bytes
  }

  /**
   * The first K good shards of segment `index`: K requests at once, data
   * shards first (they need no decoding), shards known lost never asked
   * for, hosts caught or slow earlier in the transfer asked last. A failed
   * or wrong answer starts the next host; at each hedge time a request
   * still running marks its host slow and another host is asked in its
   * place. A host refusing over money is passed over like one that
   * failed. Every request ends within transferTimeoutMs, so the fetch ends
   * too: with K shards; or once every host has answered or failed, with
   * PaymentRefusedError when a host refusing over money was one of those
   * that could have made up K (settling would help), else with
   * ShardUnavailableError; or at once on the caller's signal.
   */
  private async fetchSegment (object: StoredObject, index: number, transfer: Transfer, signal: AbortSignal): Promise<Array<Uint8Array | undefined>> {
    signal.throwIfAborted()
    const { k, n } = object
    const segment = object.segments[index]
    // hosts that failed or were caught last of all, then those still slow
    const askLast = (slot: number): number => {
      const shard = segment.shards[slot]
      return transfer.avoid.has(shard.host) || object.contracts[shard.contract]?.lost != null ? 2 : transfer.slow.has(shard.host) ? 1 : 0
    }
    const known = (slot: number): boolean => segment.shards[slot].lost != null || transfer.lostShards.has(`${index} ${slot}`)
    // stable: data shards first within each rank
    const order = Array.from({ length: n }, (_, i) => i).filter(slot => !known(slot)).sort((a, b) => askLast(a) - askLast(b))
    const skipped = n - order.length
    const hedgeMs = this.hedgeMs + segment.shardSize / (1024 * 1024) * 1000
    const got: Array<Uint8Array | undefined> = new Array(n).fill(undefined)
    const controller = new AbortController()
    const both = AbortSignal.any([signal, controller.signal])
    const errors: string[] = []
    /** hosts that refused over money: settling with them would bring their shards back */
    let refusedOverMoney = 0
    /** requests under way: slot -> when it started, and whether its host was marked slow */
    const running = new Map<number, { started: number, slow: boolean }>()
    let cursor = 0
    let good = 0
    let done = false
    return new Promise((resolve, reject) => {
      let hedge: ReturnType<typeof setInterval> | undefined
      const finish = (err?: Error): void => {
        if (done) {
          return
        }
        done = true
        clearInterval(hedge)
        signal.removeEventListener('abort', onAbort)
        controller.abort()
        if (err != null) {
          reject(err)
        } else {
          resolve(got)
        }
      }
      const onAbort = (): void => { finish(signal.reason instanceof Error ? signal.reason : new Error('the fetch was aborted')) }
      signal.addEventListener('abort', onAbort, { once: true })
      const settle = (): void => {
        if (good >= k) {
          finish()
        } else if (running.size === 0 && cursor >= order.length) {
          const what = `only ${good} of the ${k} shards needed for segment ${index} of "${object.name}" could be fetched${skipped > 0 ? ` (${skipped} of its ${n} are known lost)` : ''}:\n  ${errors.join('\n  ') || '(no other host holds one)'}`
          finish(refusedOverMoney > 0
            ? new PaymentRefusedError(`${what}\n${refusedOverMoney} of the hosts asked refuse over money (what this node owes them, or a price over what it pays); what this node owes each host is in "payments tabs", and the get can be tried again once it is settled`)
            : new ShardUnavailableError(what))
        }
      }
      // requests until K are under way that are not known slow
      const fill = (): void => {
        const hopeful = (): number => [...running.values()].filter(r => !r.slow).length
        while (!done && good + hopeful() < k && cursor < order.length) {
          launch(order[cursor++])
        }
      }
      const launch = (slot: number): void => {
        running.set(slot, { started: performance.now(), slow: false })
        this.fetchShard(object, index, slot, transfer, both).then(bytes => {
          running.delete(slot)
          // it answered: slow once, not frozen
          transfer.slow.delete(segment.shards[slot].host)
          if (!done) {
            got[slot] = bytes
            good++
            settle()
          }
        }, (err: any) => {
          running.delete(slot)
          if (done) {
            return
          }
          if (err instanceof PaymentRefusedError) {
            refusedOverMoney++
          }
          errors.push(`${segment.shards[slot].host}: ${err.message}`)
          fill()
          settle()
        })
      }
      hedge = setInterval(() => {
        const now = performance.now()
        for (const [slot, r] of running) {
          if (!r.slow && now - r.started >= hedgeMs) {
            // slow now: asked after the others for the rest of the
            // transfer, unless it answers after all
            r.slow = true
            transfer.slow.add(segment.shards[slot].host)
          }
        }
        fill()
      }, Math.max(10, Math.floor(hedgeMs / 4)))
      hedge.unref?.()
      fill()
      settle()
    })
  }

  /**
   * Fetch, check, decode and decrypt an object into `out`: written beside
   * it first (`out.<random>.part`, named in the datastore so a crash's
   * leftover is removed at the next start: it is plaintext), renamed when
   * whole, removed on any failure
   */
  async get (nameOrId: string, out: string, options: GetOptions = {}): Promise<StoredObject> {
    return inTransfer(async () => this.getNow(nameOrId, out, options))
  }

  private async getNow (nameOrId: string, out: string, options: GetOptions): Promise<StoredObject> {
    // a failure stops the fetch running ahead too, before get() returns
    const stopAhead = new AbortController()
    const signal = AbortSignal.any([...(options.signal == null ? [] : [options.signal]), this.shutdown.signal, stopAhead.signal])
    const object = await this.find(nameOrId)
    if (options.overwrite !== true && await stat(out).then(() => true, () => false)) {
      throw new OutputExistsError(`${out} exists already; choose another --out or pass --force to replace it`)
    }
    const rs = new ReedSolomon(object.k, object.n)
    const id = Buffer.from(object.id, 'hex')
    const key = objectKey(this.components.storageKey(), id)
    const tmp = `${out}.${randomBytes(4).toString('hex')}.part`
    const partKey = new Key(`${DOWNLOADS}/${randomBytes(8).toString('hex')}`)
    this.downloading.add(tmp)
    await this.components.datastore.put(partKey, enc({ tmp, object: object.id, at: Date.now() }))
    const transfer = newTransfer(object)
    try {
      const file = await open(tmp, 'wx', 0o600)
      const hash = createHash('sha256')
      let done = 0
      // a segment's slot is held from its fetch until it is written
      const fetchHeld = async (i: number): Promise<{ shards: Array<Uint8Array | undefined>, give: () => void }> => {
        const give = await this.slots.take(signal)
        try {
          return { shards: await this.fetchSegment(object, i, transfer, signal), give }
        } catch (err) {
          give()
          throw err
        }
      }
      // one segment ahead: the next is fetched while this one is decoded and written
      let ahead = fetchHeld(0)
      try {
        for (let i = 0; i < object.segments.length; i++) {
          const segment = object.segments[i]
          const { shards, give } = await ahead
          try {
            if (i + 1 < object.segments.length) {
              ahead = fetchHeld(i + 1)
              ahead.catch(() => {})
            }
            const data = shards.slice(0, object.k).every(s => s != null) ? shards.slice(0, object.k) as Uint8Array[] : rs.reconstruct(shards).slice(0, object.k)
            const sealed = Buffer.concat(data).subarray(0, segment.plainLength + TAG_BYTES)
            const plain = openSegment(key, id, i, sealed)
            hash.update(plain)
            await file.write(plain)
            done += plain.byteLength
            options.onProgress?.({ phase: 'download', done, total: object.size })
          } finally {
            give()
            releaseSegmentMemory()
          }
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
        await ahead.then(a => { a.give() }, () => {})
        await file.close().catch(() => {})
        throw err
      }
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    } finally {
      try {
        await this.components.datastore.delete(partKey)
      } catch {}
      this.downloading.delete(tmp)
      // what the fetch found (shards gone, hosts that lied, what the
      // download cost) goes into the record, and a repair check follows
      // when it changed the object's health. In the background: the record
      // waits its turn behind the upkeep (a repair of another object may
      // run for minutes), and the get's answer does not
      void this.recordTransfer(object.id, transfer).then(changed => {
        if (changed) {
          this.repairSoon()
        }
      }, err => {
        if (!this.shutdown.signal.aborted) {
          log.error('recording what the get of "%s" found failed - %e', object.name, err)
        }
      })
    }
    return object
  }

  /** A repair check now rather than at the next interval (a get found shards lost) */
  private repairSoon (): void {
    if (this.checkTimer == null || this.shutdown.signal.aborted) {
      return
    }
    void this.repairAll().catch(err => {
      if (!this.shutdown.signal.aborted) {
        log.error('the repair after a get failed; tried again at the next check - %s', err.message)
      }
    })
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
  private async endContract (id: string, c: ContractRecord, signal: AbortSignal, options: { untilTold?: boolean } = {}): Promise<void> {
    const satisfied = servedWell(c)
    const reason = c.lost != null
      ? `condemned: ${c.lostReason ?? 'lost'}`.slice(0, 200)
      : (c.shardsLost ?? 0) > 0 ? `lost ${c.shardsLost ?? 0} shards` : `served as agreed; ${c.audit?.passed ?? 0} audits passed`
    const mine = signRating({ contractId: Buffer.from(id, 'hex'), rater: this.components.peerId, rated: c.host, satisfactory: satisfied, reason, at: Date.now() }, this.components.signer)
    c.ratings = { renter: Buffer.from(mine).toString('base64'), renterSatisfied: satisfied }
    let told = false
    try {
      const response = await this.components.call(c.host, { service: STORAGE, method: 'end', args: [id], body: bodyFromBytes(mine), signal }, 0n)
      told = true
      const answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
      if (typeof answer.rating === 'string') {
        const theirs = Buffer.from(answer.rating, 'base64')
        const rating = openRating(theirs)
        if (rating.rater === c.host && rating.rated === this.components.peerId && hex(rating.contractId) === id) {
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
        await this.closeContract(id, c)
      }
    }
  }

  /** A contract ends on this node's side: rated, and its ratings kept under /storage/ratings */
  private async closeContract (id: string, c: ContractRecord): Promise<void> {
    c.ended ??= Date.now()
    this.components.rateContract?.(c.host, servedWell(c))
    try {
      await this.components.datastore.put(new Key(`${RATINGS}/${id}`), enc({ host: c.host, ...c.ratings }))
    } catch {}
  }

  // ---- rm ----

  /**
   * End every contract of an object (the hosts delete its shards) and
   * forget it. A repair of it under way is stopped rather than waited for.
   * What it was, with each contract and the ratings exchanged, stays under
   * /storage/removed for `store info` (without its segments; the latest
   * keepRemoved removals). A removal whose signal aborts while hosts are
   * being told (Ctrl-C, the API client gone, the node stopping) keeps the
   * object, with the contracts of the hosts told already ended: `store rm`
   * again tells the others.
   */
  async remove (nameOrId: string, signal?: AbortSignal): Promise<{ object: StoredObject, unreachable: string[] }> {
    const found = await this.find(nameOrId)
    this.repairing.get(found.id)?.abort(new Error(`"${found.name}" is being removed`))
    const upkeep = this.upkeepSignal(signal)
    return this.exclusive(async () => this.removeNow(nameOrId, upkeep), upkeep)
  }

  private async removeNow (nameOrId: string, signal: AbortSignal): Promise<{ object: StoredObject, unreachable: string[] }> {
    const object = await this.find(nameOrId)
    const unreachable: Array<[string, ContractRecord, string]> = []
    await Promise.all(Object.entries(object.contracts).map(async ([id, c]) => {
      if (c.ended != null) {
        return
      }
      try {
        await this.endContract(id, c, callSignal(signal, END_CALL_MS), { untilTold: true })
      } catch (err: any) {
        if (!signal.aborted && c.ended == null) {
          unreachable.push([id, c, `${c.host} (${err.message}); its contract ends on ${new Date(c.end).toISOString()} anyway`])
        }
      }
    }))
    if (signal.aborted) {
      await this.saveObject(object)
      signal.throwIfAborted()
    }
    // the hosts that could not be told keep the shards until the contract's end
    for (const [id, c] of unreachable) {
      await this.closeContract(id, c)
    }
    const removedAt = Date.now()
    const batch = this.components.datastore.batch()
    batch.delete(new Key(`${OBJECTS}/${object.id}`))
    batch.delete(nameKey(object.name))
    batch.put(new Key(`${REMOVED}/${object.id}`), enc({ ...object, segments: [], segmentCount: object.segments.length, removedAt }))
    batch.put(removedNameKey(object.name), enc(object.id))
    batch.put(removedOrderKey(removedAt, object.id), enc(object.id))
    await batch.commit()
    await this.pruneRemoved()
    return { object: { ...object, removedAt }, unreachable: unreachable.map(([, , why]) => why) }
  }

  /**
   * Forget the oldest removed objects past keepRemoved: the record grows by
   * one per `store rm`, and nothing but `store info` reads it
   */
  private async pruneRemoved (): Promise<void> {
    const keys: Key[] = []
    for await (const key of this.components.datastore.queryKeys({ prefix: REMOVED_ORDER })) {
      keys.push(key)
    }
    keys.sort((a, b) => a.toString() < b.toString() ? -1 : 1)
    for (const key of keys.slice(0, Math.max(0, keys.length - this.keepRemoved))) {
      const id = key.toString().slice(-32)
      const batch = this.components.datastore.batch()
      batch.delete(key)
      try {
        const { name } = dec<StoredObject>(await this.components.datastore.get(new Key(`${REMOVED}/${id}`)))
        if (dec<string>(await this.components.datastore.get(removedNameKey(name))) === id) {
          batch.delete(removedNameKey(name))
        }
      } catch {
        // forgotten already (the index of old records at start prunes too)
      }
      batch.delete(new Key(`${REMOVED}/${id}`))
      await batch.commit()
    }
  }
}

/** What an object costs per month in rent: each contract's rent per period, scaled to 30 days */
export function monthlyRent (object: StoredObject): bigint {
  let total = 0n
  for (const c of Object.values(object.contracts)) {
    // a condemned host is paid no more
    if (c.ended != null || c.lost != null) {
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
  /** single shards their hosts said are gone or corrupt */
  lostShards: number
  /** the fewest shards of a segment that count and whose host audits can reach now */
  reachable: number
  /** hosts of shards that count which audits cannot reach now (not lost until the audit grace has passed) */
  unreachableHosts: number
  /** hosts holding shards that count */
  hosts: number
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
    return `its price rose to ${formatAmount(price)} per GiB-month, over ${policy.migrateAbovePrice}x the market median of ${formatAmount(median)}`
  }
  if (trust != null && policy.minTrust > 0 && trust < policy.minTrust) {
    return `its trust score fell to ${trust.toFixed(2)}, under ${policy.minTrust}`
  }
  if (trust != null && c.trustAtStart != null && c.trustAtStart >= TRUSTED_SCORE && trust < c.trustAtStart * policy.trustDrop) {
    return `its trust score fell to ${trust.toFixed(2)} from ${c.trustAtStart.toFixed(2)} when the contract formed`
  }
  return undefined
}

/** Whether a contract's shards count: not ended, expired or condemned */
function contractCounts (object: StoredObject, contract: string, now: number): boolean {
  const c = object.contracts[contract]
  return c != null && c.ended == null && c.lost == null && c.end > now
}

/** Whether a shard counts towards its segment's health: its contract does, and its host has not said it is gone */
export function shardCounts (object: StoredObject, shard: ShardRecord, now = Date.now()): boolean {
  return shard.lost == null && contractCounts(object, shard.contract, now)
}

/** Whether any segment's shard is held under this contract */
function referenced (object: StoredObject, contract: string): boolean {
  return object.segments.some(s => s.shards.some(x => x.contract === contract))
}

/** Roots of a contract its host said are gone or corrupt */
function lostRootsOf (object: StoredObject, contract: string): Set<string> {
  const out = new Set<string>()
  for (const segment of object.segments) {
    for (const shard of segment.shards) {
      if (shard.contract === contract && shard.lost != null) {
        out.add(shard.root)
      }
    }
  }
  return out
}

/** Why a contract was condemned (see ContractRecord.lostFor) */
export function lostKind (c: ContractRecord): 'cheated' | 'unreachable' | 'replaced' | undefined {
  if (c.lost == null) {
    return undefined
  }
  return c.lostFor ?? (c.lostReason?.startsWith('unreachable') === true ? 'unreachable' : 'cheated')
}

/**
 * How many shards of each segment still count (shardCounts). "at-risk" is
 * one loss from losing a segment; "degraded", below N. Shards on hosts that
 * audits cannot reach right now still count (a restart is not a loss until
 * the audit grace has passed) but are shown beside: `reachable`.
 */
export function healthOf (object: StoredObject, now = Date.now()): ObjectHealth {
  const down = (contract: string): boolean => object.contracts[contract]?.audit?.unreachableSince != null
  const counted = object.segments.map(s => s.shards.filter(x => shardCounts(object, x, now)))
  const healthy = counted.length === 0 ? 0 : Math.min(...counted.map(c => c.length))
  const reachable = counted.length === 0 ? 0 : Math.min(...counted.map(c => c.filter(x => !down(x.contract)).length))
  const unreachableHosts = new Set(counted.flatMap(c => c.filter(x => down(x.contract)).map(x => x.host)))
  const audits = Object.values(object.contracts).map(c => c.audit?.passedAt ?? 0).filter(t => t > 0)
  return {
    healthy,
    needed: object.k,
    total: object.n,
    state: healthy >= object.n ? 'healthy' : healthy > object.k ? 'degraded' : healthy === object.k ? 'at-risk' : 'lost',
    lostContracts: Object.values(object.contracts).filter(c => c.lost != null).length,
    lostShards: object.segments.reduce((n, s) => n + s.shards.filter(x => x.lost != null).length, 0),
    reachable,
    unreachableHosts: unreachableHosts.size,
    hosts: new Set(counted.flat().map(x => x.host)).size,
    lastAudit: audits.length === 0 ? undefined : Math.max(...audits)
  }
}

/**
 * What one transfer (a get, or one repair) learns, shared by its segments:
 * hosts to ask last for the rest of it (one that failed or was slow: a
 * frozen host would otherwise cost the hedge time again on every segment),
 * and what goes into the object's record afterwards (applyTransfer).
 */
interface Transfer {
  /** hosts that failed or were caught: asked last */
  avoid: Set<string>
  /** hosts whose answer is later than the hedge time and has not come: asked after the others */
  slow: Set<string>
  /** "segment slot" -> the shard its host said is gone or corrupt */
  lostShards: Map<string, { contract: string, root: string, reason: string }>
  /** contracts whose host sent bytes that are not the shard -> why */
  cheated: Map<string, string>
  /** contracts whose host did not answer in time: audited at the next check */
  unreachable: Set<string>
  /** satoshis paid for downloads, per contract */
  spent: Map<string, bigint>
}

function newTransfer (object: StoredObject): Transfer {
  // condemned hosts are asked last, only if the others cannot give K shards
  const avoid = new Set(Object.values(object.contracts).filter(c => c.lost != null).map(c => c.host))
  return { avoid, slow: new Set(), lostShards: new Map(), cheated: new Map(), unreachable: new Set(), spent: new Map() }
}

/** Write what a transfer learned into an object's record; true when its health changed */
function applyTransfer (object: StoredObject, transfer: Transfer, now: number): boolean {
  let changed = false
  for (const [id, sats] of transfer.spent) {
    const c = object.contracts[id]
    if (c != null) {
      c.spent.download = String(BigInt(c.spent.download) + sats)
    }
  }
  for (const [key, found] of transfer.lostShards) {
    const [segment, slot] = key.split(' ').map(Number)
    const shard = object.segments[segment]?.shards[slot]
    // unless a repair has moved it meanwhile
    if (shard == null || shard.contract !== found.contract || shard.root !== found.root || shard.lost != null) {
      continue
    }
    shard.lost = now
    shard.lostReason = found.reason
    const c = object.contracts[found.contract]
    if (c != null) {
      c.shardsLost = (c.shardsLost ?? 0) + 1
    }
    changed = true
    log.error('shard %d of segment %d of "%s" is lost: %s', slot + 1, segment, object.name, found.reason)
  }
  for (const [id, reason] of transfer.cheated) {
    const c = object.contracts[id]
    if (c == null || c.lost != null || c.ended != null) {
      continue
    }
    // as a failed audit: the host was paid to keep the shard, and did not
    c.audit ??= { passed: 0, failed: 0, next: now }
    c.audit.failed++
    c.lost = now
    c.lostFor = 'cheated'
    c.lostReason = reason
    changed = true
    log.error('contract %s of "%s" condemned: %s', id, object.name, reason)
  }
  if (changed) {
    retryRepairNow(object)
  }
  for (const id of transfer.unreachable) {
    const c = object.contracts[id]
    if (c != null && c.lost == null && c.ended == null) {
      // the next check audits it, which tells a restart from a host gone
      c.audit ??= { passed: 0, failed: 0, next: now }
      c.audit.next = Math.min(c.audit.next, now)
    }
  }
  return changed
}

/** A new loss: a stuck repair is tried again at the next check, not at its retry time */
function retryRepairNow (object: StoredObject): void {
  if (object.repair != null) {
    delete object.repair.retryAt
  }
}

/**
 * Hosts that may take a lost shard of `segments`, best first, or why there
 * is none. A host qualifies if it holds no shard that counts in any of those
 * segments: two shards of one segment on one host would make one failure
 * cost two, and K-of-N would no longer mean that any N-K hosts may vanish,
 * so a host already holding one is never used (repair waits instead, and
 * says so). Hosts caught cheating and hosts being moved off are never
 * used, nor, for now, those `heldOff` (they failed an upload of this
 * object's repair: see repairRetryMs). New hosts come first; then hosts this object used that hold nothing
 * of those segments now, such as one condemned only for being unreachable
 * (or replaced during the upload) that answers again; last, hosts that said
 * they lost a shard of it.
 */
function repairCandidates (object: StoredObject, segments: number[], offers: HostOffer[], now: number, heldOff: Set<string> = new Set()): { hosts: HostOffer[], why: string } {
  const contracts = Object.values(object.contracts)
  const cheated = new Set(contracts.filter(c => lostKind(c) === 'cheated').map(c => c.host))
  const leaving = new Set(contracts.filter(c => c.migrating != null && c.ended == null).map(c => c.host))
  const holding = new Set(segments.flatMap(i => object.segments[i].shards.filter(x => shardCounts(object, x, now)).map(x => x.host)))
  const used = new Set(contracts.map(c => c.host))
  const eligible = offers.filter(h => !cheated.has(h.peer) && !leaving.has(h.peer) && !holding.has(h.peer) && !heldOff.has(h.peer))
  // of those used before, hosts that lost shards of this file come last
  const lostShards = new Set(contracts.filter(c => (c.shardsLost ?? 0) > 0).map(c => c.host))
  const again = eligible.filter(h => used.has(h.peer))
  const hosts = [...eligible.filter(h => !used.has(h.peer)), ...again.filter(h => !lostShards.has(h.peer)), ...again.filter(h => lostShards.has(h.peer))]
  const busy = offers.filter(h => holding.has(h.peer)).length
  const caught = offers.filter(h => cheated.has(h.peer)).length
  const moving = offers.filter(h => leaving.has(h.peer)).length
  const failed = offers.filter(h => heldOff.has(h.peer) && !holding.has(h.peer) && !cheated.has(h.peer)).length
  const parts = [`${busy} hold a shard of those segments already`, ...(caught > 0 ? [`${caught} were caught cheating`] : []), ...(moving > 0 ? [`${moving} are being moved off`] : []), ...(failed > 0 ? [`${failed} failed an upload of this repair recently and are asked again later`] : [])]
  const why = `of the ${offers.length} hosts the market knows, ${parts.join(', ')}; a shard needs a host that holds no other shard of its segment, so repair waits for a new host to join or a lost one to come back`
  return { hosts, why }
}

/**
 * A call's signal with a bound tighter than the RPC client's own per-call
 * timeout (rpc.timeoutMs, which every call has anyway): a shard transfer's
 * transferTimeoutMs, or END_CALL_MS
 */
function callSignal (signal: AbortSignal, timeoutMs: number): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
}

function nameKey (name: string): Key {
  return new Key(`${NAMES}/${encodeURIComponent(name)}`)
}

/** The latest removed object of a name */
function removedNameKey (name: string): Key {
  return new Key(`${REMOVED_NAMES}/${encodeURIComponent(name)}`)
}

/** Removed objects in the order they were removed (the key sorts by time) */
function removedOrderKey (removedAt: number, id: string): Key {
  return new Key(`${REMOVED_ORDER}/${String(removedAt).padStart(15, '0')}-${id}`)
}

/** The renter's rating of a host at a contract's end: satisfactory unless it was caught or lost shards */
function servedWell (c: ContractRecord): boolean {
  return c.lost == null && (c.audit?.failed ?? 0) === 0 && (c.shardsLost ?? 0) === 0
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
