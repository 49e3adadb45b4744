import type { PriceIndex } from './price-index.ts'

/** No offer of a method is known yet: there is nobody to choose */
export class NoProviderError extends Error {
  override name = 'NoProviderError'
}

/** There is no market price of a method yet to bound a payment by */
export class NoMarketPriceError extends Error {
  override name = 'NoMarketPriceError'
}

/**
 * Providers for a method from the market, best first, weighing trust with
 * price: among the offers at most half again as dear as the cheapest, the
 * most trusted first (the cheapest among equals), then the rest by price.
 * A caller tries them in order, so a provider that cannot be reached (a
 * fake identity, a node gone offline) is passed over. `me` is never chosen.
 */
export async function selectProviders (index: PriceIndex, trust: (peer: string) => Promise<number>, query: { service: string, method: string, me: string }): Promise<string[]> {
  const offers = index.query({ service: query.service, method: query.method }).filter(e => e.offer.provider !== query.me)
  if (offers.length === 0) {
    throw new NoProviderError(`no provider of ${query.service}.${query.method} is known from the market yet`)
  }
  const ceiling = offers[0].offer.price * 3n / 2n
  const near = offers.filter(e => e.offer.price <= ceiling)
  const scores = new Map(await Promise.all(near.map(async e => [e.offer.provider, await trust(e.offer.provider)] as const)))
  // stable: equal scores keep their price order
  near.sort((a, b) => (scores.get(b.offer.provider) ?? 0) - (scores.get(a.offer.provider) ?? 0))
  return [...new Set([...near, ...offers.filter(e => e.offer.price > ceiling)].map(e => e.offer.provider))]
}

/**
 * The most to pay for a call at market price: the median offer for the
 * method times `factor`, for the units the call uses (MiB of body for
 * MiB-priced methods, else one).
 */
export function marketMaxPrice (index: PriceIndex, query: { service: string, method: string, bodyLength: number, factor?: number }): bigint {
  const [stats] = index.stats({ service: query.service, method: query.method })
  if (stats == null) {
    throw new NoMarketPriceError(`no market price is known for ${query.service}.${query.method} yet: give --max-price as an amount, e.g. --max-price 500sat`)
  }
  const units = stats.unit === 'MiB' ? Math.max(1, Math.ceil(query.bodyLength / (1024 * 1024))) : 1
  // factor in thousandths keeps the arithmetic in integers
  return stats.median * BigInt(units) * BigInt(Math.round((query.factor ?? 1.5) * 1000)) / 1000n
}
