import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { decodeBlock, decodeCommit, decodeGenesis, decodeTx, encodeHeader, ledgerIdOf, openTx, verifyCommit, verifyRedeemAuthorization, txRootOf } from '../../src/ledger/encoding.ts'
import { Reader, Writer } from '../../src/protocols/codec.ts'
import { LedgerState } from '../../src/ledger/state.ts'
import { CloudLedger } from '../../src/ledger/cloud-ledger.ts'
import { parseAnchor } from '../../src/ledger/checkpoints.ts'
import { MemoryDatastore } from 'datastore-core'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openCloudSigner } from '../../src/protocols/rpc/credentials.ts'
import { codeBlocks, readProtocolDoc, sectionOf } from '../helpers/protocol-doc.ts'

const fixture = JSON.parse(await readFile(new URL('../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const v = fixture.ledger
const bytes = (h: string): Buffer => Buffer.from(h, 'hex')
const sha256 = (...parts: Uint8Array[]): string => { const h = createHash('sha256'); parts.forEach(p => h.update(p)); return h.digest('hex') }
const protocolDoc = await readProtocolDoc()

/** The names in the first column of the markdown table that follows `title` ("`name`, `service`" names two) */
function tableFields (text: string, title: string): string[] {
  const at = text.indexOf(title)
  assert.ok(at >= 0, `PROTOCOL.md lacks "${title}"`)
  const lines = text.slice(at).split('\n')
  const first = lines.findIndex(l => l.startsWith('|'))
  const end = lines.findIndex((l, i) => i > first && !l.startsWith('|'))
  // after the header row and the --- row
  return lines.slice(first + 2, end).flatMap(row => [...row.split('|')[1].matchAll(/`([A-Za-z]+)`/g)].map(m => m[1]))
}

/** RFC 6962 over leaf hashes: split at the largest power of two below n */
function merkleRoot (leaves: Buffer[]): Buffer {
  if (leaves.length === 1) return leaves[0]
  let k = 1
  while (k * 2 < leaves.length) k *= 2
  return createHash('sha256').update(Uint8Array.of(1)).update(merkleRoot(leaves.slice(0, k))).update(merkleRoot(leaves.slice(k))).digest()
}

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

  it('are printed in section 11, each value one code block of its own, in order', () => {
    const blocks = codeBlocks(sectionOf(sectionOf(protocolDoc, '## 11. Test vectors'), '### Cloud Ledger'))
    const values = Object.values(v).flatMap(x => Array.isArray(x) ? x : [x]) as string[]
    assert.deepEqual(blocks, values)
  })

  it('give the state root from the state leaves PROTOCOL.md prints: keys sorted, values as section 8e says', () => {
    const leaves = (v.stateLeaves as string[]).map(bytes)
    assert.equal(merkleRoot(leaves.map(l => createHash('sha256').update(l).digest())).toString('hex'), v.stateRoot)
    const entries = leaves.map(l => {
      assert.equal(l[0], 0)
      const r = new Reader(l.subarray(1))
      const key = new TextDecoder().decode(r.bytes(1024, 'key'))
      const value = r.bytes(1024, 'value')
      r.end('leaf')
      return { key, value }
    })
    const keys = entries.map(e => e.key)
    assert.deepEqual(keys, [...keys].sort())
    const client = fixture.keys.clientPeerId
    const server = fixture.keys.serverPeerId
    assert.deepEqual(keys, [`code/${v.code}`, `pool/${v.poolId}`, `requested/${v.poolId} ${server}`, 'validator/0000', 'validator/0001'])
    // PeerIds and ids as text, no "oc:"
    const code = new Reader(entries[0].value)
    assert.deepEqual([code.string(64, 'pool'), code.string(64, 'owner'), code.varint('expires'), code.string(64, 'redeemer'), code.varint('height')], [v.poolId, server, 1767225600010 + 2592000000, client, 1])
    const pool = new Reader(entries[1].value)
    assert.deepEqual([pool.string(64, 'owner'), pool.string(64, 'name'), pool.string(64, 'service'), ...Array.from({ length: 6 }, () => pool.varint('n'))], [client, 'starter', 'sha256', 1000, 10, 1, 2592000000, 2, 1767225600010])
    assert.deepEqual(new Reader(entries[2].value).varint('codes'), 1)
    assert.deepEqual(entries.slice(3).map(e => new TextDecoder().decode(e.value)), [client, server])
  })

  it('answer status, code and pools with exactly the JSON fields section 8e lists', async () => {
    const key = await generateKeyPair('Ed25519')
    const noPubsub: any = { topicValidators: new Map(), subscribe () {}, unsubscribe () {}, publish: async () => {}, addEventListener () {}, removeEventListener () {} }
    const genesis = decodeGenesis(bytes(v.genesis))
    const ledger = new CloudLedger({ peerId: peerIdFromPrivateKey(key), signer: openCloudSigner(key), datastore: new MemoryDatastore(), pubsub: noPubsub }, { genesis })
    ledger.state.apply(decodeBlock(new Writer().bytes(bytes(v.header)).varint(3).bytes(bytes(v.poolTx)).bytes(bytes(v.requestTx)).bytes(bytes(v.redeemTx)).finish()))
    const methods = sectionOf(protocolDoc, '### Gossip and methods')
    const sorted = (a: string[]): string[] => [...a].sort()
    // `problem` is there only while blocks look stuck
    assert.deepEqual(sorted(Object.keys(JSON.parse(JSON.stringify(ledger.status())))), sorted(tableFields(methods, 'The status object').filter(f => f !== 'problem')))
    const code = JSON.parse(JSON.stringify(ledger.codeView(v.code, 1767225600020)))
    assert.deepEqual(sorted(Object.keys(code)), sorted(tableFields(methods, 'The code object')))
    assert.deepEqual(Object.keys(code.redeemed), ['by', 'at', 'height'])
    assert.deepEqual([code.credit, code.issuedAt, code.redeemed.at, code.owner], ['0.00001 BTC', '2026-01-01T00:00:00.010Z', '2026-01-01T00:00:00.010Z', fixture.keys.serverPeerId])
    const [pool] = ledger.poolViews()
    assert.deepEqual(sorted(Object.keys(pool)), sorted(tableFields(methods, 'A pool object')))
    assert.deepEqual([pool.credit, pool.createdAt, pool.left], ['0.00001 BTC', '2026-01-01T00:00:00.010Z', 9])
  })
})
