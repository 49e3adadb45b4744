import { Key, type Datastore } from 'interface-datastore'
import { KeyedLock } from '../../utils/keyed-lock.ts'
import { ContractTable } from './contract-table.ts'
import type { ContractRecord, PendingDownload, PendingUpload, SegmentRecord, StoredObject } from './record-types.ts'
import { CONTRACTS_SHARED, DOWNLOADS, NAMES, OBJECTS, RATINGS, REMOVALS_INDEXED, REMOVED, REMOVED_NAMES, REMOVED_ORDER, RESERVING, UPLOADS, VERSIONS } from '../constants.ts'
import { ObjectBeingStoredError, ObjectNotFoundError, VersionPrunedError } from '../errors.ts'

/**
 * What the client keeps in the datastore (renterd's bus): the stored
 * objects with their segments, the contracts they share (ContractTable),
 * the names, the puts and gets under way, the records of removed objects
 * and the ratings of ended contracts. Every change to the object records
 * goes through `exclusive`.
 */

export type { AuditRecord, ContractRecord, PendingDownload, PendingUpload, RepairState, SegmentRecord, ShardRecord, StoredObject } from './record-types.ts'

export const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
export const dec = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

/** the one key of the records lock: every change to the object records takes it */
const RECORDS = 'records'

function objectKeyOf (id: string): Key {
  return new Key(`${OBJECTS}/${id}`)
}

function nameKey (name: string): Key {
  return new Key(`${NAMES}/${encodeURIComponent(name)}`)
}

/** A put's hold on a name (the name key keeps pointing at the current version meanwhile) */
function reservingKey (name: string): Key {
  return new Key(`${RESERVING}/${encodeURIComponent(name)}`)
}

/** Every version of a name, under one prefix, in order (the number is zero padded) */
function versionsPrefix (name: string): string {
  return `${VERSIONS}/${encodeURIComponent(name)}/`
}

function versionKey (name: string, version: number): Key {
  return new Key(`${versionsPrefix(name)}${String(version).padStart(10, '0')}`)
}

/** What a name key holds: the current version's id, or (records of older puts) a put's hold */
type NameEntry = string | { reserved: string }

/** An object as the datastore keeps it */
type RawObject = Omit<StoredObject, 'contracts'> & { contracts?: Record<string, ContractRecord>, contractIds?: string[] }

function uploadKey (id: string): Key {
  return new Key(`${UPLOADS}/${id}`)
}

/** The latest removed object of a name */
function removedNameKey (name: string): Key {
  return new Key(`${REMOVED_NAMES}/${encodeURIComponent(name)}`)
}

/** Removed objects in the order they were removed (the key sorts by time) */
function removedOrderKey (removedAt: number, id: string): Key {
  return new Key(`${REMOVED_ORDER}/${String(removedAt).padStart(15, '0')}-${id}`)
}

/** A new loss: a stuck repair is tried again at the next check, not at its retry time */
export function retryRepairNow (object: StoredObject): void {
  if (object.repair != null) {
    delete object.repair.retryAt
  }
}

/** What changed in an object record: saved (upkeep, repair), stored (a put's commit), removed */
export type ObjectChange = 'saved' | 'stored' | 'removed'
/** Sees each change to an object record, and does its write (Records.onObjectChange) */
export type ObjectObserver = (kind: ObjectChange, object: StoredObject, write: () => Promise<void>) => Promise<void>

export interface RecordsInit {
  /** how many removed objects `store info` can still show, default 1,000 (DEFAULT_KEEP_REMOVED, set by the client) */
  keepRemoved: number
  /** how long superseded versions are kept, as a user would write it ("30d"): the message of a pruned version names it */
  keptFor?: string
}

/** The client's records in its datastore */
export class Records {
  private readonly datastore: Datastore
  private readonly keepRemoved: number
  private readonly keptFor: string
  /** one change to the object records at a time (see exclusive) */
  private readonly lock = new KeyedLock()
  /** names reserved by puts running in this process (the datastore holds them too, see reserveName) */
  private readonly reservedNames = new Set<string>()
  /**
   * one change to a name's versions at a time: a put commits outside the
   * records lock, and an import or a removal of the same name meanwhile
   * would number or point the versions from a stale read
   */
  private readonly nameLock = new KeyedLock()
  /** the contracts, shared by the objects */
  readonly contracts: ContractTable
  /**
   * +1 whenever a put's object is committed: the shards it names appear
   * at once, outside the records lock, so collectGarbage reads the objects
   * again before it takes any shard for one nothing names
   */
  commits = 0
  private migrating?: Promise<void>
  private observer?: ObjectObserver

  constructor (datastore: Datastore, init: RecordsInit) {
    this.datastore = datastore
    this.keepRemoved = init.keepRemoved
    this.keptFor = init.keptFor ?? ''
    this.contracts = new ContractTable(datastore)
  }

  /**
   * The contract table, loaded; records written before contracts were
   * shared (each object and each upload with its own copies of its
   * contracts) are moved into it, once
   */
  async ready (): Promise<void> {
    this.migrating ??= (async () => {
      await this.contracts.ready()
      const done = new Key(CONTRACTS_SHARED)
      if (await this.datastore.has(done)) {
        return
      }
      for await (const { value } of this.datastore.query({ prefix: OBJECTS })) {
        const raw = dec<StoredObject & { contractIds?: string[] }>(value)
        if (raw.contractIds == null) {
          await this.saveObject(await this.hydrate(raw))
        }
      }
      for await (const { value } of this.datastore.query({ prefix: UPLOADS })) {
        const raw = dec<{ id: string, name?: string, contracts: string[] | Record<string, ContractRecord> }>(value)
        if (!Array.isArray(raw.contracts)) {
          for (const [id, c] of Object.entries(raw.contracts)) {
            this.contracts.adopt(id, c)
            await this.contracts.save(id)
          }
          await this.savePending({ id: raw.id, name: raw.name, contracts: Object.keys(raw.contracts) })
        }
      }
      await this.datastore.put(done, enc(Date.now()))
    })()
    try {
      await this.migrating
    } catch (err) {
      // tried again by the next call, not failed for good
      this.migrating = undefined
      throw err
    }
  }

  /** An object as read from the datastore, its contracts the table's shared records */
  private async hydrate (raw: RawObject): Promise<StoredObject> {
    await this.contracts.ready()
    const { contractIds, ...object } = raw
    if (contractIds == null) {
      // written before contracts were shared: its own copies become the table's
      for (const [id, c] of Object.entries(object.contracts ?? {})) {
        this.contracts.adopt(id, c)
      }
    }
    const contracts: Record<string, ContractRecord> = {}
    for (const id of contractIds ?? Object.keys(object.contracts ?? {})) {
      const c = this.contracts.get(id)
      if (c != null) {
        contracts[id] = c
      }
    }
    // a contract renewed since this record was written (a crash between the
    // renewal and the save of every object under it): its shards are under
    // the one that took its place
    return { ...object, contracts: { ...contracts, ...this.contractsUnder(object.segments ?? []) } }
  }

  /**
   * The contracts `segments`' shards are under, each shard pointed at the
   * contract that holds it now (one renewed has handed its shards on)
   */
  contractsUnder (segments: SegmentRecord[]): Record<string, ContractRecord> {
    const out: Record<string, ContractRecord> = {}
    for (const segment of segments) {
      for (const shard of segment.shards) {
        shard.contract = this.contracts.current(shard.contract)
        const c = this.contracts.get(shard.contract)
        if (c != null) {
          out[shard.contract] = c
        }
      }
    }
    return out
  }

  /**
   * Every shard root each contract holds for a stored object (but
   * `except`), read again while a put commits meanwhile (puts commit
   * outside the records lock): what a removal and collectGarbage may not
   * take for shards nobody names
   */
  async named (except?: string): Promise<Map<string, Set<string>>> {
    for (;;) {
      const seen = this.commits
      const named = new Map<string, Set<string>>()
      for (const object of await this.list()) {
        if (object.id === except) {
          continue
        }
        for (const segment of object.segments) {
          for (const shard of segment.shards) {
            named.set(shard.contract, (named.get(shard.contract) ?? new Set()).add(shard.root))
          }
        }
      }
      if (seen === this.commits) {
        return named
      }
    }
  }

  /** An object as the datastore keeps it: its contracts by id */
  private dehydrate (object: StoredObject): Omit<StoredObject, 'contracts'> & { contractIds: string[] } {
    const { contracts, ...rest } = object
    return { ...rest, contractIds: Object.keys(contracts) }
  }

  /** Write the contracts an object names (each shared record: the latest state of the contract) */
  private async saveContractsOf (object: StoredObject): Promise<void> {
    for (const id of Object.keys(object.contracts)) {
      if (this.contracts.get(id) === object.contracts[id]) {
        await this.contracts.save(id)
      }
    }
  }

  /**
   * One change to the object records at a time: audits, rent, renewals,
   * repairs and removals each read records, talk to hosts and write them
   * back, and two at once would write over each other's changes. A caller
   * whose signal aborts stops waiting for its turn.
   */
  async exclusive<T> (fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.lock.run(RECORDS, fn, { signal })
  }

  /** Resolves once every change under way or waiting is done (those whose signal aborted stopped waiting) */
  async idle (): Promise<void> {
    await this.lock.run(RECORDS, async () => {})
  }

  async list (): Promise<StoredObject[]> {
    await this.ready()
    const out: StoredObject[] = []
    for await (const { value } of this.datastore.query({ prefix: OBJECTS })) {
      out.push(await this.hydrate(dec<StoredObject>(value)))
    }
    return out.sort((a, b) => a.name.localeCompare(b.name) || (a.version ?? 1) - (b.version ?? 1))
  }

  /**
   * The current version of each name (under `prefix`, if given), with how
   * many versions of it are stored, by name
   */
  async current (prefix = ''): Promise<Array<{ object: StoredObject, versions: number }>> {
    const byName = new Map<string, StoredObject[]>()
    for (const object of await this.list()) {
      if (object.name.startsWith(prefix)) {
        byName.set(object.name, [...(byName.get(object.name) ?? []), object])
      }
    }
    return [...byName.values()].map(all => {
      // list() has them oldest first: the highest version not superseded, else the highest
      const object = [...all].reverse().find(o => o.supersededAt == null) ?? all[all.length - 1]
      return { object, versions: all.length }
    })
  }

  /** An object by name or by id */
  async find (nameOrId: string): Promise<StoredObject> {
    await this.ready()
    let id = nameOrId
    const named = await this.nameEntry(nameOrId)
    if (typeof named === 'string') {
      id = named
    } else if (named != null || (!/^[0-9a-f]{32}$/.test(nameOrId) && await this.datastore.has(reservingKey(nameOrId)))) {
      // its first version is being stored (a new version of a stored name leaves the name on the current one)
      throw new ObjectNotFoundError(`"${nameOrId}" is being stored right now; it can be used once its put is done ("store ls" lists what is stored)`)
    }
    let raw: StoredObject
    try {
      raw = dec<StoredObject>(await this.datastore.get(objectKeyOf(id)))
    } catch {
      throw new ObjectNotFoundError(`no stored object is named "${nameOrId}" or has that id; "store ls" lists them`)
    }
    return this.hydrate(raw)
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
      try {
        // an id, else the latest removed object of that name
        const id = /^[0-9a-f]{32}$/.test(nameOrId) && await this.datastore.has(new Key(`${REMOVED}/${nameOrId}`))
          ? nameOrId
          : dec<string>(await this.datastore.get(removedNameKey(nameOrId)))
        return dec<StoredObject>(await this.datastore.get(new Key(`${REMOVED}/${id}`)))
      } catch {
        throw err
      }
    }
  }

  /**
   * The one observer of changes to object records (index-notes.ts keeps
   * the object index at the hosts with it): it is given the change and the
   * write, and does the write itself, so it can put a note before the
   * object is committed and delete one after it is removed. A version's
   * record changed beside the one written (superseded by a commit, current
   * again after a removal) is given as 'saved' with its write done already
   * (one batch holds both, so the name never points at nothing).
   */
  onObjectChange (observer: ObjectObserver): void {
    this.observer = observer
  }

  private async observed (kind: ObjectChange, object: StoredObject, write: () => Promise<void>): Promise<void> {
    await (this.observer == null ? write() : this.observer(kind, object, write))
  }

  /** Write an object, and the contracts it names */
  async saveObject (object: StoredObject): Promise<void> {
    await this.saveContractsOf(object)
    // a put commits outside the records lock: one may have superseded this
    // version since the caller read it (only a removal, under the lock,
    // makes a version current again)
    const stored = await this.rawObject(object.id)
    if (stored?.supersededAt != null && object.supersededAt == null) {
      object.supersededAt = stored.supersededAt
    }
    await this.observed('saved', object, async () => { await this.datastore.put(objectKeyOf(object.id), enc(this.dehydrate(object))) })
  }

  /** Save an object changed by upkeep, unless it was removed meanwhile */
  async saveIfStored (object: StoredObject): Promise<void> {
    try {
      await this.find(object.id)
      await this.saveObject(object)
    } catch {}
  }

  // ---- names and puts under way ----

  /**
   * Hold a name for a put from its start: one put of a name at a time,
   * whichever asks first. A stored name may be put again (a new version);
   * its name key keeps pointing at the current version until the new one
   * commits, so the hold is a key of its own. Held in this process (a set,
   * checked and taken before any wait) and in the datastore (so it
   * outlives a crash until cleanUploads releases it). The datastore's hold
   * is written with the upload's record in one batch: a crash at any point
   * after leaves a record that cleanUploads finds, so no name stays held by
   * a put that is gone.
   */
  async reserveName (name: string, pending: PendingUpload): Promise<void> {
    const busy = (): ObjectBeingStoredError => new ObjectBeingStoredError(`an object named "${name}" is being stored right now by another put; wait for it (store ls), or choose another --name`)
    if (this.reservedNames.has(name)) {
      throw busy()
    }
    this.reservedNames.add(name)
    try {
      // a hold written by this version, or (a put of an older version) on the name key itself
      if (await this.datastore.has(reservingKey(name)) || typeof await this.nameEntry(name) === 'object') {
        throw busy()
      }
      const batch = this.datastore.batch()
      batch.put(reservingKey(name), enc({ reserved: pending.id }))
      batch.put(uploadKey(pending.id), enc(pending))
      await batch.commit()
    } catch (err) {
      this.reservedNames.delete(name)
      throw err
    }
  }

  /** Let a name go that a put reserved and did not use (it failed, or crashed) */
  async releaseName (name: string, objectId: string): Promise<void> {
    this.reservedNames.delete(name)
    for (const key of [reservingKey(name), nameKey(name)]) {
      try {
        const held = dec<NameEntry>(await this.datastore.get(key))
        if (typeof held !== 'string' && held.reserved === objectId) {
          await this.datastore.delete(key)
        }
      } catch {}
    }
  }

  /** What the name key holds, if anything */
  private async nameEntry (name: string): Promise<NameEntry | undefined> {
    try {
      return dec<NameEntry>(await this.datastore.get(nameKey(name)))
    } catch {
      return undefined
    }
  }

  private async rawObject (id: string): Promise<RawObject | undefined> {
    try {
      return dec<RawObject>(await this.datastore.get(objectKeyOf(id)))
    } catch {
      return undefined
    }
  }

  /**
   * The version numbers a name has used, each with its object's id (a
   * stored version, or one pruned or removed: its number is not given
   * again while the name has versions). A record written before versions
   * (the name key's object, with no version key) is version 1.
   */
  private async versionIds (name: string): Promise<Map<number, string>> {
    const out = new Map<number, string>()
    const prefix = versionsPrefix(name)
    for await (const { key, value } of this.datastore.query({ prefix })) {
      out.set(Number(key.toString().slice(prefix.length)), dec<string>(value))
    }
    const current = await this.nameEntry(name)
    if (typeof current === 'string' && ![...out.values()].includes(current)) {
      out.set((await this.rawObject(current))?.version ?? 1, current)
    }
    return out
  }

  /** The id of the version a name points at, if any */
  async currentId (name: string): Promise<string | undefined> {
    const entry = await this.nameEntry(name)
    return typeof entry === 'string' ? entry : undefined
  }

  /** The stored versions of a name, oldest first (none: no version of it is stored) */
  async versions (name: string): Promise<StoredObject[]> {
    await this.ready()
    const out: StoredObject[] = []
    for (const [version, id] of [...await this.versionIds(name)].sort((a, b) => a[0] - b[0])) {
      const raw = await this.rawObject(id)
      if (raw != null) {
        out.push(await this.hydrate({ ...raw, version }))
      }
    }
    return out
  }

  /**
   * One version of a name. A version the upkeep pruned or `store rm
   * --version` removed says so, and when (`keptFor` words the setting);
   * its record stays for the latest keepRemoved removals
   */
  async findVersion (name: string, version: number, keptFor = this.keptFor): Promise<StoredObject> {
    await this.ready()
    const ids = await this.versionIds(name)
    const id = ids.get(version)
    if (id == null) {
      const known = [...ids.keys()].sort((a, b) => a - b)
      throw new ObjectNotFoundError(known.length === 0
        ? `no stored object is named "${name}"; "store ls" lists them`
        : `"${name}" has no version ${version}: its versions are numbered ${known.join(', ')} (store versions lists those kept)`)
    }
    const raw = await this.rawObject(id)
    if (raw != null) {
      return this.hydrate({ ...raw, version })
    }
    let removed: StoredObject | undefined
    try {
      removed = dec<StoredObject>(await this.datastore.get(new Key(`${REMOVED}/${id}`)))
    } catch {}
    const on = removed?.removedAt != null ? ` on ${new Date(removed.removedAt).toISOString()}` : ''
    throw new VersionPrunedError(removed?.pruned === true
      ? `version ${version} of ${name} was pruned${on}${keptFor === '' ? '' : ` (versions are kept ${keptFor}: storage.versionsKeptFor)`}; store versions lists the versions kept`
      : `version ${version} of ${name} was removed${on} (store rm --version); store versions lists the versions kept`)
  }

  /**
   * The version a name points at: the highest that is not superseded (or,
   * if all are, the highest); absent when none is stored
   */
  private currentOf (versions: Array<{ version: number, raw: RawObject }>): { version: number, raw: RawObject } | undefined {
    const sorted = [...versions].sort((a, b) => b.version - a.version)
    return sorted.find(v => v.raw.supersededAt == null) ?? sorted[0]
  }

  /**
   * An object record from the network's index (another machine restored
   * from the same words, or this one before its data directory was lost).
   * Known by id: nothing changes ('known'), but for a newer record of it
   * (updatedAt) which replaces the local one in its place; an object this
   * node removed is not brought back. Otherwise it is saved with its
   * version key ('added'); a (name, version) that another object holds
   * here (two machines both wrote version 3) gives the imported one the
   * next free number, and of two current versions the older by createdAt
   * is superseded. The name points at the highest version not superseded.
   * The contracts it names must be in the table first (or be imported
   * after: an object reads its contracts when it is read).
   */
  async importObject (object: StoredObject & { contractIds?: string[] }): Promise<'added' | 'known'> {
    await this.ready()
    return this.nameLock.run(object.name, async () => {
      const { contracts, contractIds, ...rest } = object as RawObject
      const ids = [...new Set([
        ...(contractIds ?? []),
        ...Object.keys(contracts ?? {}),
        ...(rest.segments ?? []).flatMap(s => s.shards.map(x => x.contract))
      ])]
      const local = await this.rawObject(object.id)
      if (local != null) {
        if (object.updatedAt != null && object.updatedAt > (local.updatedAt ?? 0)) {
          // the newer record, in the place this node gave it
          await this.datastore.put(objectKeyOf(object.id), enc({ ...rest, contractIds: ids, version: local.version, supersededAt: rest.supersededAt ?? local.supersededAt }))
          this.commits++
        }
        return 'known'
      }
      if (await this.datastore.has(new Key(`${REMOVED}/${object.id}`))) {
        return 'known'
      }
      const taken = await this.versionIds(object.name)
      let version = object.version ?? 1
      if (taken.has(version) && taken.get(version) !== object.id) {
        version = Math.max(0, ...taken.keys()) + 1
      }
      const imported: RawObject = { ...rest, version, contractIds: ids }
      const batch = this.datastore.batch()
      const stored: Array<{ version: number, raw: RawObject }> = [{ version, raw: imported }]
      for (const [v, id] of taken) {
        const raw = await this.rawObject(id)
        if (raw != null) {
          stored.push({ version: v, raw })
        }
      }
      // two current versions of one name (two machines each put one): the older gives way
      const before = this.currentOf(stored.slice(1))
      let changed: RawObject | undefined
      if (imported.supersededAt == null && before != null && before.raw.supersededAt == null) {
        const [older, newer] = before.raw.createdAt <= imported.createdAt ? [before.raw, imported] : [imported, before.raw]
        // from now, not from when the newer was made: the other machine may
        // have used the older as current until this merge, and a prune
        // counted from long ago would delete it at once under it
        older.supersededAt = Date.now()
        older.updatedAt = older.supersededAt
        if (older !== imported) {
          batch.put(objectKeyOf(older.id), enc(older))
          changed = older
        }
      }
      batch.put(objectKeyOf(object.id), enc(imported))
      batch.put(versionKey(object.name, version), enc(object.id))
      for (const { version: v, raw } of stored.slice(1)) {
        // a record written before versions gets its key now
        batch.put(versionKey(object.name, v), enc(raw.id))
      }
      // a put of this name under way keeps its hold (an older version's hold on the name key)
      if (typeof await this.nameEntry(object.name) !== 'object') {
        batch.put(nameKey(object.name), enc(this.currentOf(stored)?.raw.id))
      }
      await batch.commit()
      this.commits++
      if (changed != null) {
        // a local version this one supersedes: its note says so too
        await this.observed('saved', await this.hydrate(changed), async () => {})
      }
      return 'added'
    })
  }

  /** The in-process hold of a name ends (the datastore's is replaced by the object, or released) */
  forgetReservation (name: string): void {
    this.reservedNames.delete(name)
  }

  async savePending (pending: PendingUpload): Promise<void> {
    await this.datastore.put(uploadKey(pending.id), enc(pending))
  }

  async deletePending (id: string): Promise<void> {
    await this.datastore.delete(uploadKey(id))
  }

  async * pendingUploads (): AsyncGenerator<PendingUpload> {
    await this.ready()
    for await (const { value } of this.datastore.query({ prefix: UPLOADS })) {
      yield dec<PendingUpload>(value)
    }
  }

  /**
   * The object, its version key and its name appear together, the version
   * it replaces gets supersededAt, and its upload's record and its hold on
   * the name go, in one batch: only once every shard is stored, so the name
   * points at a whole version at every moment. Sets the object's version
   * (one more than the highest the name has used) and resolves with the
   * version it superseded, if any.
   */
  async commitStored (object: StoredObject): Promise<{ superseded?: StoredObject }> {
    await this.saveContractsOf(object)
    return this.nameLock.run(object.name, async () => {
      const taken = await this.versionIds(object.name)
      object.version = Math.max(0, ...taken.keys()) + 1
      const batch = this.datastore.batch()
      let superseded: StoredObject | undefined
      const current = await this.nameEntry(object.name)
      if (typeof current === 'string') {
        const raw = await this.rawObject(current)
        if (raw != null && raw.supersededAt == null) {
          raw.supersededAt = Date.now()
          raw.updatedAt = raw.supersededAt
          batch.put(objectKeyOf(raw.id), enc(raw))
          superseded = await this.hydrate(raw)
        }
      }
      for (const [v, id] of taken) {
        // a record written before versions gets its key now
        batch.put(versionKey(object.name, v), enc(id))
      }
      batch.put(objectKeyOf(object.id), enc(this.dehydrate(object)))
      batch.put(versionKey(object.name, object.version), enc(object.id))
      batch.put(nameKey(object.name), enc(object.id))
      batch.delete(uploadKey(object.id))
      let hold: { reserved: string } | undefined
      try {
        hold = dec<{ reserved: string }>(await this.datastore.get(reservingKey(object.name)))
      } catch {}
      if (hold?.reserved === object.id) {
        batch.delete(reservingKey(object.name))
      }
      await this.observed('stored', object, async () => batch.commit())
      this.commits++
      if (superseded != null) {
        await this.observed('saved', superseded, async () => {})
      }
      return { superseded }
    })
  }

  // ---- gets under way ----

  /** Name a get's partial file under `key`, so a crash's leftover is removed at the next start (unmarkDownload when done) */
  async markDownload (part: PendingDownload, key: string): Promise<void> {
    await this.datastore.put(new Key(`${DOWNLOADS}/${key}`), enc(part))
  }

  async unmarkDownload (key: string): Promise<void> {
    await this.datastore.delete(new Key(`${DOWNLOADS}/${key}`))
  }

  async * pendingDownloads (): AsyncGenerator<PendingDownload & { key: string }> {
    for await (const { key, value } of this.datastore.query({ prefix: DOWNLOADS })) {
      yield { ...dec<PendingDownload>(value), key: key.toString().slice(DOWNLOADS.length + 1) }
    }
  }

  // ---- ratings and removed objects ----

  /** The ratings a contract ended with, kept after its object is gone */
  async saveRatings (id: string, c: ContractRecord): Promise<void> {
    await this.datastore.put(new Key(`${RATINGS}/${id}`), enc({ host: c.host, ...c.ratings }))
  }

  /**
   * Forget a removed object (one version of its name), keeping what it was
   * (without its segments) for `store info`, indexed by name and by time.
   * Its version key stays while the name has other versions, so `store get
   * --version` of it says it was removed (or pruned: `pruned`); if it was
   * the current version, the highest one left becomes current; if it was
   * the last, the name and its version keys go (a new put starts at 1).
   */
  async commitRemoved (object: StoredObject, removedAt: number, options: { pruned?: boolean } = {}): Promise<void> {
    await this.saveContractsOf(object)
    await this.nameLock.run(object.name, async () => {
      // a copy of each contract as it is now, without the shard lists of every object under it
      const contracts = Object.fromEntries(Object.entries(object.contracts).map(([id, c]) => [id, { ...c, shards: [] }]))
      const batch = this.datastore.batch()
      batch.delete(objectKeyOf(object.id))
      const taken = await this.versionIds(object.name)
      const left: Array<{ version: number, raw: RawObject }> = []
      for (const [v, id] of taken) {
        const raw = id === object.id ? undefined : await this.rawObject(id)
        if (raw != null) {
          left.push({ version: v, raw })
        }
      }
      const named = await this.nameEntry(object.name)
      let current: RawObject | undefined
      if (left.length === 0) {
        for (const v of taken.keys()) {
          batch.delete(versionKey(object.name, v))
        }
        if (named === object.id) {
          batch.delete(nameKey(object.name))
        }
      } else {
        for (const [v, id] of taken) {
          batch.put(versionKey(object.name, v), enc(id))
        }
        if (named === object.id) {
          // the highest version left is current now
          current = left.sort((a, b) => b.version - a.version)[0].raw
          delete current.supersededAt
          current.updatedAt = removedAt
          batch.put(objectKeyOf(current.id), enc(current))
          batch.put(nameKey(object.name), enc(current.id))
        }
      }
      batch.put(new Key(`${REMOVED}/${object.id}`), enc({ ...object, contracts, segments: [], segmentCount: object.segments.length, removedAt, ...(options.pruned === true ? { pruned: true } : {}) }))
      batch.put(removedNameKey(object.name), enc(object.id))
      batch.put(removedOrderKey(removedAt, object.id), enc(object.id))
      await this.observed('removed', object, async () => batch.commit())
      if (current != null) {
        await this.observed('saved', await this.hydrate(current), async () => {})
      }
    })
    await this.pruneRemoved()
  }

  /**
   * The records `store rm` kept before they were indexed by name and by
   * time (until then they are found by id): indexed once
   */
  async indexRemoved (): Promise<void> {
    const done = new Key(REMOVALS_INDEXED)
    if (await this.datastore.has(done)) {
      return
    }
    const latest = new Map<string, StoredObject>()
    const batch = this.datastore.batch()
    for await (const { value } of this.datastore.query({ prefix: `${REMOVED}/` })) {
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
   * Forget the oldest removed objects past keepRemoved: the record grows by
   * one per `store rm`, and nothing but `store info` reads it
   */
  private async pruneRemoved (): Promise<void> {
    const keys: Key[] = []
    for await (const key of this.datastore.queryKeys({ prefix: REMOVED_ORDER })) {
      keys.push(key)
    }
    keys.sort((a, b) => a.toString() < b.toString() ? -1 : 1)
    for (const key of keys.slice(0, Math.max(0, keys.length - this.keepRemoved))) {
      const id = key.toString().slice(-32)
      const batch = this.datastore.batch()
      batch.delete(key)
      try {
        const { name } = dec<StoredObject>(await this.datastore.get(new Key(`${REMOVED}/${id}`)))
        if (dec<string>(await this.datastore.get(removedNameKey(name))) === id) {
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
