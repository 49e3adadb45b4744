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

export function bodyFromBytes (bytes: Uint8Array): OutgoingBody {
  if (bytes.byteLength === 0) {
    return EMPTY_BODY
  }
  return {
    length: bytes.byteLength,
    sha256: Uint8Array.from(createHash('sha256').update(bytes).digest()),
    open: async function * () {
      for (let offset = 0; offset < bytes.byteLength; offset += MAX_DATA_FRAME) {
        yield bytes.subarray(offset, offset + MAX_DATA_FRAME)
      }
    }
  }
}

async function * readFile (path: string, start: number, length: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const handle = await open(path, 'r')
  try {
    let position = start
    const end = start + length
    while (position < end) {
      signal?.throwIfAborted()
      // a fresh buffer per chunk: the consumer may hold it until it is sent
      const chunk = Buffer.allocUnsafe(Math.min(MAX_DATA_FRAME, end - position))
      const { bytesRead } = await handle.read(chunk, 0, chunk.byteLength, position)
      if (bytesRead === 0) {
        throw new Error(`${path} shrank while it was being sent`)
      }
      position += bytesRead
      yield chunk.subarray(0, bytesRead)
    }
  } finally {
    await handle.close()
  }
}

/** A file body: hashed once now (`onChunk` sees the progress), read again when sent */
export async function bodyFromFile (path: string, signal?: AbortSignal, onChunk?: (chunk: Uint8Array) => void): Promise<OutgoingBody> {
  const { size } = await stat(path)
  const hash = createHash('sha256')
  for await (const chunk of readFile(path, 0, size, signal)) {
    hash.update(chunk)
    onChunk?.(chunk)
  }
  return {
    length: size,
    sha256: Uint8Array.from(hash.digest()),
    open: (s) => readFile(path, 0, size, s)
  }
}
