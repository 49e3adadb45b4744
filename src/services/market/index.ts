import { Gauge, type Registry } from 'prom-client'
import { PriceHistory, type PriceHistoryInit } from '../../market/price-history.ts'
import { BadRequestError } from '../../protocols/rpc/errors.ts'
import { logger } from '@libp2p/logger'
import { formatAmount, parseAmount, Units } from '../../protocols/units.ts'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import type { Market } from '../../market/market.ts'
import type { IndexedOffer, PriceStats } from '../../market/price-index.ts'
import type { Service } from '../interface.ts'
import type { ServiceModuleDefinition } from '../module.ts'
import type { PeerId } from '@libp2p/interface'

export const MARKET_SERVICE = 'market'

const log = logger('opencloud:market')

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

/** A price this many times the market median needs confirming: likely a unit mistake */
export const PRICE_CONFIRM_FACTOR = 10n

/** How often a peer's offers are pulled again when it connects again, 10 minutes */
const OFFERS_SYNC_MS = 600_000

/** A pull that failed is tried again after 1 s, then 2 s (3 attempts in all) while the peer stays connected */
const OFFERS_SYNC_ATTEMPTS = 3

export class PriceRefusedError extends Error {
  override name = 'PriceRefusedError'
}

/** What the market module runs besides the market itself */
export interface PriceDesk {
  /**
   * Set this node's price for a method (satoshis per unit), announce it,
   * and keep it in config.json. Refused when payments are off (no call
   * could pay it) and, unless `confirm`, when it is more than ten times the
   * market median of other providers: that is most often a unit mistake.
   */
  setPrice: (service: string, method: string, sats: bigint, options?: { confirm?: boolean }) => Promise<{ offer?: IndexedOffer, persisted: boolean }>
}

function marketQuery (url: URL): { service?: string, method?: string } {
  return { service: url.searchParams.get('service') ?? undefined, method: url.searchParams.get('method') ?? undefined }
}

/**
 * The market module: the `market` service, the control API's market
 * routes, setting a price, and taking in the offers a newly met peer holds
 * (its `market.prices` answer, each offer checked as if gossiped), at most
 * once per peer per 10 minutes: a node that joins late sees the whole
 * market at once rather than after the next re-announce.
 */
export const marketModule: ServiceModuleDefinition = {
  name: MARKET_SERVICE,
  create: ({ market, registry, libp2p, chain, caller, saveConfig, metrics, options }) => {
    const history = new PriceHistory(market.index, options.market as PriceHistoryInit | undefined)
    marketMetrics(metrics, market)
    const syncedAt = new Map<string, number>()
    /** retries waiting to run, cleared at stop */
    const retries = new Set<ReturnType<typeof setTimeout>>()
    const syncOffers = async (peer: PeerId, attempt = 0): Promise<void> => {
      const key = peer.toString()
      if (libp2p.status !== 'started' || (attempt === 0 && Date.now() - (syncedAt.get(key) ?? 0) < OFFERS_SYNC_MS)) {
        return
      }
      if (syncedAt.size > 10_000) {
        syncedAt.clear()
      }
      syncedAt.set(key, Date.now())
      try {
        const response = await caller.plainCall(peer, { service: MARKET_SERVICE, method: 'prices', signal: AbortSignal.timeout(10_000) })
        const list = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
        const added = Array.isArray(list) ? market.importOffers(list.map((e: any) => Buffer.from(String(e.signed), 'base64'))) : 0
        log('took %d offers from %p', added, peer)
      } catch (err: any) {
        log('no offers from %p (attempt %d) - %s', peer, attempt + 1, err.message)
        // a stream closed while a loaded peer was still opening the
        // connection is common; gossip does not make up for it where the
        // peer's pubsub stream to this identity is another connection's
        // (two machines with the same words), so try again while connected
        if (attempt + 1 < OFFERS_SYNC_ATTEMPTS && libp2p.getConnections(peer).length > 0) {
          const timer = setTimeout(() => { retries.delete(timer); void syncOffers(peer, attempt + 1) }, 1000 * 2 ** attempt)
          timer.unref()
          retries.add(timer)
        }
      }
    }
    const onConnect = (evt: CustomEvent<PeerId>): void => { void syncOffers(evt.detail) }
    const desk: PriceDesk = {
      setPrice: async (service, method, sats, options = {}) => {
        registry.resolve(service, method)
        if (sats > 0n && chain == null) {
          throw new PriceRefusedError('payments are off (payments.chain is empty), so no call could pay a price: set payments.chain in config.json to an Esplora API URL first (npm run chain starts a local one)')
        }
        const me = libp2p.peerId.toString()
        const others = market.index.query({ service, method }).filter(e => e.offer.provider !== me).map(e => e.offer.price).sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
        const median = others.length === 0 ? 0n : others[Math.floor((others.length - 1) / 2)]
        if (options.confirm !== true && median > 0n && sats > median * PRICE_CONFIRM_FACTOR) {
          throw new PriceRefusedError(`${formatAmount(sats)} per unit is more than ${PRICE_CONFIRM_FACTOR} times the market median of ${formatAmount(median)}; if that is what you mean, confirm it (market price set --yes; in the control API, "confirm": true)`)
        }
        const persisted = await saveConfig(raw => {
          raw.services ??= {}
          raw.services[service] ??= {}
          raw.services[service].prices ??= {}
          raw.services[service].prices[method] = `${sats} sat`
        })
        const offer = await market.setPrice(service, method, sats)
        return { offer: offer == null ? undefined : market.index.latest(offer.provider, offer.service, offer.method), persisted }
      }
    }
    return {
      services: [marketService({ market })],
      engine: desk,
      errors: [[PriceRefusedError, 409]],
      routes: {
        'GET /v1/market/prices': async ({ url, json }) => { json(200, market.index.query(marketQuery(url)).map(offerJson)) },
        'GET /v1/market/stats': async ({ url, json }) => { json(200, market.index.stats(marketQuery(url)).map(statsJson)) },
        // the dashboard's price chart: samples of the statistics, oldest first (PriceHistory)
        'GET /v1/market/history': async ({ url, json }) => {
          const since = url.searchParams.has('since') ? Date.parse(url.searchParams.get('since') ?? '') : 0
          if (Number.isNaN(since)) {
            throw new HttpError(400, 'since is a time: /v1/market/history?since=2026-12-01T00:00:00Z')
          }
          json(200, { points: history.list(since).map(p => ({ at: new Date(p.at).toISOString(), ...statsJson(p) })) })
        },
        'POST /v1/market/price': async ({ req, json }) => {
          const usage = 'send JSON: {"service": "sha256", "method": "hash", "amount": "100 sat", "confirm": false}'
          const body = await readJsonBody(req, usage)
          if (typeof body.service !== 'string' || typeof body.method !== 'string' || (typeof body.amount !== 'string' && typeof body.amount !== 'number')) {
            throw new HttpError(400, usage)
          }
          let sats: bigint
          try {
            sats = parseAmount(body.amount, 'a price')
            registry.resolve(body.service, body.method)
          } catch (err: any) {
            throw new HttpError(400, err.message)
          }
          const set = await desk.setPrice(body.service, body.method, sats, { confirm: body.confirm === true })
          json(200, { service: body.service, method: body.method, price: formatAmount(sats), persisted: set.persisted, offer: set.offer == null ? null : offerJson(set.offer) })
        }
      },
      start: async () => {
        libp2p.addEventListener('peer:connect', onConnect)
        history.start()
      },
      stop: async () => {
        history.stop()
        libp2p.removeEventListener('peer:connect', onConnect)
        for (const timer of retries) {
          clearTimeout(timer)
        }
        retries.clear()
      }
    }
  }
}

/** The market as this node sees it, in the node's registry: offers and median prices (BTC per unit) per service and method */
function marketMetrics (registry: Registry, market: Market): void {
  const registers = [registry]
  new Gauge({
    name: 'opencloud_market_offers',
    help: 'Valid offers this node knows, per service and method',
    labelNames: ['service', 'method'],
    registers,
    collect () {
      this.reset()
      for (const s of market.index.stats()) this.set({ service: s.service, method: s.method }, s.count)
    }
  })
  new Gauge({
    name: 'opencloud_market_median_price_btc',
    help: 'Median price of the offers per service and method, weighted by the providers\' trust, in BTC per unit (the label unit: MiB, TiB-month, call)',
    labelNames: ['service', 'method', 'unit'],
    registers,
    collect () {
      this.reset()
      for (const s of market.index.stats()) this.set({ service: s.service, method: s.method, unit: s.unit }, Number(s.median) / 1e8)
    }
  })
}
