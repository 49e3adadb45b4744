import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { logger } from '@libp2p/logger'
import type { PeerId } from '@libp2p/interface'
import { RejectionCounter } from '../protocols/signed-gossip.ts'
import { ledgerTopics } from '../protocols/topics.ts'
import { RateLimiter, parseRateLimit, type RateLimit } from '../utils/rate-limiter.ts'
import { decodeMessage, encodeMessage, hex, messageHeight, verifyCommit, verifyProposal, verifyVote, type ConsensusMessage, type SignedTx } from './encoding.ts'
import { decodeTxBatch } from './tx-batches.ts'
import type { ConsensusEngine } from './consensus.ts'
import type { LedgerState } from './state.ts'
import type { Mempool } from './mempool.ts'

const log = logger('opencloud:ledger:gossip')

/** What the ledger uses of gossipsub */
export interface LedgerPubsub {
  topicValidators: Map<string, (peer: PeerId, msg: Message) => TopicValidatorResult | Promise<TopicValidatorResult>>
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  addEventListener: (type: 'message', fn: (evt: CustomEvent<Message>) => void) => void
  removeEventListener: (type: 'message', fn: (evt: CustomEvent<Message>) => void) => void
}

export interface LedgerGossipComponents {
  pubsub: LedgerPubsub
  /** the ledger id: the topics are named after it, and nothing signed for another ledger passes */
  ledger: Uint8Array
  /** the height final here and its validators, against which messages are judged */
  state: Pick<LedgerState, 'height' | 'validators' | 'isValidator'>
  /** where the transactions of an accepted batch go; it also knows which signatures were checked */
  mempool: Pick<Mempool, 'verified' | 'add'>
  /** receives every accepted consensus message */
  engine: Pick<ConsensusEngine, 'receive'>
  /** a message of a height past the next came from `from`: it has final blocks this node lacks */
  behind: (height: number, from: string) => void
}

export interface LedgerGossipInit {
  /** transactions one originator that is not a validator may gossip, default "200/s burst 2000" */
  txRateLimit?: string
}

/**
 * The ledger's two gossipsub topics (PROTOCOL.md section 8e, "Gossip and
 * methods"): what a valid message of each is, decided in the topic
 * validators before gossipsub relays it. A *reject* charges the sending
 * peer's gossipsub score, so it is kept for what only a forger or a broken
 * node sends (bytes that do not decode, a signature that fails, a final
 * block whose certificate does not hold); an honest but slow or chatty
 * peer's messages are *ignored*.
 */
export class LedgerGossip {
  readonly topics: { consensus: string, txs: string }
  /** rejected messages per originator, for operators and tests */
  readonly rejections = new RejectionCounter()
  private readonly c: LedgerGossipComponents
  private readonly idHex: string
  private readonly rateLimiter = new RateLimiter({ maxBuckets: 20_000 })
  private readonly txRate: RateLimit
  /** consensus messages the topic validator decoded, by their bytes, so a block of a thousand transactions is decoded once */
  private readonly validated = new WeakMap<Uint8Array, ConsensusMessage>()
  private readonly onMessage: (evt: CustomEvent<Message>) => void
  /** aborted at stop: a check of transactions under way gives up at once */
  private shutdown = new AbortController()

  constructor (components: LedgerGossipComponents, init: LedgerGossipInit = {}) {
    this.c = components
    this.idHex = hex(components.ledger)
    this.topics = ledgerTopics(components.ledger)
    this.txRate = parseRateLimit(init.txRateLimit ?? '200/s burst 2000')
    this.onMessage = (evt) => {
      const msg = evt.detail
      if (msg.topic === this.topics.consensus) {
        try {
          // the topic validator decoded it and checked its signatures before gossipsub delivered it
          const decoded = this.validated.get(msg.data) ?? decodeMessage(msg.data, (id) => this.c.mempool.verified(id))
          this.c.engine.receive(decoded, msg.type === 'signed' ? msg.from.toString() : '', true)
        } catch (err: any) {
          log.error('an accepted consensus message did not decode - %s', err.message)
        }
      }
      // transactions went into the queue in the topic validator
    }
  }

  start (): void {
    this.shutdown = new AbortController()
    const { pubsub } = this.c
    pubsub.topicValidators.set(this.topics.txs, (peer, msg) => this.validateTx(peer, msg))
    pubsub.topicValidators.set(this.topics.consensus, (peer, msg) => this.validateConsensus(peer, msg))
    pubsub.addEventListener('message', this.onMessage)
    pubsub.subscribe(this.topics.txs)
    pubsub.subscribe(this.topics.consensus)
  }

  stop (): void {
    this.shutdown.abort()
    const { pubsub } = this.c
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.topicValidators.delete(this.topics.txs)
    pubsub.topicValidators.delete(this.topics.consensus)
    for (const t of [this.topics.txs, this.topics.consensus]) {
      try {
        pubsub.unsubscribe(t)
      } catch {}
    }
  }

  /** Send a consensus message to every node */
  publishConsensus (msg: ConsensusMessage): void {
    this.publish(this.topics.consensus, encodeMessage(msg))
  }

  /** Send an encoded batch of transactions to every node */
  publishTxs (batch: Uint8Array): void {
    this.publish(this.topics.txs, batch)
  }

  /**
   * A gossiped batch of transactions: every one must decode, verify and be
   * for this ledger, or the whole message is rejected (a forger loses gossip
   * score). A node that is not a validator is held to a rate of transactions
   * per second; validators relay what users sent them and are not.
   */
  async validateTx (peer: PeerId, msg: Message): Promise<TopicValidatorResult> {
    if (msg.type !== 'signed') {
      return TopicValidatorResult.Reject
    }
    let txs: SignedTx[] = []
    let problem: string | undefined
    try {
      txs = await decodeTxBatch(msg.data, (id) => this.c.mempool.verified(id), this.shutdown.signal)
      if (txs.some(stx => hex(stx.tx.ledger) !== this.idHex)) {
        problem = 'a transaction for another ledger'
      }
    } catch (err: any) {
      problem = err.message
    }
    if (problem != null) {
      // a check cut short by stop says nothing against the sender
      if (this.shutdown.signal.aborted) {
        return TopicValidatorResult.Ignore
      }
      this.rejections.count(peer, msg)
      log('rejected transactions from %s - %s', msg.from.toString(), problem)
      return TopicValidatorResult.Reject
    }
    const from = msg.from.toString()
    if (!this.c.state.isValidator(from) && this.rateLimiter.take(from, this.txRate, txs.length) > 0) {
      return TopicValidatorResult.Ignore
    }
    let added = 0
    for (const stx of txs) {
      try {
        if (this.c.mempool.add(stx)) {
          added++
        }
      } catch (err: any) {
        log('a transaction was not queued - %s', err.message)
      }
    }
    return added > 0 ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore
  }

  /** Forged or malformed consensus messages are rejected here, which costs the sender gossip score */
  validateConsensus (peer: PeerId, msg: Message): TopicValidatorResult {
    if (msg.type !== 'signed') {
      return TopicValidatorResult.Reject
    }
    const { ledger, state } = this.c
    let m: ConsensusMessage
    try {
      // a message for a height that is final here already is old news:
      // dropped (not held against the sender: it may simply be slower)
      // before its block is decoded
      const height = messageHeight(msg.data)
      if (height <= state.height) {
        return TopicValidatorResult.Ignore
      }
      m = decodeMessage(msg.data, (id) => this.c.mempool.verified(id))
      if (m.type === 'proposal') {
        verifyProposal(ledger, m.proposal)
      } else if (m.type === 'vote') {
        verifyVote(ledger, m.vote)
      } else if (height === state.height + 1) {
        // a final block for the next height: its certificate must hold
        // against today's validators, or its sender forged it
        verifyCommit(ledger, m.block, m.commit, state.validators)
      } else {
        // further ahead: the validators may have changed in between, so
        // the sync (which checks every block in order) decides
        this.c.behind(height, msg.from.toString())
        return TopicValidatorResult.Ignore
      }
    } catch (err: any) {
      this.rejections.count(peer, msg)
      log('rejected a consensus message from %s - %s', msg.from.toString(), err.message)
      return TopicValidatorResult.Reject
    }
    this.validated.set(msg.data, m)
    return TopicValidatorResult.Accept
  }

  private publish (topic: string, data: Uint8Array): void {
    void this.c.pubsub.publish(topic, data).catch(err => { log('publishing on %s failed - %s', topic, err.message) })
  }
}
