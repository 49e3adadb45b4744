import { logger } from '@libp2p/logger'
import type { Datastore } from 'interface-datastore'
import type { PeerId } from '@libp2p/interface'
import type { RejectionCounter } from '../protocols/signed-gossip.ts'
import type { CredentialSigner } from '../protocols/rpc/credentials.ts'
import {
  encodeEvidence, hex, ledgerIdOf, signRedeemAuthorization, signTx, verifyRedeemAuthorization,
  type Block, type Commit, type Genesis, type SignedTx, type TxBody
} from './encoding.ts'
import { LedgerState, whyUnusable, type TxOutcome } from './state.ts'
import { Mempool } from './mempool.ts'
import { TxBatcher } from './tx-batches.ts'
import { BlockStore } from './block-store.ts'
import { LedgerSync } from './sync.ts'
import { LedgerGossip, type LedgerPubsub } from './gossip.ts'
import { Checkpoints } from './checkpoints.ts'
import { LedgerViews, type CheckpointView, type CodeView, type LedgerStatus, type PoolView, type VoteView } from './views.ts'
import { ConsensusEngine, type Equivocation } from './consensus.ts'
import { LedgerRejectedError, LedgerReplayError, LedgerTimeoutError } from './errors.ts'

const log = logger('opencloud:ledger')

export interface CloudLedgerComponents {
  peerId: PeerId
  signer: CredentialSigner
  datastore: Datastore
  pubsub: LedgerPubsub
  /** ask a peer for final blocks from `from` on (the ledger service's `blocks`) */
  fetchBlocks?: (peer: string, from: number, options: { signal: AbortSignal }) => Promise<Uint8Array>
  /** the peers to sync from, at start and every ten slots */
  peers?: () => string[]
  /** anchor 64 bytes in bitcoin (an OP_RETURN output), resolving with the txid; undefined when there is no chain */
  anchor?: (data: Uint8Array) => Promise<string>
  /** a validator caught signing two things for one slot */
  recordEquivocation?: (e: Equivocation) => void
  /** the outputs' scripts (hex) of a bitcoin transaction and its confirmations, to check checkpoints */
  bitcoinTx?: (txid: string) => Promise<{ scripts: string[], confirmations: number }>
}

export interface CloudLedgerInit {
  genesis: Genesis
  /** an idle ledger makes an empty block this often, default 60 s */
  idleBlockMs?: number
  /** transactions one originator may gossip, default "200/s burst 2000" */
  txRateLimit?: string
  /**
   * told of every block that becomes final here, with the ms from its
   * proposer's clock to now (the node's metrics: time to finality; a block
   * fetched while catching up is old, and says so), default none
   */
  onFinal?: (block: Block, finalityMs: number) => void
}

/**
 * The Cloud Ledger on this node (PROTOCOL.md section 8e), assembled from
 * its parts: the state final blocks give and the queue of transactions
 * waiting for one (state.ts, mempool.ts), on a validator the consensus
 * engine that makes blocks (consensus.ts), the final blocks in the
 * datastore (block-store.ts), the two gossipsub topics named after the
 * ledger (gossip.ts) and the batches transactions travel in on one of them
 * (tx-batches.ts), catching up from peers with every certificate checked
 * (sync.ts), bitcoin anchors (checkpoints.ts) and what the node shows
 * (views.ts). Each part is handed only what it uses; this class wires them
 * to one another and keeps what is the ledger's own: signing and
 * submitting transactions, waiting for their outcome, redeeming codes.
 */
export class CloudLedger {
  readonly genesis: Genesis
  readonly id: Uint8Array
  readonly state: LedgerState
  readonly mempool: Mempool
  readonly engine: ConsensusEngine
  readonly topics: { consensus: string, txs: string }
  /** rejected gossip messages per originator */
  readonly rejections: RejectionCounter
  readonly equivocations: Equivocation[] = []
  private readonly c: CloudLedgerComponents
  private readonly me: string
  private readonly onFinal?: (block: Block, finalityMs: number) => void
  private readonly waiters = new Map<string, Array<(o: TxOutcome) => void>>()
  private lastTxTime = 0
  private readonly batcher: TxBatcher
  private readonly idHex: string
  private readonly store: BlockStore
  private readonly sync: LedgerSync
  private readonly gossip: LedgerGossip
  private readonly checkpoints: Checkpoints
  private readonly views: LedgerViews
  /** codes this validator is redeeming, until their redemption is final: a second redemption of one would only fail in its block */
  private readonly redeeming = new Set<string>()

  constructor (components: CloudLedgerComponents, init: CloudLedgerInit) {
    this.c = components
    this.me = components.peerId.toString()
    this.genesis = init.genesis
    this.onFinal = init.onFinal
    this.id = ledgerIdOf(init.genesis)
    this.state = new LedgerState(init.genesis, this.id)
    this.mempool = new Mempool(this.state)
    this.idHex = hex(this.id)
    this.store = new BlockStore({ datastore: components.datastore }, { ledger: this.id })
    this.engine = new ConsensusEngine({
      peerId: this.me,
      signer: components.signer,
      state: this.state,
      mempool: this.mempool,
      broadcast: (msg) => { this.gossip.publishConsensus(msg) },
      persist: async (block, blockBytes, commit) => this.store.put(block, blockBytes, commit),
      onFinal: (block) => { this.final(block) },
      onEquivocation: (e) => { void this.equivocation(e) },
      onBehind: (height, from) => { this.sync.behind(height, from) },
      saveSigned: async (height, msg) => this.store.saveSigned(height, msg)
    }, { idleBlockMs: init.idleBlockMs })
    this.sync = new LedgerSync({
      self: this.me,
      state: this.state,
      mempool: this.mempool,
      engine: this.engine,
      blocks: this.store,
      fetchBlocks: components.fetchBlocks,
      peers: components.peers
    }, { slotMs: init.genesis.slotMs })
    this.gossip = new LedgerGossip({
      pubsub: components.pubsub,
      ledger: this.id,
      state: this.state,
      mempool: this.mempool,
      engine: this.engine,
      behind: (height, from) => { this.sync.behind(height, from) }
    }, { txRateLimit: init.txRateLimit })
    this.topics = this.gossip.topics
    this.rejections = this.gossip.rejections
    this.batcher = new TxBatcher({ publish: (batch) => { this.gossip.publishTxs(batch) } })
    this.checkpoints = new Checkpoints({
      self: this.me,
      ledger: this.id,
      state: this.state,
      submit: async (body) => this.submit(body),
      anchor: components.anchor,
      bitcoinTx: components.bitcoinTx
    }, { checkpointEvery: init.genesis.checkpointEvery })
    this.views = new LedgerViews({
      self: this.me,
      genesis: init.genesis,
      state: this.state,
      mempool: this.mempool,
      engine: this.engine,
      equivocations: this.equivocations
    })
  }

  async start (): Promise<void> {
    // the state first, from the blocks kept: the parts started after it judge messages and sync against it
    const replayed = await this.store.replay(this.state)
    this.equivocations.push(...await this.store.evidence())
    // what this validator signed at the height it stopped in, if that height is not final yet
    const signed = await this.store.signedAt(this.state.height + 1)
    if (signed.length > 0) {
      log('height %d: %d messages this validator signed before it stopped', this.state.height + 1, signed.length)
      this.engine.restoreSigned(this.state.height + 1, signed)
    }
    log('ledger %s (%s): %d blocks, %d validators', this.genesis.chain, this.idHex.slice(0, 16), replayed, this.state.validators.length)
    this.gossip.start()
    this.engine.start()
    this.sync.start()
  }

  async stop (): Promise<void> {
    // what waits for its batch goes out before the topics close
    this.batcher.flush()
    this.gossip.stop()
    this.engine.stop()
    await this.sync.stop()
  }

  // ---------------------------------------------------------------- transactions

  /** Sign a transaction as this node */
  sign (body: TxBody): SignedTx {
    // a fresh time each, so two identical requests are two transactions
    const time = Math.max(Date.now(), this.lastTxTime + 1)
    this.lastTxTime = time
    return signTx({ ledger: this.id, sender: this.me, time, body }, this.c.signer)
  }

  /**
   * Queue a transaction (ours, or one a client sent) and gossip it;
   * resolves with its outcome once final, or with only its id when `wait`
   * is false. Throws LedgerRejectedError when the ledger refused it
   * (LedgerReplayError, one of them, for a transaction final already).
   */
  async submit (body: TxBody | SignedTx, options: { wait?: boolean, timeoutMs?: number } = {}): Promise<TxOutcome | { id: string }> {
    const stx = 'kind' in body ? this.sign(body) : body
    const id = hex(stx.id)
    if (hex(stx.tx.ledger) !== this.idHex) {
      throw new LedgerRejectedError('the transaction is for another ledger')
    }
    const done = this.state.outcomes.get(id)
    if (done != null) {
      throw new LedgerReplayError(done)
    }
    this.mempool.add(stx)
    this.batcher.add(stx)
    if (options.wait === false) {
      return { id }
    }
    const outcome = await this.outcome(id, options.timeoutMs ?? Math.max(30_000, this.genesis.slotMs * 20))
    if (!outcome.ok) {
      throw new LedgerRejectedError(outcome.reason ?? 'refused')
    }
    return outcome
  }

  /** Wait for a transaction to be final */
  async outcome (id: string, timeoutMs: number): Promise<TxOutcome> {
    const done = this.state.outcomes.get(id)
    if (done != null) {
      return done
    }
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(id) ?? []
      const timer = setTimeout(() => {
        const l = this.waiters.get(id)?.filter(w => w !== settle)
        if (l != null && l.length > 0) this.waiters.set(id, l)
        else this.waiters.delete(id)
        reject(new LedgerTimeoutError(`transaction ${id} is not final after ${Math.round(timeoutMs / 1000)} s: ${this.livenessProblem() ?? 'the ledger is slow'}`))
      }, timeoutMs)
      const settle = (o: TxOutcome): void => { clearTimeout(timer); resolve(o) }
      list.push(settle)
      this.waiters.set(id, list)
    })
  }

  /**
   * Why this node cannot redeem `code` with `authorization` now, checked
   * against its copy of the ledger before it signs anything: a redemption
   * that would fail in its block is refused here instead of being written
   * into one under this validator's name (any caller of the `redeem` method
   * or of a call paid with a code could otherwise have it sign as many
   * forged authorizations as it likes). Undefined when it can.
   */
  redeemProblem (code: string, authorization: Uint8Array, now = Date.now()): string | undefined {
    if (!this.engine.isValidator()) {
      return 'this node is not a member cloud (a validator of the ledger), so it cannot redeem codes'
    }
    const c = this.state.codes.get(code)
    const unusable = whyUnusable(c, now)
    if (unusable != null) {
      return unusable === 'no such code' ? `no promo code ${code} on the ledger (at height ${this.state.height})` : unusable
    }
    if (!verifyRedeemAuthorization(this.id, Buffer.from(code, 'hex'), this.me, c!.owner, authorization)) {
      return `the code's owner ${c!.owner} did not authorize ${this.me} to redeem it`
    }
    if (this.redeeming.has(code)) {
      return `a redemption of code ${code} by this node is waiting for its block already`
    }
    return undefined
  }

  /**
   * Redeem a code as this validator, with its owner's authorization, once
   * redeemProblem finds nothing wrong; resolves once the redemption is
   * final. Throws LedgerRejectedError with the reason.
   */
  async redeem (code: string, authorization: Uint8Array, options: { timeoutMs?: number } = {}): Promise<TxOutcome> {
    const problem = this.redeemProblem(code, authorization)
    if (problem != null) {
      throw new LedgerRejectedError(problem)
    }
    this.redeeming.add(code)
    try {
      return await this.submit({ kind: 'redeem', code: Buffer.from(code, 'hex'), authorization }, options) as TxOutcome
    } finally {
      this.redeeming.delete(code)
    }
  }

  /** Sign, as this node (a code's owner), the authorization for `redeemer` to redeem `code` */
  authorizeRedeem (code: string, redeemer: string): string {
    return Buffer.from(signRedeemAuthorization(this.id, Buffer.from(code, 'hex'), redeemer, this.c.signer)).toString('base64')
  }

  // ---------------------------------------------------------------- validator candidacy

  /** This node's signed statement as a validator candidate */
  candidateEvidence (statement: string): Uint8Array {
    return encodeEvidence(this.id, this.me, statement, this.c.signer)
  }

  /**
   * Stand as a validator: the signed statement is kept and handed to any
   * validator that asks (the ledger service's `candidacy`), so voters need
   * not pass it around by hand.
   */
  async standAsCandidate (statement: string): Promise<Uint8Array> {
    const evidence = this.candidateEvidence(statement)
    await this.store.saveCandidacy(evidence)
    return evidence
  }

  /** The statement this node stands with, if it stands */
  async candidacy (): Promise<Uint8Array | undefined> {
    return this.store.candidacy()
  }

  // ---------------------------------------------------------------- the parts, as the ledger service and the control API use them

  /** The final block at `height` and its commit, undefined when this node has none there */
  async block (height: number): Promise<{ block: Block, commit: Commit } | undefined> {
    return this.store.get(height)
  }

  /** Final blocks from `from` on, for a peer that syncs: varint n || n x bytes (block || commit) */
  async blocksFrom (from: number, max?: number, maxBytes?: number): Promise<Uint8Array> {
    return this.sync.blocksFrom(from, max, maxBytes)
  }

  /** Fetch and apply final blocks from `peer` until it has no more; resolves with how many were applied */
  async syncFrom (peer: string): Promise<number> {
    return this.sync.syncFrom(peer)
  }

  /** Fetch and apply final blocks from each peer in turn until none has more */
  async syncFromPeers (): Promise<void> {
    await this.sync.syncFromPeers()
  }

  /** Anchor the state root at `height` in bitcoin, then record the anchor on the ledger */
  async checkpoint (height: number): Promise<{ btcTxid: string, stateRoot: string }> {
    return this.checkpoints.checkpoint(height)
  }

  /** Every checkpoint on the ledger, checked against bitcoin and this node's own history */
  async verifyCheckpoints (): Promise<CheckpointView[]> {
    return this.checkpoints.verify()
  }

  status (): LedgerStatus {
    return this.views.status()
  }

  /** Why blocks may not become final, if something is visibly wrong */
  livenessProblem (): string | undefined {
    return this.views.livenessProblem()
  }

  /** A code as any node sees it: valid (with the time left), redeemed or expired; undefined when unknown */
  codeView (code: string, now = Date.now()): CodeView | undefined {
    return this.views.codeView(code, now)
  }

  /** Codes this node owns */
  ownCodes (now = Date.now()): CodeView[] {
    return this.views.ownCodes(now)
  }

  poolViews (): PoolView[] {
    return this.views.poolViews()
  }

  /** Pending votes: who voted for what */
  voteViews (): VoteView[] {
    return this.views.voteViews()
  }

  // ---------------------------------------------------------------- what the engine reports

  /** A block is final here: whoever waits for one of its transactions learns its outcome, then the state may be anchored */
  private final (block: Block): void {
    for (const id of block.txs.map(t => hex(t.id))) {
      const o = this.state.outcomes.get(id)
      const waiting = this.waiters.get(id)
      if (o != null && waiting != null) {
        this.waiters.delete(id)
        for (const w of waiting) {
          w(o)
        }
      }
    }
    this.checkpoints.onFinal(block)
    this.onFinal?.(block, Date.now() - block.header.time)
  }

  /** A validator signed two things for one slot: kept as evidence across restarts, and told to reputation */
  private async equivocation (e: Equivocation): Promise<void> {
    log.error('validator %s signed two %ss for height %d round %d', e.validator, e.what, e.height, e.round)
    this.equivocations.push(e)
    try {
      await this.store.saveEvidence(e)
    } catch (err: any) {
      log.error('keeping the evidence failed - %e', err)
    }
    this.c.recordEquivocation?.(e)
  }
}
