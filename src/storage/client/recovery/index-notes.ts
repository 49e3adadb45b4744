import { createHash } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { Key, type Datastore } from 'interface-datastore'
import { AccessDeniedError, MethodUnsupportedError, ServiceUnsupportedError } from '../../../protocols/rpc/errors.ts'
import { noteIdOf, openNote, sealNote } from '../../protocol/index-notes.ts'
import { INDEX_DIRTY, INDEX_WRITTEN, NOTE_CALL_MS, NOTE_PUT_ATTEMPTS } from '../../constants.ts'
import { IndexWriteError } from '../../errors.ts'
import { callSignal, type StorageSession } from '../session.ts'
import type { ObjectChange, Records, StoredObject } from '../records.ts'

const log = logger('opencloud:storage:index')

const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

/** An object as its note carries it: the record as the datastore keeps it, and when it was sealed */
export type NoteObject = Omit<StoredObject, 'contracts' | 'repair'> & { contractIds: string[], updatedAt: number }

/** What an object's note said when it was last written, and which hosts took it */
interface Written {
  hash: string
  hosts: string[]
}

/** An object whose notes may be behind its record: the hosts that may hold a stale one (or one to delete) */
interface Dirty {
  hosts: string[]
}

export interface IndexNotesComponents {
  datastore: Datastore
  records: Records
  session: StorageSession
  /** the index key (Wallet.indexKey); undefined: this node keeps no index (a client without a wallet) */
  indexKey: () => Uint8Array | undefined
}

/** A host that answers that it keeps no index (an older version, storage off, no live contract there) */
export function noIndexAt (err: unknown): boolean {
  return err instanceof MethodUnsupportedError || err instanceof ServiceUnsupportedError || err instanceof AccessDeniedError
}

/**
 * Keeps the object index at the hosts (PROTOCOL.md 8g) in step with the
 * records, through the records' one observer:
 *
 * - a put's commit seals the object's note and puts it at every host of
 *   its live contracts BEFORE the object is committed locally: a put that
 *   returns is findable from the words. The put goes on when at least one
 *   host took the note (the others are left to the next check); when none
 *   could be reached it fails (IndexWriteError) and nothing is committed,
 *   unless no host keeps an index at all (older hosts: no index there).
 * - an object saved by upkeep (a repair moved shards, a version was
 *   superseded) whose note would change is marked, and its note rewritten
 *   at the next check (flush), also at the new hosts, and deleted where it
 *   no longer belongs;
 * - a removal marks the object, commits, then deletes its notes.
 *
 * The marks (INDEX_DIRTY) are written before the change they follow, so a
 * kill -9 at any point leaves either the old note or the new one at each
 * host and a mark that the next check finishes; an interrupted put's mark
 * names an object that was never committed, so its notes are deleted.
 */
export class IndexNotes {
  private readonly components: IndexNotesComponents
  /** objects whose put is committing in this process: flush leaves their marks alone */
  private readonly committing = new Set<string>()

  constructor (components: IndexNotesComponents) {
    this.components = components
    components.records.onObjectChange(async (kind, object, write) => this.observe(kind, object, write))
  }

  get enabled (): boolean {
    return this.components.indexKey() != null
  }

  private key (): Uint8Array {
    const key = this.components.indexKey()
    if (key == null) {
      throw new Error('this node keeps no object index')
    }
    return key
  }

  /** The note id of an object */
  noteId (objectId: string): string {
    return noteIdOf(this.key(), objectId)
  }

  /** What an object's note carries (without the time it is sealed at) */
  static noteObject (object: StoredObject): Omit<NoteObject, 'updatedAt'> {
    // the repair state is this machine's upkeep, not the index's
    const { contracts, repair: _repair, ...rest } = object
    return { ...rest, contractIds: Object.keys(contracts) }
  }

  private static hashOf (object: StoredObject): string {
    return createHash('sha256').update(JSON.stringify(IndexNotes.noteObject(object))).digest('hex')
  }

  /** The hosts of an object's live contracts: where its note belongs */
  static hostsOf (object: StoredObject): string[] {
    return [...new Set(Object.values(object.contracts).filter(c => c.ended == null && c.lost == null).map(c => c.host))].sort()
  }

  /** A sealed note of an object, now */
  seal (object: StoredObject): { id: string, sealed: Uint8Array } {
    const id = this.noteId(object.id)
    const plain = enc({ ...IndexNotes.noteObject(object), updatedAt: Date.now() })
    return { id, sealed: sealNote(this.key(), id, plain) }
  }

  /** Open a note: the object it carries (NoteOpenError when it is not this index's) */
  open (id: string, sealed: Uint8Array): NoteObject {
    const object = dec<NoteObject>(openNote(this.key(), id, sealed))
    if (typeof object?.id !== 'string' || !/^[0-9a-f]{32}$/.test(object.id) || noteIdOf(this.key(), object.id) !== id || !Array.isArray(object.segments) || typeof object.name !== 'string') {
      throw new IndexWriteError(`note ${id} opens, but does not carry the object its id names`)
    }
    return object
  }

  private async written (id: string): Promise<Written | undefined> {
    try {
      return dec<Written>(await this.components.datastore.get(new Key(`${INDEX_WRITTEN}/${id}`)))
    } catch {
      return undefined
    }
  }

  private async dirty (id: string): Promise<Dirty | undefined> {
    try {
      return dec<Dirty>(await this.components.datastore.get(new Key(`${INDEX_DIRTY}/${id}`)))
    } catch {
      return undefined
    }
  }

  private async mark (id: string, hosts: string[]): Promise<void> {
    const before = await this.dirty(id)
    await this.components.datastore.put(new Key(`${INDEX_DIRTY}/${id}`), enc({ hosts: [...new Set([...(before?.hosts ?? []), ...hosts])].sort() }))
  }

  private async settle (id: string, written: Written | undefined, left: string[]): Promise<void> {
    const batch = this.components.datastore.batch()
    if (written == null) {
      batch.delete(new Key(`${INDEX_WRITTEN}/${id}`))
    } else {
      batch.put(new Key(`${INDEX_WRITTEN}/${id}`), enc(written))
    }
    if (left.length === 0) {
      batch.delete(new Key(`${INDEX_DIRTY}/${id}`))
    } else {
      batch.put(new Key(`${INDEX_DIRTY}/${id}`), enc({ hosts: left }))
    }
    await batch.commit()
  }

  /** Records that an imported object's note is at `hosts` as it is (recovery: nothing to write) */
  async adopt (object: StoredObject, hosts: string[]): Promise<void> {
    await this.settle(object.id, { hash: IndexNotes.hashOf(object), hosts }, [])
  }

  /** The records' observer: see the class comment */
  private async observe (kind: ObjectChange, object: StoredObject, write: () => Promise<void>): Promise<void> {
    if (!this.enabled) {
      await write()
      return
    }
    const id = object.id
    const written = await this.written(id)
    if (kind === 'saved') {
      const hash = IndexNotes.hashOf(object)
      const hosts = IndexNotes.hostsOf(object)
      if (written == null || written.hash !== hash || written.hosts.join() !== hosts.join()) {
        await this.mark(id, [...(written?.hosts ?? []), ...hosts])
      }
      await write()
      return
    }
    if (kind === 'removed') {
      const hosts = [...new Set([...(written?.hosts ?? []), ...IndexNotes.hostsOf(object)])]
      await this.mark(id, hosts)
      await write()
      const left = await this.deleteAt(id, hosts)
      await this.settle(id, undefined, left)
      return
    }
    // stored: the notes first, then the commit
    const hosts = IndexNotes.hostsOf(object)
    this.committing.add(id)
    try {
      await this.mark(id, hosts)
      const { took, failed, none } = await this.putAt(object, hosts, NOTE_PUT_ATTEMPTS)
      if (took.length === 0 && failed.length > 0) {
        throw new IndexWriteError(`the object's index note could not be written at any of its ${hosts.length} hosts (${failed.map(([h, e]) => `${h}: ${e}`).join('; ')}), so a restore from the words would not find it: nothing was committed; try the put again`)
      }
      if (took.length === 0) {
        log('no host of %s keeps an index (%s): it is not findable from the words', id, none.join(', '))
      }
      await write()
      await this.settle(id, { hash: IndexNotes.hashOf(object), hosts: took }, failed.map(([h]) => h))
    } finally {
      this.committing.delete(id)
    }
  }

  /** Put an object's note at each host; resolves with who took it, who failed (and why), and who keeps no index */
  private async putAt (object: StoredObject, hosts: string[], attempts: number, signal?: AbortSignal): Promise<{ took: string[], failed: Array<[string, string]>, none: string[] }> {
    const { id, sealed } = this.seal(object)
    const took: string[] = []
    const failed: Array<[string, string]> = []
    const none: string[] = []
    await Promise.all(hosts.map(async host => {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.components.session.notePut(host, id, sealed, callSignal(signal ?? new AbortController().signal, NOTE_CALL_MS))
          took.push(host)
          return
        } catch (err: any) {
          if (noIndexAt(err)) {
            none.push(host)
            return
          }
          if (attempt >= attempts || signal?.aborted === true) {
            failed.push([host, err.message])
            return
          }
        }
      }
    }))
    return { took: took.sort(), failed, none }
  }

  /** Delete an object's note at each host; resolves with the hosts that could not be told */
  private async deleteAt (objectId: string, hosts: string[], signal?: AbortSignal): Promise<string[]> {
    const id = this.noteId(objectId)
    const left: string[] = []
    await Promise.all(hosts.map(async host => {
      try {
        await this.components.session.noteDelete(host, id, callSignal(signal ?? new AbortController().signal, NOTE_CALL_MS))
      } catch (err: any) {
        if (!noIndexAt(err)) {
          left.push(host)
        }
      }
    }))
    return left.sort()
  }

  /**
   * Objects stored before the index existed (or whose note was never
   * recorded) are marked, so the next flush writes their notes
   */
  async backfill (): Promise<number> {
    if (!this.enabled) {
      return 0
    }
    let n = 0
    for (const object of await this.components.records.list()) {
      if (await this.written(object.id) == null && await this.dirty(object.id) == null) {
        await this.mark(object.id, IndexNotes.hostsOf(object))
        n++
      }
    }
    return n
  }

  /**
   * Bring every marked object's notes in step (the check runs it): a
   * stored object's note is written at its hosts and deleted where it no
   * longer belongs; an object not stored (removed, or a put that never
   * committed) has its notes deleted. What could not be done stays marked.
   * Resolves with how many objects were settled.
   */
  async flush (signal: AbortSignal): Promise<number> {
    if (!this.enabled) {
      return 0
    }
    const { datastore, records } = this.components
    const marked: Array<[string, Dirty]> = []
    for await (const { key, value } of datastore.query({ prefix: INDEX_DIRTY })) {
      marked.push([key.baseNamespace(), dec<Dirty>(value)])
    }
    let settled = 0
    for (const [id, dirty] of marked) {
      signal.throwIfAborted()
      if (this.committing.has(id)) {
        continue
      }
      await records.exclusive(async () => {
        const written = await this.written(id)
        let object: StoredObject | undefined
        try {
          const found = await records.find(id)
          object = found.id === id ? found : undefined
        } catch {}
        const old = [...new Set([...dirty.hosts, ...(written?.hosts ?? [])])]
        if (object == null) {
          const left = await this.deleteAt(id, old, signal)
          await this.settle(id, undefined, left)
        } else {
          const hosts = IndexNotes.hostsOf(object)
          const { took, failed } = await this.putAt(object, hosts, 1, signal)
          const gone = old.filter(h => !hosts.includes(h))
          const left = await this.deleteAt(id, gone, signal)
          await this.settle(id, { hash: IndexNotes.hashOf(object), hosts: took }, [...failed.map(([h]) => h), ...left].sort())
        }
        settled++
      }, signal)
    }
    return settled
  }

  /** Every note of this node's at a host, opened; with the ids of those that did not open */
  async readHost (host: string, signal: AbortSignal): Promise<{ objects: Array<{ noteId: string, object: NoteObject }>, unopened: string[] }> {
    const objects: Array<{ noteId: string, object: NoteObject }> = []
    const unopened: string[] = []
    let after: string | undefined
    for (;;) {
      const page = await this.components.session.noteList(host, after, callSignal(signal, NOTE_CALL_MS))
      for (const n of page.notes) {
        try {
          objects.push({ noteId: n.id, object: this.open(n.id, n.note) })
        } catch {
          unopened.push(n.id)
        }
      }
      if (!page.more || page.notes.length === 0) {
        return { objects, unopened }
      }
      after = page.notes[page.notes.length - 1].id
    }
  }
}
