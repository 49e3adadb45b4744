import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { decodeBlock, decodeCommit, decodeGenesis, decodeTx, encodeHeader, ledgerIdOf, openTx, verifyCommit, verifyRedeemAuthorization, txRootOf } from '../../src/ledger/encoding.ts'
import { Writer } from '../../src/protocols/rpc/encoding.ts'
import { LedgerState } from '../../src/ledger/state.ts'
import { parseAnchor } from '../../src/ledger/ledger.ts'

const fixture = JSON.parse(await readFile(new URL('../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const v = fixture.ledger
const bytes = (h: string): Buffer => Buffer.from(h, 'hex')
const sha256 = (...parts: Uint8Array[]): string => { const h = createHash('sha256'); parts.forEach(p => h.update(p)); return h.digest('hex') }

describe('Cloud Ledger test vectors (PROTOCOL.md section 11)', () => {
  it('decode the genesis, transactions, block and commit as PROTOCOL.md says, and verify every signature', () => {
    const genesis = decodeGenesis(bytes(v.genesis))
    assert.deepEqual(genesis, { chain: 'vectors', time: 1767225600000, validators: [fixture.keys.clientPeerId, fixture.keys.serverPeerId], slotMs: 1000, checkpointEvery: 1, maxTxsPerBlock: 100, maxRequestsPerSlot: 10, txTtlMs: 600000 })
    assert.equal(sha256(bytes(v.genesis)), v.ledgerId)
    assert.equal(Buffer.from(ledgerIdOf(genesis)).toString('hex'), v.ledgerId)

    const pool = openTx(bytes(v.poolTx))
    assert.equal(pool.tx.sender, fixture.keys.clientPeerId)
    assert.deepEqual(pool.tx.body, { kind: 'pool', name: 'starter', service: 'sha256', creditSat: 1000n, quantity: 10, ttlMs: 2592000000, perRequester: 2 })
    // the id is SHA-256 of the transaction inside the signed-tx
    assert.equal(Buffer.from(pool.id).toString('hex'), v.poolId)
    assert.equal(sha256(pool.encoded), v.poolId)
    const request = openTx(bytes(v.requestTx))
    assert.equal(Buffer.from(request.id).toString('hex'), v.code)
    assert.deepEqual(decodeTx(request.encoded).body, { kind: 'request', pool: bytes(v.poolId) })
    assert.ok(verifyRedeemAuthorization(bytes(v.ledgerId), bytes(v.code), fixture.keys.clientPeerId, fixture.keys.serverPeerId, bytes(v.authorization)))
    assert.ok(!verifyRedeemAuthorization(bytes(v.ledgerId), bytes(v.code), fixture.keys.serverPeerId, fixture.keys.serverPeerId, bytes(v.authorization)), 'the authorization names its redeemer')
    const redeem = openTx(bytes(v.redeemTx))
    assert.equal(redeem.tx.body.kind, 'redeem')
    // a changed byte of a signed transaction fails to verify
    const forged = bytes(v.poolTx)
    forged[forged.length - 1] ^= 1
    assert.throws(() => openTx(forged), { name: 'InvalidSignatureError' })

    const txs = [pool, request, redeem]
    const blockBytes = new Writer().bytes(bytes(v.header)).varint(3).bytes(bytes(v.poolTx)).bytes(bytes(v.requestTx)).bytes(bytes(v.redeemTx)).finish()
    const block = decodeBlock(blockBytes)
    assert.equal(sha256(bytes(v.header)), v.blockHash)
    assert.equal(Buffer.from(block.hash).toString('hex'), v.blockHash)
    assert.deepEqual([block.header.height, block.header.round, block.header.time, block.header.proposer], [1, 0, 1767225600010, fixture.keys.serverPeerId])
    assert.equal(Buffer.from(block.header.prev).toString('hex'), v.ledgerId)
    assert.equal(Buffer.from(block.header.txRoot).toString('hex'), sha256(...txs.map(t => t.id)))
    assert.deepEqual(Buffer.from(txRootOf(txs)), Buffer.from(block.header.txRoot))
    assert.deepEqual(Buffer.from(encodeHeader(block.header)), bytes(v.header))

    const commit = decodeCommit(bytes(v.commit))
    verifyCommit(bytes(v.ledgerId), block, commit, genesis.validators)
    assert.throws(() => { verifyCommit(bytes(v.ledgerId), block, { round: 0, votes: commit.votes.slice(0, 1) }, genesis.validators) }, /not more than two thirds/)
  })

  it('apply the block: every transaction passes, the app hash, state root and anchor are what PROTOCOL.md says', () => {
    const genesis = decodeGenesis(bytes(v.genesis))
    const state = new LedgerState(genesis, bytes(v.ledgerId))
    const blockBytes = new Writer().bytes(bytes(v.header)).varint(3).bytes(bytes(v.poolTx)).bytes(bytes(v.requestTx)).bytes(bytes(v.redeemTx)).finish()
    const block = decodeBlock(blockBytes)
    const outcomes = state.apply(block)
    assert.deepEqual(outcomes.map(o => o.ok), [true, true, true])
    // app hash = SHA-256(ledger id || each tx-id || u8 ok)
    assert.equal(sha256(bytes(v.ledgerId), ...block.txs.flatMap(t => [t.id, Uint8Array.of(1)])), v.appHash)
    assert.equal(Buffer.from(state.appHash).toString('hex'), v.appHash)
    assert.equal(state.codes.get(v.code)?.redeemed?.by, fixture.keys.clientPeerId)
    assert.equal(Buffer.from(state.stateRoot()).toString('hex'), v.stateRoot)
    const anchor = parseAnchor(bytes(v.anchor))
    assert.deepEqual(anchor, { ledgerPrefix: v.ledgerId.slice(0, 16), height: 1, stateRoot: v.stateRoot })
    assert.equal(bytes(v.anchor).subarray(0, 4).toString(), 'OCL1')
  })
})
