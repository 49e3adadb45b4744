import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { openCloudSigner } from '../../src/protocols/rpc/credentials.ts'
import { encodeMessage, hex, sha256, signTx, signVote, type ConsensusMessage, type SignedTx } from '../../src/ledger/encoding.ts'
import { encodeTxBatch } from '../../src/ledger/tx-batches.ts'
import { LedgerGossip, type LedgerPubsub } from '../../src/ledger/gossip.ts'
import { LedgerState } from '../../src/ledger/state.ts'
import { Mempool } from '../../src/ledger/mempool.ts'
import { emptyChain, type Chain } from '../helpers/ledger-chain.ts'

/**
 * The ledger's topic validators alone (PROTOCOL.md section 8e, "Gossip and
 * methods"): what is accepted, what is ignored, and what is rejected (which
 * costs the sender gossip score), against a real state at height 2 of a
 * one-validator chain, a real queue, and stubs for gossipsub and the engine.
 */

const userKey = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(0x71))
const user = peerIdFromPrivateKey(userKey)
const userSigner = openCloudSigner(userKey)

interface Harness {
  gossip: LedgerGossip
  mempool: Mempool
  pubsub: LedgerPubsub & { subscribed: Set<string>, listeners: Set<(evt: CustomEvent<Message>) => void> }
  received: Array<{ msg: ConsensusMessage, from: string, verified: boolean }>
  behind: Array<[number, string]>
}

/** a gossipsub message as the topic validator sees it */
function message (topic: string, from: PeerId, data: Uint8Array, type: 'signed' | 'unsigned' = 'signed'): Message {
  return (type === 'signed' ? { type, from, topic, data, sequenceNumber: 1n, signature: new Uint8Array(64), key: from.publicKey } : { type, topic, data }) as Message
}

describe('ledger gossip validators', () => {
  let chain: Chain
  let validator: PeerId
  let tx: (i: number, ledger?: Uint8Array) => SignedTx

  before(async () => {
    chain = await emptyChain(5)
    validator = peerIdFromString(chain.validator)
    tx = (i, ledger = chain.id) => signTx({ ledger, sender: user.toString(), time: chain.genesis.time + i, body: { kind: 'request', pool: sha256(new Uint8Array([i])) } }, userSigner)
  })

  const harness = (txRateLimit?: string): Harness => {
    const state = new LedgerState(chain.genesis, chain.id)
    for (const b of chain.blocks.slice(0, 2)) {
      state.apply(b.block)
    }
    const mempool = new Mempool(state)
    const subscribed = new Set<string>()
    const listeners = new Set<(evt: CustomEvent<Message>) => void>()
    const pubsub = {
      topicValidators: new Map(),
      subscribed,
      listeners,
      subscribe: (t: string) => { subscribed.add(t) },
      unsubscribe: (t: string) => { subscribed.delete(t) },
      publish: async () => {},
      addEventListener: (_: 'message', fn: (evt: CustomEvent<Message>) => void) => { listeners.add(fn) },
      removeEventListener: (_: 'message', fn: (evt: CustomEvent<Message>) => void) => { listeners.delete(fn) }
    }
    const h: Harness = { mempool, pubsub, received: [], behind: [], gossip: undefined as any }
    h.gossip = new LedgerGossip({
      pubsub,
      ledger: chain.id,
      state,
      mempool,
      engine: { receive: (msg, from, verified = false) => { h.received.push({ msg, from, verified }) } },
      behind: (height, from) => { h.behind.push([height, from]) }
    }, { txRateLimit })
    return h
  }

  it('join both topics at start and leave them at stop', () => {
    const h = harness()
    const topics = [h.gossip.topics.txs, h.gossip.topics.consensus]
    assert.deepEqual(topics, [`/opencloud/ledger-tx/1/${hex(chain.id).slice(0, 16)}`, `/opencloud/ledger/1/${hex(chain.id).slice(0, 16)}`])
    h.gossip.start()
    assert.deepEqual([...h.pubsub.topicValidators.keys()].sort(), [...topics].sort())
    assert.deepEqual([...h.pubsub.subscribed].sort(), [...topics].sort())
    assert.equal(h.pubsub.listeners.size, 1)
    h.gossip.stop()
    assert.equal(h.pubsub.topicValidators.size, 0)
    assert.equal(h.pubsub.subscribed.size, 0)
    assert.equal(h.pubsub.listeners.size, 0)
  })

  it('accept a batch of transactions into the queue, ignore it once held, and reject a forged or foreign one', async () => {
    const h = harness()
    h.gossip.start()
    const topic = h.gossip.topics.txs
    const batch = encodeTxBatch([tx(1).bytes, tx(2).bytes])
    assert.equal(await h.gossip.validateTx(user, message(topic, user, batch)), TopicValidatorResult.Accept)
    assert.equal(h.mempool.size, 2)
    assert.equal(await h.gossip.validateTx(user, message(topic, user, batch)), TopicValidatorResult.Ignore, 'nothing new: not relayed again')
    assert.equal(h.gossip.rejections.get(user.toString()), undefined)
    const forged = Uint8Array.from(tx(3).bytes)
    forged[forged.length - 1] ^= 1
    assert.equal(await h.gossip.validateTx(user, message(topic, user, encodeTxBatch([tx(4).bytes, forged]))), TopicValidatorResult.Reject)
    assert.equal(await h.gossip.validateTx(user, message(topic, user, encodeTxBatch([tx(5, sha256(new Uint8Array([9]))).bytes]))), TopicValidatorResult.Reject, 'for another ledger')
    assert.equal(await h.gossip.validateTx(user, message(topic, user, new Uint8Array([1]))), TopicValidatorResult.Reject, 'does not decode')
    assert.equal(h.gossip.rejections.get(user.toString()), 3)
    assert.equal(h.mempool.size, 2, 'nothing of a rejected batch queued')
    assert.equal(await h.gossip.validateTx(user, message(topic, user, batch, 'unsigned')), TopicValidatorResult.Reject, 'unsigned')
    h.gossip.stop()
  })

  it('hold a node that is not a validator to its rate of transactions, and not a validator', async () => {
    const h = harness('3/s burst 3')
    h.gossip.start()
    const topic = h.gossip.topics.txs
    const four = encodeTxBatch([1, 2, 3, 4].map(i => tx(i).bytes))
    assert.equal(await h.gossip.validateTx(user, message(topic, user, four)), TopicValidatorResult.Ignore)
    assert.equal(h.mempool.size, 0)
    assert.equal(h.gossip.rejections.get(user.toString()), undefined, 'not held against it')
    // the same batch relayed by the validator (its originator)
    assert.equal(await h.gossip.validateTx(validator, message(topic, validator, four)), TopicValidatorResult.Accept)
    assert.equal(h.mempool.size, 4)
    h.gossip.stop()
  })

  it('ignore, and do not count, a batch whose check stop cut short', async () => {
    const h = harness()
    h.gossip.start()
    const pending = h.gossip.validateTx(user, message(h.gossip.topics.txs, user, encodeTxBatch(Array.from({ length: 100 }, (_, i) => tx(i).bytes))))
    h.gossip.stop()
    assert.equal(await pending, TopicValidatorResult.Ignore)
    assert.equal(h.gossip.rejections.get(user.toString()), undefined)
  })

  it('accept a signed vote of the next height and hand it to the engine decoded once, with its originator', () => {
    const h = harness()
    h.gossip.start()
    const topic = h.gossip.topics.consensus
    const vote = signVote(chain.id, { type: 'prevote', height: 3, round: 0, block: chain.blocks[2].block.hash, voter: chain.validator }, chain.signer)
    const msg = message(topic, validator, encodeMessage({ type: 'vote', vote }))
    assert.equal(h.gossip.validateConsensus(validator, msg), TopicValidatorResult.Accept)
    const deliver = (m: Message): void => {
      for (const fn of h.pubsub.listeners) {
        fn(new CustomEvent('message', { detail: m }))
      }
    }
    deliver(msg)
    deliver(msg)
    assert.equal(h.received.length, 2)
    assert.equal(h.received[0].from, chain.validator)
    assert.equal(h.received[0].verified, true)
    assert.equal(hex(encodeMessage(h.received[0].msg)), hex(encodeMessage({ type: 'vote', vote })))
    assert.equal(h.received[1].msg, h.received[0].msg, 'what the validator decoded, not decoded again')
    // the transaction topic's messages are not the engine's
    deliver(message(h.gossip.topics.txs, user, new Uint8Array([0])))
    assert.equal(h.received.length, 2)
    h.gossip.stop()
  })

  it('reject a forged vote, a final block whose certificate fails and bytes that do not decode; count each against the sender', () => {
    const h = harness()
    const topic = h.gossip.topics.consensus
    const forgedVote = signVote(chain.id, { type: 'prevote', height: 3, round: 0, block: chain.blocks[2].block.hash, voter: chain.validator }, userSigner)
    assert.equal(h.gossip.validateConsensus(user, message(topic, user, encodeMessage({ type: 'vote', vote: forgedVote }))), TopicValidatorResult.Reject)
    const { block, blockBytes, commit } = chain.blocks[2]
    const badCommit = { round: 0, votes: [{ voter: chain.validator, signature: Uint8Array.from(commit.votes[0].signature).fill(1, 0, 1) }] }
    assert.equal(h.gossip.validateConsensus(user, message(topic, user, encodeMessage({ type: 'commit', block, blockBytes, commit: badCommit }))), TopicValidatorResult.Reject)
    assert.equal(h.gossip.validateConsensus(user, message(topic, user, new Uint8Array([9, 3]))), TopicValidatorResult.Reject)
    assert.equal(h.gossip.rejections.get(user.toString()), 3)
    // the real final block of height 3 passes
    assert.equal(h.gossip.validateConsensus(user, message(topic, user, encodeMessage({ type: 'commit', block, blockBytes, commit }))), TopicValidatorResult.Accept)
    assert.equal(h.gossip.validateConsensus(user, message(topic, user, encodeMessage({ type: 'vote', vote: forgedVote }), 'unsigned')), TopicValidatorResult.Reject)
  })

  it('ignore unread what is of a height final here, and leave a height further on to the sync', () => {
    const h = harness()
    const topic = h.gossip.topics.consensus
    // a vote of height 2 (final here) whose bytes after the height are garbage
    const stale = new Uint8Array([2, 1, 2, 0xff, 0xff])
    assert.equal(h.gossip.validateConsensus(user, message(topic, user, stale)), TopicValidatorResult.Ignore)
    // a final block of height 5: its validators may have changed since height 2
    const { block, blockBytes, commit } = chain.blocks[4]
    assert.equal(h.gossip.validateConsensus(user, message(topic, user, encodeMessage({ type: 'commit', block, blockBytes, commit }))), TopicValidatorResult.Ignore)
    assert.deepEqual(h.behind, [[5, user.toString()]])
    assert.equal(h.gossip.rejections.get(user.toString()), undefined)
  })
})
