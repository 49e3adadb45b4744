import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { hex, sha256, type Block, type TxBody } from '../../src/ledger/encoding.ts'
import { anchorData, Checkpoints, parseAnchor, type CheckpointsComponents } from '../../src/ledger/checkpoints.ts'
import { NoBitcoinChainError, NoStateRootError } from '../../src/ledger/errors.ts'
import type { Checkpoint } from '../../src/ledger/state.ts'

/**
 * Bitcoin anchors alone: a stub chain that holds what was anchored (as
 * OP_RETURN scripts in hex, the way a bitcoin node reports outputs) and a
 * stub ledger that records what is submitted.
 */

const ledger = sha256(new TextEncoder().encode('checkpoints unit'))
const other = sha256(new TextEncoder().encode('another ledger'))
const ROOT = (n: number): string => hex(sha256(new Uint8Array([n])))

/** OP_RETURN with a one-byte push (up to 75 bytes) or OP_PUSHDATA1 */
const opReturn = (data: Uint8Array, pushdata1 = false): string => `6a${pushdata1 ? '4c' : ''}${data.byteLength.toString(16).padStart(2, '0')}${hex(data)}`

interface Harness {
  checkpoints: Checkpoints
  roots: Map<number, string>
  onLedger: Map<number, Checkpoint>
  submitted: TxBody[]
  /** txid -> output scripts */
  chain: Map<string, string[]>
}

function harness (options: { anchor?: boolean, bitcoin?: boolean, every?: number } = {}): Harness {
  const chain = new Map<string, string[]>()
  const h: Harness = { roots: new Map(), onLedger: new Map(), submitted: [], chain, checkpoints: undefined as any }
  const components: CheckpointsComponents = {
    self: 'me',
    ledger,
    state: { roots: h.roots, checkpoints: h.onLedger },
    submit: async (body) => { h.submitted.push(body) },
    anchor: options.anchor === false
      ? undefined
      : async (data) => {
        const txid = hex(sha256(data))
        chain.set(txid, ['0014' + '00'.repeat(20), opReturn(data)])
        return txid
      },
    bitcoinTx: options.bitcoin === false
      ? undefined
      : async (txid) => {
        const scripts = chain.get(txid)
        if (scripts == null) {
          throw new Error('no such transaction')
        }
        return { scripts, confirmations: 3 }
      }
  }
  h.checkpoints = new Checkpoints(components, { checkpointEvery: options.every ?? 5 })
  return h
}

const blockAt = (height: number, proposer: string): Block => ({ header: { ledger, height, round: 0, time: 0, prev: ledger, proposer, txRoot: ledger, appHash: ledger }, txs: [], hash: ledger })

describe('ledger checkpoints', () => {
  it('put "OCL1", the ledger, the height and the state root in 64 bytes, and read them back', () => {
    const data = anchorData(ledger, 70_000, Buffer.from(ROOT(1), 'hex'))
    assert.equal(data.byteLength, 64)
    assert.equal(hex(data), hex(new TextEncoder().encode('OCL1')) + hex(ledger.subarray(0, 8)) + '00011170' + ROOT(1) + '00'.repeat(16))
    assert.deepEqual(parseAnchor(data), { ledgerPrefix: hex(ledger).slice(0, 16), height: 70_000, stateRoot: ROOT(1) })
    assert.equal(parseAnchor(new TextEncoder().encode('OCL2' + 'x'.repeat(60))), undefined)
    assert.equal(parseAnchor(data.subarray(0, 47)), undefined)
  })

  it('are anchored by the proposer of every checkpointEvery-th block, and recorded on the ledger', async () => {
    const h = harness()
    for (let height = 1; height <= 10; height++) {
      h.roots.set(height, ROOT(height))
    }
    h.checkpoints.onFinal(blockAt(4, 'me'))
    h.checkpoints.onFinal(blockAt(5, 'someone else'))
    h.checkpoints.onFinal(blockAt(10, 'me'))
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(h.submitted.length, 1)
    const body = h.submitted[0] as Extract<TxBody, { kind: 'checkpoint' }>
    assert.equal(body.kind, 'checkpoint')
    assert.equal(body.height, 10)
    assert.equal(hex(body.stateRoot), ROOT(10))
    assert.deepEqual(h.chain.get(body.btcTxid)?.[1], opReturn(anchorData(ledger, 10, Buffer.from(ROOT(10), 'hex'))))
    // without a chain nothing is anchored, and asking says why
    const none = harness({ anchor: false })
    none.roots.set(5, ROOT(5))
    none.checkpoints.onFinal(blockAt(5, 'me'))
    await assert.rejects(none.checkpoints.checkpoint(5), new NoBitcoinChainError('this node has no bitcoin chain (payments.chain)'))
    await assert.rejects(h.checkpoints.checkpoint(11), new NoStateRootError('no state root at height 11'))
    assert.deepEqual(none.submitted, [])
  })

  it('check each checkpoint on the ledger against bitcoin and this node\'s own roots, in height order', async () => {
    const h = harness()
    h.roots.set(5, ROOT(5))
    h.roots.set(10, ROOT(10))
    h.roots.set(15, ROOT(15))
    h.roots.set(20, ROOT(20))
    const anchored = async (height: number, root: string, scripts?: (data: Uint8Array) => string[]): Promise<void> => {
      const data = anchorData(ledger, height, Buffer.from(root, 'hex'))
      const txid = hex(sha256(data, new Uint8Array([height])))
      h.chain.set(txid, scripts?.(data) ?? [opReturn(data)])
      h.onLedger.set(height, { height, stateRoot: root, btcTxid: txid, by: 'v' })
    }
    await anchored(20, ROOT(20), data => ['51', opReturn(anchorData(other, 20, Buffer.from(ROOT(20), 'hex'))), opReturn(data, true)])
    await anchored(5, ROOT(5))
    await anchored(10, ROOT(99))
    await anchored(15, ROOT(15), () => [opReturn(anchorData(other, 15, Buffer.from(ROOT(15), 'hex')))])
    h.onLedger.set(25, { height: 25, stateRoot: ROOT(25), btcTxid: 'ff'.repeat(32), by: 'v' })
    const views = await h.checkpoints.verify()
    assert.deepEqual(views.map(v => [v.height, v.status]), [[5, 'ok'], [10, 'mismatch'], [15, 'mismatch'], [20, 'ok'], [25, 'unchecked']])
    assert.equal(views[0].confirmations, 3)
    assert.equal(views[0].ownRoot, ROOT(5))
    assert.equal(views[1].problem, `bitcoin holds state root ${ROOT(99)} for height 10; this node's history gives ${ROOT(10)}`)
    assert.equal(views[2].problem, `bitcoin transaction ${views[2].btcTxid} holds no anchor of this ledger at height 15`)
    assert.equal(views[4].problem, `cannot fetch bitcoin transaction ${'ff'.repeat(32)}: no such transaction`)
    const blind = harness({ bitcoin: false })
    blind.onLedger.set(5, { height: 5, stateRoot: ROOT(5), btcTxid: 'aa'.repeat(32), by: 'v' })
    assert.deepEqual((await blind.checkpoints.verify()).map(v => [v.status, v.problem]), [['unchecked', 'this node has no bitcoin chain to check with (payments.chain)']])
  })
})
