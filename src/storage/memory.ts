import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * A full garbage collection between segments of a put or get, when needed.
 *
 * A segment's buffers (the plaintext, the sealed bytes, the shards, and the
 * frames and ciphertext the transport makes of them) outlive several
 * scavenges, so they are promoted and wait for a major collection, which V8
 * starts only after tens of MB of them pile up: a daemon measured 135 MB over
 * its idle size while storing a 192 MiB file, most of it garbage. A major
 * collection between segments once buffers pass 48 MB keeps the node at its
 * idle size plus a few segments, whatever the file's size
 * (test/storage/cli.test.ts holds a daemon under 300 MB through 192 MiB).
 */
let collect: ((options?: { type?: 'major' | 'minor', execution?: 'sync' | 'async' }) => unknown) | undefined | null

/** Bytes of ArrayBuffers, live or garbage, above which a collection runs */
const PILED_UP = 48 * 1024 * 1024

export function releaseSegmentMemory (): void {
  if (collect === undefined) {
    try {
      // --expose-gc set at run time, then gc() taken from a fresh context
      setFlagsFromString('--expose-gc')
      collect = runInNewContext('gc')
    } catch {
      collect = null
    }
  }
  // only when buffers have piled up: a collection costs tens of ms, which
  // every segment cannot afford (a get ran at 24 MB/s collecting after every
  // segment, 29 MB/s with this threshold, 33 MB/s never collecting)
  if (process.memoryUsage().arrayBuffers > PILED_UP) {
    collect?.({ type: 'major', execution: 'sync' })
  }
}
