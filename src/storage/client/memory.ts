import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Slots } from '../../utils/slots.ts'

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
let collect: ((options?: { type?: 'major' | 'minor', execution?: 'sync' | 'async', flavor?: 'regular' | 'last-resort' }) => unknown) | undefined | null

/** Bytes of ArrayBuffers, live or garbage, above which a collection runs */
const PILED_UP = 48 * 1024 * 1024

function loadCollect (): void {
  if (collect === undefined) {
    try {
      // --expose-gc set at run time, then gc() taken from a fresh context
      setFlagsFromString('--expose-gc')
      collect = runInNewContext('gc')
    } catch {
      collect = null
    }
  }
}

export function releaseSegmentMemory (): void {
  holdYoungGeneration()
  loadCollect()
  // only when buffers have piled up: a collection costs tens of ms, which
  // every segment cannot afford (a get ran at 24 MB/s collecting after every
  // segment, 29 MB/s with this threshold, 33 MB/s never collecting)
  if (process.memoryUsage().arrayBuffers > PILED_UP) {
    collect?.({ type: 'major', execution: 'sync' })
  }
}

/**
 * The young generation V8 may grow to while the node moves segments.
 *
 * V8 sizes the young generation (new space) from the machine's memory and
 * doubles it while allocation runs fast: during a put or a get it grew to
 * 134 MB on a 24 GB machine, while the objects alive in it stayed under
 * 20 MB. The segments' bytes are outside the V8 heap, so a larger young
 * generation buys nothing here, and the space it took was most of what a
 * put or get added to a client node (bench/storage: heapTotal 35 -> 172 MB
 * through a 512 MiB put). Past this size it is held where it is
 * (`--semi-space-growth-factor=1`, which V8 reads each time it would grow;
 * set back to 2 when a collection has shrunk it). The maximum itself can
 * only be set when the process starts (`--max-semi-space-size`, which an
 * operator may put in NODE_OPTIONS).
 */
const YOUNG_GENERATION = 16 * 1024 * 1024
let youngHeld: boolean | undefined

function youngSize (): number {
  return getHeapSpaceStatistics().find(s => s.space_name === 'new_space')?.space_size ?? 0
}

function holdYoungGeneration (): void {
  const hold = youngSize() >= YOUNG_GENERATION
  if (hold !== youngHeld) {
    youngHeld = hold
    try {
      setFlagsFromString(`--semi-space-growth-factor=${hold ? 1 : 2}`)
    } catch {}
  }
}

/** transfers (puts, gets, repairs) under way in this process */
let transfers = 0

/**
 * Growth of the resident size since the last collection that gave memory
 * back, below which the last transfer to end gives none back: a transfer
 * that moved one small segment, or none (a put refused for want of hosts,
 * a get of an unknown name), has nothing to give back, and the collection
 * stops the process for its whole heap: 170 to 500 ms in a test process
 * holding seven nodes, paid by every put, get and repair. A transfer of
 * 4 MiB segments grows it by more than this within its first segments.
 */
const GREW = 32 * 1024 * 1024
let residentAfterCollect = process.memoryUsage.rss()

/**
 * Around one transfer: when the last one running ends, a collection that
 * gives memory back to the system (V8's last-resort flavour, as under
 * memory pressure: the heap shrinks to what is alive, the young generation
 * to its smallest), and the same before the first one if the young
 * generation has grown past the hold. A regular major collection frees the
 * garbage but keeps the pages, so a daemon stayed at its peak once a put was
 * done (370 MB idle after ten concurrent puts). Costs tens of ms in a
 * daemon (more in a process with a larger heap), once per transfer that
 * left something to give back (GREW).
 */
export async function inTransfer<T> (work: () => Promise<T>): Promise<T> {
  const end = beginTransfer()
  try {
    return await work()
  } finally {
    end()
  }
}

/**
 * The start of a transfer whose work is not one promise (a get's byte
 * stream, read at the pace of its reader): as inTransfer, and the function
 * it returns ends it (call it once)
 */
export function beginTransfer (): () => void {
  // the first one: if the young generation grew past the hold meanwhile
  // (a daemon's start grows it to 64 MB), shrunk before the segments come
  if (transfers++ === 0 && youngSize() > YOUNG_GENERATION) {
    giveMemoryBack()
  }
  holdYoungGeneration()
  let ended = false
  return () => {
    if (ended) {
      return
    }
    ended = true
    if (--transfers === 0 && process.memoryUsage.rss() - residentAfterCollect > GREW) {
      giveMemoryBack()
    }
  }
}

function giveMemoryBack (): void {
  loadCollect()
  try {
    collect?.({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  } catch {}
  holdYoungGeneration()
  residentAfterCollect = process.memoryUsage.rss()
}

/**
 * Segments held in memory at once by all the transfers of a node (puts,
 * gets, repairs together): each is its plaintext, its sealed bytes and its
 * shards, about (2 + N/K) x the segment size, so ten concurrent puts held
 * ten of them (a daemon peaked at 444 MB and idled at 370 MB after ten
 * concurrent puts). A transfer takes a slot for each segment it codes or
 * fetches and gives it back when the segment is written or stored; a get's
 * segment fetched ahead takes one too.
 */
export class SegmentSlots extends Slots {}
