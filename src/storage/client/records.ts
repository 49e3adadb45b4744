import { Key, type Datastore } from 'interface-datastore'
import { KeyedLock } from '../../utils/keyed-lock.ts'
import { ContractTable } from './contract-table.ts'
import type { ContractRecord, PendingDownload, PendingUpload, SegmentRecord, StoredObject } from './record-types.ts'
import { CONTRACTS_SHARED, DOWNLOADS, NAMES, OBJECTS, RATINGS, REMOVALS_INDEXED, REMOVED, REMOVED_NAMES, REMOVED_ORDER, UPLOADS } from '../constants.ts'
import { ObjectBeingStoredError, ObjectExistsError, ObjectNotFoundError } from '../errors.ts'

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
}

/** The client's records in its datastore */
export class Records {
  private readonly datastore: Datastore
  private readonly keepRemoved: number
  /** one change to the object records at a time (see exclusive) */
  private readonly lock = new KeyedLock()
  /** names reserved by puts running in this process (the datastore holds them too, see reserveName) */
  private readonly reservedNames = new Set<string>()
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
  private async hydrate (raw: StoredObject & { contractIds?: string[] }): Promise<StoredObject> {
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
    return out.sort((a, b) => a.name.localeCompare(b.name))
  }

  /** An object by name or by id */
  async find (nameOrId: string): Promise<StoredObject> {
    await this.ready()
    let id = nameOrId
    try {
      const named = dec<string | { reserved: string }>(await this.datastore.get(nameKey(nameOrId)))
      if (typeof named !== 'string') {
        throw new ObjectNotFoundError(`"${nameOrId}" is being stored right now; it can be used once its put is done ("store ls" lists what is stored)`)
      }
      id = named
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        throw err
      }
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
   * object is committed and delete one after it is removed
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
   * Hold a name for a put from its start: one name, one object, whichever
   * put asks first. Held in this process (a set, checked and taken before
   * any wait) and in the datastore (so it outlives a crash until
   * cleanUploads releases it, and the name cannot be taken meanwhile). The
   * datastore's hold is written with the upload's record in one batch: a
   * crash at any point after leaves a record that cleanUploads finds, so no
   * name stays held by a put that is gone.
   */
  async reserveName (name: string, pending: PendingUpload): Promise<void> {
    if (this.reservedNames.has(name)) {
      throw new ObjectBeingStoredError(`an object named "${name}" is being stored right now by another put; wait for it (store ls), or choose another --name`)
    }
    this.reservedNames.add(name)
    try {
      if (await this.datastore.has(nameKey(name))) {
        const held = dec<string | { reserved: string }>(await this.datastore.get(nameKey(name)))
        throw typeof held === 'string'
          ? new ObjectExistsError(`an object named "${name}" is stored already; remove it first (store rm ${JSON.stringify(name)}) or choose another --name`)
          : new ObjectBeingStoredError(`an object named "${name}" is being stored right now by another put; wait for it (store ls), or choose another --name`)
      }
      const batch = this.datastore.batch()
      batch.put(nameKey(name), enc({ reserved: pending.id }))
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
    try {
      const held = dec<string | { reserved: string }>(await this.datastore.get(nameKey(name)))
      if (typeof held !== 'string' && held.reserved === objectId) {
        await this.datastore.delete(nameKey(name))
      }
    } catch {}
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

  /** The object and its name appear together, and its upload's record goes: only once every shard is stored */
  async commitStored (object: StoredObject): Promise<void> {
    await this.saveContractsOf(object)
    const batch = this.datastore.batch()
    batch.put(objectKeyOf(object.id), enc(this.dehydrate(object)))
    batch.put(nameKey(object.name), enc(object.id))
    batch.delete(uploadKey(object.id))
    await this.observed('stored', object, async () => batch.commit())
    this.commits++
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
   * Forget a removed object, keeping what it was (without its segments) for
   * `store info`, indexed by name and by time
   */
  async commitRemoved (object: StoredObject, removedAt: number): Promise<void> {
    await this.saveContractsOf(object)
    // a copy of each contract as it is now, without the shard lists of every object under it
    const contracts = Object.fromEntries(Object.entries(object.contracts).map(([id, c]) => [id, { ...c, shards: [] }]))
    const batch = this.datastore.batch()
    batch.delete(objectKeyOf(object.id))
    batch.delete(nameKey(object.name))
    batch.put(new Key(`${REMOVED}/${object.id}`), enc({ ...object, contracts, segments: [], segmentCount: object.segments.length, removedAt }))
    batch.put(removedNameKey(object.name), enc(object.id))
    batch.put(removedOrderKey(removedAt, object.id), enc(object.id))
    await this.observed('removed', object, async () => batch.commit())
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

  // ---- the object index (helper R's minimal one; wp-versions writes the real one with versions) ----

  /**
   * An object record from the network index (recovery, another machine
   * with the same words): known by id, nothing changes ('known'); else it
   * is saved, and takes its name when the name is free or names an older
   * object (the other stays stored, found by its id)
   */
  async importObject (object: StoredObject): Promise<'added' | 'known'> {
    await this.ready()
    return this.lock.run('import', async () => {
      if (await this.datastore.has(objectKeyOf(object.id))) {
        return 'known'
      }
      let takeName = true
      try {
        const held = dec<string | { reserved: string }>(await this.datastore.get(nameKey(object.name)))
        if (typeof held !== 'string') {
          takeName = false
        } else {
          const other = dec<StoredObject>(await this.datastore.get(objectKeyOf(held)))
          takeName = other.createdAt < object.createdAt
        }
      } catch {}
      await this.saveContractsOf(object)
      const batch = this.datastore.batch()
      batch.put(objectKeyOf(object.id), enc(this.dehydrate(object)))
      if (takeName) {
        batch.put(nameKey(object.name), enc(object.id))
      }
      await batch.commit()
      this.commits++
      return 'added'
    })
  }
}
