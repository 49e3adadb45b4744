import { BadRequestError, BodyTooLargeError } from '../../../protocols/rpc/errors.ts'
import { MAX_NOTE_BYTES } from '../../protocol/index-notes.ts'
import { checkArgCount, hexArg } from '../args.ts'
import { MAX_NOTE_LIST_BYTES, MAX_NOTES_PER_RENTER, MIN_NOTE_BYTES_PER_RENTER, NOTE_BYTES_SHARE } from '../constants.ts'
import { NoteQuotaError, NoteWithoutContractError } from '../errors.ts'
import { queryOf, readBody, type HostQuery, type HostRequest } from '../request.ts'
import type { ContractBook, HostContract } from '../contract-book.ts'
import type { NoteStore } from '../note-store.ts'

/**
 * The object index's methods (PROTOCOL.md 8g): note-put, note-list,
 * note-delete and contracts. All four are free (the list price, as `list`):
 * a renter indexes what it pays rent for. Only a renter with a live
 * contract here may put a note, within caps that grow with its contracts.
 */

export interface NotesContext {
  book: ContractBook
  notes: NoteStore
}

export type NoteMethod = 'note-put' | 'note-list' | 'note-delete' | 'contracts'

/** The caller's contracts whose shards this host still holds (not ended: expired ones in their grace included) */
function heldFor (book: ContractBook, caller: string): HostContract[] {
  return book.all().filter(c => c.terms.renter === caller && c.endedAt == null)
}

/** The most bytes of notes `caller` may keep: max(16 MiB, 1% of its live contracts' maxBytes) */
export function noteBytesCap (book: ContractBook, caller: string): number {
  const now = book.now()
  const room = heldFor(book, caller).filter(c => c.terms.end > now).reduce((n, c) => n + c.terms.maxBytes, 0)
  return Math.max(MIN_NOTE_BYTES_PER_RENTER, Math.floor(room * NOTE_BYTES_SHARE))
}

/**
 * The agreement check of a note method, before payment and again in its
 * handler: its args in their one form; for note-put, a body within
 * MAX_NOTE_BYTES and a live contract of the caller's here
 */
export function checkNoteCall (book: ContractBook, method: NoteMethod, q: HostQuery): { id?: string } {
  checkArgCount(method, q.args)
  if (method === 'contracts') {
    return {}
  }
  if (method === 'note-list') {
    return { id: q.args[0] == null ? undefined : hexArg(q.args[0], 'the note id to list after') }
  }
  const id = hexArg(q.args[0], 'the note id')
  if (method === 'note-put') {
    if (q.bodyLength === 0) {
      throw new BadRequestError('a note is at least one byte')
    }
    if (q.bodyLength > MAX_NOTE_BYTES) {
      throw new BodyTooLargeError(`a note is at most ${MAX_NOTE_BYTES} bytes; this one is ${q.bodyLength}`)
    }
    const now = book.now()
    if (!heldFor(book, q.caller).some(c => c.terms.end > now)) {
      throw new NoteWithoutContractError('this host keeps notes only for renters with a live contract here: form a contract first')
    }
  }
  return { id }
}

/** storage.note-put: keep (or replace) a note of the caller's */
export async function notePut (host: NotesContext, req: HostRequest): Promise<{ id: string, bytes: number }> {
  const id = checkNoteCall(host.book, 'note-put', queryOf(req)).id as string
  const note = await readBody(req)
  if (note.byteLength !== req.body.length) {
    throw new BadRequestError(`the note's body is ${note.byteLength} bytes, not the ${req.body.length} its head says`)
  }
  return host.notes.locks.run(req.caller, async () => {
    // again under the lock: the contract may have ended meanwhile
    checkNoteCall(host.book, 'note-put', queryOf(req))
    const { count, bytes } = host.notes.usage(req.caller)
    const before = await host.notes.sizeOf(req.caller, id)
    if (before == null && count + 1 > MAX_NOTES_PER_RENTER) {
      throw new NoteQuotaError(`this host keeps at most ${MAX_NOTES_PER_RENTER} notes per renter, and holds ${count} of yours: delete some first`)
    }
    const cap = noteBytesCap(host.book, req.caller)
    if (bytes - (before ?? 0) + note.byteLength > cap) {
      throw new NoteQuotaError(`this host keeps at most ${cap} bytes of notes for you (max(16 MiB, 1% of your contracts' room here)), and holds ${bytes}: this ${note.byteLength}-byte note is over it`)
    }
    await host.notes.put(req.caller, id, note)
    return { id, bytes: note.byteLength }
  })
}

/** storage.note-list: the caller's notes in id order after the one named, about 1 MiB at most per answer */
export async function noteList (host: NotesContext, req: HostRequest): Promise<{ notes: Array<{ id: string, note: string }>, more: boolean }> {
  const after = checkNoteCall(host.book, 'note-list', queryOf(req)).id
  const { notes, more } = await host.notes.list(req.caller, after, MAX_NOTE_LIST_BYTES)
  return { notes: notes.map(n => ({ id: n.id, note: Buffer.from(n.note).toString('base64') })), more }
}

/** storage.note-delete: forget a note of the caller's (one it does not have is deleted already) */
export async function noteDelete (host: NotesContext, req: HostRequest): Promise<{ id: string, deleted: boolean }> {
  const id = checkNoteCall(host.book, 'note-delete', queryOf(req)).id as string
  const deleted = await host.notes.locks.run(req.caller, async () => host.notes.delete(req.caller, id))
  return { id, deleted }
}

/** One of the caller's contracts, as `contracts` answers it */
export interface RenterContract {
  id: string
  /** ISO times of the terms' start and end */
  start: string
  end: string
  /** past its end (its shards are kept through the rent grace, for get, list and end) */
  ended: boolean
}

/** storage.contracts: the caller's contracts whose shards this host holds, so a restored renter finds them */
export async function contracts (host: Pick<NotesContext, 'book'>, req: HostRequest): Promise<{ contracts: RenterContract[] }> {
  checkNoteCall(host.book, 'contracts', queryOf(req))
  const now = host.book.now()
  return {
    contracts: heldFor(host.book, req.caller)
      .sort((a, b) => a.terms.start - b.terms.start || (a.id < b.id ? -1 : 1))
      .map(c => ({ id: c.id, start: new Date(c.terms.start).toISOString(), end: new Date(c.terms.end).toISOString(), ended: c.terms.end <= now }))
  }
}
