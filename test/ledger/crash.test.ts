import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { readFile, writeFile } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { LevelDatastore } from 'datastore-level'
import { decodeMessage, encodeBlock, encodeHeader, hex, sha256, signProposal, txRootOf, type Block, type ConsensusMessage, type Genesis } from '../../src/ledger/encoding.ts'
import { CloudLedger } from '../../src/ledger/cloud-ledger.ts'
import { openCloudSigner } from '../../src/protocols/rpc/credentials.ts'
import { nodeApi, startNode, stopAll, writeLedgerGenesis, type Started } from '../../scripts/testnet/network.ts'
import { tempDir, testConfig, waitFor } from '../helpers/nodes.ts'

const SLOT_MS = 400

/**
 * Validators as daemons (one process each, as operators run them), so one
 * can be killed with SIGKILL in the middle of a height, and a node in this
 * process that follows the ledger and watches the consensus topic.
 */
describe('cloud ledger: a validator killed with kill -9 mid-slot', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let genesisPath: string
  const daemons: Started[] = []
  let follower: OpenCloudNode
  let bootstrap: string
  const L = (): CloudLedger => follower.cloudLedger!

  const start = async (i: number): Promise<Started> => {
    const d = await startNode(i, dir.path, i === 1 ? undefined : bootstrap, undefined, genesisPath)
    daemons[i - 1] = d
    await follower?.libp2p.dial(multiaddr(d.addrs.find(a => a.includes('/127.0.0.1/')) ?? d.addrs[0])).catch(() => {})
    return d
  }

  before(async () => {
    dir = await tempDir()
    genesisPath = await writeLedgerGenesis(dir.path, 4)
    const genesis = JSON.parse(await readFile(genesisPath, 'utf8'))
    await writeFile(genesisPath, JSON.stringify({ ...genesis, slotMs: SLOT_MS, checkpointEvery: 1000 }))
    await start(1)
    bootstrap = daemons[0].addrs.find(a => a.includes('/127.0.0.1/')) ?? daemons[0].addrs[0]
    for (let i = 2; i <= 4; i++) {
      await start(i)
    }
    follower = await OpenCloudNode.create({ dataDir: join(dir.path, 'follower'), config: testConfig({ ledger: { genesis: genesisPath, idleBlockMs: 2000 } }), bootstrap: [bootstrap] })
    await follower.start()
    for (const d of daemons) {
      await follower.libp2p.dial(multiaddr(d.addrs.find(a => a.includes('/127.0.0.1/')) ?? d.addrs[0]))
    }
  })

  after(async () => {
    await follower?.stop().catch(() => {})
    await stopAll(daemons.filter(d => d != null))
    await dir?.cleanup()
  })

  it('stalls with two of four up and says so, then goes on from where it was once the killed one restarts, signing nothing twice', async () => {
    const { pool } = await nodeApi(daemons[0], '/v1/ledger/pools', { method: 'POST', body: JSON.stringify({ name: 'crash', service: 'sha256', credit: '10 sat', quantity: 100, ttl: '1d', perRequester: 10 }) })
    await waitFor(() => L().state.pools.has(pool), 20_000, 'the pool on the follower')
    // one validator stopped cleanly: the other three are all a block needs
    await stopAll([daemons[3]])
    const victim = daemons[1]

    // the next request; validator 2 is killed the moment its first vote for it is out
    const height = L().state.height + 1
    const voted = new Promise<string>(resolve => {
      follower.libp2p.services.pubsub.addEventListener('message', (evt) => {
        if (evt.detail.topic !== L().topics.consensus) {
          return
        }
        const m = decodeMessage(evt.detail.data, () => true)
        if (m.type === 'vote' && m.vote.voter === victim.peerId && m.vote.height === height && victim.child.exitCode == null) {
          victim.child.kill('SIGKILL')
          resolve(`${m.vote.type} ${m.vote.round}`)
        }
      })
    })
    const { id } = await L().submit({ kind: 'request', pool: Buffer.from(pool, 'hex') }, { wait: false }) as any
    const what = await voted
    await new Promise(resolve => victim.child.once('exit', resolve))
    assert.equal(victim.child.signalCode, 'SIGKILL', `killed after its ${what}`)

    // two of four: nothing more is final, and every node says why. (On a
    // loaded machine the victim's precommit may have left before the kill
    // landed, and then its block is rightly final: the request sent now,
    // with two of four up for certain, is the one that must wait.)
    const waiting = (await L().submit({ kind: 'request', pool: Buffer.from(pool, 'hex') }, { wait: false }) as any).id
    await waitFor(() => L().status().problem != null, 20_000, 'the follower to report the stall')
    assert.match(L().status().problem!, /more than a third of the 4 validators may be down/)
    assert.equal(L().state.outcomes.get(waiting), undefined, 'nothing final while two of four are up')
    // each node counts the stall from when its own height began: a validator may say so a moment after the follower
    let status: any
    await waitFor(async () => (status = await nodeApi(daemons[0], '/v1/ledger')).problem != null, 20_000, 'validator 1 to report the stall')
    assert.match(status.problem, /no block for \d+ s while [12] transactions? wait: more than a third of the 4 validators may be down or out of reach \(a block needs 3 of them; this node heard from [23] at height \d+\)/)

    // the killed validator restarts on its data directory (LevelDB as kill -9 left it)
    await start(2)
    for (const tx of [id, waiting]) {
      const outcome = await L().outcome(tx, 30_000)
      assert.equal(outcome.ok, true)
    }
    await waitFor(() => L().status().problem == null, 10_000, 'the problem to clear')
    // it sent again what it had signed, never something else: no one holds evidence against it
    assert.deepEqual(L().equivocations, [])
    for (const d of daemons.slice(0, 3)) {
      const s = await nodeApi(d, '/v1/ledger')
      assert.equal(s.equivocations, 0, `node ${d.index} holds evidence`)
    }

    // and the one stopped cleanly catches up to the same state
    await start(4)
    await waitFor(async () => (await nodeApi(daemons[3], '/v1/ledger')).height >= L().state.height, 30_000, 'validator 4 caught up')
    // every validator at the follower's height, with its last block and state
    await waitFor(async () => {
      const all = await Promise.all(daemons.map(async d => nodeApi(d, '/v1/ledger')))
      return all.every(s => s.height === L().state.height && s.lastBlock === hex(L().state.lastHash))
    }, 20_000, 'all four at the follower\'s last block')
    for (const d of daemons) {
      const s = await nodeApi(d, '/v1/ledger')
      assert.equal(s.appHash, hex(L().state.appHash), `node ${d.index} at height ${s.height}`)
    }
  })
})

describe('cloud ledger: what a validator signed survives a crash', () => {
  it('sends the vote it signed before the crash again, not a vote for another block of the same slot', async () => {
    const dir = await tempDir()
    const keys = await Promise.all(Array.from({ length: 4 }, async () => generateKeyPair('Ed25519')))
    const ids = keys.map(k => peerIdFromPrivateKey(k).toString())
    const genesis: Genesis = { chain: 'crash', time: Date.now() - 1000, validators: ids, slotMs: SLOT_MS, checkpointEvery: 1000, maxTxsPerBlock: 100, maxRequestsPerSlot: 5, txTtlMs: 60_000 }
    const path = join(dir.path, 'store')
    let current: CloudLedger | undefined
    const open = async (store: LevelDatastore): Promise<{ ledger: CloudLedger, sent: ConsensusMessage[] }> => {
      const sent: ConsensusMessage[] = []
      const pubsub: any = { topicValidators: new Map(), subscribe () {}, unsubscribe () {}, publish: async (_: string, data: Uint8Array) => { sent.push(decodeMessage(data, () => true)) }, addEventListener () {}, removeEventListener () {} }
      const ledger = new CloudLedger({ peerId: peerIdFromPrivateKey(keys[0]), signer: openCloudSigner(keys[0]), datastore: store, pubsub }, { genesis, idleBlockMs: 60_000 })
      await ledger.start()
      return { ledger, sent }
    }
    // validator 1 proposes block 1 twice (it equivocates): what does validator 0 prevote?
    const proposal = (time: number): ConsensusMessage => {
      const first = current!
      const header = { ledger: first.id, height: 1, round: 0, time, prev: first.state.lastHash, proposer: ids[1], txRoot: txRootOf([]), appHash: first.state.dryRun({ txs: [], header: { time, height: 1 } }).appHash }
      const block: Block = { header, txs: [], hash: sha256(encodeHeader(header)) }
      return { type: 'proposal', proposal: signProposal(first.id, { height: 1, round: 0, validRound: -1, block, blockBytes: encodeBlock(block), proposer: ids[1] }, openCloudSigner(keys[1])) }
    }
    const prevotes = (sent: ConsensusMessage[]): string[] => sent.flatMap(m => m.type === 'vote' && m.vote.type === 'prevote' && m.vote.height === 1 && m.vote.round === 0 ? [hex(m.vote.block)] : [])

    let store = new LevelDatastore(path)
    await store.open()
    const before = await open(store)
    current = before.ledger
    assert.equal(before.ledger.engine.proposerOf(1, 0), ids[1])
    const x = proposal(Date.now())
    before.ledger.engine.receive(x, ids[1])
    await waitFor(() => prevotes(before.sent).length > 0, 5000, 'the prevote sent')
    const blockX = x.type === 'proposal' ? hex(x.proposal.block.hash) : ''
    assert.deepEqual(prevotes(before.sent), [blockX])
    // the crash: nothing more runs, nothing is cleaned up
    before.ledger.engine.stop()
    await store.close()

    store = new LevelDatastore(path)
    await store.open()
    try {
      const after = await open(store)
      current = after.ledger
      const y = proposal(Date.now() + 5)
      after.ledger.engine.receive(y, ids[1])
      await waitFor(() => prevotes(after.sent).length > 0, 5000, 'a prevote after the restart')
      assert.notEqual(y.type === 'proposal' ? hex(y.proposal.block.hash) : '', blockX)
      assert.deepEqual(prevotes(after.sent), [blockX], 'the same vote as before the crash')
      await after.ledger.stop()
    } finally {
      await store.close()
      await dir.cleanup()
    }
  })
})
