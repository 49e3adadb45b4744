import { logger } from '@libp2p/logger'
import { DEFAULT_AUDIT_GRACE_MS, DEFAULT_AUDIT_INTERVAL_MS, DEFAULT_DURATION_MS, DEFAULT_HEDGE_MS, DEFAULT_KEEP_REMOVED, DEFAULT_MIGRATE_ABOVE_PRICE, DEFAULT_MIN_THROUGHPUT, DEFAULT_MIN_TRUST, DEFAULT_RENEW_BEFORE_MS, DEFAULT_RENT_CHECK_MS, DEFAULT_RENT_PERIOD_MS, DEFAULT_REPAIR_RETRY_MS, DEFAULT_SEGMENT_SIZE, DEFAULT_SEGMENT_SLOTS, DEFAULT_SEGMENTS_IN_FLIGHT, DEFAULT_TRUST_DROP, DEFAULT_TRUST_GRACE_MS, DEFAULT_VERSIONS_KEPT_FOR_MS, DEFAULT_ORPHAN_GRACE_MS, END_CALL_MS, DEFAULT_RECOVER_WAIT_MS } from '../constants.ts'
import { StorageStoppedError } from '../errors.ts'
import { durationText } from '../../utils/duration.ts'
import { Contracts } from './contracts.ts'
import { Downloader, type ObjectStream } from './download.ts'
import { defaultRepairAfterLost } from './health.ts'
import { SegmentSlots } from './memory.ts'
import { Records, type ContractRecord, type StoredObject } from './records.ts'
import { callSignal, StorageSession } from './session.ts'
import { Uploader } from './upload.ts'
import { Shares, type FetchedObject, type ShareOptions, type ShareRecord } from './shares.ts'
import { getTree, listFolder, putTree, type FolderListing, type GetTreeOptions, type PutTreeOptions, type TreeFileResult } from './tree.ts'
import { auditDue, type AuditCounts } from './upkeep/audits.ts'
import { payRentDue } from './upkeep/rent.ts'
import { renewDue } from './upkeep/renewals.ts'
import { Repairer } from './upkeep/repair.ts'
import { IndexNotes } from './recovery/index-notes.ts'
import { importNoteObject, recover, type RecoveryProgress, type RecoveryReport } from './recovery/recover.ts'
import type { GetOptions, HostOffer, PutOptions, PutSource, StorageClientComponents, StorageClientInit } from './interface.ts'

const log = logger('opencloud:storage:client')

/**
 * The client side of storage (README, "Storage"), a small facade in the
 * way of helia's unixfs over one part per concern: `put` (upload.ts)
 * encrypts a file or a byte stream, erasure-codes it segment by segment,
 * forms a contract with each of N hosts (contracts.ts) and uploads one
 * shard per segment to each; `get` and `getStream` (download.ts) fetch the
 * first K good shards of each segment, check, decode and decrypt; the
 * records (records.ts) hold what is stored; every call to a host goes
 * through the typed stub of the storage protocol (session.ts). The upkeep
 * (upkeep/: audits, rent, renewals, repair, migration) runs at every
 * check, one step after another, and ends on the shutdown signal.
 */
export class StorageClient {
  readonly migrateAbovePrice: number
  readonly minTrust: number
  readonly trustDrop: number
  private readonly rentCheckMs: number
  private readonly auditIntervalMs: number
  private readonly auditGraceMs: number
  private readonly renewBeforeMs: number
  private readonly versionsKeptForMs: number
  private readonly records: Records
  private readonly session: StorageSession
  private readonly contracts: Contracts
  private readonly uploader: Uploader
  private readonly downloader: Downloader
  private readonly repairer: Repairer
  /** the shares this node made, and its fetches of others' (PROTOCOL.md 8h) */
  private readonly sharing: Shares
  /** the object index at the hosts (PROTOCOL.md 8g) */
  private readonly index: IndexNotes
  /** the recovery under way, and what it has done so far (store ls shows it) */
  private recovering?: { startedAt: number, progress?: RecoveryProgress }
  /** the recovery under way: a second one waits for it */
  private recoveryRun?: Promise<RecoveryReport>
  /** per contract, each root named by nothing and since when (a contract with none: '*') */
  private orphansSeen = new Map<string, Map<string, number>>()
  private readonly orphanGraceMs: number
  private readonly components: StorageClientComponents
  /** aborted by stop(): every upkeep step and transfer in flight ends */
  private shutdown = new AbortController()
  private checkTimer?: ReturnType<typeof setInterval>
  private checking?: Promise<void>

  constructor (components: StorageClientComponents, init: StorageClientInit = {}) {
    this.components = components
    this.migrateAbovePrice = init.migrateAbovePrice ?? DEFAULT_MIGRATE_ABOVE_PRICE
    this.minTrust = init.minTrust ?? DEFAULT_MIN_TRUST
    this.trustDrop = init.trustDrop ?? DEFAULT_TRUST_DROP
    this.rentCheckMs = init.rentCheckMs ?? DEFAULT_RENT_CHECK_MS
    this.auditIntervalMs = init.auditIntervalMs ?? DEFAULT_AUDIT_INTERVAL_MS
    this.auditGraceMs = init.auditGraceMs ?? DEFAULT_AUDIT_GRACE_MS
    this.renewBeforeMs = init.renewBeforeMs ?? DEFAULT_RENEW_BEFORE_MS
    this.versionsKeptForMs = init.versionsKeptForMs ?? DEFAULT_VERSIONS_KEPT_FOR_MS
    this.orphanGraceMs = init.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS
    const segmentsInFlight = init.segmentsInFlight ?? DEFAULT_SEGMENTS_IN_FLIGHT
    const durationMs = init.durationMs ?? DEFAULT_DURATION_MS
    const minThroughput = init.minThroughput ?? DEFAULT_MIN_THROUGHPUT
    const slots = new SegmentSlots(Math.max(init.segmentSlots ?? DEFAULT_SEGMENT_SLOTS, segmentsInFlight))
    // read through the components at each use, so what they answer may change (a test swaps the key)
    const { peerId, signer } = components
    const hosts = async (): Promise<HostOffer[]> => components.hosts()
    const storageKey = (): Uint8Array => components.storageKey()
    const rate: StorageClientComponents['rate'] = (peer, event, method) => { components.rate?.(peer, event, method) }
    const trust = components.trust == null ? undefined : (peer: string): number => components.trust?.(peer) ?? 0
    const rateContract: StorageClientComponents['rateContract'] = (peer, satisfactory) => { components.rateContract?.(peer, satisfactory) }
    const records = this.records = new Records(components.datastore, { keepRemoved: init.keepRemoved ?? DEFAULT_KEEP_REMOVED, keptFor: durationText(this.versionsKeptForMs) })
    const session = this.session = new StorageSession(async (peer, request, sats) => components.call(peer, request, sats))
    this.index = new IndexNotes({ datastore: components.datastore, records, session, indexKey: () => components.indexKey?.() })
    const contracts = this.contracts = new Contracts({ peerId, signer, trust, rateContract, session, records }, { rentPeriodMs: init.rentPeriodMs ?? DEFAULT_RENT_PERIOD_MS, minThroughput, allowance: init.contractAllowance, renewBeforeMs: this.renewBeforeMs })
    const prepay = components.prepay == null ? undefined : async (payees: Parameters<NonNullable<StorageClientComponents['prepay']>>[0], signal: AbortSignal): Promise<void> => components.prepay?.(payees, signal)
    this.uploader = new Uploader({ hosts, storageKey, rate, records, contracts, session, slots, prepay, alive: components.alive }, { segmentSize: init.segmentSize ?? DEFAULT_SEGMENT_SIZE, segmentsInFlight, durationMs })
    const downloader = this.downloader = new Downloader({ storageKey, rate, records, session, contracts, slots, shutdown: () => this.shutdown.signal, onHealthChanged: () => { this.repairSoon() } }, { hedgeMs: init.hedgeMs ?? DEFAULT_HEDGE_MS, minThroughput })
    this.sharing = new Shares({ peerId, signer, datastore: components.datastore, storageKey, records, session, downloader, minThroughput, prepay })
    this.repairer = new Repairer({ hosts, trust, rate, records, contracts, downloader, slots }, {
      repairAfterLost: init.repairAfterLost ?? defaultRepairAfterLost,
      repairRetryMs: init.repairRetryMs ?? DEFAULT_REPAIR_RETRY_MS,
      durationMs,
      migrateAbovePrice: this.migrateAbovePrice,
      minTrust: this.minTrust,
      trustDrop: this.trustDrop,
      trustGraceMs: init.trustGraceMs ?? DEFAULT_TRUST_GRACE_MS
    })
  }

  /** What the upkeep did since the node started (the node's metrics): audits by outcome, shards rebuilt */
  readonly tallies = { auditsPassed: 0, auditsFailed: 0, auditsUnreachable: 0, shardsRepaired: 0 }

  start (): void {
    this.shutdown = new AbortController()
    this.checkTimer = setInterval(() => { this.checkNow() }, this.rentCheckMs)
    this.checkTimer.unref()
    // what a crash left: contracts of interrupted uploads (nothing refers to
    // them, so they are ended) and the plaintext of interrupted gets
    void this.cleanDownloads().catch(err => { log.error('removing the partial files of interrupted gets failed - %e', err) })
    void this.cleanUploads(this.shutdown.signal).catch(err => { log.error('ending the contracts of interrupted uploads failed - %e', err) })
    void this.records.indexRemoved().catch(err => { log.error('indexing the records of removed objects failed - %e', err) })
    // objects stored before the index: their notes are written at the next check
    void this.index.backfill().catch(err => { log.error('marking the objects the index is missing failed - %e', err) })
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
    await this.records.idle()
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
      await step('deleting shards and ending contracts nothing refers to', async () => this.collectGarbage(signal, { twoPasses: true }))
      await step('pruning old versions', async () => this.pruneVersions(Date.now(), signal))
      await step('paying rent', async () => this.payRent(Date.now(), signal))
      await step('auditing', async () => this.audit(Date.now(), signal))
      await step('renewing contracts', async () => this.renewAll(Date.now(), signal))
      await step('repairing', async () => this.repairAll(Date.now(), signal))
      await step('telling hosts of revoked shares', async () => this.tellRevocations(signal))
      // last: what the steps before changed (a repair moving shards) goes into the index in the same check
      await step('bringing the object index at the hosts up to date', async () => this.index.flush(signal))
    })().finally(() => { this.checking = undefined })
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

  /** The signal of an upkeep step: the caller's, and the node stopping */
  private upkeepSignal (signal?: AbortSignal): AbortSignal {
    return signal == null ? this.shutdown.signal : AbortSignal.any([signal, this.shutdown.signal])
  }

  /** An upkeep step under the records lock, with the caller's signal and the node's */
  private async upkept<T> (signal: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const upkeep = this.upkeepSignal(signal)
    return this.records.exclusive(async () => fn(upkeep), upkeep)
  }

  // ---- the data path ----

  /**
   * Store a file (its path) or a byte stream of a declared size (PutSource:
   * the size is needed up front, for the contracts). Resolves with the
   * object once every shard of every segment is stored.
   */
  async put (source: PutSource, options: PutOptions = {}): Promise<StoredObject> {
    return this.uploader.put(source, options, this.upkeepSignal(options.signal))
  }

  /** Store files and directories, one object per file named by its path (tree.ts: putTree) */
  async putTree (paths: string[], options: PutTreeOptions = {}): Promise<{ files: TreeFileResult[] }> {
    return putTree(this, paths, options)
  }

  /** Fetch every current object under a folder (`prefix` ends with '/') into the directory `out` (tree.ts: getTree) */
  async getTree (prefix: string, out: string, options: GetTreeOptions = {}): Promise<{ files: Array<{ object: StoredObject, out: string }> }> {
    return getTree(this, prefix, out, options)
  }

  /** The objects and sub-folders directly under a folder */
  async listFolder (prefix: string): Promise<FolderListing> {
    return listFolder(this, prefix)
  }

  /** Fetch, check, decode and decrypt an object into the file `out` (a `.part` beside it, renamed when whole) */
  async get (nameOrId: string, out: string, options: GetOptions = {}): Promise<StoredObject> {
    return this.downloader.get(nameOrId, out, options)
  }

  /** An object and its plaintext as a byte stream, in order (ObjectStream: nothing is fetched until it is read) */
  async getStream (nameOrId: string, options: Omit<GetOptions, 'overwrite'> = {}): Promise<ObjectStream> {
    return this.downloader.getStream(nameOrId, options)
  }

  // ---- the records ----

  /** Every contract this node holds or held with a host, each shared by the objects with shards under it */
  contractList (): Array<[string, ContractRecord]> {
    return this.records.contracts.entries()
  }

  async list (): Promise<StoredObject[]> {
    return this.records.list()
  }

  /** The current version of each name under `prefix` (default all), with how many versions of it are stored */
  async current (prefix = ''): Promise<Array<{ object: StoredObject, versions: number }>> {
    return this.records.current(prefix)
  }

  /** An object by name or by id */
  async find (nameOrId: string): Promise<StoredObject> {
    return this.records.find(nameOrId)
  }

  /** An object by name or id, or else the record `store rm` kept of the latest removed one of that name or id */
  async findWithRemoved (nameOrId: string): Promise<StoredObject> {
    return this.records.findWithRemoved(nameOrId)
  }

  /**
   * Delete an object's shards from its hosts and forget it. Each contract
   * it shares with other objects loses its shards by revision; one that
   * only it used is ended (the host deletes everything under it, and both
   * sides sign their ratings). A repair of it under way is stopped rather
   * than waited for. What it was, with each contract and the ratings
   * exchanged, stays under /storage/removed for `store info` (without its
   * segments; the latest keepRemoved removals). A host that cannot be told
   * now is told at a later check (collectGarbage deletes the shards no
   * object names), or keeps them until its contract ends. A removal whose
   * signal aborts while hosts are being told (Ctrl-C, the API client gone,
   * the node stopping) keeps the object: `store rm` again tells the others.
   */
  async remove (nameOrId: string, signal?: AbortSignal, options: { version?: number } = {}): Promise<{ object: StoredObject, unreachable: string[], versions: StoredObject[] }> {
    // a name is every version of it (the current one last, so the name does
    // not move from version to version meanwhile); an id or --version, one
    const which = async (): Promise<StoredObject[]> => {
      if (options.version != null) {
        return [await this.records.findVersion(nameOrId, options.version)]
      }
      const found = await this.records.find(nameOrId)
      if (found.id === nameOrId) {
        return [found]
      }
      const all = await this.records.versions(found.name)
      return [...all.filter(v => v.id !== found.id), found]
    }
    for (const object of await which()) {
      this.repairer.stopRepair(object.id, new Error(`"${object.name}" is being removed`))
    }
    return this.upkept(signal, async upkeep => {
      const removed: StoredObject[] = []
      const unreachable: string[] = []
      for (const object of await which()) {
        const done = await this.removeOne(object, upkeep)
        removed.push(done.object)
        unreachable.push(...done.unreachable)
      }
      return { object: removed[removed.length - 1], unreachable, versions: removed }
    })
  }

  // ---- sharing (PROTOCOL.md 8h) ----

  /** A share of an object or a folder ("PREFIX/"): its record, and the text its holder is given */
  async share (nameOrPrefix: string, options: ShareOptions = {}): Promise<{ share: ShareRecord, text: string }> {
    return this.sharing.share(nameOrPrefix, options)
  }

  /** Every share this node made, newest first */
  async shares (): Promise<ShareRecord[]> {
    return this.sharing.list()
  }

  /** Revoke a share by id, or the live shares made for a name; the hosts that could not be told are told at later checks */
  async unshare (idOrName: string, signal?: AbortSignal): Promise<{ revoked: ShareRecord[], unreachable: string[] }> {
    return this.sharing.unshare(idOrName, this.upkeepSignal(signal))
  }

  /** Tell the hosts a revocation has not reached yet (each check does); resolves with how many were told */
  async tellRevocations (signal?: AbortSignal): Promise<number> {
    return this.sharing.retryUntold(this.upkeepSignal(signal))
  }

  /** Fetch what a share text opens (someone else's objects) into `out` or under `dir`; this node pays its own downloads */
  async fetchShared (text: string, target: { out?: string, dir?: string }, options: GetOptions = {}): Promise<FetchedObject[]> {
    return this.sharing.fetch(text, target, { ...options, signal: this.upkeepSignal(options.signal) })
  }

  /**
   * Remove every object under a folder (names starting with `prefix`,
   * which ends with '/'), every version of each; resolves with what was
   * removed and the hosts that could not be told
   */
  async removeTree (prefix: string, signal?: AbortSignal): Promise<{ removed: StoredObject[], unreachable: string[] }> {
    const under = async (): Promise<StoredObject[]> => (await this.records.list()).filter(o => o.name.startsWith(prefix))
    for (const object of await under()) {
      this.repairer.stopRepair(object.id, new Error(`"${object.name}" is being removed`))
    }
    return this.upkept(signal, async upkeep => {
      const removed: StoredObject[] = []
      const unreachable: string[] = []
      // older versions first: a name stays on a version that is stored until its last goes
      for (const object of (await under()).sort((a, b) => Number(a.supersededAt == null) - Number(b.supersededAt == null))) {
        const done = await this.removeOne(object, upkeep)
        removed.push(done.object)
        unreachable.push(...done.unreachable)
      }
      return { removed, unreachable }
    })
  }

  /**
   * Remove the versions superseded longer than versionsKeptForMs ago (each
   * as `store rm --version` does, its record marked pruned so `store get
   * --version` says so); resolves with how many were pruned
   */
  async pruneVersions (now = Date.now(), signal?: AbortSignal): Promise<number> {
    return this.upkept(signal, async upkeep => {
      let pruned = 0
      for (const object of await this.records.list()) {
        if (object.supersededAt == null) {
          const current = await this.records.currentId(object.name)
          if (current != null && current !== object.id && ((await this.records.find(current)).version ?? 1) > (object.version ?? 1)) {
            // a newer version is current, and this one's supersededAt was
            // lost (a save racing the commit that set it): from now on
            object.supersededAt = now
            await this.records.saveObject(object)
          }
          continue
        }
        if (now - object.supersededAt < this.versionsKeptForMs) {
          continue
        }
        upkeep.throwIfAborted()
        this.repairer.stopRepair(object.id, new Error(`version ${object.version ?? 1} of "${object.name}" is being pruned`))
        await this.removeOne(object, upkeep, { pruned: true })
        log('pruned version %d of %s (superseded %s)', object.version ?? 1, object.name, new Date(object.supersededAt).toISOString())
        pruned++
      }
      return pruned
    })
  }

  /** The stored versions of a name, oldest first */
  async versions (name: string): Promise<StoredObject[]> {
    return this.records.versions(name)
  }

  /** One version of a name (VersionPrunedError for one pruned or removed) */
  async findVersion (name: string, version: number): Promise<StoredObject> {
    return this.records.findVersion(name, version)
  }

  /** One object's removal, under the records lock (see remove) */
  private async removeOne (found: StoredObject, upkeep: AbortSignal, options: { pruned?: boolean } = {}): Promise<{ object: StoredObject, unreachable: string[] }> {
    // read again under the lock: upkeep may have changed it meanwhile
    const object = await this.records.find(found.id)
    // what the other objects name, a put committed meanwhile included
    const others = await this.records.named(object.id)
    const unreachable: Array<[string, ContractRecord, string] | [string, undefined, string]> = []
    await Promise.all(Object.entries(object.contracts).map(async ([id, c]) => {
      if (c.ended != null) {
        return
      }
      const mine = new Set(object.segments.flatMap(s => s.shards.filter(x => x.contract === id).map(x => x.root)))
      const shared = this.contracts.inUse(id) || others.has(id)
      if (shared && (c.lost != null || mine.size === 0)) {
        // a condemned host is told nothing more; its shards no longer count
        return
      }
      try {
        if (shared) {
          await this.contracts.deleteShards(id, c, mine, upkeep)
        } else {
          await this.contracts.end(id, c, callSignal(upkeep, END_CALL_MS), { untilTold: true })
        }
      } catch (err: any) {
        if (!upkeep.aborted && c.ended == null) {
          unreachable.push(shared
            ? [id, undefined, `${c.host} (${err.message}); its shards of this object are deleted at a later check, and its contract ends on ${new Date(c.end).toISOString()} at the latest`]
            : [id, c, `${c.host} (${err.message}); its contract ends on ${new Date(c.end).toISOString()} anyway`])
        }
      }
    }))
    if (upkeep.aborted) {
      await this.records.saveObject(object)
      upkeep.throwIfAborted()
    }
    // the hosts that could not be told keep the shards until the contract's end
    for (const [id, c] of unreachable) {
      if (c != null) {
        await this.contracts.close(id, c)
      }
    }
    const removedAt = Date.now()
    await this.records.commitRemoved(object, removedAt, options)
    return { object: { ...object, removedAt }, unreachable: unreachable.map(([, , why]) => why) }
  }

  // ---- upkeep ----

  /**
   * Audit the contracts that are due (see auditIntervalMs). A host that
   * fails is condemned at once and rated; one that cannot be reached is
   * tried again at each check and condemned only after auditGraceMs.
   * Resolves with what was audited.
   */
  async audit (now = Date.now(), signal?: AbortSignal): Promise<AuditCounts> {
    const counts = await this.upkept(signal, async upkeep => auditDue({ records: this.records, session: this.session, rate: this.components.rate }, { auditIntervalMs: this.auditIntervalMs, auditGraceMs: this.auditGraceMs }, now, upkeep))
    this.tallies.auditsPassed += counts.passed
    this.tallies.auditsFailed += counts.failed
    this.tallies.auditsUnreachable += counts.unreachable
    return counts
  }

  /** Pay the next period of every live contract whose paid time runs out within half a period */
  async payRent (now = Date.now(), signal?: AbortSignal): Promise<number> {
    return this.upkept(signal, async upkeep => payRentDue({ records: this.records, contracts: this.contracts, prepay: this.components.prepay }, now, upkeep))
  }

  /** Renew the contracts that end soon (see renewBeforeMs) with the same hosts; resolves with how many were renewed */
  async renewAll (now = Date.now(), signal?: AbortSignal): Promise<number> {
    return this.upkept(signal, async upkeep => renewDue({ records: this.records, contracts: this.contracts, hosts: this.components.hosts }, { renewBeforeMs: this.renewBeforeMs }, now, upkeep))
  }

  /**
   * Repair every object that has lost enough shards or is moving off a
   * host, unless its last repair was stuck and its retry time has not come;
   * resolves with how many shards were rebuilt
   */
  async repairAll (now = Date.now(), signal?: AbortSignal): Promise<number> {
    const rebuilt = await this.upkept(signal, async upkeep => this.repairer.repairDue(now, upkeep))
    this.tallies.shardsRepaired += rebuilt
    return rebuilt
  }

  /** Repair one object now, whatever its retry time (Repairer.repairObject says how) */
  async repair (nameOrId: string, signal?: AbortSignal): Promise<number> {
    const rebuilt = await this.upkept(signal, async upkeep => this.repairer.repairObject(await this.records.find(nameOrId), await this.components.hosts(), upkeep, Date.now()))
    this.tallies.shardsRepaired += rebuilt
    return rebuilt
  }

  /**
   * End the contracts of uploads that never finished (a crash, kill -9, a
   * failure) and let their names go; hosts that could not be reached are
   * tried again at the next check
   */
  async cleanUploads (signal: AbortSignal = this.shutdown.signal): Promise<number> {
    return this.uploader.cleanUploads(signal)
  }

  /** Remove the partial plaintext files of gets a crash interrupted */
  async cleanDownloads (): Promise<number> {
    return this.downloader.cleanDownloads()
  }

  /**
   * What nothing refers to goes: shards under a contract that no object
   * names (a put or a repair that failed or was interrupted, shards a
   * removal could not delete, a repair's old copies) are deleted by
   * revision, and a contract under which no object has a shard is ended
   * (no more rent; the host frees its room). Contracts a put or a repair is
   * using are left alone. A host that cannot be told now is told at a later
   * check. Resolves with how many shards were deleted and contracts ended.
   *
   * Another machine restored from the same words may share the contracts
   * (PROTOCOL.md 8g, "Two machines"): before anything at a host is taken,
   * that host's notes are read and the objects this node does not know are
   * imported, so what the other machine committed is named. `twoPasses`
   * (the periodic check) also takes a shard or a contract only when it was
   * named by nothing at the pass before too, a check interval earlier:
   * a put still committing on the other machine has written its note by then.
   */
  async collectGarbage (signal?: AbortSignal, options: { twoPasses?: boolean } = {}): Promise<{ deleted: number, ended: number }> {
    return this.upkept(signal, async upkeep => {
      await this.records.ready()
      const done = { deleted: 0, ended: 0 }
      let seen = -1
      let named = new Map<string, Set<string>>()
      const before = this.orphansSeen
      const orphansNow = new Map<string, Map<string, number>>()
      const asked = new Set<string>()
      /** roots the notes at the hosts asked name, by contract (adoptForeign): never taken */
      const foreign = new Map<string, Set<string>>()
      const passAt = Date.now()
      /**
       * the roots of a contract named by nothing at the pass before too (all
       * of them when not twoPasses); one this node did not put itself
       * (`learned` from the host: another machine's put may still be under
       * way) only once named by nothing for orphanGraceMs
       */
      const stillOrphans = (id: string, roots: string[], learned: Set<string>): string[] => {
        const earlier = before.get(id)
        orphansNow.set(id, new Map(roots.map(r => [r, earlier?.get(r) ?? passAt])))
        if (options.twoPasses !== true) {
          return roots
        }
        return roots.filter(r => earlier?.has(r) === true && (!learned.has(r) || passAt - (earlier.get(r) as number) >= this.orphanGraceMs))
      }
      try {
        for (const [id, c] of this.records.contracts.entries()) {
          if (c.ended != null || this.contracts.inUse(id)) {
            continue
          }
          if (seen !== this.records.commits) {
            // a put committed since: its shards are named now
            seen = this.records.commits
            named = await this.records.named()
            if (seen !== this.records.commits || this.contracts.inUse(id)) {
              continue
            }
          }
          upkeep.throwIfAborted()
          let roots = named.get(id)
          const now = Date.now()
          const wouldTake = roots == null ? c.end > now : c.lost == null && c.end > now && c.shards.some(([root]) => !(roots as Set<string>).has(root))
          // (a host audits cannot reach now is not asked for its notes: the
          // two passes still hold, and it is asked once it answers again)
          if (wouldTake && this.index.enabled && !asked.has(c.host) && c.audit?.unreachableSince == null) {
            // what another machine with the same words stored there is named once imported
            asked.add(c.host)
            try {
              const adopted = await this.adoptForeign(c.host, upkeep)
              for (const [contract, set] of adopted.named) {
                foreign.set(contract, new Set([...(foreign.get(contract) ?? []), ...set]))
              }
              if (adopted.added > 0) {
                seen = this.records.commits
                named = await this.records.named()
                roots = named.get(id)
              }
            } catch (err: any) {
              if (upkeep.aborted) {
                throw err
              }
              // its notes unread, nothing at this host is taken
              log('could not read the notes at %s, so nothing there is collected now - %s', c.host, err.message)
              continue
            }
          }
          const noted = foreign.get(id)
          if (noted != null && noted.size > 0) {
            roots = new Set([...(roots ?? []), ...noted])
          }
          try {
            if (roots == null) {
              if (c.end <= now) {
                // over anyway: the host deletes its shards after its grace
                c.ended = now
                await this.records.contracts.save(id)
                continue
              }
              // the whole contract, under one name of its own
              if (stillOrphans(id, ['*'], new Set((c.learned ?? []).length > 0 ? ['*'] : [])).length === 0) {
                continue
              }
              await this.contracts.end(id, c, callSignal(upkeep, END_CALL_MS), { untilTold: true })
              done.ended++
            } else if (c.lost == null && c.end > now) {
              const named = roots
              const orphans = stillOrphans(id, c.shards.map(([root]) => root).filter(root => !named.has(root)), new Set(c.learned ?? []))
              if (orphans.length > 0) {
                done.deleted += await this.contracts.deleteShards(id, c, orphans, upkeep)
              }
            }
          } catch (err: any) {
            if (upkeep.aborted) {
              throw err
            }
            log('could not clean up contract %s with %s; tried again at the next check - %s', id, c.host, err.message)
          }
        }
      } finally {
        this.orphansSeen = orphansNow
      }
      return done
    })
  }

  /**
   * Import the objects whose notes are at `host` and that this node does
   * not know (another machine with the same words stored them); one this
   * node removed is not brought back, nor one of its own puts that has not
   * committed (under way, or cut short by a crash: its notes are deleted by
   * the flush). Resolves with how many were imported, and the roots every
   * note there names, by contract: an object this node knows may have been
   * repaired by the other machine into shards its own record does not name
   * yet, and those are not to be taken either.
   */
  private async adoptForeign (host: string, signal: AbortSignal): Promise<{ added: number, named: Map<string, Set<string>> }> {
    const { objects } = await this.index.readHost(host, signal)
    let added = 0
    const named = new Map<string, Set<string>>()
    const name = (object: { segments: StoredObject['segments'] }): void => {
      for (const segment of object.segments) {
        for (const shard of segment.shards) {
          const contract = this.records.contracts.current(shard.contract)
          named.set(contract, (named.get(contract) ?? new Set()).add(shard.root))
        }
      }
    }
    for (const { object } of objects) {
      let known: StoredObject | undefined
      try {
        known = await this.records.findWithRemoved(object.id)
      } catch {}
      if (known?.id === object.id) {
        // a note this node has not changed since it wrote it is its own or the
        // other machine's newer one (a repair there): its roots stay. One it
        // changed since (a repair here, its notes rewritten at the next flush)
        // names roots this node has just let go
        if (known.removedAt == null && !await this.index.changedHere(object.id)) {
          name(object)
        }
        continue
      }
      if (await this.index.ownUncommitted(object.id)) {
        continue
      }
      if (await importNoteObject(this.records, this.index, object, [host]) === 'added') {
        log('imported %s (%s), stored by another machine with these words', object.name, object.id)
        added++
      }
    }
    return { added, named }
  }

  // ---- recovery from the words (PROTOCOL.md 8g) ----

  /**
   * Find this identity's contracts and object index at the hosts and take
   * them in: the market's storage hosts (waiting up to `waitMs` for it to
   * list some) and those of the contracts this node knows. NoIndexFoundError
   * when no host holds a note of this identity's (nothing is written then).
   */
  async recover (options: { signal?: AbortSignal, waitMs?: number, onProgress?: (p: RecoveryProgress) => void } = {}): Promise<RecoveryReport> {
    if (!this.index.enabled) {
      throw new Error('this node keeps no object index (no wallet): there is nothing to recover from')
    }
    // one at a time: a `store recover` while the first start's own runs
    // waits for it and then asks again (its report says "known already"),
    // rather than refusing a user who asked at the wrong moment
    while (this.recoveryRun != null) {
      options.onProgress?.({ phase: 'hosts', done: 0, total: 0, message: 'waiting for the recovery under way to finish' })
      await this.recoveryRun.catch(() => {})
    }
    const signal = this.upkeepSignal(options.signal)
    this.recovering = { startedAt: Date.now() }
    const run = this.recoverOnce(options, signal)
    this.recoveryRun = run
    try {
      return await run
    } finally {
      this.recoveryRun = undefined
      this.recovering = undefined
    }
  }

  private async recoverOnce (options: { waitMs?: number, onProgress?: (p: RecoveryProgress) => void }, signal: AbortSignal): Promise<RecoveryReport> {
    const recovering = this.recovering as { startedAt: number, progress?: RecoveryProgress }
    const waitUntil = Date.now() + (options.waitMs ?? DEFAULT_RECOVER_WAIT_MS)
    let offers = await this.components.hosts()
    while (offers.length === 0 && Date.now() < waitUntil) {
      const waiting: RecoveryProgress = { phase: 'hosts', done: 0, total: 0, message: 'waiting for the market to list storage hosts' }
      recovering.progress = waiting
      options.onProgress?.(waiting)
      await new Promise(resolve => setTimeout(resolve, 500))
      signal.throwIfAborted()
      offers = await this.components.hosts()
    }
    await this.records.ready()
    const hosts = [...new Set([...offers.map(o => o.peer), ...this.records.contracts.entries().map(([, c]) => c.host)])].sort()
    return await recover({ peerId: this.components.peerId, records: this.records, session: this.session, index: this.index }, hosts, {
      signal,
      onProgress: (p) => {
        recovering.progress = p
        options.onProgress?.(p)
      }
    })
  }

  /** The recovery under way, if any: since when, and its last progress */
  recoveryStatus (): { startedAt: number, progress?: RecoveryProgress } | undefined {
    return this.recovering == null ? undefined : { ...this.recovering }
  }
}

// the client's public names, where its users (the storage module, the
// views, tests, benches) have always found them
export { STORAGE } from '../constants.ts'
export { GIB } from '../protocol/contract.ts'
export { NoIndexFoundError, IndexWriteError } from '../errors.ts'
export { DecryptError, IntegrityError, InvalidNameError, NotEnoughHostsError, ObjectBeingStoredError, ObjectNotFoundError, OutputExistsError, PaymentRefusedError, RepairStuckError, ShardUnavailableError, StorageStoppedError, StreamSizeError, ObjectUnchangedError, VersionPrunedError, FolderNotEmptyError, TreeIncompleteError, TreeRefusedError } from '../errors.ts'
export { checkName, checkPrefix, isFolder } from './names.ts'
export { walkTree, type FolderListing, type TreeFileResult, type TreeFs } from './tree.ts'
export { bytesHeld, defaultK, defaultRedundancy, defaultRepairAfterLost, healthOf, lostKind, monthlyRent, objectBytesByContract, shardCounts, spentOn, type ObjectHealth } from './health.ts'
export { migrationReason } from './upkeep/migration.ts'
export { repairCandidates } from './upkeep/repair.ts'
export { applyTransfer, newTransfer, type Transfer } from './transfer.ts'
export type { ObjectStream } from './download.ts'
export type { FetchedObject, ShareOptions, ShareRecord } from './shares.ts'
export type { AuditCounts } from './upkeep/audits.ts'
export type { RecoveryProgress, RecoveryReport } from './recovery/recover.ts'
export type { GetOptions, HostOffer, Progress, PutOptions, PutSource, StorageCall, StorageClientComponents, StorageClientInit } from './interface.ts'
export type { AuditRecord, ContractRecord, RepairState, SegmentRecord, ShardRecord, StoredObject } from './records.ts'
