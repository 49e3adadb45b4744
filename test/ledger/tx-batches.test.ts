import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openCloudSigner } from '../../src/protocols/rpc/credentials.ts'
import { DecodeError, Reader, Writer } from '../../src/protocols/codec.ts'
import { hex, sha256, signTx, type SignedTx } from '../../src/ledger/encoding.ts'
import { decodeTxBatch, encodeTxBatch, TX_BATCH, TX_BATCH_MS, TxBatcher } from '../../src/ledger/tx-batches.ts'

/**
 * The transaction topic's batches alone (PROTOCOL.md section 8e, "Gossip
 * and methods"): their encoding, the checks a batch passes before it is
 * relayed, and how a node gathers its transactions into them. The
 * batcher's clock is node:test's mock timers.
 */

const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(0x51))
const signer = openCloudSigner(key)
const sender = peerIdFromPrivateKey(key).toString()
const ledger = sha256(new TextEncoder().encode('tx-batches unit'))
const T0 = 1767225600000
const txs: SignedTx[] = Array.from({ length: TX_BATCH + 1 }, (_, i) => signTx({ ledger, sender, time: T0 + i, body: { kind: 'request', pool: sha256(new Uint8Array([i % 7])) } }, signer))
const ids = (list: SignedTx[]): string[] => list.map(t => hex(t.id))

/** the signed-tx bytes of `stx` with the last byte of its signature changed */
function forged (stx: SignedTx): Uint8Array {
  const bytes = Uint8Array.from(stx.bytes)
  bytes[bytes.length - 1] ^= 1
  return bytes
}

describe('ledger transaction batches', () => {
  it('encode as list<bytes signed-tx> and decode to the same transactions, signatures checked', async () => {
    assert.deepEqual([TX_BATCH, TX_BATCH_MS], [500, 50], 'the limit and the wait PROTOCOL.md section 8e gives')
    const batch = encodeTxBatch(txs.slice(0, 3).map(t => t.bytes))
    const r = new Reader(batch)
    assert.equal(r.varint('n'), 3)
    assert.deepEqual(r.bytes(10_000, 'tx'), txs[0].bytes)
    assert.deepEqual(ids(await decodeTxBatch(batch)), ids(txs.slice(0, 3)))
    assert.deepEqual(ids(await decodeTxBatch(encodeTxBatch(txs.slice(0, TX_BATCH).map(t => t.bytes)))), ids(txs.slice(0, TX_BATCH)))
  })

  it('refuse an empty batch, one over 500, bytes left over and a changed signature', async () => {
    await assert.rejects(decodeTxBatch(encodeTxBatch([])), (err: any) => err instanceof DecodeError && err.message === 'an empty batch')
    await assert.rejects(decodeTxBatch(encodeTxBatch(txs.map(t => t.bytes))), DecodeError, 'a batch of 501')
    const batch = encodeTxBatch([txs[0].bytes])
    await assert.rejects(decodeTxBatch(new Writer().raw(batch).u8(0).finish()), DecodeError, 'a byte after the batch')
    await assert.rejects(decodeTxBatch(encodeTxBatch([txs[0].bytes, forged(txs[1])])), /signature/)
  })

  it('do not check again the signature of a transaction checked before', async () => {
    const batch = encodeTxBatch([txs[0].bytes, forged(txs[1])])
    // the id covers the transaction, not its signature: a copy of one held is
    // not checked again (the copy held was)
    const decoded = await decodeTxBatch(batch, (id) => id === hex(txs[1].id))
    assert.deepEqual(ids(decoded), ids(txs.slice(0, 2)))
    await assert.rejects(decodeTxBatch(batch, (id) => id === hex(txs[0].id)), /signature/)
  })

  it('stop checking a large batch once the signal is aborted', async () => {
    const batch = encodeTxBatch(txs.slice(0, 100).map(t => t.bytes))
    await assert.rejects(decodeTxBatch(batch, undefined, AbortSignal.abort()), { name: 'AbortError' })
    // a batch that fits in one slice of checks is done before the signal is looked at
    assert.equal((await decodeTxBatch(encodeTxBatch(txs.slice(0, 5).map(t => t.bytes)), undefined, AbortSignal.abort())).length, 5)
  })

  const batcher = (t: TestContext, delayMs?: number): { batcher: TxBatcher, sent: string[][] } => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const sent: string[][] = []
    const batcher = new TxBatcher({ publish: (bytes) => { sent.push(decodedIds(bytes)) } }, { delayMs })
    return { batcher, sent }
  }

  it('gather a node\'s transactions for 50 ms into one gossip message', (t) => {
    const { batcher: b, sent } = batcher(t)
    b.add(txs[0])
    t.mock.timers.tick(TX_BATCH_MS - 1)
    b.add(txs[1])
    b.add(txs[2])
    assert.deepEqual(sent, [], 'nothing sent before the first has waited 50 ms')
    t.mock.timers.tick(1)
    assert.deepEqual(sent, [ids(txs.slice(0, 3))])
    // the next one starts a batch of its own, with a wait of its own
    b.add(txs[3])
    t.mock.timers.tick(TX_BATCH_MS - 1)
    assert.equal(sent.length, 1)
    t.mock.timers.tick(1)
    assert.deepEqual(sent, [ids(txs.slice(0, 3)), ids(txs.slice(3, 4))])
  })

  it('send a batch at once when it holds 500, and the rest after the wait', (t) => {
    const { batcher: b, sent } = batcher(t)
    for (const stx of txs) {
      b.add(stx)
    }
    assert.deepEqual(sent, [ids(txs.slice(0, TX_BATCH))])
    t.mock.timers.tick(TX_BATCH_MS)
    assert.deepEqual(sent, [ids(txs.slice(0, TX_BATCH)), ids(txs.slice(TX_BATCH))])
  })

  it('send what waits when flushed (at stop), nothing when nothing waits, and take a wait of their own', (t) => {
    const { batcher: b, sent } = batcher(t, 5)
    b.flush()
    assert.deepEqual(sent, [])
    b.add(txs[0])
    b.flush()
    assert.deepEqual(sent, [ids(txs.slice(0, 1))])
    // the next one waits its own 5 ms, not what was left of the flushed batch's
    t.mock.timers.tick(3)
    b.add(txs[1])
    t.mock.timers.tick(2)
    assert.equal(sent.length, 1, 'the flushed batch\'s timer is gone')
    t.mock.timers.tick(3)
    assert.deepEqual(sent, [ids(txs.slice(0, 1)), ids(txs.slice(1, 2))])
  })
})

/** the ids of the transactions of an encoded batch, without checking them */
function decodedIds (batch: Uint8Array): string[] {
  const r = new Reader(batch)
  const n = r.varint('n')
  return Array.from({ length: n }, () => hex(sha256(new Reader(r.bytes(10_000, 'tx')).bytes(10_000, 'encoded'))))
}
