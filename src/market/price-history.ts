import type { PriceIndex, PriceStats } from './price-index.ts'

/** One sample of the market: every service's statistics at a time */
export interface PricePoint extends PriceStats {
  /** ms since the epoch */
  at: number
}

export interface PriceHistoryInit {
  /** How often the market is sampled, default 60 s: a price chart over a day needs no finer steps */
  intervalMs?: number
  /** Samples kept per service and method, default 1,440 (a day at the default interval): memory stays bounded however long the node runs */
  maxPoints?: number
  now?: () => number
}

/**
 * The market's prices over time, for the dashboard's chart: the offer
 * index holds only the latest offer of each provider, so the node samples
 * its statistics at an interval and keeps the last day of them in memory
 * (a restart begins a new history; prices gossiped anew refill it).
 */
export class PriceHistory {
  private readonly index: Pick<PriceIndex, 'stats'>
  private readonly intervalMs: number
  private readonly maxPoints: number
  private readonly now: () => number
  private readonly points = new Map<string, PricePoint[]>()
  private timer?: ReturnType<typeof setInterval>

  constructor (index: Pick<PriceIndex, 'stats'>, init: PriceHistoryInit = {}) {
    this.index = index
    this.intervalMs = init.intervalMs ?? 60_000
    this.maxPoints = init.maxPoints ?? 1_440
    this.now = init.now ?? Date.now
  }

  start (): void {
    this.sample()
    this.timer = setInterval(() => { this.sample() }, this.intervalMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Take one sample now */
  sample (): void {
    const at = this.now()
    for (const s of this.index.stats()) {
      const key = `${s.service}.${s.method}`
      const list = this.points.get(key) ?? []
      list.push({ ...s, at })
      if (list.length > this.maxPoints) {
        list.splice(0, list.length - this.maxPoints)
      }
      this.points.set(key, list)
    }
  }

  /** Every sample since `since` (ms), oldest first */
  list (since = 0): PricePoint[] {
    return [...this.points.values()].flat().filter(p => p.at >= since).sort((a, b) => a.at - b.at || a.service.localeCompare(b.service) || a.method.localeCompare(b.method))
  }
}
