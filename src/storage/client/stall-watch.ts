import { UPLOAD_PROBE_MS, UPLOAD_STALL_FACTOR, UPLOAD_STALL_MIN_MS } from '../constants.ts'
import { HostStalledError } from '../errors.ts'
import type { StorageClientComponents } from './interface.ts'

export interface StallWatchInit {
  /** the put's code: a segment has N shards, and may wait on ⌊(N-K)/2⌋ (at least one) of them */
  k: number
  n: number
  /** whether a host is left to move a slot to: without one, no transfer is stopped (stopping it would fail the put) */
  hasSpare: () => boolean
  /** the put's signal: the pings end with it */
  signal: AbortSignal
}

/** One shard transfer the watch follows (StallWatch.begin) */
export interface WatchedTransfer {
  /** aborted, with a HostStalledError as its reason, when the watch stops the transfer */
  signal: AbortSignal
  /** the shard is stored: its time counts towards the median, and its segment waits on one shard fewer */
  stored: () => void
  /** the transfer is over, however it ended */
  end: () => void
}

interface Running {
  started: number
  host: string
  slot: number
  segment: number
  stall: AbortController
  probing: boolean
  probeAgainAt: number
}

/**
 * A put's overdrive (renterd's): it stops a shard transfer that holds up
 * its segment long after the other hosts took theirs, so the put moves the
 * slot to another host rather than stand still for the transfer timeout
 * (see UPLOAD_STALL_FACTOR for when, and why a ping decides).
 */
export class StallWatch {
  private readonly init: StallWatchInit
  private readonly alive: StorageClientComponents['alive']
  private readonly laggards: number
  /** how long the put's recent shard transfers took, ms (the last 2N) */
  private readonly recent: number[] = []
  private readonly running = new Set<Running>()
  /** segment -> its shards not stored yet */
  private readonly waitingOn = new Map<number, number>()
  private readonly timer: ReturnType<typeof setInterval>

  constructor (alive: StorageClientComponents['alive'], init: StallWatchInit) {
    this.alive = alive
    this.init = init
    this.laggards = Math.max(1, Math.floor((init.n - init.k) / 2))
    this.timer = setInterval(() => { this.check() }, 100)
    this.timer.unref?.()
  }

  /** Follow the transfer of shard `slot` of `segment` to `host` */
  begin (host: string, slot: number, segment: number): WatchedTransfer {
    const r: Running = { started: performance.now(), host, slot, segment, stall: new AbortController(), probing: false, probeAgainAt: 0 }
    this.running.add(r)
    return {
      signal: r.stall.signal,
      stored: () => {
        this.recent.push(performance.now() - r.started)
        if (this.recent.length > 2 * this.init.n) {
          this.recent.shift()
        }
        this.waitingOn.set(segment, (this.waitingOn.get(segment) ?? this.init.n) - 1)
      },
      end: () => { this.running.delete(r) }
    }
  }

  /** Every shard of `segment` is stored */
  segmentDone (segment: number): void {
    this.waitingOn.delete(segment)
  }

  stop (): void {
    clearInterval(this.timer)
  }

  private check (): void {
    const { recent, init } = this
    if (recent.length < 2 || !init.hasSpare()) {
      return
    }
    const median = [...recent].sort((a, b) => a - b)[recent.length >> 1]
    const limit = Math.max(UPLOAD_STALL_MIN_MS, UPLOAD_STALL_FACTOR * median)
    const now = performance.now()
    for (const r of this.running) {
      if (r.stall.signal.aborted || r.probing || now - r.started <= limit || now < r.probeAgainAt || (this.waitingOn.get(r.segment) ?? init.n) > this.laggards) {
        continue
      }
      const stop = (why: string): void => {
        r.stall.abort(new HostStalledError(`host ${r.host} held shard ${r.slot + 1} of segment ${r.segment} for ${Math.round(performance.now() - r.started)} ms while the other hosts had taken theirs (their recent shards took ${Math.round(median)} ms at the median)${why}`))
      }
      if (this.alive == null) {
        stop('')
        continue
      }
      // a slow host answers a ping; a frozen one does not. One that
      // answers is asked again after another `limit`
      r.probing = true
      void this.alive(r.host, AbortSignal.any([init.signal, AbortSignal.timeout(UPLOAD_PROBE_MS)])).then(answered => {
        if (!answered && this.running.has(r)) {
          stop(`, and did not answer a ping within ${UPLOAD_PROBE_MS} ms`)
        }
        r.probeAgainAt = performance.now() + limit
        r.probing = false
      })
    }
  }
}
