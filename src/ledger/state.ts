import { Writer } from '../protocols/codec.ts'
import { formatAmount } from '../protocols/units.ts'
import { hex, majority, openEvidence, sha256, verifyRedeemAuthorization, type Block, type Genesis, type SignedTx } from './encoding.ts'

/**
 * The ledger's state and the rules every transaction is held to. Every node
 * applies the same final blocks in the same order to the same rules, so
 * every node holds the same state; a transaction that breaks a rule stays
 * in its block as failed, with a reason, and changes nothing.
 */

/** the shortest and longest a code may live */
const MIN_TTL_MS = 60_000
const MAX_TTL_MS = 366 * 86_400_000
const MAX_QUANTITY = 10_000_000
/** how far ahead of the block's time a transaction's time may be */
const FUTURE_SKEW_MS = 60_000

export interface Pool {
  id: string
  /** the member cloud that put it there, and redeems for it */
  owner: string
  name: string
  service: string
  creditSat: bigint
  quantity: number
  issued: number
  ttlMs: number
  perRequester: number
  createdAt: number
  height: number
}

export interface PromoCode {
  code: string
  pool: string
  owner: string
  issuedAt: number
  expiresAt: number
  height: number
  transfers: number
  redeemed?: { by: string, at: number, height: number }
}

export interface Checkpoint {
  height: number
  stateRoot: string
  btcTxid: string
  by: string
}

export interface TxOutcome {
  id: string
  ok: boolean
  /** why it failed, for a failed one */
  reason?: string
  height: number
}

/** A block's transactions run against the state, not yet kept */
export interface DryRun {
  appHash: Uint8Array
  outcomes: TxOutcome[]
  /** keep what the block changed; only while the state is where the dry run found it */
  keep: () => void
}

export class LedgerState {
  readonly genesis: Genesis
  readonly ledger: Uint8Array
  validators: string[]
  readonly pools = new Map<string, Pool>()
  readonly codes = new Map<string, PromoCode>()
  /** pool id + ' ' + requester: codes that requester has from that pool */
  readonly requested = new Map<string, number>()
  /** 'add ' / 'remove ' + candidate: who voted for it, and the candidate's statement */
  readonly votes = new Map<string, { voters: Set<string>, statement?: string }>()
  readonly checkpoints = new Map<number, Checkpoint>()
  /** state roots at checkpoint heights */
  readonly roots = new Map<number, string>()
  /** transaction ids within their TTL, against replays: id -> time */
  readonly recent = new Map<string, number>()
  /** outcome of every transaction, by id */
  readonly outcomes = new Map<string, TxOutcome>()
  height = 0
  /** hash of the last block applied (the genesis id before the first) */
  lastHash: Uint8Array
  appHash: Uint8Array
  lastTime: number
  /** who proposed the last block: it may not propose the next */
  lastProposer?: string

  constructor (genesis: Genesis, ledger: Uint8Array) {
    this.genesis = genesis
    this.ledger = ledger
    this.validators = [...genesis.validators]
    this.lastHash = ledger
    this.appHash = ledger
    this.lastTime = genesis.time
  }

  isValidator (peer: string): boolean {
    return this.validators.includes(peer)
  }

  /**
   * Run a block's transactions without changing anything: the app hash a
   * proposer puts in its header and a validator checks. What it changed is
   * kept aside, so applying the block once it is final (with nothing
   * applied in between) need not run them again.
   */
  dryRun (block: Pick<Block, 'txs'> & { header: { time: number, height: number } }): DryRun {
    const { outcomes, overlay } = this.execute(block.txs, block.header.time, block.header.height)
    return { appHash: this.nextAppHash(outcomes), outcomes, keep: () => { overlay.commit() } }
  }

  /** Apply a final block, with its dry run at this height if there was one. The caller has checked its certificate. */
  apply (block: Block, dryRun = this.dryRun(block)): TxOutcome[] {
    const { time, height } = block.header
    const { outcomes } = dryRun
    dryRun.keep()
    this.appHash = dryRun.appHash
    this.height = height
    this.lastHash = block.hash
    this.lastTime = time
    this.lastProposer = block.header.proposer
    for (const o of outcomes) {
      this.outcomes.set(o.id, o)
    }
    // forget replay guards past their ttl: older transactions are refused by
    // time anyway. The map is in block order, so roughly oldest first: stop
    // at the first one still within its ttl rather than walk minutes of
    // transactions every block (a straggler is only forgotten a little later)
    for (const [id, t] of this.recent) {
      if (t >= time - this.genesis.txTtlMs) {
        break
      }
      this.recent.delete(id)
    }
    if (height % this.genesis.checkpointEvery === 0) {
      this.roots.set(height, hex(this.stateRoot()))
    }
    return outcomes
  }

  private nextAppHash (outcomes: TxOutcome[]): Uint8Array {
    const w = new Writer().raw(this.appHash)
    for (const o of outcomes) {
      w.raw(Buffer.from(o.id, 'hex')).u8(o.ok ? 1 : 0)
    }
    return sha256(w.finish())
  }

  /**
   * The rules. Nothing is kept until the overlay of what the block changed
   * is committed, but the transactions of one block see each other through
   * it (a second redemption of a code in the same block fails).
   */
  private execute (txs: SignedTx[], time: number, height: number): { outcomes: TxOutcome[], overlay: Overlay } {
    const overlay = new Overlay(this)
    const requestsThisBlock = new Map<string, number>()
    const out: TxOutcome[] = []
    for (const stx of txs) {
      const id = hex(stx.id)
      const reason = this.check(stx, id, time, height, overlay, requestsThisBlock)
      out.push(reason == null ? { id, ok: true, height } : { id, ok: false, reason, height })
    }
    return { outcomes: out, overlay }
  }

  /** Check one transaction and, if it passes, record its effect in the overlay; a string is why it fails */
  private check (stx: SignedTx, id: string, time: number, height: number, o: Overlay, requestsThisBlock: Map<string, number>): string | undefined {
    const { tx } = stx
    if (hex(tx.ledger) !== hex(this.ledger)) {
      return 'for another ledger'
    }
    if (tx.time < time - this.genesis.txTtlMs) {
      return 'too old: sent more than the ledger\'s transaction ttl before the block'
    }
    if (tx.time > time + FUTURE_SKEW_MS) {
      return 'dated in the future'
    }
    if (o.recent(id)) {
      return 'already on the ledger (a replay)'
    }
    const validators = o.validators()
    const b = tx.body
    switch (b.kind) {
      case 'pool': {
        if (!validators.includes(tx.sender)) {
          return 'only a member cloud (a validator) creates pools'
        }
        if (b.quantity < 1 || b.quantity > MAX_QUANTITY) {
          return `a pool holds 1 to ${MAX_QUANTITY} codes`
        }
        if (b.ttlMs < MIN_TTL_MS || b.ttlMs > MAX_TTL_MS) {
          return 'a code lives 1 minute to 366 days'
        }
        if (b.perRequester < 1) {
          return 'each requester may have at least 1 code'
        }
        if (b.creditSat < 1n) {
          return `a code is worth at least ${formatAmount(1n)}`
        }
        o.setPool({ id, owner: tx.sender, name: b.name, service: b.service, creditSat: b.creditSat, quantity: b.quantity, issued: 0, ttlMs: b.ttlMs, perRequester: b.perRequester, createdAt: time, height })
        break
      }
      case 'request': {
        const pool = o.pool(hex(b.pool))
        if (pool == null) {
          return 'no such pool'
        }
        if (pool.issued >= pool.quantity) {
          return `the pool is empty: all ${pool.quantity} codes are out`
        }
        const key = `${pool.id} ${tx.sender}`
        const had = o.requested(key)
        if (had >= pool.perRequester) {
          return `this requester has ${had} codes from this pool, the most it allows`
        }
        const inBlock = requestsThisBlock.get(tx.sender) ?? 0
        if (inBlock >= this.genesis.maxRequestsPerSlot) {
          return `more than ${this.genesis.maxRequestsPerSlot} requests from one requester in one block`
        }
        requestsThisBlock.set(tx.sender, inBlock + 1)
        o.setPool({ ...pool, issued: pool.issued + 1 })
        o.setRequested(key, had + 1)
        o.setCode({ code: id, pool: pool.id, owner: tx.sender, issuedAt: time, expiresAt: time + pool.ttlMs, height, transfers: 0 })
        break
      }
      case 'transfer': {
        const code = o.code(hex(b.code))
        const broken = whyUnusable(code, time)
        if (broken != null) {
          return broken
        }
        if (code!.owner !== tx.sender) {
          return 'only the code\'s owner transfers it'
        }
        if (b.to === tx.sender) {
          return 'the code is the sender\'s already'
        }
        o.setCode({ ...code!, owner: b.to, transfers: code!.transfers + 1 })
        break
      }
      case 'redeem': {
        const code = o.code(hex(b.code))
        const broken = whyUnusable(code, time)
        if (broken != null) {
          return broken
        }
        if (!validators.includes(tx.sender)) {
          return 'only a member cloud (a validator) redeems codes'
        }
        if (!verifyRedeemAuthorization(this.ledger, b.code, tx.sender, code!.owner, b.authorization)) {
          return `the code's owner ${code!.owner} did not authorize ${tx.sender} to redeem it`
        }
        o.setCode({ ...code!, redeemed: { by: tx.sender, at: time, height } })
        break
      }
      case 'vote': {
        if (!validators.includes(tx.sender)) {
          return 'only a validator votes'
        }
        if (b.add && validators.includes(b.candidate)) {
          return 'the candidate is a validator already'
        }
        if (!b.add && !validators.includes(b.candidate)) {
          return 'the candidate is not a validator'
        }
        if (!b.add && validators.length === 1) {
          return 'the last validator cannot be removed'
        }
        let statement: string | undefined
        if (b.add) {
          try {
            statement = openEvidence(this.ledger, b.candidate, b.evidence)
          } catch (err: any) {
            return `the candidate's evidence does not verify: ${err.message}`
          }
        }
        const key = `${b.add ? 'add' : 'remove'} ${b.candidate}`
        const vote = o.vote(key)
        if (vote.voters.has(tx.sender)) {
          return 'this validator voted for it already'
        }
        const voters = new Set([...vote.voters, tx.sender])
        // a majority of the current validators carries it
        if (voters.size >= majority(validators.length)) {
          o.setValidators(b.add ? [...validators, b.candidate] : validators.filter(v => v !== b.candidate))
          o.setVote(key, undefined)
          o.setVote(`${b.add ? 'remove' : 'add'} ${b.candidate}`, undefined)
        } else {
          o.setVote(key, { voters, statement: statement ?? vote.statement })
        }
        break
      }
      case 'checkpoint': {
        if (!validators.includes(tx.sender)) {
          return 'only a validator records checkpoints'
        }
        const root = this.roots.get(b.height)
        if (root == null) {
          return `no checkpoint is due at height ${b.height}`
        }
        if (root !== hex(b.stateRoot)) {
          return `the state root at height ${b.height} is ${root}, not ${hex(b.stateRoot)}`
        }
        if (o.checkpoint(b.height) != null) {
          return `height ${b.height} is anchored already`
        }
        o.setCheckpoint({ height: b.height, stateRoot: root, btcTxid: b.btcTxid, by: tx.sender })
        break
      }
    }
    o.setRecent(id, tx.time)
    return undefined
  }

  /**
   * Every entry of the state as (key, value), sorted by key (byte order of
   * the ASCII keys): what the state root is computed over. PROTOCOL.md
   * section 8e gives each entry's bytes; ids are lowercase hex and PeerIds
   * their base58 text (12D3KooW..., no "oc:"), both as text.
   */
  stateEntries (): Array<[string, Uint8Array]> {
    const enc = new TextEncoder()
    const entries: Array<[string, Uint8Array]> = []
    this.validators.forEach((v, i) => entries.push([`validator/${String(i).padStart(4, '0')}`, enc.encode(v)]))
    for (const p of this.pools.values()) {
      entries.push([`pool/${p.id}`, new Writer().string(p.owner).string(p.name).string(p.service).varint(Number(p.creditSat)).varint(p.quantity).varint(p.issued).varint(p.ttlMs).varint(p.perRequester).varint(p.createdAt).finish()])
    }
    for (const c of this.codes.values()) {
      entries.push([`code/${c.code}`, new Writer().string(c.pool).string(c.owner).varint(c.expiresAt).string(c.redeemed?.by ?? '').varint(c.redeemed?.height ?? 0).finish()])
    }
    for (const [key, n] of this.requested) {
      entries.push([`requested/${key}`, new Writer().varint(n).finish()])
    }
    for (const [key, v] of this.votes) {
      entries.push([`vote/${key}`, enc.encode([...v.voters].sort().join(','))])
    }
    for (const c of this.checkpoints.values()) {
      entries.push([`checkpoint/${String(c.height).padStart(12, '0')}`, enc.encode(`${c.stateRoot} ${c.btcTxid} ${c.by}`)])
    }
    return entries.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  }

  /**
   * A Merkle root (RFC 6962 shape) over every entry of the state, sorted by
   * key: what a checkpoint anchors in bitcoin.
   */
  stateRoot (): Uint8Array {
    return merkle(this.stateEntries().map(([k, v]) => sha256(stateLeaf(k, v))))
  }
}

/** A state entry's leaf before hashing: 0x00 || bytes key || bytes value */
export function stateLeaf (key: string, value: Uint8Array): Uint8Array {
  return new Writer().u8(0).bytes(new TextEncoder().encode(key)).bytes(value).finish()
}

/** Why a code cannot be transferred or redeemed at `time` (a block's, or a node's clock for a check ahead of a block); undefined when it can */
export function whyUnusable (code: PromoCode | undefined, time: number): string | undefined {
  if (code == null) {
    return 'no such code'
  }
  if (code.redeemed != null) {
    return `the code was redeemed at height ${code.redeemed.height} by ${code.redeemed.by}`
  }
  if (code.expiresAt <= time) {
    return `the code expired at ${new Date(code.expiresAt).toISOString()}`
  }
  return undefined
}

/** RFC 6962: leaves hashed already; interior nodes sha256(0x01 || left || right); the empty tree sha256() */
function merkle (leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) {
    return sha256()
  }
  if (leaves.length === 1) {
    return leaves[0]
  }
  let k = 1
  while (k * 2 < leaves.length) {
    k *= 2
  }
  return sha256(Uint8Array.of(1), merkle(leaves.slice(0, k)), merkle(leaves.slice(k)))
}

/** What one block changed, over the state, until it is kept or dropped */
class Overlay {
  private readonly s: LedgerState
  private readonly pools = new Map<string, Pool>()
  private readonly codes = new Map<string, PromoCode>()
  private readonly req = new Map<string, number>()
  private readonly voteMap = new Map<string, { voters: Set<string>, statement?: string } | undefined>()
  private readonly checkpoints = new Map<number, Checkpoint>()
  private readonly recentIds = new Map<string, number>()
  private vals?: string[]

  constructor (s: LedgerState) {
    this.s = s
  }

  validators (): string[] { return this.vals ?? this.s.validators }
  setValidators (v: string[]): void { this.vals = v }
  pool (id: string): Pool | undefined { return this.pools.get(id) ?? this.s.pools.get(id) }
  setPool (p: Pool): void { this.pools.set(p.id, p) }
  code (id: string): PromoCode | undefined { return this.codes.get(id) ?? this.s.codes.get(id) }
  setCode (c: PromoCode): void { this.codes.set(c.code, c) }
  requested (key: string): number { return this.req.get(key) ?? this.s.requested.get(key) ?? 0 }
  setRequested (key: string, n: number): void { this.req.set(key, n) }
  vote (key: string): { voters: Set<string>, statement?: string } {
    return (this.voteMap.has(key) ? this.voteMap.get(key) : this.s.votes.get(key)) ?? { voters: new Set() }
  }

  setVote (key: string, v: { voters: Set<string>, statement?: string } | undefined): void { this.voteMap.set(key, v) }
  checkpoint (height: number): Checkpoint | undefined { return this.checkpoints.get(height) ?? this.s.checkpoints.get(height) }
  setCheckpoint (c: Checkpoint): void { this.checkpoints.set(c.height, c) }
  recent (id: string): boolean { return this.recentIds.has(id) || this.s.recent.has(id) }
  setRecent (id: string, time: number): void { this.recentIds.set(id, time) }

  commit (): void {
    const s = this.s
    for (const p of this.pools.values()) s.pools.set(p.id, p)
    for (const c of this.codes.values()) s.codes.set(c.code, c)
    for (const [k, n] of this.req) s.requested.set(k, n)
    for (const [k, v] of this.voteMap) {
      if (v == null) s.votes.delete(k)
      else s.votes.set(k, v)
    }
    for (const c of this.checkpoints.values()) s.checkpoints.set(c.height, c)
    for (const [id, t] of this.recentIds) s.recent.set(id, t)
    if (this.vals != null) s.validators = this.vals
  }
}
