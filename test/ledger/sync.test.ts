import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { Reader, Writer } from '../../src/protocols/codec.ts'
import { encodeStored } from '../../src/ledger/block-store.ts'
import { LedgerSync, type LedgerSyncComponents } from '../../src/ledger/sync.ts'
import type { Block } from '../../src/ledger/encoding.ts'
import { emptyChain, type Chain } from '../helpers/ledger-chain.ts'

/**
 * Catching up alone: the engine is a stub that applies what it is handed
 * in order (or refuses a height it is told to), the peer a function that
 * serves blocks of a real chain as the `blocks` method does.
 */

interface Harness {
  sync: LedgerSync
  state: { height: number }
  /** the `from` of every fetch, with its peer */
  fetches: string[]
  resyncs: number
}

describe('ledger sync', () => {
  let chain: Chain
  let stored: Uint8Array[]

  before(async () => {
    chain = await emptyChain(7)
    stored = chain.blocks.map(b => encodeStored(b.blockBytes, b.commit))
  })

  const answer = (blocks: Uint8Array[]): Uint8Array => {
    const w = new Writer().varint(blocks.length)
    blocks.forEach(b => w.bytes(b))
    return w.finish()
  }

  /** a sync whose peer serves up to `per` blocks an answer, and whose engine refuses height `refuse` */
  const harness = (options: { per?: number, refuse?: number, fetch?: LedgerSyncComponents['fetchBlocks'], peers?: string[] } = {}): Harness => {
    const state = { height: 0 }
    const h: Harness = { state, fetches: [], resyncs: 0, sync: undefined as any }
    h.sync = new LedgerSync({
      self: 'me',
      state,
      mempool: { verified: () => false },
      engine: {
        applyFinal: async (block: Block) => {
          await new Promise(resolve => setImmediate(resolve))
          if (block.header.height === options.refuse) {
            throw new Error('refused')
          }
          assert.equal(block.header.height, state.height + 1, 'handed in order')
          state.height = block.header.height
        },
        resync: () => { h.resyncs++ }
      },
      blocks: { raw: async (height) => stored[height - 1] },
      fetchBlocks: options.fetch ?? (async (peer, from) => {
        h.fetches.push(`${peer} ${from}`)
        return answer(stored.slice(from - 1, from - 1 + (options.per ?? 3)))
      }),
      peers: () => options.peers ?? []
    }, { slotMs: 1000 })
    return h
  }

  it('fetches from a peer until it has no more, then restarts the engine\'s height once', async () => {
    const h = harness()
    assert.equal(await h.sync.syncFrom('p'), 7)
    assert.equal(h.state.height, 7)
    assert.deepEqual(h.fetches, ['p 1', 'p 4', 'p 7', 'p 8'])
    assert.equal(h.resyncs, 1)
    // nothing new: no resync
    assert.equal(await h.sync.syncFrom('p'), 0)
    assert.equal(h.resyncs, 1)
  })

  it('stops, without throwing, at a block the engine refuses, bytes that do not decode, or a peer that fails', async () => {
    const refused = harness({ refuse: 3 })
    assert.equal(await refused.sync.syncFrom('p'), 2)
    assert.equal(refused.state.height, 2)
    const garbage = harness({ fetch: async () => new Uint8Array([0xff]) })
    assert.equal(await garbage.sync.syncFrom('p'), 0)
    const cut = harness({ fetch: async () => answer(stored.slice(0, 2)).subarray(0, stored[0].byteLength + 10) })
    assert.equal(await cut.sync.syncFrom('p'), 1, 'the whole first block, then the cut')
    const down = harness({ fetch: async () => { throw new Error('no route') } })
    assert.equal(await down.sync.syncFrom('p'), 0)
  })

  it('runs one sync at a time: the second goes on from where the first stopped', async () => {
    const h = harness({ per: 2 })
    const [a, b] = await Promise.all([h.sync.syncFrom('a'), h.sync.syncFrom('b')])
    assert.deepEqual([a, b], [7, 0])
    assert.deepEqual(h.fetches, ['a 1', 'a 3', 'a 5', 'a 7', 'a 8', 'b 8'])
  })

  it('syncs from a peer that shows a height past the next, never from itself', async () => {
    const h = harness()
    h.sync.behind(1, 'p')
    h.sync.behind(9, '')
    h.sync.behind(9, 'me')
    assert.equal(await h.sync.syncFrom('q'), 7, 'nothing ran before')
    assert.deepEqual(h.fetches, ['q 1', 'q 4', 'q 7', 'q 8'])
    h.fetches.length = 0
    h.state.height = 0
    h.sync.behind(2, 'p')
    assert.equal(await h.sync.syncFrom('q'), 0, 'waited for the sync from p')
    assert.deepEqual(h.fetches, ['p 1', 'p 4', 'p 7', 'p 8', 'q 8'])
  })

  it('syncs from every peer at start, and gives up a fetch under way at stop', { timeout: 10_000 }, async () => {
    const h = harness({ peers: ['a', 'b'] })
    h.sync.start()
    while (h.fetches.length < 5) {
      await new Promise(resolve => setImmediate(resolve))
    }
    await h.sync.stop()
    assert.deepEqual(h.fetches, ['a 1', 'a 4', 'a 7', 'a 8', 'b 8'])
    let seen: AbortSignal | undefined
    const hanging = harness({
      peers: ['a'],
      fetch: async (_peer, _from, { signal }) => {
        seen = signal
        return new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(signal.reason) }) })
      }
    })
    hanging.sync.start()
    await hanging.sync.stop()
    assert.equal(seen?.aborted, true)
    assert.equal(await hanging.sync.syncFrom('a'), 0, 'a stopped sync fetches nothing')
  })

  it('serves final blocks from a height, at most `max` of them or about `maxBytes`, never past its own height', async () => {
    const h = harness()
    h.state.height = 5
    const served = (bytes: Uint8Array): number[] => {
      const r = new Reader(bytes)
      return Array.from({ length: r.count(1000, 'blocks') }, () => {
        const block = r.bytes(1_000_000, 'block')
        return stored.findIndex(s => Buffer.from(s).equals(block)) + 1
      })
    }
    assert.deepEqual(served(await h.sync.blocksFrom(2)), [2, 3, 4, 5])
    assert.deepEqual(served(await h.sync.blocksFrom(2, 2)), [2, 3])
    assert.deepEqual(served(await h.sync.blocksFrom(2, 100, stored[1].byteLength + 1)), [2, 3], 'until over maxBytes')
    assert.deepEqual(served(await h.sync.blocksFrom(6)), [])
  })
})
