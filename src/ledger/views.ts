import { formatAmount } from '../protocols/units.ts'
import { hex, majority, quorum, type Genesis } from './encoding.ts'
import type { ConsensusEngine, Equivocation } from './consensus.ts'
import type { LedgerState } from './state.ts'
import type { Mempool } from './mempool.ts'

/**
 * The ledger as the ledger service, the control API and the CLI show it:
 * plain JSON (amounts in BTC, times in ISO 8601, ids in hex), with exactly
 * the fields PROTOCOL.md section 8e lists for status, code and pools (a
 * test holds them to its tables).
 */

export interface LedgerViewComponents {
  /** this node's PeerId: the owner of "its" codes */
  self: string
  genesis: Genesis
  state: Pick<LedgerState, 'ledger' | 'height' | 'lastHash' | 'lastTime' | 'appHash' | 'validators' | 'pools' | 'codes' | 'votes'>
  mempool: Pick<Mempool, 'size'>
  engine: Pick<ConsensusEngine, 'status' | 'heardFrom' | 'stillMs' | 'idleBlockMs'>
  /** the equivocations this node has seen */
  equivocations: readonly Equivocation[]
}

export class LedgerViews {
  private readonly c: LedgerViewComponents

  constructor (components: LedgerViewComponents) {
    this.c = components
  }

  status (): LedgerStatus {
    const { genesis, state, mempool } = this.c
    const e = this.c.engine.status()
    return {
      chain: genesis.chain,
      ledger: hex(state.ledger),
      height: state.height,
      lastBlock: hex(state.lastHash),
      lastBlockAt: new Date(state.lastTime).toISOString(),
      appHash: hex(state.appHash),
      round: e.round,
      step: e.step,
      nextProposer: e.proposer,
      validator: e.validator,
      validators: state.validators,
      slotMs: genesis.slotMs,
      checkpointEvery: genesis.checkpointEvery,
      pending: mempool.size,
      pools: state.pools.size,
      codes: state.codes.size,
      equivocations: this.c.equivocations.length,
      problem: this.livenessProblem()
    }
  }

  /** Why blocks may not become final, if something is visibly wrong */
  livenessProblem (): string | undefined {
    const { engine, genesis, mempool } = this.c
    const { round, height } = engine.status()
    const n = this.c.state.validators.length
    const needs = `a block needs ${quorum(n)} of them; this node heard from ${engine.heardFrom()} at height ${height}`
    if (round >= 3) {
      return `height ${height} is at round ${round}: more than a third of the ${n} validators may be down (${needs})`
    }
    // with more than a third down nobody gets enough votes to move to the
    // next round either, so rounds alone would never say so: time does
    const since = engine.stillMs
    const limit = mempool.size > 0 ? 10 * genesis.slotMs : engine.idleBlockMs + 10 * genesis.slotMs
    if (since > limit) {
      return `no block for ${Math.round(since / 1000)} s${mempool.size > 0 ? ` while ${mempool.size} transactions wait` : ''}: more than a third of the ${n} validators may be down or out of reach (${needs})`
    }
    return undefined
  }

  /** A code as any node sees it: valid (with the time left), redeemed or expired; undefined when unknown */
  codeView (code: string, now = Date.now()): CodeView | undefined {
    const c = this.c.state.codes.get(code)
    if (c == null) {
      return undefined
    }
    const pool = this.c.state.pools.get(c.pool)!
    const state = c.redeemed != null ? 'redeemed' : c.expiresAt <= now ? 'expired' : 'valid'
    return {
      code: c.code,
      state,
      pool: c.pool,
      poolName: pool.name,
      issuer: pool.owner,
      service: pool.service,
      credit: formatAmount(pool.creditSat),
      owner: c.owner,
      issuedAt: new Date(c.issuedAt).toISOString(),
      expiresAt: new Date(c.expiresAt).toISOString(),
      remainingMs: state === 'valid' ? c.expiresAt - now : 0,
      transfers: c.transfers,
      redeemed: c.redeemed == null ? undefined : { by: c.redeemed.by, at: new Date(c.redeemed.at).toISOString(), height: c.redeemed.height }
    }
  }

  /** Codes this node owns, oldest first */
  ownCodes (now = Date.now()): CodeView[] {
    return [...this.c.state.codes.values()].filter(c => c.owner === this.c.self).map(c => this.codeView(c.code, now)!).sort((a, b) => a.issuedAt < b.issuedAt ? -1 : 1)
  }

  poolViews (): PoolView[] {
    return [...this.c.state.pools.values()].map(p => ({ id: p.id, name: p.name, issuer: p.owner, service: p.service, credit: formatAmount(p.creditSat), quantity: p.quantity, issued: p.issued, left: p.quantity - p.issued, ttlMs: p.ttlMs, perRequester: p.perRequester, createdAt: new Date(p.createdAt).toISOString(), height: p.height }))
  }

  /** Pending votes: who voted for what */
  voteViews (): VoteView[] {
    return [...this.c.state.votes.entries()].map(([key, v]) => {
      const [action, candidate] = key.split(' ')
      return { action, candidate, voters: [...v.voters], needed: majority(this.c.state.validators.length), statement: v.statement }
    })
  }
}

export interface LedgerStatus {
  chain: string
  ledger: string
  height: number
  lastBlock: string
  /** the last block's time (the genesis time before the first block), ISO 8601 */
  lastBlockAt: string
  appHash: string
  round: number
  step: string
  nextProposer: string
  validator: boolean
  validators: string[]
  slotMs: number
  checkpointEvery: number
  pending: number
  pools: number
  codes: number
  equivocations: number
  problem?: string
}

export interface CheckpointView {
  height: number
  stateRoot: string
  btcTxid: string
  by: string
  /** the state root this node computed at that height */
  ownRoot?: string
  confirmations?: number
  status: 'ok' | 'mismatch' | 'unchecked'
  problem?: string
}

export interface CodeView {
  code: string
  state: 'valid' | 'redeemed' | 'expired'
  pool: string
  poolName: string
  /** the member cloud that issued it */
  issuer: string
  service: string
  /** what the code pays for, of the service's calls: "0.00001 BTC" */
  credit: string
  owner: string
  /** the block time of the request that made it, ISO 8601 */
  issuedAt: string
  /** issuedAt + the pool's ttl, ISO 8601 */
  expiresAt: string
  /** ms until it expires by this node's clock; 0 unless valid */
  remainingMs: number
  transfers: number
  /** `at` is the redeeming block's time, ISO 8601 */
  redeemed?: { by: string, at: string, height: number }
}

export interface PoolView {
  id: string
  name: string
  issuer: string
  service: string
  /** what each code pays for: "0.00001 BTC" */
  credit: string
  quantity: number
  issued: number
  left: number
  ttlMs: number
  perRequester: number
  /** the block time of the pool transaction, ISO 8601 */
  createdAt: string
  height: number
}

/** A vote on the validators that has not reached its majority yet */
export interface VoteView {
  /** "add" or "remove" */
  action: string
  candidate: string
  voters: string[]
  /** the votes it takes: a majority of today's validators */
  needed: number
  /** the candidate's signed statement, for an addition */
  statement?: string
}
