import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/server.ts'
import { EsploraClient } from '../../src/payments/chain/esplora.ts'
import { PaymentAgent } from '../../src/payments/payment-agent.ts'
import { PaymentDeclinedError } from '../../src/protocols/rpc/errors.ts'
import { testConfig, tempDir } from '../helpers/nodes.ts'
import type { CallRequest } from '../../src/protocols/rpc/client.ts'

/**
 * Settling deferred payments under faults (issue 8, items 1 and 2): any
 * number of promises in one transaction, a lost answer that must not make
 * the client pay twice, and a payment that pays off nothing.
 */
describe('settling deferred payments', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  let chain: EsploraClient
  let server: OpenCloudNode
  const callers: OpenCloudNode[] = []

  const mine = async (): Promise<void> => { await regtest.chain.mine(1, regtest.faucetAddress) }
  const payments = (): Record<string, unknown> => ({ network: 'regtest', chain: regtest.url, settleIntervalMs: 3_600_000, graceMs: 600_000 })

  /** A funded caller whose own settle timer stays out of the way */
  const caller = async (name: string): Promise<OpenCloudNode> => {
    const node = await OpenCloudNode.create({ dataDir: `${dir.path}/${name}`, config: testConfig({ payments: payments() }) })
    await node.start()
    callers.push(node)
    // as after the calls that made the promises: the two are connected
    await node.libp2p.dial(server.libp2p.getMultiaddrs()[0])
    await regtest.faucet(await node.wallet.newAddress(), 2_000_000n)
    await mine()
    return node
  }

  /** `count` promises of `sats` each, due at once, on both sides' ledgers */
  const owe = async (from: OpenCloudNode, count: number, sats: bigint): Promise<void> => {
    const createdAt = Date.now() - 1000
    for (let i = 0; i < count; i++) {
      const promise = { id: `p${i}`, sats, threshold: 'completion', service: 'sha256', method: 'hash', createdAt: createdAt + i }
      await from.ledger.addPromise({ ...promise, role: 'payable', peer: server.peerId.toString() })
      await server.ledger.addPromise({ ...promise, role: 'receivable', peer: from.peerId.toString() })
    }
  }

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: `${dir.path}/chain`, blockIntervalMs: 0 })
    await regtest.start()
    chain = new EsploraClient({ url: regtest.url })
    server = await OpenCloudNode.create({ dataDir: `${dir.path}/server`, config: testConfig({ payments: payments(), policies: { global: { 'max-tab': '1 BTC' } } }) })
    await server.start()
  })

  after(async () => {
    for (const node of callers) {
      await node.stop()
    }
    await server?.stop()
    await regtest?.stop()
    await dir?.cleanup()
  })

  it('settles 10,000 promises with one transaction, far past the 64 ids a call can name', async () => {
    const alice = await caller('alice')
    await owe(alice, 10_000, 30n)
    const [settled] = await alice.payments?.settleDue() ?? []
    assert.equal(settled.ids.length, 10_000)
    const serverTab = await server.ledger.tab('receivable', alice.peerId.toString())
    assert.equal(serverTab.outstanding, 0n)
    assert.equal(serverTab.paid, 300_000n)
    assert.equal((await alice.ledger.tab('payable', server.peerId.toString())).outstanding, 0n)
    const sent = (await alice.ledger.payments()).filter(p => p.direction === 'sent')
    assert.equal(sent.length, 1, 'one transaction')
    assert.equal(sent[0].sats, 300_000n)
  })

  it('pays once when the answer to a settlement is lost, by sending the same transaction again', async () => {
    const bob = await caller('bob')
    await owe(bob, 5, 100n)
    let dropped = 0
    // the server settles, but its answer never reaches the client
    const lossy = async (peer: any, request: CallRequest): Promise<any> => {
      const response = await bob.call(peer, request)
      if (request.method === 'settle' && dropped === 0) {
        dropped++
        throw new Error('connection reset: the answer was lost')
      }
      return response
    }
    const agent = new PaymentAgent({ call: lossy, wallet: bob.wallet, chain, ledger: bob.ledger })
    const before = (await bob.wallet.balance(chain)).confirmed + (await bob.wallet.balance(chain)).unconfirmed
    assert.deepEqual(await agent.settleDue(), [], 'the first round fails')
    assert.equal(dropped, 1)
    const pending = await bob.ledger.pendingSettlement(server.peerId.toString())
    assert.ok(pending != null, 'the transaction is kept for the retry')
    assert.equal((await server.ledger.tab('receivable', bob.peerId.toString())).outstanding, 0n, 'the server did settle')

    const [again] = await agent.settleDue()
    assert.equal(again.txid, pending.txid, 'the same transaction went again')
    assert.deepEqual(again.ids.sort(), ['p0', 'p1', 'p2', 'p3', 'p4'])
    assert.equal((await bob.ledger.tab('payable', server.peerId.toString())).outstanding, 0n)
    assert.equal(await bob.ledger.pendingSettlement(server.peerId.toString()), undefined)
    const received = (await server.ledger.payments()).filter(p => p.peer === bob.peerId.toString() && p.method === 'settle' && !p.txid.endsWith(':settle'))
    assert.equal(received.length, 1, 'the server counted one payment')
    await mine()
    const after = (await bob.wallet.balance(chain)).confirmed
    const spent = before - after
    // 500 sat owed and paid once, plus one transaction's fee
    assert.ok(spent >= 500n && spent < 1000n, `spent ${spent} sat for a 500 sat debt`)
  })

  it('refuses, without broadcasting, a settlement that pays off nothing', async () => {
    const carol = await caller('carol')
    const address = JSON.parse(new TextDecoder().decode(await (await carol.call(server.peerId, { service: 'payments', method: 'address' })).body.bytes())).address
    const tx = await carol.wallet.createPayment(chain, [{ address, value: 1000n }])
    await assert.rejects(carol.call(server.peerId, { service: 'payments', method: 'settle', payment: { type: 'attached', currency: 'BTC', amount: '0.00001', txn: Uint8Array.from(Buffer.from(tx.hex, 'hex')) } }), (err: any) => {
      assert.ok(err instanceof PaymentDeclinedError)
      assert.match(err.message, /pays off none of your unpaid deferred payments.*not broadcast/)
      return true
    })
    await assert.rejects(chain.transaction(tx.txid), { name: 'TransactionNotFoundError' })
  })
})
