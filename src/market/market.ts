import { TopicValidatorResult, type GossipSub, type Message, type SubscriptionChangeData } from '@libp2p/gossipsub'
import { logger } from '@libp2p/logger'
import { OFFERS_TOPIC } from '../protocols/topics.ts'
import { decodeOffer, encodeOffer, verifyOffer, type Offer } from './offer.ts'
import { PriceIndex, type PriceIndexInit } from './price-index.ts'
import { checkSignedGossip, RejectionCounter } from '../protocols/signed-gossip.ts'
import { parseRateLimit, RateLimiter, type RateLimit } from '../utils/rate-limiter.ts'
import type { CredentialSigner } from '../protocols/rpc/credentials.ts'
import type { PeerId, Startable } from '@libp2p/interface'

const log = logger('opencloud:market')

/** A method this node serves, as its offer names it */
export interface OfferedMethod {
  service: string
  method: string
  /** the method's standard unit, e.g. "MiB" */
  unit: string
  /** satoshis per unit */
  price: bigint
  /** offered even when free (storage rent: hosts are found through it) */
  advertise: boolean
}

/** What the market needs of the node's prices (the services' registry has them) */
export interface PriceList {
  /** every method this node serves */
  offered: () => OfferedMethod[]
  setPrice: (service: string, method: string, sats: bigint) => void
}

export interface MarketComponents {
  peerId: PeerId
  pubsub: GossipSub
  signer: CredentialSigner
  prices: PriceList
}

export interface MarketInit extends PriceIndexInit {
  /** How long an offer is valid, default 10 minutes */
  validityMs?: number
  /** Offers are announced again this long before they expire, default half the validity */
  reannounceBeforeMs?: number
  /** How far in the future an offer's issued-at may be (clock skew), default 60 s */
  maxClockSkewMs?: number
  /**
   * The longest validity accepted from others, default 1 hour: an honest
   * node re-announces well before its 10-minute offers expire, and a fake
   * offer should not outlive its sender's interest by a day
   */
  maxValidityMs?: number
  /**
   * Offers accepted from one originator, default "60/m burst 60": past it,
   * offers are ignored (not kept, not relayed) before their signature is
   * checked, so a flood from one identity costs the network little
   */
  offerRateLimit?: string
  /** A provider's trust score for the index's eviction and weighted statistics */
  trust?: (provider: string) => number
}

/**
 * The market service's engine (seed: "market: share my knowledge of market
 * prices"). It publishes this node's signed offers on the offers topic,
 * validates everyone else's, and keeps the price index.
 *
 * The validator rejects (never ignores) a bad offer, so gossipsub's peer
 * score charges the peer that sent it: unsigned messages, malformed offers,
 * bad signatures, offers whose provider is not the message's originator,
 * expired or far-future offers, and offers older than one already held
 * (replays). An exact duplicate of the offer held is ignored: honest peers
 * forward those.
 */
export class Market implements Startable {
  readonly index: PriceIndex
  private readonly components: MarketComponents
  private readonly validityMs: number
  private readonly reannounceBeforeMs: number
  private readonly maxClockSkewMs: number
  private readonly maxValidityMs: number
  private readonly offerRate: RateLimit
  private readonly rateLimiter = new RateLimiter({ maxBuckets: 20_000 })
  private lastIssuedAt = 0
  private timer?: ReturnType<typeof setInterval>
  /** rejected offers per sending peer, for operators and tests */
  readonly rejections = new RejectionCounter()
  /** offers ignored for their originator's rate limit */
  throttled = 0
  private readonly onMessage: (evt: CustomEvent<Message>) => void
  private readonly onSubscription: (evt: CustomEvent<SubscriptionChangeData>) => void
  private joinDebounce?: ReturnType<typeof setTimeout>

  constructor (components: MarketComponents, init: MarketInit = {}) {
    this.components = components
    this.index = new PriceIndex({ self: components.peerId.toString(), ...init })
    this.validityMs = init.validityMs ?? 10 * 60_000
    this.reannounceBeforeMs = init.reannounceBeforeMs ?? this.validityMs / 2
    this.maxClockSkewMs = init.maxClockSkewMs ?? 60_000
    this.maxValidityMs = init.maxValidityMs ?? 3600_000
    this.offerRate = parseRateLimit(init.offerRateLimit ?? '60/m burst 60')
    this.onMessage = (evt) => {
      const msg = evt.detail
      if (msg.topic !== OFFERS_TOPIC) {
        return
      }
      try {
        const { offer } = decodeOffer(msg.data)
        this.index.put(offer, msg.data)
      } catch (err) {
        log.error('an accepted offer did not decode - %e', err)
      }
    }
    // a peer that just subscribed has none of our offers: announce them again,
    // once per burst of subscriptions, instead of leaving it to wait for the
    // next re-announce minutes later
    this.onSubscription = (evt) => {
      if (!evt.detail.subscriptions.some(s => s.topic === OFFERS_TOPIC && s.subscribe)) {
        return
      }
      clearTimeout(this.joinDebounce)
      this.joinDebounce = setTimeout(() => { void this.announce().catch(err => { log.error('announcing to a new peer failed - %e', err) }) }, 500)
      this.joinDebounce.unref()
    }
  }

  async start (): Promise<void> {
    const { pubsub } = this.components
    pubsub.topicValidators.set(OFFERS_TOPIC, (peer, msg) => this.validate(peer, msg))
    pubsub.addEventListener('message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscription)
    pubsub.subscribe(OFFERS_TOPIC)
    await this.announce()
    // checked often, announced only when an offer nears expiry
    this.timer = setInterval(() => {
      this.index.prune()
      void this.announceExpiring().catch(err => { log.error('re-announcing failed - %e', err) })
    }, Math.max(1000, Math.min(60_000, this.reannounceBeforeMs / 4)))
    this.timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    clearTimeout(this.joinDebounce)
    const { pubsub } = this.components
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.removeEventListener('subscription-change', this.onSubscription)
    pubsub.topicValidators.delete(OFFERS_TOPIC)
    try {
      pubsub.unsubscribe(OFFERS_TOPIC)
    } catch {}
  }

  /**
   * Offers a neighbour holds, taken in when this node meets it (the `market
   * prices` answer): gossip reaches only peers subscribed when an offer was
   * published, so a node that joins late would otherwise wait for the next
   * re-announce, minutes later. Each offer passes the same checks as a
   * gossiped one (signature, validity, clock, replay); the bad are skipped.
   * Returns how many were new.
   */
  importOffers (signed: Uint8Array[], now = Date.now()): number {
    let added = 0
    for (const bytes of signed.slice(0, 10_000)) {
      try {
        const decoded = decodeOffer(bytes)
        verifyOffer(decoded)
        const { offer } = decoded
        if (offer.validUntil <= now || offer.validUntil - offer.issuedAt > this.maxValidityMs || offer.issuedAt > now + this.maxClockSkewMs) {
          continue
        }
        const held = this.index.latest(offer.provider, offer.service, offer.method)
        if (held != null && held.offer.issuedAt >= offer.issuedAt) {
          continue
        }
        this.index.put(offer, bytes)
        added++
      } catch (err: any) {
        log('skipped an offer from a neighbour - %s', err.message)
      }
    }
    return added
  }

  validate (peer: PeerId, msg: Message): TopicValidatorResult {
    // gossipsub has checked who originated it (StrictSign): budget that
    // identity before the costlier checks. Ignored, not rejected: an honest
    // relay may pass on a flood it has not yet throttled itself
    if (msg.type === 'signed' && this.rateLimiter.take(msg.from.toString(), this.offerRate) > 0) {
      this.throttled++
      return TopicValidatorResult.Ignore
    }
    const verdict = checkSignedGossip(msg, {
      decode: (data) => {
        const decoded = decodeOffer(data)
        verifyOffer(decoded)
        return { ...decoded.offer, signer: decoded.offer.provider }
      },
      maxSkewMs: this.maxClockSkewMs,
      check: (offer, now) => offer.validUntil <= now
        ? 'expired'
        : offer.validUntil - offer.issuedAt > this.maxValidityMs ? 'valid for too long' : undefined,
      held: (offer) => this.index.latest(offer.provider, offer.service, offer.method)?.offer.issuedAt
    })
    if (verdict.result === TopicValidatorResult.Reject) {
      this.rejections.count(peer, msg)
      log('rejected an offer: %s', verdict.reason)
    }
    return verdict.result
  }

  /** This node's offers: every own method with a price, and methods that advertise even when free (storage rent: hosts are found through it) */
  ownOffers (): Array<Omit<Offer, 'issuedAt' | 'validUntil' | 'provider'>> {
    return this.components.prices.offered()
      .filter(m => m.price > 0n || m.advertise)
      .map(m => ({ service: m.service, method: m.method, unit: m.unit, price: m.price, currency: 'BTC', capacity: 0n }))
  }

  private async publish (partial: Omit<Offer, 'issuedAt' | 'validUntil' | 'provider'>): Promise<void> {
    const { pubsub, signer, peerId } = this.components
    // strictly increasing, so a newer offer always replaces an older one
    const issuedAt = Math.max(Date.now(), this.lastIssuedAt + 1)
    this.lastIssuedAt = issuedAt
    const offer: Offer = { ...partial, provider: peerId.toString(), issuedAt, validUntil: issuedAt + this.validityMs }
    const bytes = encodeOffer(offer, signer)
    this.index.put(offer, bytes)
    try {
      await pubsub.publish(OFFERS_TOPIC, bytes)
    } catch (err: any) {
      // nobody subscribed yet: the next re-announce reaches them
      log('publishing %s.%s reached nobody: %s', offer.service, offer.method, err.message)
    }
  }

  /** Publish every own offer now */
  async announce (): Promise<void> {
    for (const offer of this.ownOffers()) {
      await this.publish(offer)
    }
  }

  private async announceExpiring (): Promise<void> {
    const now = Date.now()
    const me = this.components.peerId.toString()
    for (const offer of this.ownOffers()) {
      const held = this.index.latest(me, offer.service, offer.method)
      if (held == null || held.offer.validUntil - now <= this.reannounceBeforeMs || held.offer.price !== offer.price) {
        await this.publish(offer)
      }
    }
  }

  /**
   * Change this node's price for a method and announce it at once. A method
   * made free is announced once at price 0, so the old price does not
   * linger until it expires; it is not re-announced after that.
   */
  async setPrice (service: string, method: string, sats: bigint): Promise<Offer | undefined> {
    const { prices, peerId } = this.components
    prices.setPrice(service, method, sats)
    const offer = this.ownOffers().find(o => o.service === service && o.method === method)
    const served = prices.offered().find(m => m.service === service && m.method === method)
    if (offer != null) {
      await this.publish(offer)
    } else if (served != null && this.index.latest(peerId.toString(), service, method) != null) {
      await this.publish({ service, method, unit: served.unit, price: 0n, currency: 'BTC', capacity: 0n })
    } else {
      return undefined
    }
    return this.index.latest(peerId.toString(), service, method)?.offer
  }
}
