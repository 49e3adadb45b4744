import type { Offer } from './offer.ts'

/**
 * The latest valid offer per provider, service and method. Expired offers
 * are dropped; the index holds at most `maxOffers` in all and
 * `maxPerProvider` per provider, so a flood of offers (from many fake
 * providers, or one provider offering many methods) cannot exhaust memory:
 * beyond the bound the offer that expires soonest goes first.
 */

export interface IndexedOffer {
  offer: Offer
  /** the signed offer as received: proof a third party can check */
  bytes: Uint8Array
  /** ms since the epoch when this node learned it */
  receivedAt: number
}

export interface PriceIndexInit {
  maxOffers?: number
  maxPerProvider?: number
  now?: () => number
}

export interface PriceStats {
  service: string
  method: string
  unit: string
  count: number
  /** satoshis per unit */
  min: bigint
  median: bigint
  p90: bigint
}

export interface PriceQuery {
  service?: string
  method?: string
}

const key = (o: Offer): string => `${o.provider}|${o.service}|${o.method}`

/** The value at quantile q of sorted values (nearest rank) */
function quantile (sorted: bigint[], q: number): bigint {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

export class PriceIndex {
  private readonly offers = new Map<string, IndexedOffer>()
  private readonly perProvider = new Map<string, number>()
  private readonly maxOffers: number
  private readonly maxPerProvider: number
  private readonly now: () => number
  private readonly waiters = new Set<{ match: (o: IndexedOffer) => boolean, resolve: (o: IndexedOffer) => void }>()

  constructor (init: PriceIndexInit = {}) {
    this.maxOffers = init.maxOffers ?? 10_000
    this.maxPerProvider = init.maxPerProvider ?? 100
    this.now = init.now ?? Date.now
  }

  get size (): number {
    return this.offers.size
  }

  /** The offer held for this provider, service and method */
  latest (provider: string, service: string, method: string): IndexedOffer | undefined {
    return this.offers.get(`${provider}|${service}|${method}`)
  }

  /** Keep an offer if it is newer than the one held; returns whether it was kept */
  put (offer: Offer, bytes: Uint8Array): boolean {
    const now = this.now()
    if (offer.validUntil <= now) {
      return false
    }
    const k = key(offer)
    const held = this.offers.get(k)
    if (held != null && held.offer.issuedAt >= offer.issuedAt) {
      return false
    }
    if (held == null) {
      const count = this.perProvider.get(offer.provider) ?? 0
      if (count >= this.maxPerProvider) {
        this.evictSoonest(o => o.offer.provider === offer.provider)
      }
      if (this.offers.size >= this.maxOffers) {
        this.prune()
        if (this.offers.size >= this.maxOffers) {
          this.evictSoonest(() => true)
        }
      }
      this.perProvider.set(offer.provider, (this.perProvider.get(offer.provider) ?? 0) + 1)
    }
    const entry = { offer, bytes, receivedAt: now }
    this.offers.set(k, entry)
    for (const waiter of this.waiters) {
      if (waiter.match(entry)) {
        this.waiters.delete(waiter)
        waiter.resolve(entry)
      }
    }
    return true
  }

  private remove (k: string): void {
    const entry = this.offers.get(k)
    if (entry == null) {
      return
    }
    this.offers.delete(k)
    const count = (this.perProvider.get(entry.offer.provider) ?? 1) - 1
    if (count <= 0) {
      this.perProvider.delete(entry.offer.provider)
    } else {
      this.perProvider.set(entry.offer.provider, count)
    }
  }

  private evictSoonest (filter: (o: IndexedOffer) => boolean): void {
    let soonest: [string, IndexedOffer] | undefined
    for (const entry of this.offers) {
      if (filter(entry[1]) && (soonest == null || entry[1].offer.validUntil < soonest[1].offer.validUntil)) {
        soonest = entry
      }
    }
    if (soonest != null) {
      this.remove(soonest[0])
    }
  }

  /** Drop expired offers */
  prune (): void {
    const now = this.now()
    for (const [k, entry] of this.offers) {
      if (entry.offer.validUntil <= now) {
        this.remove(k)
      }
    }
  }

  query (q: PriceQuery = {}): IndexedOffer[] {
    this.prune()
    return [...this.offers.values()]
      .filter(e => (q.service == null || e.offer.service === q.service) && (q.method == null || e.offer.method === q.method))
      .sort((a, b) => (a.offer.price < b.offer.price ? -1 : a.offer.price > b.offer.price ? 1 : 0) || a.offer.provider.localeCompare(b.offer.provider))
  }

  stats (q: PriceQuery = {}): PriceStats[] {
    const groups = new Map<string, IndexedOffer[]>()
    for (const e of this.query(q)) {
      const k = `${e.offer.service}|${e.offer.method}|${e.offer.unit}`
      groups.set(k, [...(groups.get(k) ?? []), e])
    }
    return [...groups.values()].map(list => {
      const prices = list.map(e => e.offer.price).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      const { service, method, unit } = list[0].offer
      return { service, method, unit, count: prices.length, min: prices[0], median: quantile(prices, 0.5), p90: quantile(prices, 0.9) }
    }).sort((a, b) => `${a.service}.${a.method}`.localeCompare(`${b.service}.${b.method}`))
  }

  /** Resolve when an offer matching `match` arrives (for benchmarks and tests) */
  async waitFor (match: (o: IndexedOffer) => boolean, signal?: AbortSignal): Promise<IndexedOffer> {
    const held = [...this.offers.values()].find(match)
    if (held != null) {
      return held
    }
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve }
      this.waiters.add(waiter)
      signal?.addEventListener('abort', () => {
        this.waiters.delete(waiter)
        reject(signal.reason)
      }, { once: true })
    })
  }
}
