import { BadRequestError } from '../../protocols/rpc/errors.ts'
import { formatAmount, Units } from '../../protocols/units.ts'
import type { Market } from '../../market/market.ts'
import type { IndexedOffer, PriceStats } from '../../market/price-index.ts'
import type { Service } from '../interface.ts'

export const MARKET_SERVICE = 'market'

export interface MarketServiceComponents {
  market: Market
}

export function offerJson (e: IndexedOffer): Record<string, unknown> {
  const o = e.offer
  return {
    provider: o.provider,
    service: o.service,
    method: o.method,
    unit: o.unit,
    price: formatAmount(o.price),
    currency: o.currency,
    capacity: o.capacity.toString(),
    issuedAt: new Date(o.issuedAt).toISOString(),
    validUntil: new Date(o.validUntil).toISOString(),
    receivedAt: new Date(e.receivedAt).toISOString(),
    // the signed offer, so a third party can check it (PROTOCOL.md, "Market")
    signed: Buffer.from(e.bytes).toString('base64')
  }
}

export function statsJson (s: PriceStats): Record<string, unknown> {
  return { service: s.service, method: s.method, unit: s.unit, count: s.count, min: formatAmount(s.min), median: formatAmount(s.median), p90: formatAmount(s.p90), currency: 'BTC' }
}

function query (args: string[]): { service?: string, method?: string } {
  const [service, method] = args
  for (const name of [service, method]) {
    if (name != null && !/^[a-z][a-z0-9-]*$/.test(name)) {
      throw new BadRequestError(`"${name}" is not a service or method name`)
    }
  }
  return { service, method }
}

/** Core service: this node's knowledge of market prices (seed: "Core services") */
export function marketService (components: MarketServiceComponents): Service {
  const { market } = components
  return {
    name: MARKET_SERVICE,
    version: '1.0.0',
    description: 'market prices this node has seen gossiped, per provider, and their statistics',
    methods: {
      prices: {
        description: 'the latest valid offer of each provider, cheapest first',
        args: '[service] [method]',
        unit: Units.CALL,
        handle: async ({ args }) => ({ json: market.index.query(query(args)).map(offerJson) })
      },
      stats: {
        description: 'count, min, median and p90 price per service, method and unit',
        args: '[service] [method]',
        unit: Units.CALL,
        handle: async ({ args }) => ({ json: market.index.stats(query(args)).map(statsJson) })
      }
    }
  }
}
