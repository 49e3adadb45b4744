import { createHash } from 'node:crypto'
import { open, stat } from 'node:fs/promises'
import { EMPTY_SHA256, MAX_DATA_FRAME } from './constants.ts'

/**
 * An outgoing body: its length and SHA-256 are known before the first byte
 * is sent, because both are part of the signed head. `open()` is called when
 * the receiver is ready and yields the bytes in order. A body over
 * EAGER_BODY_LIMIT is opened at most once per call, so it may be a one-shot
 * stream; the client keeps a copy of smaller ones for retries.
 *
 * Knowing the digest up front costs a file one extra read (SHA-256 runs at
 * over 1 GB/s here). In exchange the server checks signature, nonce, policy
 * and payment before it accepts a byte of body, and a storage host can treat
 * the signed digest as the content address.
 */
export interface OutgoingBody {
  length: number
  sha256: Uint8Array
  open: (signal?: AbortSignal) => AsyncIterable<Uint8Array>
}

export const EMPTY_BODY: OutgoingBody = {
  length: 0,
  sha256: EMPTY_SHA256,
  open: async function * () {}
}

/**
 * Bodies whose bytes are held in memory, so that opening them again costs
 * nothing: a call keeps a small body for its retries, and need not collect
 * one of these first
 */
const IN_MEMORY = new WeakSet<OutgoingBody>([EMPTY_BODY])

/** Whether `body` can be opened again at no cost */
export function isInMemory (body: OutgoingBody): boolean {
  return IN_MEMORY.has(body)
}

/** Mark a body whose `open()` yields bytes already in memory, as often as it is called */
export function inMemory (body: OutgoingBody): OutgoingBody {
  IN_MEMORY.add(body)
  return body
}

export function bodyFromBytes (bytes: Uint8Array): OutgoingBody {
  if (bytes.byteLength === 0) {
    return EMPTY_BODY
  }
  return inMemory({
    length: bytes.byteLength,
    sha256: Uint8Array.from(createHash('sha256').update(bytes).digest()),
    open: async function * () {
      for (let offset = 0; offset < bytes.byteLength; offset += MAX_DATA_FRAME) {
        yield bytes.subarray(offset, offset + MAX_DATA_FRAME)
      }
    }
  })
}

/**
 * How much a file body reads at once. Reads go to libuv's thread pool, one
 * promise each; 1 MiB reads cost a quarter of the round trips of 256 KiB
 * frames (writeData splits them), and keep a body's memory at a few MiB.
 */
const FILE_READ_BYTES = 1024 * 1024

/** The hashing pass reads in larger pieces into two buffers it reuses: nothing holds them */
const HASH_READ_BYTES = 4 * 1024 * 1024

/**
 * A file's bytes in order, with the next read already in flight while the
 * consumer handles the last one: the read (a copy on the thread pool) and
 * the consumer's work (hashing, or encrypting and sending) overlap.
 * `reuse` passes two buffers back and forth, for consumers that are done
 * with a chunk when they ask for the next one; otherwise each chunk is a
 * fresh buffer the consumer may keep (a send queue holds it until it is
 * written).
 */
async function * readFile (path: string, start: number, length: number, readBytes: number, signal?: AbortSignal, reuse = false): AsyncGenerator<Uint8Array> {
  const handle = await open(path, 'r')
  const spare = reuse ? [Buffer.allocUnsafe(Math.min(readBytes, length)), Buffer.allocUnsafe(Math.min(readBytes, length))] : []
  let turn = 0
  const end = start + length
  let position = start
  const readAt = async (at: number): Promise<Uint8Array> => {
    const chunk = reuse ? spare[turn ^= 1] : Buffer.allocUnsafe(Math.min(readBytes, end - at))
    const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.byteLength, end - at), at)
    return chunk.subarray(0, bytesRead)
  }
  let next: Promise<Uint8Array> | undefined
  try {
    next = position < end ? readAt(position) : undefined
    while (next != null) {
      signal?.throwIfAborted()
      const chunk = await next
      next = undefined
      if (chunk.byteLength === 0) {
        throw new Error(`${path} shrank while it was being sent`)
      }
      position += chunk.byteLength
      if (position < end) {
        next = readAt(position)
      }
      yield chunk
    }
  } finally {
    // a read still in flight when the consumer stopped must end before the handle closes
    await next?.catch(() => {})
    await handle.close()
  }
}

/**
 * A file body whose SHA-256 the caller already has (from a pass of its own
 * that read the same bytes: a Merkle tree, an encoder), so the file is read
 * once, when it is sent. A file that changed since is refused by the
 * receiver's digest check.
 */
export function hashedFileBody (path: string, length: number, sha256: Uint8Array): OutgoingBody {
  return { length, sha256, open: (s) => readFile(path, 0, length, FILE_READ_BYTES, s) }
}

/**
 * A file body: hashed once now (`onChunk` sees the progress; its chunk is
 * reused once it returns), read again when sent. The hashing pass costs what SHA-256 costs (about 1.4 GB/s on
 * one core here): its reads overlap the hashing, in 4 MiB pieces.
 */
export async function bodyFromFile (path: string, signal?: AbortSignal, onChunk?: (chunk: Uint8Array) => void): Promise<OutgoingBody> {
  const { size } = await stat(path)
  const hash = createHash('sha256')
  for await (const chunk of readFile(path, 0, size, HASH_READ_BYTES, signal, true)) {
    hash.update(chunk)
    onChunk?.(chunk)
  }
  return hashedFileBody(path, size, Uint8Array.from(hash.digest()))
}
