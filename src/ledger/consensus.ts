import { logger } from '@libp2p/logger'
import type { CredentialSigner } from '../protocols/rpc/credentials.ts'
import {
  encodeBlock, encodeHeader, hex, quorum, sha256, signProposal, signVote, txRootOf, verifyCommit, verifyProposal, verifyVote,
  type Block, type Commit, type ConsensusMessage, type Proposal, type SignedTx, type Vote
} from './encoding.ts'
import type { DryRun, LedgerState } from './state.ts'
import type { Mempool } from './mempool.ts'

const log = logger('opencloud:ledger:consensus')

/**
 * Byzantine fault tolerant agreement on each block, after Tendermint
 * (Buchman, Kwon and Milosevic, "The latest gossip on BFT consensus",
 * 2018): at each height, rounds of propose, prevote and precommit. A
 * validator that prevoted a block more than two thirds prevoted is locked
 * on it until a later round shows more than two thirds for another, so two
 * blocks can never both gather more than two thirds of the precommits at
 * one height unless more than a third of the validators sign both. A block
 * with such a commit is final: nothing undoes it.
 *
 * Rounds are the seed's slots: round r at height h belongs to one
 * validator, in turn, skipping the one that proposed block h-1 (no
 * validator proposes two blocks in a row); if it is down, its round times
 * out after a slot and the next validator proposes.
 */

export interface EngineComponents {
  peerId: string
  signer: CredentialSigner
  state: LedgerState
  mempool: Mempool
  /** send to every node (gossip); the engine handles its own messages itself */
  broadcast: (msg: ConsensusMessage) => void
  /** keep a final block (`blockBytes` its encoding); resolves once it is on disk */
  persist: (block: Block, blockBytes: Uint8Array, commit: Commit) => Promise<void>
  /** a final block applied, with its outcomes */
  onFinal?: (block: Block) => void
  /** a validator signed two different things for one slot */
  onEquivocation?: (evidence: Equivocation) => void
  /** messages of a height past ours came: we are behind and must sync */
  onBehind?: (height: number, from: string) => void
  /**
   * Keep a message this validator signed, before it is sent: a validator
   * killed and restarted within a height must not sign something else for
   * a slot it signed already (that is equivocation, however honest). The
   * engine sends nothing until this resolves.
   */
  saveSigned?: (height: number, msg: SignedMessage) => Promise<void>
}

/** What a validator signs for a slot: a proposal or a vote */
export type SignedMessage = Extract<ConsensusMessage, { type: 'proposal' | 'vote' }>

/** A signed message's slot at its height, `proposal-<round>`, `prevote-<round>` or `precommit-<round>`, and its round */
export function slotOf (m: SignedMessage): { slot: string, round: number } {
  const [kind, round] = m.type === 'proposal' ? ['proposal', m.proposal.round] : [m.vote.type, m.vote.round]
  return { slot: `${kind}-${round}`, round }
}

export interface EngineInit {
  /** how long to wait for a block before an idle height gets an empty one, default 60 s */
  idleBlockMs?: number
  /** how long a proposer collects transactions before proposing, default a tenth of the slot */
  batchMs?: number
  /** how far ahead of our clock a block's time may be, default 10 s */
  maxClockSkewMs?: number
}

export interface Equivocation {
  validator: string
  height: number
  round: number
  what: 'proposal' | 'prevote' | 'precommit'
  /** the two things it signed, hex */
  first: string
  second: string
}

type Step = 'propose' | 'prevote' | 'precommit'

interface Round {
  proposal?: Proposal
  /** voter -> block hash hex ('' for nil) */
  prevotes: Map<string, Vote>
  precommits: Map<string, Vote>
  /** voters caught signing two votes of a kind this round: counted for neither */
  equivocators: Set<string>
  proposalRejected?: boolean
  /** the waits armed once more than two thirds prevoted / precommitted anything */
  prevoteTimer?: boolean
  precommitTimer?: boolean
}

export class ConsensusEngine {
  private readonly c: EngineComponents
  private readonly slotMs: number
  readonly idleBlockMs: number
  private readonly batchMs: number
  private readonly maxClockSkewMs: number
  height = 1
  round = 0
  step: Step = 'propose'
  private lockedBlock?: Block
  private lockedRound = -1
  private validBlock?: Block
  private validRound = -1
  private rounds = new Map<number, Round>()
  /** messages for the next height, held until we get there */
  private future: Array<{ msg: ConsensusMessage, from: string, verified: boolean }> = []
  private timers = new Set<ReturnType<typeof setTimeout>>()
  private proposeTimer?: ReturnType<typeof setTimeout>
  private running = false
  private deciding = false
  /** when the current height began */
  private heightStarted = Date.now()
  private readonly onTx: () => void
  private resendTimer?: ReturnType<typeof setInterval>
  /** what this validator signed at one height (the latest), by slot: `proposal/<round>`, `prevote/<round>`, `precommit/<round>` */
  private signed: { height: number, msgs: Map<string, SignedMessage> } = { height: 0, msgs: new Map() }
  /** when this validator last signed (or sent again from before a restart) a message of this height */
  private signedAt = 0
  /** messages wait here for the signed ones before them to be on disk, and go out in order */
  private outbox: Promise<void> = Promise.resolve()

  constructor (components: EngineComponents, init: EngineInit = {}) {
    this.c = components
    this.slotMs = components.state.genesis.slotMs
    this.idleBlockMs = init.idleBlockMs ?? 60_000
    this.batchMs = init.batchMs ?? Math.max(10, Math.floor(this.slotMs / 10))
    this.maxClockSkewMs = init.maxClockSkewMs ?? 10_000
    this.onTx = () => { this.txArrived() }
  }

  get validators (): string[] {
    return this.c.state.validators
  }

  isValidator (): boolean {
    return this.validators.includes(this.c.peerId)
  }

  start (): void {
    this.running = true
    this.c.mempool.addEventListener('tx', this.onTx)
    this.startHeight()
    this.resendTimer = setInterval(() => { this.resendIfStuck() }, 2 * this.slotMs)
    this.resendTimer.unref?.()
  }

  stop (): void {
    this.running = false
    clearInterval(this.resendTimer)
    this.c.mempool.removeEventListener('tx', this.onTx)
    for (const t of this.timers) {
      clearTimeout(t)
    }
    this.timers.clear()
  }

  /**
   * Who proposes in round `round` of `height`: the validators in turn,
   * without the proposer of the block before (EIP-225's rule: no validator
   * signs two blocks in a row), when there is anyone else.
   */
  proposerOf (height: number, round: number, validators = this.validators, previous = this.previousProposer()): string {
    const eligible = validators.length > 1 ? validators.filter(v => v !== previous) : validators
    return eligible[(height + round) % eligible.length]
  }

  private previousProposer (): string | undefined {
    return this.c.state.lastProposer
  }

  private r (round: number): Round {
    let r = this.rounds.get(round)
    if (r == null) {
      r = { prevotes: new Map(), precommits: new Map(), equivocators: new Set() }
      this.rounds.set(round, r)
    }
    return r
  }

  private schedule (ms: number, fn: () => void): ReturnType<typeof setTimeout> {
    const t = setTimeout(() => {
      this.timers.delete(t)
      if (this.running) {
        fn()
      }
    }, ms)
    t.unref?.()
    this.timers.add(t)
    return t
  }

  private startHeight (): void {
    this.height = this.c.state.height + 1
    this.rounds = new Map()
    this.verdicts = new Map()
    this.dryRuns = new Map()
    this.lockedBlock = undefined
    this.lockedRound = -1
    this.validBlock = undefined
    this.validRound = -1
    this.heightStarted = Date.now()
    this.startRound(0)
    const held = this.future
    this.future = []
    for (const { msg, from, verified } of held) {
      this.receive(msg, from, verified)
    }
  }

  private startRound (round: number): void {
    this.round = round
    this.step = 'propose'
    if (this.proposeTimer != null) {
      clearTimeout(this.proposeTimer)
      this.timers.delete(this.proposeTimer)
      this.proposeTimer = undefined
    }
    if (!this.isValidator()) {
      return
    }
    const height = this.height
    if (this.proposerOf(height, round) === this.c.peerId) {
      if (round === 0 && this.validBlock == null) {
        // round 0 waits for transactions (and batches them a moment), or proposes an empty block when idle
        const wait = this.c.mempool.size > 0 ? this.batchMs : this.idleBlockMs
        this.proposeTimer = this.schedule(wait, () => { this.propose(height, round) })
      } else {
        this.propose(height, round)
      }
    } else {
      this.armProposeTimeout()
    }
    // a round already past quorum (messages came before we got here)
    this.recheck()
  }

  /**
   * A non-proposer's wait: a slot and a half once there is something to
   * propose (validators under load finish a height up to a second apart,
   * and a proposer that is a little late costs less than a new round:
   * bench:ledger at 1,000 tx/s offered, p95 6.8 slots with one slot, 2.8
   * with one and a half), the idle time otherwise
   */
  private armProposeTimeout (): void {
    if (this.proposeTimer != null) {
      clearTimeout(this.proposeTimer)
      this.timers.delete(this.proposeTimer)
    }
    const height = this.height
    const round = this.round
    const wait = round === 0 && this.c.mempool.size === 0
      ? this.idleBlockMs + this.slotMs
      : Math.floor(this.slotMs * 1.5) + Math.floor(round * this.slotMs / 2)
    this.proposeTimer = this.schedule(wait, () => {
      if (this.height === height && this.round === round && this.step === 'propose') {
        log('height %d round %d: no block from %s in time', height, round, this.proposerOf(height, round))
        this.vote('prevote', undefined)
      }
    })
  }

  private txArrived (): void {
    if (!this.running || !this.isValidator() || this.round !== 0 || this.step !== 'propose' || this.c.mempool.size !== 1) {
      return
    }
    // the first transaction of an idle height: shorten the waits
    if (this.proposerOf(this.height, 0) === this.c.peerId) {
      if (this.proposeTimer != null) {
        clearTimeout(this.proposeTimer)
        this.timers.delete(this.proposeTimer)
      }
      const height = this.height
      this.proposeTimer = this.schedule(this.batchMs, () => { this.propose(height, 0) })
    } else if (this.r(0).proposal == null) {
      this.armProposeTimeout()
    }
  }

  private propose (height: number, round: number): void {
    if (this.height !== height || this.round !== round || this.step !== 'propose') {
      return
    }
    const msg = this.signOnce(`proposal-${round}`, () => {
      const block = this.validBlock ?? this.buildBlock(height, round)
      log('height %d round %d: proposing %d transactions', height, round, block.txs.length)
      return { type: 'proposal', proposal: signProposal(this.c.state.ledger, { height, round, validRound: this.validBlock != null ? this.validRound : -1, block, blockBytes: encodeBlock(block), proposer: this.c.peerId }, this.c.signer) }
    })
    this.receive(msg, this.c.peerId, true)
  }

  /**
   * The message this validator signs for a slot of the current height:
   * made and kept (on disk before it is sent) the first time, and the
   * same one again after a restart, whatever this node would sign now.
   */
  private signOnce (slot: string, make: () => SignedMessage): SignedMessage {
    if (this.signed.height !== this.height) {
      this.signed = { height: this.height, msgs: new Map() }
    }
    this.signedAt = Date.now()
    let msg = this.signed.msgs.get(slot)
    if (msg != null) {
      log('height %d: %s signed before a restart, sent again as it was', this.height, slot)
    } else {
      msg = make()
      this.signed.msgs.set(slot, msg)
      const height = this.height
      const save = this.c.saveSigned
      const kept = msg
      if (save != null) {
        this.outbox = this.outbox.then(async () => save(height, kept))
      }
    }
    const out = msg
    this.outbox = this.outbox.then(() => { this.c.broadcast(out) }).catch(err => {
      // not on disk: sending it could let a restart contradict it
      log.error('height %d: keeping what this validator signed failed, %s not sent - %e', this.height, slot, err)
    })
    return msg
  }

  /**
   * A height that has stood still for five slots since this validator
   * last signed something in it: send again what it signed in its latest
   * round. Gossip delivers a message once,
   * to whoever is up then; a validator that was down (restarted after a
   * crash, or cut off) missed the votes the others cast before, and with
   * more than a third of them gone nobody moves to another round, so
   * without this the ledger would wait forever. Copies are harmless: a
   * vote or proposal held already is ignored.
   */
  private resendIfStuck (): void {
    // counted from the last signature, not the start of the height: an
    // idle height that just got its block is not stuck. Five slots: under
    // load a round can take two or three, and sending a large proposal
    // again then would only add to the load
    if (!this.running || !this.isValidator() || this.deciding || this.signed.height !== this.height || Date.now() - this.signedAt < 5 * this.slotMs) {
      return
    }
    const msgs = [...this.signed.msgs.values()]
    const latest = Math.max(...msgs.map(m => slotOf(m).round))
    for (const m of msgs.filter(m => slotOf(m).round === latest)) {
      this.outbox = this.outbox.then(() => { this.c.broadcast(m) })
    }
    log('height %d stands still %d ms after this validator signed in it: sent what it signed in round %d again', this.height, Date.now() - this.signedAt, latest)
  }

  /** How long since the last block became final here (or the engine started) */
  get stillMs (): number {
    return Date.now() - this.heightStarted
  }

  /** What this validator signed at `height` before it stopped (loaded at start) */
  restoreSigned (height: number, msgs: SignedMessage[]): void {
    this.signed = { height, msgs: new Map(msgs.map(m => [slotOf(m).slot, m])) }
  }

  private buildBlock (height: number, round: number): Block {
    const state = this.c.state
    const txs = this.c.mempool.select(state.genesis.maxTxsPerBlock)
    // a block's time never goes back, even if this clock does
    const time = Math.max(Date.now(), state.lastTime + 1)
    const dryRun = state.dryRun({ txs, header: { time, height } })
    const header = { ledger: state.ledger, height, round, time, prev: state.lastHash, proposer: this.c.peerId, txRoot: txRootOf(txs), appHash: dryRun.appHash }
    const block = { header, txs, hash: sha256(encodeHeader(header)) }
    // our own block: valid, and run once
    this.verdicts.set(hex(block.hash), undefined)
    this.dryRuns.set(hex(block.hash), dryRun)
    return block
  }

  /** Verdicts on blocks of this height, by hash: every vote rechecks the proposal, and running a large block's transactions again for each would be the slowest thing a validator does */
  private verdicts = new Map<string, string | undefined>()
  /** the dry run of each block checked at this height, applied as it is once the block is final */
  private dryRuns = new Map<string, DryRun>()

  /** Why a block may not be final at this height, or undefined (the clock is read once, when first checked) */
  private invalid (block: Block): string | undefined {
    const key = hex(block.hash)
    if (this.verdicts.has(key)) {
      return this.verdicts.get(key)
    }
    const verdict = this.check(block, true)
    this.verdicts.set(key, verdict)
    return verdict
  }

  /**
   * The rules a block of this height must follow. `live`: it is being
   * proposed now, so its time must not be ahead of our clock (a block
   * synced later is old, and only its order is checked).
   */
  private check (block: Block, live: boolean): string | undefined {
    const state = this.c.state
    const h = block.header
    if (hex(h.ledger) !== hex(state.ledger)) {
      return 'for another ledger'
    }
    if (h.height !== state.height + 1) {
      return `height ${h.height}, not ${state.height + 1}`
    }
    if (hex(h.prev) !== hex(state.lastHash)) {
      return 'it does not follow the last final block'
    }
    if (h.proposer !== this.proposerOf(h.height, h.round)) {
      return `${h.proposer} does not propose round ${h.round}`
    }
    if (h.time <= state.lastTime) {
      return 'its time is before the last block\'s'
    }
    if (live && h.time > Date.now() + this.maxClockSkewMs) {
      return 'its time is too far ahead of this node\'s clock'
    }
    if (block.txs.length > state.genesis.maxTxsPerBlock) {
      return `${block.txs.length} transactions, over the ${state.genesis.maxTxsPerBlock} a block may hold`
    }
    const ids = new Set(block.txs.map(t => hex(t.id)))
    if (ids.size !== block.txs.length) {
      return 'a transaction twice'
    }
    const dryRun = state.dryRun(block)
    if (hex(dryRun.appHash) !== hex(h.appHash)) {
      return 'its app hash is not what its transactions give'
    }
    this.dryRuns.set(hex(block.hash), dryRun)
    return undefined
  }

  /**
   * Take in a consensus message from `from` (a gossip peer, or ourselves).
   * `verified`: its signature was checked already (by the gossip topic's
   * validator, or it is our own); a signature check per vote is most of
   * what a node spends on consensus, so it is done once.
   */
  receive (msg: ConsensusMessage, from: string, verified = false): void {
    if (!this.running) {
      return
    }
    if (msg.type === 'commit') {
      void this.receiveCommit(msg.block, msg.blockBytes, msg.commit, from)
      return
    }
    const height = msg.type === 'proposal' ? msg.proposal.height : msg.vote.height
    if (height < this.height) {
      return
    }
    if (height > this.height) {
      if (height === this.height + 1 && this.future.length < 10_000) {
        this.future.push({ msg, from, verified })
      } else {
        this.c.onBehind?.(height, from)
      }
      return
    }
    if (msg.type === 'proposal') {
      this.onProposal(msg.proposal, verified)
    } else {
      this.onVote(msg.vote, verified)
    }
  }

  private onProposal (p: Proposal, verified: boolean): void {
    if (p.round > this.round + 1000) {
      return
    }
    const expected = this.proposerOf(p.height, p.round)
    if (p.proposer !== expected) {
      log('dropped a proposal for height %d round %d from %s: the round is %s\'s', p.height, p.round, p.proposer, expected)
      return
    }
    try {
      if (!verified) {
        verifyProposal(this.c.state.ledger, p)
      }
    } catch (err: any) {
      log('dropped a proposal with a bad signature - %s', err.message)
      return
    }
    const r = this.r(p.round)
    if (r.proposal != null) {
      if (hex(r.proposal.block.hash) !== hex(p.block.hash) || r.proposal.validRound !== p.validRound) {
        // two blocks signed for one slot: both are out, and the proposer is on record
        r.proposalRejected = true
        this.c.onEquivocation?.({ validator: p.proposer, height: p.height, round: p.round, what: 'proposal', first: hex(r.proposal.block.hash), second: hex(p.block.hash) })
        if (p.round === this.round && this.step === 'propose') {
          this.vote('prevote', undefined)
        }
      }
      return
    }
    r.proposal = p
    this.recheck()
  }

  private onVote (v: Vote, verified: boolean): void {
    if (!this.validators.includes(v.voter) || v.round > this.round + 1000) {
      return
    }
    try {
      if (!verified) {
        verifyVote(this.c.state.ledger, v)
      }
    } catch (err: any) {
      log('dropped a vote with a bad signature - %s', err.message)
      return
    }
    const r = this.r(v.round)
    const votes = v.type === 'prevote' ? r.prevotes : r.precommits
    const held = votes.get(v.voter)
    if (held != null) {
      if (hex(held.block) !== hex(v.block) && !r.equivocators.has(v.voter)) {
        r.equivocators.add(v.voter)
        votes.delete(v.voter)
        this.c.onEquivocation?.({ validator: v.voter, height: v.height, round: v.round, what: v.type, first: hex(held.block), second: hex(v.block) })
      }
      return
    }
    if (r.equivocators.has(v.voter)) {
      return
    }
    votes.set(v.voter, v)
    // f+1 validators in a later round: go there (someone is ahead of us)
    if (v.round > this.round) {
      const ahead = new Set([...r.prevotes.keys(), ...r.precommits.keys()])
      if (ahead.size > this.validators.length / 3) {
        this.startRound(v.round)
        return
      }
    }
    this.recheck()
  }

  private count (votes: Map<string, Vote>, block?: Uint8Array): number {
    const want = block == null ? '' : hex(block)
    let n = 0
    for (const v of votes.values()) {
      if (hex(v.block) === want) {
        n++
      }
    }
    return n
  }

  private vote (type: 'prevote' | 'precommit', block: Block | undefined): void {
    if (!this.isValidator()) {
      return
    }
    this.step = type
    const msg = this.signOnce(`${type}-${this.round}`, () => ({ type: 'vote', vote: signVote(this.c.state.ledger, { type, height: this.height, round: this.round, block: block?.hash ?? new Uint8Array(0), voter: this.c.peerId }, this.c.signer) }))
    if (msg.type === 'vote') {
      this.onVote(msg.vote, true)
    }
  }

  /** The rules of the algorithm that fire on what has been collected */
  private recheck (): void {
    if (this.deciding) {
      return
    }
    const q = quorum(this.validators.length)
    // any round: a proposal with a quorum of precommits is final
    for (const [round, r] of this.rounds) {
      const p = r.proposal
      if (p != null && !r.proposalRejected && this.count(r.precommits, p.block.hash) >= q) {
        if (this.invalid(p.block) == null) {
          void this.decide(p, round, r)
          return
        }
      }
    }
    const r = this.r(this.round)
    const p = r.proposal
    if (this.step === 'propose' && p != null && !r.proposalRejected) {
      const bad = this.invalid(p.block)
      if (bad != null) {
        log('height %d round %d: prevoting nil, the block is bad: %s', this.height, this.round, bad)
        this.vote('prevote', undefined)
      } else if (p.validRound === -1) {
        this.vote('prevote', this.lockedRound === -1 || hex(this.lockedBlock!.hash) === hex(p.block.hash) ? p.block : undefined)
      } else if (p.validRound < this.round && this.count(this.r(p.validRound).prevotes, p.block.hash) >= q) {
        this.vote('prevote', this.lockedRound <= p.validRound || hex(this.lockedBlock!.hash) === hex(p.block.hash) ? p.block : undefined)
      }
    }
    if (this.step === 'prevote' || this.step === 'precommit') {
      if (p != null && !r.proposalRejected && this.count(r.prevotes, p.block.hash) >= q && this.invalid(p.block) == null) {
        if (this.step === 'prevote') {
          this.lockedBlock = p.block
          this.lockedRound = this.round
          this.vote('precommit', p.block)
        }
        this.validBlock = p.block
        this.validRound = this.round
      } else if (this.step === 'prevote' && this.count(r.prevotes) >= q) {
        this.vote('precommit', undefined)
      } else if (this.step === 'prevote' && r.prevotes.size >= q && !r.prevoteTimer) {
        r.prevoteTimer = true
        const height = this.height
        const round = this.round
        this.schedule(Math.floor(this.slotMs / 2), () => {
          if (this.height === height && this.round === round && this.step === 'prevote') {
            this.vote('precommit', undefined)
          }
        })
      }
    }
    if (r.precommits.size >= q && !r.precommitTimer) {
      r.precommitTimer = true
      const height = this.height
      const round = this.round
      this.schedule(Math.floor(this.slotMs / 2), () => {
        if (this.height === height && this.round === round) {
          this.startRound(round + 1)
        }
      })
    }
  }

  private async decide (p: Proposal, round: number, r: Round): Promise<void> {
    this.deciding = true
    const block = p.block
    try {
      const q = quorum(this.validators.length)
      const votes = [...r.precommits.values()].filter(v => hex(v.block) === hex(block.hash)).slice(0, Math.max(q, 0))
      const commit: Commit = { round, votes: votes.map(v => ({ voter: v.voter, signature: v.signature })) }
      await this.finalize(block, p.blockBytes, commit)
      // the final block for anyone that missed votes (a node that joined
      // mid-height); every node has reached it on its own, and each copy
      // is a block every peer downloads and decodes, so only its proposer
      // sends it
      if (block.header.proposer === this.c.peerId) {
        const msg: ConsensusMessage = { type: 'commit', block, blockBytes: p.blockBytes, commit }
        this.outbox = this.outbox.then(() => { this.c.broadcast(msg) })
      }
    } catch (err: any) {
      log.error('keeping block %d failed - %e', block.header.height, err)
    } finally {
      this.deciding = false
    }
    if (this.running) {
      this.startHeight()
    }
  }

  private async finalize (block: Block, blockBytes: Uint8Array, commit: Commit): Promise<void> {
    await this.c.persist(block, blockBytes, commit)
    this.c.state.apply(block, this.dryRuns.get(hex(block.hash)))
    this.c.mempool.removeIncluded(block.txs)
    log('block %d final: %d transactions, round %d, %d ms after the height began', block.header.height, block.txs.length, commit.round, Date.now() - this.heightStarted)
    this.c.onFinal?.(block)
  }

  /** A final block from a peer: checked against its certificate and the rules, then applied */
  private async receiveCommit (block: Block, blockBytes: Uint8Array, commit: Commit, from: string): Promise<void> {
    const height = block.header.height
    if (height <= this.c.state.height || this.deciding) {
      return
    }
    if (height > this.c.state.height + 1) {
      this.c.onBehind?.(height, from)
      return
    }
    try {
      await this.applyFinal(block, commit, blockBytes)
    } catch (err: any) {
      log('dropped block %d from %s - %s', height, from, err.message)
      return
    }
    if (this.running) {
      this.startHeight()
    }
  }

  /**
   * Apply a final block got from elsewhere (a commit message, or sync):
   * its certificate must verify against this height's validators and it
   * must follow the rules. Throws saying why not.
   */
  async applyFinal (block: Block, commit: Commit, blockBytes: Uint8Array): Promise<void> {
    if (this.deciding) {
      throw new Error('a block is being decided')
    }
    this.deciding = true
    try {
      verifyCommit(this.c.state.ledger, block, commit, this.validators)
      const bad = this.check(block, false)
      if (bad != null) {
        throw new Error(`block ${block.header.height} breaks the rules: ${bad}`)
      }
      await this.finalize(block, blockBytes, commit)
    } finally {
      this.deciding = false
    }
  }

  /** Restart the current height after a sync moved the state on */
  resync (): void {
    if (this.running && this.c.state.height + 1 !== this.height) {
      this.startHeight()
    }
  }

  /** Validators whose signed messages for the current height reached this node (itself included) */
  heardFrom (): number {
    const heard = new Set<string>()
    for (const r of this.rounds.values()) {
      if (r.proposal != null) {
        heard.add(r.proposal.proposer)
      }
      for (const v of [...r.prevotes.keys(), ...r.precommits.keys()]) {
        heard.add(v)
      }
    }
    return heard.size
  }

  status (): { height: number, round: number, step: Step, proposer: string, validator: boolean } {
    return { height: this.height, round: this.round, step: this.step, proposer: this.proposerOf(this.height, this.round), validator: this.isValidator() }
  }
}

export type { SignedTx }
