import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import { logger } from '@libp2p/logger'
import { REPUTATION_TOPIC } from '../protocols/topics.ts'
import { agreement, globalTrust, normalize } from './eigentrust.ts'
import { decodeSummary, encodeSummary, type Summary } from './summary.ts'
import { ReputationStore, type ReputationRecord } from './store.ts'
import { checkSignedGossip, RejectionCounter } from '../protocols/signed-gossip.ts'
import type { CredentialSigner } from '../protocols/rpc/credentials.ts'
import type { Datastore } from 'interface-datastore'
import type { PeerId, Startable } from '@libp2p/interface'

const log = logger('opencloud:reputation')

export interface ReputationComponents {
  peerId: PeerId
  pubsub: GossipSub
  signer: CredentialSigner
  datastore: Datastore
}

export interface ReputationInit {
  /** PeerIds whose opinions are trusted from the start; this node always is */
  pretrusted?: string[]
  /** Publish this node's summary this often, default 60 s (and soon after its opinions change) */
  publishIntervalMs?: number
  /** Raters whose summaries are kept, default 1,000; the oldest summary goes first */
  maxRaters?: number
  /** Summaries older than this are not accepted, default 24 h */
  maxSummaryAgeMs?: number
}

export interface TrustView {
  peer: string
  /** share of global trust, 0..1 */
  trust: number
  /** trust relative to the average peer: 1 is average, 0 is none */
  score: number
  satisfactory: number
  unsatisfactory: number
}

/**
 * Reputation (seed: "Reputation"): what this node thinks of others (records
 * and local trust), what others think (signed summaries over gossipsub), and
 * global trust by EigenTrust from this node's point of view: itself and the
 * configured peers pre-trusted, each rater's word weighted by how well it
 * matches this node's own experience.
 */
export class Reputation implements Startable {
  readonly store: ReputationStore
  private readonly components: ReputationComponents
  private readonly pretrusted: string[]
  private readonly publishIntervalMs: number
  private readonly maxRaters: number
  private readonly maxSummaryAgeMs: number
  private readonly summaries = new Map<string, Summary>()
  private cached?: Promise<Map<string, number>>
  private lastTrust?: Map<string, number>
  private timer?: ReturnType<typeof setInterval>
  private publishDebounce?: ReturnType<typeof setTimeout>
  private lastIssuedAt = 0
  readonly rejections = new RejectionCounter()
  private readonly onMessage: (evt: CustomEvent<Message>) => void

  constructor (components: ReputationComponents, init: ReputationInit = {}) {
    this.components = components
    this.store = new ReputationStore(components.datastore)
    this.pretrusted = [...new Set([components.peerId.toString(), ...(init.pretrusted ?? [])])]
    this.publishIntervalMs = init.publishIntervalMs ?? 60_000
    this.maxRaters = init.maxRaters ?? 1000
    this.maxSummaryAgeMs = init.maxSummaryAgeMs ?? 24 * 3600_000
    this.onMessage = (evt) => {
      if (evt.detail.topic !== REPUTATION_TOPIC) {
        return
      }
      try {
        this.keep(decodeSummary(evt.detail.data), evt.detail.data)
      } catch (err) {
        log.error('an accepted summary did not decode - %e', err)
      }
    }
  }

  async start (): Promise<void> {
    await this.store.load()
    // the newest summaries within the bounds in memory; the disk holds no more
    // than memory does (older versions kept every summary ever received)
    const stored: Summary[] = []
    for (const bytes of await this.store.summaries()) {
      try {
        stored.push(decodeSummary(bytes))
      } catch {}
    }
    stored.sort((a, b) => b.issuedAt - a.issuedAt)
    const oldest = Date.now() - this.maxSummaryAgeMs
    for (const summary of stored) {
      if (this.summaries.size < this.maxRaters && summary.issuedAt >= oldest) {
        this.summaries.set(summary.rater, summary)
      } else {
        await this.store.deleteSummary(summary.rater)
      }
    }
    const { pubsub } = this.components
    pubsub.topicValidators.set(REPUTATION_TOPIC, (peer, msg) => this.validate(peer, msg))
    pubsub.addEventListener('message', this.onMessage)
    pubsub.subscribe(REPUTATION_TOPIC)
    this.timer = setInterval(() => { void this.publish().catch(err => { log.error('publishing the summary failed - %e', err) }) }, this.publishIntervalMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    clearTimeout(this.publishDebounce)
    await this.store.flush()
    const { pubsub } = this.components
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.topicValidators.delete(REPUTATION_TOPIC)
    try {
      pubsub.unsubscribe(REPUTATION_TOPIC)
    } catch {}
  }

  validate (peer: PeerId, msg: Message): TopicValidatorResult {
    const verdict = checkSignedGossip(msg, {
      decode: (data) => {
        const summary = decodeSummary(data)
        return { ...summary, signer: summary.rater }
      },
      check: (summary, now) => summary.issuedAt < now - this.maxSummaryAgeMs ? 'too old' : undefined,
      held: (summary) => this.summaries.get(summary.rater)?.issuedAt
    })
    if (verdict.result === TopicValidatorResult.Reject) {
      this.rejections.count(peer, msg)
      log('rejected a summary: %s', verdict.reason)
    }
    return verdict.result
  }

  private keep (summary: Summary, bytes: Uint8Array): void {
    if (summary.rater === this.components.peerId.toString()) {
      return
    }
    if (!this.summaries.has(summary.rater) && this.summaries.size >= this.maxRaters) {
      const oldest = [...this.summaries.values()].sort((a, b) => a.issuedAt - b.issuedAt)[0]
      this.summaries.delete(oldest.rater)
      void this.store.deleteSummary(oldest.rater).catch(err => { log.error('deleting a summary failed - %e', err) })
    }
    this.summaries.set(summary.rater, summary)
    this.cached = undefined
    void this.store.saveSummary(summary.rater, bytes).catch(err => { log.error('saving a summary failed - %e', err) })
  }

  /** Add a record of an interaction; the summary is published soon after */
  async record (record: Omit<ReputationRecord, 'at'>): Promise<void> {
    await this.store.record(record)
    this.cached = undefined
    // one publish a second at most while records come in
    if (this.publishDebounce == null) {
      this.publishDebounce = setTimeout(() => {
        this.publishDebounce = undefined
        void this.publish().catch(err => { log.error('publishing the summary failed - %e', err) })
      }, 1_000)
      this.publishDebounce.unref()
    }
  }

  /** Publish this node's normalized local trust */
  async publish (): Promise<void> {
    const opinions = normalize(await this.store.localTrust())
    if (opinions.size === 0) {
      return
    }
    const issuedAt = Math.max(Date.now(), this.lastIssuedAt + 1)
    this.lastIssuedAt = issuedAt
    const bytes = encodeSummary({ issuedAt, opinions }, this.components.signer)
    try {
      await this.components.pubsub.publish(REPUTATION_TOPIC, bytes)
    } catch (err: any) {
      log('publishing the summary reached nobody: %s', err.message)
    }
  }

  /** This node's signed summary, for the reputation service */
  async ownSummary (): Promise<Uint8Array> {
    return encodeSummary({ issuedAt: Date.now(), opinions: normalize(await this.store.localTrust()) }, this.components.signer)
  }

  /** Global trust from this node's point of view, recomputed when anything changed */
  async globalTrust (): Promise<Map<string, number>> {
    if (this.cached == null) {
      this.cached = (async () => {
        const me = this.components.peerId.toString()
        const mine = await this.store.localTrust()
        const opinions = new Map<string, Map<string, number>>([[me, mine]])
        const credibility = new Map<string, number>([[me, 1]])
        for (const summary of this.summaries.values()) {
          opinions.set(summary.rater, summary.opinions)
          credibility.set(summary.rater, this.pretrusted.includes(summary.rater) ? 1 : agreement(mine, summary.opinions))
        }
        return globalTrust({ opinions, pretrusted: this.pretrusted, credibility }).trust
      })()
    }
    return this.cached
  }

  /**
   * A peer's trust score from the last computation, without waiting (0 when
   * unknown): for hot paths such as validating gossip. A stale figure starts
   * a new computation in the background.
   */
  scoreOf (peer: string): number {
    if (this.cached == null || this.lastTrust == null) {
      void this.globalTrust().then(trust => { this.lastTrust = trust }).catch(() => {})
    }
    const trust = this.lastTrust
    return trust == null || trust.size === 0 ? 0 : (trust.get(peer) ?? 0) * trust.size
  }

  async view (peer: string): Promise<TrustView> {
    const trust = await this.globalTrust()
    const counts = await this.store.countsOf(peer)
    const t = trust.get(peer) ?? 0
    return { peer, trust: t, score: trust.size === 0 ? 0 : t * trust.size, ...counts }
  }

  async views (): Promise<TrustView[]> {
    const trust = await this.globalTrust()
    const peers = new Set([...trust.keys(), ...(await this.store.localTrust()).keys()])
    peers.delete(this.components.peerId.toString())
    return Promise.all([...peers].map(async p => this.view(p))).then(v => v.sort((a, b) => b.trust - a.trust))
  }
}
