import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openCloudSigner, type CredentialSigner } from '../../src/protocols/rpc/credentials.ts'
import {
  encodeBlock, encodeHeader, hex, ledgerIdOf, sha256, signProposal, signTx, signVote, txRootOf, verifyCommit,
  type Block, type Commit, type ConsensusMessage, type Genesis, type SignedTx, type Vote
} from '../../src/ledger/encoding.ts'
import { LedgerState } from '../../src/ledger/state.ts'
import { Mempool } from '../../src/ledger/mempool.ts'
import { ConsensusEngine, type Equivocation, type SignedMessage } from '../../src/ledger/consensus.ts'

/**
 * The consensus engine alone: its components are stubs (a broadcast that
 * records or hands messages to other engines, a persist that keeps blocks
 * in memory) around a real LedgerState and Mempool, and its clock is
 * node:test's mock timers, so every round runs the same way on any machine
 * and no test waits for a slot.
 */

const SLOT_MS = 1000
const IDLE_MS = 5000
const T0 = 1767225600000

const keys = await Promise.all([0, 1, 2, 3].map(async i => generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(0x40 + i))))
const signers: CredentialSigner[] = keys.map(openCloudSigner)
const ids = keys.map(k => peerIdFromPrivateKey(k).toString())
const genesis: Genesis = { chain: 'consensus-unit', time: T0, validators: ids, slotMs: SLOT_MS, checkpointEvery: 1000, maxTxsPerBlock: 100, maxRequestsPerSlot: 10, txTtlMs: 600_000 }
const ledger = ledgerIdOf(genesis)

interface Harness {
  engine: ConsensusEngine
  state: LedgerState
  mempool: Mempool
  /** what it broadcast, in order */
  sent: ConsensusMessage[]
  final: Array<{ block: Block, commit: Commit }>
  equivocations: Equivocation[]
  /** what it kept with saveSigned */
  saved: SignedMessage[]
}

function harness (i: number, broadcast: (msg: ConsensusMessage) => void = () => {}): Harness {
  const state = new LedgerState(genesis, ledger)
  const mempool = new Mempool(state)
  const h: Harness = { state, mempool, sent: [], final: [], equivocations: [], saved: [], engine: undefined as any }
  h.engine = new ConsensusEngine({
    peerId: ids[i],
    signer: signers[i],
    state,
    mempool,
    broadcast: msg => { h.sent.push(msg); broadcast(msg) },
    persist: async (block, _bytes, commit) => { h.final.push({ block, commit }) },
    onEquivocation: e => { h.equivocations.push(e) },
    saveSigned: async (_height, msg) => { h.saved.push(msg) }
  }, { idleBlockMs: IDLE_MS })
  return h
}

/** Let promise chains (the engine's outbox, persist) and message deliveries run */
async function settle (): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise(resolve => setImmediate(resolve))
  }
}

/** Move the mock clock on by `ms`, a little at a time, settling between */
async function advance (t: TestContext, ms: number, step = 50): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    t.mock.timers.tick(Math.min(step, ms - done))
    await settle()
  }
}

function useMockClock (t: TestContext): void {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 + 1000 })
}

/** Validator `i`'s engine started on the mock clock, stopped after `fn` */
async function withEngine (t: TestContext, i: number, fn: (h: Harness) => Promise<void>): Promise<void> {
  useMockClock(t)
  const h = harness(i)
  h.engine.start()
  try {
    await fn(h)
  } finally {
    h.engine.stop()
  }
}

/** An empty block for height 1 proposed by validator `i` in `round`, at `time` */
function blockBy (i: number, round: number, time = Date.now(), txs: SignedTx[] = []): Block {
  const dryRun = new LedgerState(genesis, ledger).dryRun({ txs, header: { time, height: 1 } })
  const header = { ledger, height: 1, round, time, prev: ledger, proposer: ids[i], txRoot: txRootOf(txs), appHash: dryRun.appHash }
  return { header, txs, hash: sha256(encodeHeader(header)) }
}

function proposal (i: number, block: Block, validRound = -1): ConsensusMessage {
  return { type: 'proposal', proposal: signProposal(ledger, { height: block.header.height, round: block.header.round, validRound, block, blockBytes: encodeBlock(block), proposer: ids[i] }, signers[i]) }
}

function vote (i: number, type: 'prevote' | 'precommit', round: number, block?: Block): ConsensusMessage {
  return { type: 'vote', vote: signVote(ledger, { type, height: 1, round, block: block?.hash ?? new Uint8Array(0), voter: ids[i] }, signers[i]) }
}

/** The votes of `type` a harness sent, as [round, block hash hex ('' for nil)] */
function votesSent (h: Harness, type: 'prevote' | 'precommit'): Array<[number, string]> {
  return h.sent.flatMap(m => m.type === 'vote' && m.vote.type === type ? [[m.vote.round, hex(m.vote.block)] as [number, string]] : [])
}

describe('consensus engine, four validators', () => {
  it('has a proposer per round in turn, never the proposer of the block before', () => {
    const { engine } = harness(0)
    assert.deepEqual([0, 1, 2, 3].map(r => engine.proposerOf(1, r)), [ids[1], ids[2], ids[3], ids[0]])
    // height 2 after validator 1 proposed height 1: the other three in turn
    const next = [0, 1, 2, 3, 4, 5].map(r => engine.proposerOf(2, r, ids, ids[1]))
    assert.ok(!next.includes(ids[1]))
    assert.deepEqual(next.slice(3), next.slice(0, 3))
    assert.equal(new Set(next).size, 3)
  })

  /**
   * Four real engines handing each other their messages (no network): the
   * proposer of round 0 proposes the transaction waiting, and all four
   * finalise the same block with a certificate that verifies
   */
  const network = (down = new Set<number>()): Harness[] => {
    const hs: Harness[] = []
    for (let i = 0; i < 4; i++) {
      hs.push(harness(i, msg => {
        if (down.has(i)) return
        for (let j = 0; j < 4; j++) {
          if (j !== i && !down.has(j)) {
            queueMicrotask(() => { hs[j].engine.receive(msg, ids[i]) })
          }
        }
      }))
    }
    return hs
  }

  it('decides a height: the round-0 proposer\'s block, with its transaction, final on all four with a certificate of more than two thirds', async t => {
    useMockClock(t)
    const hs = network()
    const tx = signTx({ ledger, sender: ids[0], time: Date.now(), body: { kind: 'pool', name: 'unit', service: 'sha256', creditSat: 1000n, quantity: 1, ttlMs: 600_000, perRequester: 1 } }, signers[0])
    for (const h of hs) h.mempool.add(tx)
    for (const h of hs) h.engine.start()
    try {
      // a transaction waiting: the proposer batches a tenth of a slot, the
      // others wait a slot and a half for it
      await advance(t, SLOT_MS)
      for (const h of hs) {
        assert.equal(h.final.length, 1, 'one block final on each')
        const { block, commit } = h.final[0]
        assert.deepEqual([block.header.height, block.header.round, block.header.proposer], [1, 0, ids[1]])
        assert.equal(hex(block.hash), hex(hs[0].final[0].block.hash), 'the same block on all four')
        assert.deepEqual(block.txs.map(x => hex(x.id)), [hex(tx.id)])
        verifyCommit(ledger, block, commit, ids)
        assert.ok(commit.votes.length >= 3)
        assert.equal(h.state.height, 1)
        assert.equal(h.state.pools.size, 1, 'the transaction applied')
        assert.equal(h.mempool.size, 0, 'and gone from the mempool')
        assert.equal(h.engine.height, 2, 'on to the next height')
      }
      // round 0 of height 2 is not the proposer of height 1's
      assert.notEqual(hs[0].engine.status().proposer, ids[1])
    } finally {
      for (const h of hs) h.engine.stop()
    }
  })

  it('has a nil round when the proposer is silent: the others prevote and precommit nil, and the next proposer\'s block is final in round 1', async t => {
    useMockClock(t)
    // validator 1 proposes round 0 and says nothing
    const hs = network(new Set([1]))
    const live = [hs[0], hs[2], hs[3]]
    for (const h of live) h.engine.start()
    try {
      // an idle height: a non-proposer waits the idle time and a slot for a block
      await advance(t, IDLE_MS + SLOT_MS + SLOT_MS / 2)
      for (const h of live) {
        assert.deepEqual(votesSent(h, 'prevote')[0], [0, ''], 'prevoted nil in round 0')
        assert.deepEqual(votesSent(h, 'precommit')[0], [0, ''], 'precommitted nil in round 0')
      }
      // round 1 is validator 2's: it proposes at once, and three of four decide
      await advance(t, 2 * SLOT_MS)
      for (const h of live) {
        assert.equal(h.final.length, 1)
        const { block, commit } = h.final[0]
        assert.deepEqual([block.header.round, block.header.proposer, commit.round], [1, ids[2], 1])
        verifyCommit(ledger, block, commit, ids)
        assert.ok(!commit.votes.some(v => v.voter === ids[1]), 'the silent validator is in no certificate')
      }
      assert.equal(hs[1].final.length, 0)
    } finally {
      for (const h of live) h.engine.stop()
    }
  })
})

describe('consensus engine, one validator and the messages of three', () => {
  /** Lock validator `me` on a block X in round 0 and end the round with nil precommits from the others */
  async function lockedInRound0 (t: TestContext, me: number): Promise<{ h: Harness, x: Block }> {
    useMockClock(t)
    const h = harness(me)
    h.engine.start()
    const x = blockBy(1, 0)
    const others = [0, 1, 2, 3].filter(i => i !== me)
    h.engine.receive(proposal(1, x), ids[1])
    await settle()
    assert.deepEqual(votesSent(h, 'prevote'), [[0, hex(x.hash)]])
    // two more prevotes for X: more than two thirds, so it locks on X and precommits it
    for (const i of others.slice(0, 2)) h.engine.receive(vote(i, 'prevote', 0, x), ids[i])
    await settle()
    assert.deepEqual(votesSent(h, 'precommit'), [[0, hex(x.hash)]])
    // the others precommit nil: the round ends half a slot later with no block
    for (const i of others) h.engine.receive(vote(i, 'precommit', 0), ids[i])
    await advance(t, SLOT_MS / 2)
    assert.equal(h.engine.round, 1)
    assert.equal(h.final.length, 0)
    return { h, x }
  }

  it('a validator locked on a block proposes it again in the next round, with its valid round, and prevotes it', async t => {
    // validator 2 proposes round 1 of height 1
    const { h, x } = await lockedInRound0(t, 2)
    try {
      const proposed = h.sent.flatMap(m => m.type === 'proposal' ? [m.proposal] : [])
      assert.equal(proposed.length, 1)
      assert.deepEqual([proposed[0].round, proposed[0].validRound, hex(proposed[0].block.hash)], [1, 0, hex(x.hash)], 'X again, not a new block')
      assert.deepEqual(votesSent(h, 'prevote'), [[0, hex(x.hash)], [1, hex(x.hash)]])
    } finally {
      h.engine.stop()
    }
  })

  it('a validator locked on a block prevotes nil for another block proposed in the next round', async t => {
    // validator 3 does not propose round 1; validator 2 does, a new block Y
    const { h, x } = await lockedInRound0(t, 3)
    try {
      const y = blockBy(2, 1, Date.now() + 1)
      assert.notEqual(hex(y.hash), hex(x.hash))
      h.engine.receive(proposal(2, y), ids[2])
      await settle()
      assert.deepEqual(votesSent(h, 'prevote'), [[0, hex(x.hash)], [1, '']])
    } finally {
      h.engine.stop()
    }
  })

  it('records a validator that prevotes two blocks in one round, and counts it for neither', async t => {
    await withEngine(t, 0, async h => {
      const x = blockBy(1, 0)
      h.engine.receive(proposal(1, x), ids[1])
      h.engine.receive(vote(1, 'prevote', 0, x), ids[1])
      h.engine.receive(vote(1, 'prevote', 0), ids[1])
      h.engine.receive(vote(2, 'prevote', 0, x), ids[2])
      await settle()
      assert.deepEqual(h.equivocations, [{ validator: ids[1], height: 1, round: 0, what: 'prevote', first: hex(x.hash), second: '' }])
      // X has this validator's prevote and validator 2's: two of four, no precommit yet
      assert.deepEqual(votesSent(h, 'precommit'), [])
      h.engine.receive(vote(3, 'prevote', 0, x), ids[3])
      await settle()
      assert.deepEqual(votesSent(h, 'precommit'), [[0, hex(x.hash)]])
    })
  })

  it('records a proposer that signs two blocks for one round, and precommits neither, whatever the prevotes', async t => {
    await withEngine(t, 0, async h => {
      const x = blockBy(1, 0)
      const x2 = blockBy(1, 0, Date.now() + 1)
      h.engine.receive(proposal(1, x), ids[1])
      h.engine.receive(proposal(1, x2), ids[1])
      await settle()
      assert.deepEqual(h.equivocations, [{ validator: ids[1], height: 1, round: 0, what: 'proposal', first: hex(x.hash), second: hex(x2.hash) }])
      assert.deepEqual(votesSent(h, 'prevote'), [[0, hex(x.hash)]], 'its prevote stands')
      // more than two thirds prevote X, but the proposal is out: no lock, and
      // after half a slot a nil precommit
      h.engine.receive(vote(2, 'prevote', 0, x), ids[2])
      h.engine.receive(vote(3, 'prevote', 0, x), ids[3])
      await settle()
      assert.deepEqual(votesSent(h, 'precommit'), [])
      await advance(t, SLOT_MS / 2)
      assert.deepEqual(votesSent(h, 'precommit'), [[0, '']])
    })
  })

  it('sends again what it signed in its latest round after five slots with nothing happening, the same bytes', async t => {
    await withEngine(t, 0, async h => {
      const x = blockBy(1, 0)
      h.engine.receive(proposal(1, x), ids[1])
      await settle()
      const prevotes = (): Vote[] => h.sent.flatMap(m => m.type === 'vote' ? [m.vote] : [])
      assert.equal(prevotes().length, 1)
      // the others are cut off: no vote comes, and the height stands still
      await advance(t, 4 * SLOT_MS)
      assert.equal(prevotes().length, 1, 'not before five slots')
      await advance(t, 2 * SLOT_MS)
      assert.equal(prevotes().length, 2, 'sent again')
      assert.deepEqual(prevotes()[1], prevotes()[0], 'the same vote, not a new signature')
    })
  })

  it('after a restart within a height, sends what it signed before instead of signing something else for that slot', async t => {
    useMockClock(t)
    const before = harness(0)
    before.engine.start()
    const x = blockBy(1, 0)
    before.engine.receive(proposal(1, x), ids[1])
    await settle()
    before.engine.stop()
    assert.deepEqual(before.saved.map(m => m.type === 'vote' ? [m.vote.type, hex(m.vote.block)] : []), [['prevote', hex(x.hash)]])

    const after = harness(0)
    after.engine.restoreSigned(1, before.saved)
    after.engine.start()
    try {
      // no proposal reaches it this time: it sends what it signed before
      // the restart again (the others may have missed it) and its wait
      // ends with a prevote, the one for X it signed, not a new one for nil
      await advance(t, IDLE_MS + SLOT_MS)
      const sent = after.sent.flatMap(m => m.type === 'vote' ? [m.vote] : [])
      assert.ok(sent.length > 0)
      for (const v of sent) {
        assert.deepEqual(v, (before.saved[0] as Extract<SignedMessage, { type: 'vote' }>).vote)
      }
      assert.deepEqual(after.saved, [], 'nothing new signed')
    } finally {
      after.engine.stop()
    }
  })
})
