import { createHash } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { Key, type Datastore } from 'interface-datastore'
import { AccessDeniedError, MethodUnsupportedError, ServiceUnsupportedError } from '../../../protocols/rpc/errors.ts'
import { NOTE_PART_BYTES, noteIdOf, openNote, partIdOf, sealNote } from '../../protocol/index-notes.ts'
import { INDEX_DIRTY, INDEX_WRITTEN, NOTE_CALL_MS, NOTE_PUT_ATTEMPTS } from '../../constants.ts'
import { IndexWriteError } from '../../errors.ts'
import { callSignal, type StorageSession } from '../session.ts'
import type { ObjectChange, Records, StoredObject } from '../records.ts'

const log = logger('opencloud:storage:index')

const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

/** An object as its note carries it: the record as the datastore keeps it, and when it was sealed */
export type NoteObject = Omit<StoredObject, 'contracts' | 'repair'> & { contractIds: string[], updatedAt: number }

/** The note of a large object: its record without segments, and the part notes that carry them, in order */
type HeadNote = NoteObject & { segmentParts?: Array<{ id: string, first: number, count: number }> }

/** A part note: `count` segments of an object's record from segment `first` */
interface PartNote {
  part: string
  first: number
  segments: StoredObject['segments']
}

/** A note and its id, sealed */
interface Sealed {
  id: string
  sealed: Uint8Array
}

/** What an object's note said when it was last written, which hosts took it, and the part notes it names */
interface Written {
  hash: string
  hosts: string[]
  parts?: string[]
}

/**
 * An object whose notes may be behind its record: the hosts that may hold
 * a stale one (or one to delete), and part notes that may be left there
 */
interface Dirty {
  hosts: string[]
  parts?: string[]
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

  /**
   * What a note's content is compared by: the record without the marks of
   * shards found lost (this machine's observations, which repair turns into
   * new shards, and those change the note), so a get that finds a host
   * down does not send notes to every host
   */
  private static hashOf (object: StoredObject): string {
    const record = IndexNotes.noteObject(object)
    const segments = record.segments.map(s => ({ ...s, shards: s.shards.map(({ lost: _lost, lostReason: _reason, ...x }) => x) }))
    return createHash('sha256').update(JSON.stringify({ ...record, segments })).digest('hex')
  }

  /** The hosts of an object's live contracts: where its note belongs */
  static hostsOf (object: StoredObject): string[] {
    return [...new Set(Object.values(object.contracts).filter(c => c.ended == null && c.lost == null).map(c => c.host))].sort()
  }

  /**
   * Of hostsOf, those whose every shard of the object is lost: a put moved
   * off them (frozen, failing) and a repair moves the rest. A put's commit
   * does not wait on their note calls (a frozen host would hold it for
   * NOTE_PUT_ATTEMPTS x NOTE_CALL_MS); the next flush writes theirs.
   */
  static movedOff (object: StoredObject): Set<string> {
    const live = new Set(object.segments.flatMap(s => s.shards.filter(shard => shard.lost == null).map(shard => shard.host)))
    return new Set(IndexNotes.hostsOf(object).filter(h => !live.has(h)))
  }

  /**
   * An object's notes, sealed now: one note, or for a large record the
   * part notes of its segments and a note that names them (NOTE_PART_BYTES)
   */
  seal (object: StoredObject): { head: Sealed, parts: Sealed[] } {
    const key = this.key()
    const id = this.noteId(object.id)
    const record = IndexNotes.noteObject(object)
    const whole = enc({ ...record, updatedAt: Date.now() })
    if (whole.byteLength <= NOTE_PART_BYTES) {
      return { head: { id, sealed: sealNote(key, id, whole) }, parts: [] }
    }
    const parts: Array<Sealed & { first: number, count: number }> = []
    const cut = (first: number, segments: StoredObject['segments']): void => {
      const part: PartNote = { part: object.id, first, segments }
      const plain = enc(part)
      const pid = partIdOf(key, object.id, plain)
      parts.push({ id: pid, sealed: sealNote(key, pid, plain), first, count: segments.length })
    }
    let chunk: StoredObject['segments'] = []
    let first = 0
    let bytes = 0
    record.segments.forEach((segment, i) => {
      const size = JSON.stringify(segment).length + 1
      if (chunk.length > 0 && bytes + size > NOTE_PART_BYTES) {
        cut(first, chunk)
        chunk = []
        first = i
        bytes = 0
      }
      chunk.push(segment)
      bytes += size
    })
    cut(first, chunk)
    const head: HeadNote = { ...record, segments: [], segmentParts: parts.map(p => ({ id: p.id, first: p.first, count: p.count })), updatedAt: Date.now() }
    return { head: { id, sealed: sealNote(key, id, enc(head)) }, parts: parts.map(({ id, sealed }) => ({ id, sealed })) }
  }

  /** The part note ids an object's notes name now (none for a small one) */
  partsOf (object: StoredObject): string[] {
    return this.seal(object).parts.map(p => p.id)
  }

  /**
   * Open a note: an object's (its record, or for a large one the record
   * without segments and the parts that carry them) or a part's. Throws
   * (NoteOpenError, IndexWriteError) when it is not this index's or does
   * not carry what its id names.
   */
  openAny (id: string, sealed: Uint8Array): { head: HeadNote } | { part: PartNote } {
    const plain = openNote(this.key(), id, sealed)
    const value = dec<any>(plain)
    if (typeof value?.part === 'string') {
      if (partIdOf(this.key(), value.part, plain) !== id || !Number.isSafeInteger(value.first) || !Array.isArray(value.segments)) {
        throw new IndexWriteError(`note ${id} opens, but is not the part its id names`)
      }
      return { part: value as PartNote }
    }
    if (typeof value?.id !== 'string' || !/^[0-9a-f]{32}$/.test(value.id) || noteIdOf(this.key(), value.id) !== id || !Array.isArray(value.segments) || typeof value.name !== 'string') {
      throw new IndexWriteError(`note ${id} opens, but does not carry the object its id names`)
    }
    return { head: value as HeadNote }
  }

  /** Open an object's note (one without parts): the object it carries */
  open (id: string, sealed: Uint8Array): NoteObject {
    const opened = this.openAny(id, sealed)
    const object = 'head' in opened ? IndexNotes.assemble(opened.head, new Map()) : undefined
    if (object == null) {
      throw new IndexWriteError(`note ${id} is a part, or names parts: read the host's notes (readHost)`)
    }
    return object
  }

  /** An object's note with its segments back from its parts (undefined: a part is missing) */
  static assemble (head: HeadNote, parts: Map<string, PartNote>): NoteObject | undefined {
    const { segmentParts, ...object } = head
    if (segmentParts == null) {
      return object
    }
    const segments: StoredObject['segments'] = []
    for (const p of segmentParts) {
      const part = parts.get(p.id)
      if (part == null || part.part !== head.id || part.first !== segments.length || part.segments.length !== p.count) {
        return undefined
      }
      segments.push(...part.segments)
    }
    return { ...object, segments }
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

  private async mark (id: string, hosts: string[], parts: string[] = []): Promise<void> {
    const before = await this.dirty(id)
    const union = (a: string[] = [], b: string[] = []): string[] => [...new Set([...a, ...b])].sort()
    await this.components.datastore.put(new Key(`${INDEX_DIRTY}/${id}`), enc({ hosts: union(before?.hosts, hosts), parts: union(before?.parts, parts) } satisfies Dirty))
  }

  private async settle (id: string, written: Written | undefined, left: string[], leftParts: string[] = []): Promise<void> {
    const batch = this.components.datastore.batch()
    if (written == null) {
      batch.delete(new Key(`${INDEX_WRITTEN}/${id}`))
    } else {
      batch.put(new Key(`${INDEX_WRITTEN}/${id}`), enc(written))
    }
    if (left.length === 0) {
      batch.delete(new Key(`${INDEX_DIRTY}/${id}`))
    } else {
      batch.put(new Key(`${INDEX_DIRTY}/${id}`), enc({ hosts: left, parts: leftParts } satisfies Dirty))
    }
    await batch.commit()
  }

  /**
   * An object of this node's own whose put has not committed: being
   * committed now, or marked and never settled (a crash between its notes
   * and its commit). Its notes at the hosts are not another machine's.
   */
  async ownUncommitted (id: string): Promise<boolean> {
    return this.committing.has(id) || ((await this.dirty(id)) != null && (await this.written(id)) == null)
  }

  /**
   * This node changed the object since its notes were last written (the
   * rewrite waits for the next flush): the notes at the hosts are its own
   * older ones, not another machine's newer
   */
  async changedHere (id: string): Promise<boolean> {
    return this.committing.has(id) || (await this.dirty(id)) != null
  }

  /** Records that an imported object's note is at `hosts` as it is (recovery: nothing to write) */
  async adopt (object: StoredObject, hosts: string[]): Promise<void> {
    await this.settle(object.id, { hash: IndexNotes.hashOf(object), hosts, parts: this.partsOf(object) }, [])
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
        await this.mark(id, [...(written?.hosts ?? []), ...hosts], written?.parts)
      }
      await write()
      return
    }
    if (kind === 'removed') {
      const hosts = [...new Set([...(written?.hosts ?? []), ...IndexNotes.hostsOf(object)])]
      const parts = [...new Set([...(written?.parts ?? []), ...this.partsOf(object)])]
      await this.mark(id, hosts, parts)
      await write()
      const left = await this.deleteAt(id, hosts, parts)
      await this.settle(id, undefined, left, left.length > 0 ? parts : [])
      return
    }
    // stored: the notes first, then the commit
    const hosts = IndexNotes.hostsOf(object)
    const movedOff = IndexNotes.movedOff(object)
    const notes = this.seal(object)
    const parts = notes.parts.map(p => p.id)
    this.committing.add(id)
    try {
      await this.mark(id, hosts, parts)
      const { took, failed, none } = await this.putAt(notes, hosts.filter(h => !movedOff.has(h)), NOTE_PUT_ATTEMPTS)
      // left to the next flush, as a host that failed is
      failed.push(...[...movedOff].map((h): [string, string] => [h, 'the put moved off it']))
      if (took.length === 0 && failed.length > 0) {
        throw new IndexWriteError(`the object's index note could not be written at any of its ${hosts.length} hosts (${failed.map(([h, e]) => `${h}: ${e}`).join('; ')}), so a restore from the words would not find it: nothing was committed; try the put again`)
      }
      if (took.length === 0) {
        log('no host of %s keeps an index (%s): it is not findable from the words', id, none.join(', '))
      }
      await write()
      // a host that keeps no index is settled too: asking it at every change would only be refused again
      await this.settle(id, { hash: IndexNotes.hashOf(object), hosts: [...took, ...none].sort(), parts }, failed.map(([h]) => h))
    } finally {
      this.committing.delete(id)
    }
  }

  /**
   * Put an object's notes at each host, its parts before the note that
   * names them; resolves with who took them, who failed (and why), and who
   * keeps no index
   */
  private async putAt (notes: { head: Sealed, parts: Sealed[] }, hosts: string[], attempts: number, signal?: AbortSignal): Promise<{ took: string[], failed: Array<[string, string]>, none: string[] }> {
    const took: string[] = []
    const failed: Array<[string, string]> = []
    const none: string[] = []
    await Promise.all(hosts.map(async host => {
      for (let attempt = 1; ; attempt++) {
        try {
          for (const note of [...notes.parts, notes.head]) {
            await this.components.session.notePut(host, note.id, note.sealed, callSignal(signal ?? new AbortController().signal, NOTE_CALL_MS))
          }
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

  /**
   * Delete an object's note at each host, then the part notes named (the
   * note first: no note is left naming a part that is gone); resolves with
   * the hosts that could not be told
   */
  private async deleteAt (objectId: string, hosts: string[], parts: string[] = [], options: { keepHead?: boolean, signal?: AbortSignal } = {}): Promise<string[]> {
    const ids = [...(options.keepHead === true ? [] : [this.noteId(objectId)]), ...parts]
    const left: string[] = []
    await Promise.all(hosts.map(async host => {
      try {
        for (const id of ids) {
          await this.components.session.noteDelete(host, id, callSignal(options.signal ?? new AbortController().signal, NOTE_CALL_MS))
        }
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
        const oldParts = [...new Set([...(dirty.parts ?? []), ...(written?.parts ?? [])])]
        if (object == null) {
          const left = await this.deleteAt(id, old, oldParts, { signal })
          await this.settle(id, undefined, left, left.length > 0 ? oldParts : [])
        } else {
          // a host audits cannot reach now is left for a later flush, not dialled at every check
          const down = new Set(Object.values(object.contracts).filter(c => c.audit?.unreachableSince != null).map(c => c.host))
          const hosts = IndexNotes.hostsOf(object).filter(h => !down.has(h))
          const notes = this.seal(object)
          const parts = notes.parts.map(p => p.id)
          const { took, failed, none } = await this.putAt(notes, hosts, 1, signal)
          // where it no longer belongs: all of it; where it stays: the parts it no longer names.
          // A host that is down still holds the object: its note stays, and is rewritten when it answers
          const gone = await this.deleteAt(id, old.filter(h => !hosts.includes(h) && !down.has(h)), oldParts, { signal })
          const stale = oldParts.filter(p => !parts.includes(p))
          const kept = stale.length === 0 ? [] : await this.deleteAt(id, took, stale, { keepHead: true, signal })
          const left = [...new Set([...failed.map(([h]) => h), ...gone, ...kept, ...down])].sort()
          await this.settle(id, { hash: IndexNotes.hashOf(object), hosts: [...took, ...none].sort(), parts }, left, left.length > 0 ? oldParts.filter(p => gone.length > 0 || !parts.includes(p)) : [])
        }
        settled++
      }, signal)
    }
    return settled
  }

  /**
   * Every object whose notes are at a host, opened and put together from
   * its parts; with the ids of the notes that did not open, and of the
   * objects whose parts are not all there
   */
  async readHost (host: string, signal: AbortSignal): Promise<{ objects: Array<{ noteId: string, object: NoteObject }>, unopened: string[], incomplete: string[] }> {
    const heads: Array<{ noteId: string, head: HeadNote }> = []
    const parts = new Map<string, PartNote>()
    const unopened: string[] = []
    let after: string | undefined
    for (;;) {
      const page = await this.components.session.noteList(host, after, callSignal(signal, NOTE_CALL_MS))
      for (const n of page.notes) {
        try {
          const opened = this.openAny(n.id, n.note)
          if ('part' in opened) {
            parts.set(n.id, opened.part)
          } else {
            heads.push({ noteId: n.id, head: opened.head })
          }
        } catch {
          unopened.push(n.id)
        }
      }
      if (!page.more || page.notes.length === 0) {
        break
      }
      after = page.notes[page.notes.length - 1].id
    }
    const objects: Array<{ noteId: string, object: NoteObject }> = []
    const incomplete: string[] = []
    for (const { noteId, head } of heads) {
      const object = IndexNotes.assemble(head, parts)
      if (object == null) {
        incomplete.push(head.id)
      } else {
        objects.push({ noteId, object })
      }
    }
    return { objects, unopened, incomplete }
  }
}
