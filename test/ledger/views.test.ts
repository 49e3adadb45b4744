import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { sha256, type Genesis } from '../../src/ledger/encoding.ts'
import { LedgerViews, type LedgerViewComponents } from '../../src/ledger/views.ts'
import type { Pool, PromoCode } from '../../src/ledger/state.ts'

/**
 * The ledger's views alone, over a stub state and engine: what a node
 * says is wrong when blocks stop, and how codes look at a given time.
 * (The JSON fields themselves are held to PROTOCOL.md by vectors.test.ts.)
 */

const T0 = 1767225600000
const genesis: Genesis = { chain: 'views', time: T0, validators: ['a', 'b', 'c', 'd'], slotMs: 1000, checkpointEvery: 100, maxTxsPerBlock: 10, maxRequestsPerSlot: 1, txTtlMs: 60_000 }
const pool: Pool = { id: 'p1', owner: 'a', name: 'starter', service: 'sha256', creditSat: 1000n, quantity: 3, issued: 2, ttlMs: 10_000, perRequester: 1, createdAt: T0, height: 1 }
const code = (name: string, owner: string, issuedAt: number, redeemed?: PromoCode['redeemed']): PromoCode => ({ code: name, pool: 'p1', owner, issuedAt, expiresAt: issuedAt + pool.ttlMs, height: 2, transfers: 0, redeemed })

function views (engine: { round?: number, heard?: number, stillMs?: number }, pending = 0): LedgerViews {
  const state: LedgerViewComponents['state'] = {
    ledger: sha256(new Uint8Array([1])),
    height: 7,
    lastHash: new Uint8Array(32),
    lastTime: T0,
    appHash: new Uint8Array(32),
    validators: genesis.validators,
    pools: new Map([['p1', pool]]),
    codes: new Map([
      ['c2', code('c2', 'me', T0 + 2000)],
      ['c1', code('c1', 'me', T0 + 1000, { by: 'b', at: T0 + 1500, height: 3 })],
      ['c3', code('c3', 'someone', T0)]
    ]),
    votes: new Map([['add e', { voters: new Set(['a', 'b']), statement: 'e runs a cloud' }]])
  }
  return new LedgerViews({
    self: 'me',
    genesis,
    state,
    mempool: { size: pending },
    engine: {
      status: () => ({ height: 8, round: engine.round ?? 0, step: 'propose' as const, proposer: 'b', validator: false }),
      heardFrom: () => engine.heard ?? 4,
      stillMs: engine.stillMs ?? 0,
      idleBlockMs: 60_000
    },
    equivocations: []
  })
}

describe('ledger views', () => {
  it('say nothing is wrong while blocks come, and why they may not once they stop', () => {
    assert.equal(views({}).livenessProblem(), undefined)
    // an idle ledger makes a block a minute: quiet is not stuck until well past that
    assert.equal(views({ stillMs: 69_000 }).livenessProblem(), undefined)
    assert.equal(views({ stillMs: 71_000, heard: 2 }).livenessProblem(), 'no block for 71 s: more than a third of the 4 validators may be down or out of reach (a block needs 3 of them; this node heard from 2 at height 8)')
    // with transactions waiting, ten slots is long
    assert.equal(views({ stillMs: 9_000 }, 5).livenessProblem(), undefined)
    assert.equal(views({ stillMs: 11_000, heard: 1 }, 5).livenessProblem(), 'no block for 11 s while 5 transactions wait: more than a third of the 4 validators may be down or out of reach (a block needs 3 of them; this node heard from 1 at height 8)')
    assert.equal(views({ round: 2 }).livenessProblem(), undefined)
    assert.equal(views({ round: 3, heard: 2 }).livenessProblem(), 'height 8 is at round 3: more than a third of the 4 validators may be down (a block needs 3 of them; this node heard from 2 at height 8)')
    assert.match(views({ round: 3 }).status().problem!, /^height 8 is at round 3/)
    assert.equal(views({}).status().problem, undefined)
  })

  it('show a code valid with the time left, expired, or redeemed, and this node\'s own codes oldest first', () => {
    const v = views({})
    const valid = v.codeView('c2', T0 + 5000)!
    assert.deepEqual([valid.state, valid.remainingMs, valid.credit, valid.issuer, valid.poolName, valid.expiresAt], ['valid', 7000, '0.00001 BTC', 'a', 'starter', new Date(T0 + 12_000).toISOString()])
    const expired = v.codeView('c2', T0 + 12_000)!
    assert.deepEqual([expired.state, expired.remainingMs], ['expired', 0])
    const redeemed = v.codeView('c1', T0 + 5000)!
    assert.deepEqual([redeemed.state, redeemed.remainingMs, redeemed.redeemed], ['redeemed', 0, { by: 'b', at: new Date(T0 + 1500).toISOString(), height: 3 }])
    assert.equal(v.codeView('none'), undefined)
    assert.deepEqual(v.ownCodes(T0).map(c => c.code), ['c1', 'c2'])
    assert.deepEqual(v.poolViews().map(p => [p.id, p.left, p.credit]), [['p1', 1, '0.00001 BTC']])
    assert.deepEqual(v.voteViews(), [{ action: 'add', candidate: 'e', voters: ['a', 'b'], needed: 3, statement: 'e runs a cloud' }])
  })
})
