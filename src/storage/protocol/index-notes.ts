import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { TAG_BYTES } from './crypto.ts'

/**
 * The object index at the hosts (PROTOCOL.md 8g): each stored object's
 * record is sealed under a key derived from the wallet's seed and put as a
 * small note at every host that holds one of its shards, so the mnemonic
 * alone finds and opens it again on a fresh machine.
 *
 * - index key = HKDF-SHA256(ikm = BIP39 seed, salt = "opencloud-index", info = "v1", 32)
 * - note id = hex(HMAC-SHA256(index key, "object:" || object id)): a host
 *   cannot tell which object a note is for, and the renter finds the note of
 *   an object it knows without listing
 * - a large object's segments go in part notes, each under
 *   hex(HMAC-SHA256(index key, "part:" || object id || ":" || hex(SHA-256(part plaintext)))):
 *   named by their content, so a rewrite puts new parts beside the old
 *   ones and the object's note switches to them in one write
 * - sealed = 0x01 || 12-byte random nonce || AES-256-GCM(plaintext) || 16-byte tag,
 *   with the note id's 32 bytes as additional data (a note cannot be moved
 *   under another id)
 */

/** the first byte of a sealed note: its format */
export const NOTE_FORMAT = 0x01
export const NOTE_NONCE_BYTES = 12
/** the largest sealed note a host keeps (PROTOCOL.md 8g) */
export const MAX_NOTE_BYTES = 256 * 1024

export class NoteOpenError extends Error {
  override name = 'NoteOpenError'
}

export function indexKeyFromSeed (seed: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', seed, 'opencloud-index', 'v1', 32))
}

/** The note id of an object (its id as the records spell it, 32 hex digits) */
export function noteIdOf (indexKey: Uint8Array, objectId: string): string {
  return createHmac('sha256', indexKey).update('object:' + objectId, 'utf8').digest('hex')
}

/**
 * The most plaintext bytes of segments one part note carries: its sealed
 * note stays well under MAX_NOTE_BYTES, and an object whose record is
 * larger (about 100 segments of 8 shards, 400 MiB at 4 MiB segments) is
 * split into parts
 */
export const NOTE_PART_BYTES = 192 * 1024

/** The note id of a part of an object's record, from the part's plaintext */
export function partIdOf (indexKey: Uint8Array, objectId: string, plain: Uint8Array): string {
  const digest = createHash('sha256').update(plain).digest('hex')
  return createHmac('sha256', indexKey).update(`part:${objectId}:${digest}`, 'utf8').digest('hex')
}

/** Seal a note's plaintext under the index key; `nonce` only for test vectors (default random) */
export function sealNote (indexKey: Uint8Array, noteId: string, plain: Uint8Array, nonce: Uint8Array = randomBytes(NOTE_NONCE_BYTES)): Uint8Array {
  if (nonce.byteLength !== NOTE_NONCE_BYTES) {
    throw new Error(`a note's nonce is ${NOTE_NONCE_BYTES} bytes`)
  }
  const cipher = createCipheriv('aes-256-gcm', indexKey, nonce)
  cipher.setAAD(Buffer.from(noteId, 'hex'))
  const body = Buffer.concat([cipher.update(plain), cipher.final()])
  return new Uint8Array(Buffer.concat([Buffer.from([NOTE_FORMAT]), nonce, body, cipher.getAuthTag()]))
}

/** Open a sealed note; NoteOpenError when it is not one of this index key's under this id */
export function openNote (indexKey: Uint8Array, noteId: string, sealed: Uint8Array): Uint8Array {
  if (sealed.byteLength < 1 + NOTE_NONCE_BYTES + TAG_BYTES || sealed[0] !== NOTE_FORMAT) {
    throw new NoteOpenError(`note ${noteId} is not a sealed note of format ${NOTE_FORMAT}`)
  }
  const nonce = sealed.subarray(1, 1 + NOTE_NONCE_BYTES)
  const decipher = createDecipheriv('aes-256-gcm', indexKey, nonce)
  decipher.setAAD(Buffer.from(noteId, 'hex'))
  decipher.setAuthTag(sealed.subarray(sealed.byteLength - TAG_BYTES))
  try {
    return new Uint8Array(Buffer.concat([decipher.update(sealed.subarray(1 + NOTE_NONCE_BYTES, sealed.byteLength - TAG_BYTES)), decipher.final()]))
  } catch {
    throw new NoteOpenError(`note ${noteId} does not open with this index key (another wallet's, or changed)`)
  }
}
