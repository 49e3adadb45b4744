import type { Offer } from './offer.ts'

/**
 * The latest valid offer per provider, service and method. Expired offers
 * are dropped; the index holds at most `maxOffers` in all and
 * `maxPerProvider` per provider, so a flood of offers (from many fake
 * providers, or one provider offering many methods) cannot exhaust memory.
 *
 * Beyond the bound in all, an offer of the least trusted provider goes
 * first (of those, the provider with the most offers, then its offer that
 * expires soonest), and this node's own offers never: fresh identities cost
 * nothing, so evicting by expiry let long-lived fakes push out honest offers.
 * Statistics weigh each offer by its provider's trust, so a crowd of fresh
 * identities cannot drag the median either.
 */

export interface IndexedOffer {
  offer: Offer
  /** the signed offer as received: proof a third party can check */
  bytes: Uint8Array
  /** ms since the epoch when this node learned it */
  receivedAt: number
}

export interface PriceIndexInit {
  /** Offers held in all, default 10,000 */
  maxOffers?: number
  /** Offers held per provider, default 100 */
  maxPerProvider?: number
  now?: () => number
  /** A provider's trust score (1 = average, 0 = unknown), default 0 for all */
  trust?: (provider: string) => number
  /** This node's PeerId: its own offers are never evicted */
  self?: string
}

/**
 * The least weight an offer has in statistics: a provider nobody trusts yet
 * still counts, so a new market has prices, but a hundred fresh identities
 * weigh about as much as one peer of average trust.
 */
export const MIN_OFFER_WEIGHT = 0.01

export interface PriceStats {
  service: string
  method: string
  unit: string
  count: number
  /** satoshis per unit */
  min: bigint
  /** weighted by the providers' trust (MIN_OFFER_WEIGHT at the least) */
  median: bigint
  p90: bigint
}

export interface PriceQuery {
  service?: string
  method?: string
}

const key = (o: Offer): string => `${o.provider}|${o.service}|${o.method}`

/** The value at quantile q of values sorted by value, each with its weight */
function weightedQuantile (sorted: Array<{ value: bigint, weight: number }>, q: number): bigint {
  const total = sorted.reduce((s, e) => s + e.weight, 0)
  let seen = 0
  for (const e of sorted) {
    seen += e.weight
    if (seen >= q * total - 1e-12) {
      return e.value
    }
  }
  return sorted[sorted.length - 1].value
}

export class PriceIndex {
  private readonly offers = new Map<string, IndexedOffer>()
  private readonly perProvider = new Map<string, number>()
  private readonly maxOffers: number
  private readonly maxPerProvider: number
  private readonly now: () => number
  private readonly trust: (provider: string) => number
  private readonly self?: string
  private readonly waiters = new Set<{ match: (o: IndexedOffer) => boolean, resolve: (o: IndexedOffer) => void }>()

  constructor (init: PriceIndexInit = {}) {
    this.maxOffers = init.maxOffers ?? 10_000
    this.maxPerProvider = init.maxPerProvider ?? 100
    this.now = init.now ?? Date.now
    this.trust = init.trust ?? (() => 0)
    this.self = init.self
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
        if (this.offers.size >= this.maxOffers && !this.evictLeastTrusted(offer.provider)) {
          // everything held is trusted more: the newcomer waits for room
          return false
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

  /**
   * Make room for an offer of `incoming`: drop an offer of the least trusted
   * provider, if that provider is trusted no more than `incoming`
   */
  private evictLeastTrusted (incoming: string): boolean {
    let worst: { provider: string, trust: number, count: number } | undefined
    for (const [provider, count] of this.perProvider) {
      if (provider === this.self) {
        continue
      }
      const trust = this.trust(provider)
      if (worst == null || trust < worst.trust || (trust === worst.trust && count > worst.count)) {
        worst = { provider, trust, count }
      }
    }
    if (worst == null || (incoming !== this.self && worst.trust > this.trust(incoming))) {
      return false
    }
    const provider = worst.provider
    this.evictSoonest(o => o.offer.provider === provider)
    return true
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
      const weighted = list.map(e => ({ value: e.offer.price, weight: Math.max(MIN_OFFER_WEIGHT, this.trust(e.offer.provider)) }))
        .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))
      const { service, method, unit } = list[0].offer
      return { service, method, unit, count: weighted.length, min: weighted[0].value, median: weightedQuantile(weighted, 0.5), p90: weightedQuantile(weighted, 0.9) }
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
