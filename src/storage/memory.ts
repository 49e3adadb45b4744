import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * A full garbage collection between segments of a put or get.
 *
 * A segment's buffers (the plaintext, the sealed bytes, the shards, and the
 * frames and ciphertext the transport makes of them) outlive several
 * scavenges, so they are promoted and wait for a major collection, which V8
 * starts only after tens of MB of them pile up: a daemon measured 135 MB over
 * its idle size while storing a 192 MiB file, most of it garbage. One major
 * collection per segment (a few ms against the ~0.5 s a segment takes to
 * send) keeps the node at its idle size plus about two segments, whatever
 * the file's size.
 */
let collect: ((options?: { type?: 'major' | 'minor', execution?: 'sync' | 'async' }) => unknown) | undefined | null

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
  collect?.({ type: 'major', execution: 'sync' })
}
