/**
 * Token buckets, one per (rule, caller), so one caller running into its limit
 * leaves every other caller's budget untouched. The map is bounded: beyond
 * `maxBuckets` the least recently used bucket is dropped, which at worst
 * hands a long-idle caller a fresh full bucket.
 */

export interface RateLimit {
  /** tokens added per second */
  perSecond: number
  /** bucket size: how many calls may come at once */
  burst: number
  /** as written in the config, for messages */
  text: string
}

export interface RateLimiterInit {
  maxBuckets?: number
  now?: () => number
}

interface Bucket {
  tokens: number
  updatedAt: number
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()
  private readonly maxBuckets: number
  private readonly now: () => number

  constructor (init: RateLimiterInit = {}) {
    this.maxBuckets = init.maxBuckets ?? 100_000
    this.now = init.now ?? Date.now
  }

  /** 0 when the call may go ahead (and `cost` tokens are taken, default 1), else ms until it may */
  take (key: string, limit: RateLimit, cost = 1): number {
    const now = this.now()
    let bucket = this.buckets.get(key)
    if (bucket == null) {
      bucket = { tokens: limit.burst, updatedAt: now }
      if (this.buckets.size >= this.maxBuckets) {
        this.buckets.delete(this.buckets.keys().next().value as string)
      }
    } else {
      this.buckets.delete(key)
      bucket.tokens = Math.min(limit.burst, bucket.tokens + (now - bucket.updatedAt) / 1000 * limit.perSecond)
      bucket.updatedAt = now
    }
    // re-inserted so Map order is least recently used first
    this.buckets.set(key, bucket)
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost
      return 0
    }
    return Math.ceil((cost - bucket.tokens) / limit.perSecond * 1000)
  }
}

const PERIODS: Record<string, number> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3600, hour: 3600 }

/** "10/s", "600/m", "100/h", optionally " burst 20" */
export function parseRateLimit (text: string): RateLimit {
  const match = /^\s*([0-9]+(?:\.[0-9]+)?)\s*\/\s*([a-z]+)\s*(?:burst\s+([0-9]+))?\s*$/i.exec(text)
  const period = match == null ? undefined : PERIODS[match[2].toLowerCase()]
  if (match == null || period == null || Number(match[1]) <= 0) {
    throw new TypeError(`"${text}" is not a rate limit: write a count per period, e.g. "10/s", "600/m" or "100/h burst 20"`)
  }
  const count = Number(match[1])
  const burst = match[3] == null ? Math.max(1, Math.floor(count)) : Number(match[3])
  if (burst < 1) {
    throw new TypeError(`"${text}": the burst must be at least 1`)
  }
  return { perSecond: count / period, burst, text: text.trim() }
}
