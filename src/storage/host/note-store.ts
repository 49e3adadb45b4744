import { Key, type Datastore } from 'interface-datastore'
import { KeyedLock } from '../../utils/keyed-lock.ts'
import { NOTES_PREFIX } from './constants.ts'

/**
 * The renters' notes this host keeps (PROTOCOL.md 8g): small sealed blobs a
 * renter puts under ids of its own choosing (its object index, which only
 * it can open), one datastore key each under NOTES_PREFIX/<renter>/<note id>,
 * so a put replaces a note in one write (a crash leaves the old note or the
 * new one, never half of either). What each renter keeps (count and bytes)
 * is counted in memory, loaded at start, so the caps are checked without a
 * scan.
 */
export class NoteStore {
  private readonly datastore: Datastore
  private readonly totals = new Map<string, { count: number, bytes: number }>()
  /** one change per renter at a time: its totals follow its notes */
  readonly locks = new KeyedLock()

  constructor (datastore: Datastore) {
    this.datastore = datastore
  }

  private key (renter: string, id: string): Key {
    return new Key(`${NOTES_PREFIX}/${renter}/${id}`)
  }

  async load (): Promise<void> {
    this.totals.clear()
    for await (const { key, value } of this.datastore.query({ prefix: NOTES_PREFIX })) {
      const renter = key.toString().slice(NOTES_PREFIX.length + 1).split('/')[0]
      const t = this.totalsOf(renter)
      t.count++
      t.bytes += value.byteLength
    }
  }

  private totalsOf (renter: string): { count: number, bytes: number } {
    let t = this.totals.get(renter)
    if (t == null) {
      t = { count: 0, bytes: 0 }
      this.totals.set(renter, t)
    }
    return t
  }

  /** How many notes a renter keeps here, and their bytes */
  usage (renter: string): { count: number, bytes: number } {
    return { ...(this.totals.get(renter) ?? { count: 0, bytes: 0 }) }
  }

  /** The size of a note held, undefined when there is none (the caller holds the renter's lock) */
  async sizeOf (renter: string, id: string): Promise<number | undefined> {
    try {
      return (await this.datastore.get(this.key(renter, id))).byteLength
    } catch {
      return undefined
    }
  }

  /** Write (or replace) a note; the caller holds the renter's lock and checked the caps */
  async put (renter: string, id: string, note: Uint8Array): Promise<void> {
    const before = await this.sizeOf(renter, id)
    await this.datastore.put(this.key(renter, id), note)
    const t = this.totalsOf(renter)
    t.count += before == null ? 1 : 0
    t.bytes += note.byteLength - (before ?? 0)
  }

  /** Delete a note; resolves with whether there was one (the caller holds the renter's lock) */
  async delete (renter: string, id: string): Promise<boolean> {
    const before = await this.sizeOf(renter, id)
    if (before == null) {
      return false
    }
    await this.datastore.delete(this.key(renter, id))
    const t = this.totalsOf(renter)
    t.count--
    t.bytes -= before
    return true
  }

  /**
   * A renter's notes in id order after `after`, until `maxBytes` of them
   * (at least one): with whether more follow
   */
  async list (renter: string, after: string | undefined, maxBytes: number): Promise<{ notes: Array<{ id: string, note: Uint8Array }>, more: boolean }> {
    const prefix = `${NOTES_PREFIX}/${renter}/`
    // the ids first, then only the notes of this page: a free call must not
    // read a renter's whole index (up to 100,000 notes) into memory
    const ids: string[] = []
    for await (const key of this.datastore.queryKeys({ prefix })) {
      const id = key.toString().slice(prefix.length)
      if (after == null || id > after) {
        ids.push(id)
      }
    }
    ids.sort()
    const notes: Array<{ id: string, note: Uint8Array }> = []
    let bytes = 0
    for (const id of ids) {
      let note: Uint8Array
      try {
        note = await this.datastore.get(this.key(renter, id))
      } catch {
        // deleted since it was listed
        continue
      }
      if (notes.length > 0 && bytes + note.byteLength > maxBytes) {
        return { notes, more: true }
      }
      notes.push({ id, note })
      bytes += note.byteLength
    }
    return { notes, more: false }
  }

  /** Renters with notes here */
  renters (): string[] {
    return [...this.totals].filter(([, t]) => t.count > 0).map(([r]) => r)
  }

  /**
   * Delete every note of a renter (its last contract is gone), if `gone`
   * still says so under the renter's lock (a note-put checks its contract
   * under the same lock); resolves with how many
   */
  async deleteAll (renter: string, gone: () => boolean = () => true): Promise<number> {
    return this.locks.run(renter, async () => {
      if (!gone()) {
        return 0
      }
      let n = 0
      for await (const key of this.datastore.queryKeys({ prefix: `${NOTES_PREFIX}/${renter}/` })) {
        await this.datastore.delete(key)
        n++
      }
      this.totals.delete(renter)
      return n
    })
  }
}
