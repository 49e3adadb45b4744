import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import { BlockStore, decodeStored, encodeStored } from '../../src/ledger/block-store.ts'
import { hex, signProposal, signVote, type ConsensusMessage } from '../../src/ledger/encoding.ts'
import { LedgerState } from '../../src/ledger/state.ts'
import { MissingBlockError } from '../../src/ledger/errors.ts'
import type { Equivocation, SignedMessage } from '../../src/ledger/consensus.ts'
import { emptyChain, type Chain } from '../helpers/ledger-chain.ts'
import { tempDir } from '../helpers/nodes.ts'

/**
 * The ledger's records in the datastore alone, on LevelDB as a node keeps
 * them (its keys in order, which replay relies on): the
 * final blocks and their replay at start, what a validator signed (kept
 * across a crash), the evidence of equivocations, the candidacy.
 */
describe('ledger block store', () => {
  let chain: Chain
  let other: Chain
  let dir: { path: string, cleanup: () => Promise<void> }
  const opened: LevelDatastore[] = []

  before(async () => {
    chain = await emptyChain(12)
    other = await emptyChain(2, 0x62)
    dir = await tempDir()
  })

  after(async () => {
    await Promise.all(opened.map(async d => d.close()))
    await dir?.cleanup()
  })

  /** a datastore of its own for each test */
  const level = async (): Promise<LevelDatastore> => {
    const datastore = new LevelDatastore(join(dir.path, String(opened.length)))
    await datastore.open()
    opened.push(datastore)
    return datastore
  }

  const storeOf = async (datastore?: LevelDatastore, c = chain): Promise<BlockStore> => new BlockStore({ datastore: datastore ?? await level() }, { ledger: c.id })

  it('keeps final blocks by height, as the blocks method sends them', async () => {
    const store = await storeOf()
    for (const b of chain.blocks) {
      await store.put(b.block, b.blockBytes, b.commit)
    }
    const second = await store.get(2)
    assert.equal(hex(second!.block.hash), hex(chain.blocks[1].block.hash))
    assert.deepEqual(second!.commit, chain.blocks[1].commit)
    assert.equal(hex(await store.raw(3)), hex(encodeStored(chain.blocks[2].blockBytes, chain.blocks[2].commit)))
    assert.equal(hex(decodeStored(await store.raw(3), () => false).block.hash), hex(chain.blocks[2].block.hash), 'its signatures check too')
    assert.equal(await store.get(13), undefined)
    await assert.rejects(store.raw(13), 'no block 13')
  })

  it('replays the blocks kept at start, in height order, and apart from another ledger\'s in the same datastore', async () => {
    const datastore = await level()
    const store = await storeOf(datastore)
    // put out of order: keys sort by height (10 after 9), as replay reads them
    for (const b of [...chain.blocks].reverse()) {
      await store.put(b.block, b.blockBytes, b.commit)
    }
    const elsewhere = await storeOf(datastore, other)
    for (const b of other.blocks) {
      await elsewhere.put(b.block, b.blockBytes, b.commit)
    }
    const state = new LedgerState(chain.genesis, chain.id)
    assert.equal(await store.replay(state), 12)
    assert.equal(state.height, 12)
    assert.equal(hex(state.lastHash), hex(chain.blocks[11].block.hash))
    assert.equal(hex(state.appHash), hex(chain.blocks[11].block.header.appHash))
    const otherState = new LedgerState(other.genesis, other.id)
    assert.equal(await elsewhere.replay(otherState), 2)
    assert.equal(hex(otherState.lastHash), hex(other.blocks[1].block.hash))
  })

  it('refuses to start on a history with a block missing', async () => {
    const store = await storeOf()
    for (const b of chain.blocks.filter(b => b.block.header.height !== 2)) {
      await store.put(b.block, b.blockBytes, b.commit)
    }
    const state = new LedgerState(chain.genesis, chain.id)
    await assert.rejects(store.replay(state), new MissingBlockError('the ledger\'s block 2 is missing from the datastore (found 3)'))
    assert.equal(state.height, 1, 'applied up to the gap')
  })

  it('gives back what the validator signed at a height, one message per slot, and skips what does not decode', async () => {
    const datastore = await level()
    const store = await storeOf(datastore)
    const { id, validator, signer } = chain
    const block = chain.blocks[0].block
    const vote = (type: 'prevote' | 'precommit', height: number, round: number): SignedMessage => ({ type: 'vote', vote: signVote(id, { type, height, round, block: block.hash, voter: validator }, signer) })
    const proposal: SignedMessage = { type: 'proposal', proposal: signProposal(id, { height: 1, round: 0, validRound: -1, block, blockBytes: chain.blocks[0].blockBytes, proposer: validator }, signer) }
    await store.saveSigned(1, proposal)
    await store.saveSigned(1, vote('prevote', 1, 0))
    await store.saveSigned(1, vote('precommit', 1, 0))
    // round 1 of height 2 only: the slot names round and kind, the value its height
    await store.saveSigned(2, vote('prevote', 2, 1))
    // a value that does not decode, under the ledger's prefix for signed messages
    await datastore.put(new Key(`/ledger/${hex(id).slice(0, 16)}/signed/precommit-9`), new Uint8Array([1, 2, 3]))
    const kinds = (msgs: ConsensusMessage[]): string[] => msgs.map(m => m.type === 'vote' ? `${m.vote.type} ${m.vote.height}/${m.vote.round}` : m.type).sort()
    assert.deepEqual(kinds(await store.signedAt(1)), ['precommit 1/0', 'prevote 1/0', 'proposal'])
    assert.deepEqual(kinds(await store.signedAt(2)), ['prevote 2/1'])
    assert.deepEqual(await store.signedAt(3), [])
    // a later height writes over the same slot
    await store.saveSigned(2, vote('prevote', 2, 0))
    assert.deepEqual(kinds(await store.signedAt(1)), ['precommit 1/0', 'proposal'])
    assert.deepEqual(kinds(await store.signedAt(2)), ['prevote 2/0', 'prevote 2/1'])
  })

  it('keeps the evidence of equivocations and the candidacy, per ledger', async () => {
    const datastore = await level()
    const store = await storeOf(datastore)
    const e: Equivocation = { validator: chain.validator, height: 3, round: 1, what: 'prevote', first: 'aa', second: 'bb' }
    await store.saveEvidence(e)
    await store.saveEvidence(e)
    await store.saveEvidence({ ...e, what: 'precommit' })
    assert.deepEqual(await store.evidence(), [{ ...e, what: 'precommit' }, e], 'once per validator and slot')
    assert.equal(await store.candidacy(), undefined)
    await store.saveCandidacy(new Uint8Array([7, 7]))
    assert.equal(hex((await store.candidacy())!), '0707')
    const elsewhere = await storeOf(datastore, other)
    assert.deepEqual(await elsewhere.evidence(), [])
    assert.equal(await elsewhere.candidacy(), undefined)
  })
})
