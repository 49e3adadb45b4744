import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Transaction } from 'bitcoinjs-lib'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { EsploraClient } from '../../src/payments/chain/esplora.ts'
import { PaymentAgent } from '../../src/payments/payment-agent.ts'
import { buildTransaction } from '../../src/payments/wallet/tx-builder.ts'
import { bitcoinNetwork } from '../../src/protocols/bitcoin-networks.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { bitcoinSigner } from '../../src/protocols/rpc/credentials.ts'
import { AccessDeniedError, InvalidSignatureError, NoDeferError, PaymentDeclinedError } from '../../src/protocols/rpc/errors.ts'
import { formatAmount, parseBtc } from '../../src/protocols/units.ts'
import { testConfig, tempDir, waitFor } from '../helpers/nodes.ts'
import type { Config } from '../../src/node/config.ts'

const PRICE = 1000n // sat per MiB of sha256.hash

describe('paid calls between nodes on a local regtest chain', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  let chain: EsploraClient
  let server: OpenCloudNode
  let client: OpenCloudNode
  let serverConfig: Config
  let clientConfig: Config

  const mine = async (): Promise<void> => { await regtest.chain.mine(1, regtest.faucetAddress) }
  const hash = (text = 'pay me') => ({ service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode(text)) })
  const start = async (name: string, config: Config): Promise<OpenCloudNode> => {
    const node = await OpenCloudNode.create({ dataDir: `${dir.path}/${name}`, config })
    await node.start()
    return node
  }

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: `${dir.path}/chain`, blockIntervalMs: 0 })
    await regtest.start()
    chain = new EsploraClient({ url: regtest.url })
    const payments = { network: 'regtest', chain: regtest.url, settleIntervalMs: 200, graceMs: 600_000 }
    serverConfig = testConfig({ payments, services: { sha256: { prices: { hash: Number(PRICE) } } }, policies: { global: { 'max-tab': '0.0001 BTC' } } })
    clientConfig = testConfig({ payments })
    server = await start('server', serverConfig)
    client = await start('client', clientConfig)
    await regtest.faucet(await client.wallet.newAddress(), 5_000_000n)
    await mine()
  })

  after(async () => {
    await client?.stop()
    await server?.stop()
    await regtest?.stop()
    await dir?.cleanup()
  })

  const target = (): string => server.libp2p.getMultiaddrs()[0].toString()

  it('accepts an attached payment, and the server\'s balance grows by it after a block', async () => {
    const before = await server.wallet.balance(chain)
    const result = await client.paidCall(target(), hash(), { pay: { kind: 'attached', sats: PRICE } })
    assert.equal(result.response.statusName, 'ok')
    assert.equal(result.payment?.type, 'attached')
    await mine()
    const after = await server.wallet.balance(chain)
    assert.equal(after.confirmed - before.confirmed, PRICE)
    const received = await server.tabs.payments()
    assert.equal(received[0].txid, result.payment?.txid)
    assert.equal(received[0].peer, client.peerId.toString(), 'records are keyed by the OpenCloud ID')
  })

  it('refuses the same transaction replayed', async () => {
    const first = await client.paidCall(target(), hash(), { pay: { kind: 'attached', sats: PRICE } })
    const hex = (await chain.transaction(first.payment?.txid as string)).hex as string
    await assert.rejects(client.call(target(), { ...hash(), payment: { type: 'attached', currency: 'BTC', amount: '0.00001', txn: Buffer.from(hex, 'hex') } }), (err: any) => {
      assert.ok(err instanceof PaymentDeclinedError)
      assert.match(err.message, /already paid for a call/)
      return true
    })
  })

  it('refuses a double spend', async () => {
    const res = await client.call(target(), { service: 'payments', method: 'address' })
    const { address } = JSON.parse(new TextDecoder().decode(await res.body.bytes()))
    const [coin] = await client.wallet.spendable(chain)
    const network = bitcoinNetwork('regtest')
    const honest = buildTransaction({ coins: [coin], payees: [{ address, value: PRICE }], changeAddress: await client.wallet.newAddress(true), feeRate: 2, network })
    await chain.broadcast(honest.hex)
    const cheat = buildTransaction({ coins: [coin], payees: [{ address, value: PRICE }], changeAddress: await client.wallet.newAddress(true), feeRate: 3, network })
    assert.notEqual(cheat.txid, honest.txid)
    await assert.rejects(client.call(target(), { ...hash(), payment: { type: 'attached', currency: 'BTC', amount: '0.00001', txn: Buffer.from(cheat.hex, 'hex') } }), (err: any) => {
      assert.ok(err instanceof PaymentDeclinedError)
      assert.match(err.message, /the chain refused the payment: .*double spend/)
      return true
    })
    await mine()
  })

  it('refuses a transaction that pays the node less than it claims', async () => {
    const [coin] = await client.wallet.spendable(chain)
    const elsewhere = buildTransaction({ coins: [coin], payees: [{ address: await client.wallet.newAddress(), value: PRICE }], changeAddress: await client.wallet.newAddress(true), feeRate: 2, network: bitcoinNetwork('regtest') })
    await assert.rejects(client.call(target(), { ...hash(), payment: { type: 'attached', currency: 'BTC', amount: '0.00001', txn: Buffer.from(elsewhere.hex, 'hex') } }), /pays 0 BTC to this node's addresses/)
  })

  it('answers an underpayment with too-low, and the bidding strategy completes it within its maximum', async () => {
    const result = await client.paidCall(target(), hash(), { pay: { kind: 'attached', sats: 400n }, maxPrice: 5000n })
    assert.equal(result.response.statusName, 'ok')
    assert.equal(result.payment?.sats, PRICE)
    assert.match(result.decisions[0], /too-low: the server asks 0.00001 BTC; offering 0.00001 BTC attached/)
    await assert.rejects(client.paidCall(target(), hash(), { pay: { kind: 'attached', sats: 400n }, maxPrice: 500n }), (err: any) => {
      assert.equal(err.name, 'BiddingError')
      assert.match(err.message, /more than --max-price 0.000005 BTC/)
      return true
    })
  })

  it('pays with --pay auto for a small body that can be read only once, as the control API passes it', async () => {
    const bytes = new TextEncoder().encode('a body read once'.repeat(100))
    const full = bodyFromBytes(bytes)
    let opened = 0
    const oneShot = {
      length: full.length,
      sha256: full.sha256,
      open: (signal?: AbortSignal) => {
        opened++
        if (opened > 1) {
          throw new Error('the HTTP request body can be sent once')
        }
        return full.open(signal)
      }
    }
    // an offer under the price is refused, so the body goes out twice (attached, to leave the tabs alone)
    const result = await client.paidCall(target(), { service: 'sha256', method: 'hash', body: oneShot }, { pay: { kind: 'attached', sats: PRICE / 2n }, maxPrice: PRICE * 2n })
    assert.equal(result.response.statusName, 'ok')
    assert.equal(result.decisions[0].split(':')[0], 'too-low')
    assert.equal(result.payment?.type, 'attached')
    assert.equal(Buffer.from(await result.response.body.bytes()).toString('hex'), Buffer.from(full.sha256).toString('hex'))
    assert.equal(opened, 1)
  })

  it('accrues deferred payments, pays them when the threshold is hit, and clears the tab', async () => {
    const threshold = 'amount:0.00003'
    for (let i = 0; i < 2; i++) {
      await client.paidCall(target(), hash(`deferred ${i}`), { pay: { kind: 'defer', sats: PRICE }, threshold })
    }
    // 2000 sat owed, under the 3000 sat threshold: nothing is paid
    await new Promise(resolve => setTimeout(resolve, 500))
    assert.equal((await server.tabs.tab('receivable', client.peerId.toString())).outstanding, 2000n)
    const third = await client.paidCall(target(), hash('deferred 2'), { pay: { kind: 'defer', sats: PRICE }, threshold })
    assert.equal(third.payment?.type, 'defer')
    // the server clears its side when the settlement arrives, the client when
    // the server's answer does: wait for both
    await waitFor(async () => (await server.tabs.tab('receivable', client.peerId.toString())).outstanding === 0n &&
      (await client.tabs.tab('payable', server.peerId.toString())).outstanding === 0n, 10_000, 'the tab to clear on both sides')
    const serverTab = await server.tabs.tab('receivable', client.peerId.toString())
    assert.equal(serverTab.paid, 3000n)
    const clientTab = await client.tabs.tab('payable', server.peerId.toString())
    assert.equal(clientTab.outstanding, 0n)
    assert.equal(clientTab.paid, 3000n)
  })

  it('lets a due debt below the dust limit wait, never overdue, and pays it with the next promise at exactly what is owed', async () => {
    const serverTab = async () => server.tabs.tab('receivable', client.peerId.toString())
    const settlements = async () => (await client.tabs.payments()).filter(p => p.direction === 'sent' && p.method === 'settle')
    const before = (await settlements()).length
    await client.paidCall(target(), { service: 'sha256', method: 'info' }, { pay: { kind: 'defer', sats: 100n }, threshold: 'completion' })
    assert.equal((await serverTab()).due, 100n)
    // rounds of the settle task go by (every 200 ms): nothing is paid
    await new Promise(resolve => setTimeout(resolve, 600))
    assert.equal((await client.tabs.tab('payable', server.peerId.toString())).outstanding, 100n)
    assert.equal((await settlements()).length, before, 'no settlement of 294 sat for a 100 sat debt')
    assert.equal(client.payments?.settlementStates()[0]?.code, 'below-dust')
    // the server agrees it is not late, however long it waits
    assert.equal((await server.tabs.tab('receivable', client.peerId.toString(), Date.now() + 86_400_000)).overdue, 0n)

    // a promise without a threshold falls due once the tab is worth a settlement (564 sat at 1 sat/vB on regtest)
    const next = await client.paidCall(target(), hash('worth it'), { pay: { kind: 'defer', sats: PRICE } })
    assert.equal(next.payment?.type, 'defer')
    assert.deepEqual((await client.tabs.promises('payable')).at(-1)?.threshold, 'amount:0.00000564')
    await waitFor(async () => (await settlements()).length > before, 10_000, 'the settlement')
    const [sent] = await settlements()
    assert.equal(sent.sats, 1100n, 'exactly what was owed')
    const tx = await chain.transaction(sent.txid)
    assert.equal(sent.fee, tx.fee, 'the fee the chain shows is the one recorded')
    assert.equal((await serverTab()).outstanding, 0n)
    assert.deepEqual(client.payments?.settlementStates(), [])
  })

  it('declines a caller over max-tab, and auto bidding pays attached once no credit is left', async () => {
    await assert.rejects(client.paidCall(target(), hash(), { pay: { kind: 'defer', sats: 20_000n } }), (err: any) => {
      assert.equal(err.name, 'BiddingError')
      assert.match(err.message, /over this node's max-tab of 0.0001 BTC/)
      return true
    })
    await assert.rejects(client.call(target(), { ...hash(), payment: { type: 'defer', currency: 'BTC', amount: '0.0002', id: 'too-much', threshold: '' } }), NoDeferError)
    // thresholds an hour away keep the settle task out of this test
    const auto = await client.paidCall(target(), hash(), { pay: { kind: 'auto' }, maxPrice: 5000n, threshold: 'time:3600' })
    assert.equal(auto.payment?.type, 'defer', 'auto prefers credit where it is given')
    assert.deepEqual(auto.decisions.map(d => d.split(':')[0]), ['too-low', 'promised 0.00001 BTC as deferred payment ' + auto.payment?.id])

    // fill the tab to its limit: the next auto call is refused credit and pays attached
    await client.paidCall(target(), hash(), { pay: { kind: 'defer', sats: 9000n }, threshold: 'time:3600' })
    assert.equal((await server.tabs.tab('receivable', client.peerId.toString())).outstanding, 10_000n)
    // the server's too-low already says attached: no deferred offer is wasted
    const switched = await client.paidCall(target(), hash(), { pay: { kind: 'auto' }, maxPrice: 5000n, threshold: 'time:3600' })
    assert.equal(switched.payment?.type, 'attached')
    assert.deepEqual(switched.decisions.map(d => d.split(';')[0]), ['too-low: the server asks 0.00001 BTC', `paid 0.00001 BTC attached in ${switched.payment?.txid}, with a fee of ${formatAmount(switched.fee ?? 0n)}`])
    assert.equal(switched.fee, (await chain.transaction(switched.payment?.txid as string)).fee)
  })

  it('keeps tabs across a restart of both nodes', async () => {
    // the tab the previous test filled is still owed (its thresholds are an hour away)
    const before = {
      server: await server.tabs.tab('receivable', client.peerId.toString()),
      client: await client.tabs.tab('payable', server.peerId.toString())
    }
    assert.ok(before.server.outstanding > 0n)
    await client.stop()
    await server.stop()
    server = await start('server', serverConfig)
    client = await start('client', clientConfig)
    assert.deepEqual(await server.tabs.tab('receivable', client.peerId.toString()), before.server)
    assert.deepEqual(await client.tabs.tab('payable', server.peerId.toString()), before.client)
  })

  it('settles the tab when a server refuses more credit at its max-tab, and asks again', async () => {
    // the tab the previous tests filled: 10,000 sat, the server's max-tab, due in an hour
    assert.equal((await server.tabs.tab('receivable', client.peerId.toString())).outstanding, 10_000n)
    const result = await client.paidCall(target(), hash('more credit'), { pay: { kind: 'defer', sats: PRICE }, threshold: 'time:3600' })
    assert.equal(result.payment?.type, 'defer')
    assert.match(result.decisions[0], /^no-defer: your tab would reach 0.00011 BTC, over this node's max-tab of 0.0001 BTC; settled 0.0001 BTC owed in [0-9a-f]{64} and asking again$/)
    assert.equal((await server.tabs.tab('receivable', client.peerId.toString())).outstanding, PRICE)
    assert.equal((await client.tabs.tab('payable', server.peerId.toString())).outstanding, PRICE)
  })

  it('records an attached payment the server broadcast and then refused: the money left all the same', async () => {
    const strict = await start('confirming', testConfig({ payments: serverConfig.payments, services: { sha256: { prices: { hash: Number(PRICE) } } }, policies: { global: { confirmations: 1 } } }))
    try {
      await assert.rejects(client.paidCall(strict.libp2p.getMultiaddrs()[0].toString(), hash('unconfirmed'), { pay: { kind: 'attached', sats: PRICE } }), /serves after 1 confirmation/)
      const [sent] = (await client.tabs.payments()).filter(p => p.peer === strict.peerId.toString())
      assert.equal(sent?.sats, PRICE)
      assert.equal(sent.fee, (await chain.transaction(sent.txid)).fee)
      const [row] = (await client.tabs.onChain()).filter(r => r.peer === strict.peerId.toString())
      assert.deepEqual(row, { peer: strict.peerId.toString(), sent: PRICE, fees: sent.fee, received: 0n, transactions: 1 })
    } finally {
      await strict.stop()
    }
  })

  it('pays a small attached price at the fee the chain needs and says the fee, as wallet send does', async () => {
    const payer = await start('frugal', clientConfig)
    try {
      await payer.libp2p.dial(server.libp2p.getMultiaddrs()[0])
      await regtest.faucet(await payer.wallet.newAddress(), 100_000n)
      await mine()
      // 10 sat/vB: a payment's fee (1410 sat) is more than the 1000 sat price
      const dear = Object.assign(Object.create(chain), { feeRate: async () => 10 })
      const agent = new PaymentAgent({ call: async (peer, request) => payer.call(peer, request), wallet: payer.wallet, chain: dear, tabs: payer.tabs })
      const paid = await agent.call(server.peerId, hash('dear fees'), { pay: { kind: 'attached', sats: PRICE } })
      assert.equal(paid.response.statusName, 'ok')
      assert.equal(paid.fee, 1410n)
      assert.equal((await chain.transaction(paid.payment?.txid as string)).fee, 1410n)
      assert.deepEqual(paid.decisions, [`paid 0.00001 BTC attached in ${paid.payment?.txid}, with a fee of 0.0000141 BTC`])
      // the smallest payment bitcoin carries, at that rate
      const sent = await payer.wallet.send(dear, regtest.faucetAddress, 294n)
      assert.equal(sent.fee, 1410n)
      assert.equal((await chain.transaction(sent.txid)).fee, 1410n)
    } finally {
      await payer.stop()
    }
  })

  it('leaves no debt behind a deferred call that was not served', async () => {
    // a caller of its own, with an empty tab
    const caller = await start('phantom', clientConfig)
    try {
      const id = caller.peerId.toString()
      // the body does not match its signed digest: the service reads it and fails
      const real = bodyFromBytes(new TextEncoder().encode('the real body'))
      const lying = { ...real, sha256: bodyFromBytes(new TextEncoder().encode('another body')).sha256 }
      await assert.rejects(caller.call(target(), { service: 'sha256', method: 'hash', body: lying, payment: { type: 'defer', currency: 'BTC', amount: '0.00001', id: 'never-served', threshold: '' } }), /does not match/)
      const after = await server.tabs.tab('receivable', id)
      assert.equal(after.outstanding, 0n)
      assert.equal(after.promises, 0)
      // the id was never bound, so a call that is served can use it
      const served = await caller.call(target(), { ...hash('served'), payment: { type: 'defer', currency: 'BTC', amount: '0.00001', id: 'never-served', threshold: 'time:3600' } })
      assert.equal(served.statusName, 'ok')
      assert.equal((await server.tabs.tab('receivable', id)).outstanding, 1000n)
    } finally {
      await caller.stop()
    }
  })

  it('summarizes what was earned and spent, per peer and call, the same on both sides', async () => {
    const earned = (await server.tabs.summary()).filter(r => r.peer === client.peerId.toString())
    const spent = (await client.tabs.summary()).filter(r => r.peer === server.peerId.toString())
    const hashEarned = earned.find(r => r.call === 'sha256.hash')
    const hashSpent = spent.find(r => r.call === 'sha256.hash')
    assert.ok(hashEarned != null && hashSpent != null)
    assert.ok(hashEarned.earned > 0n)
    assert.equal(hashEarned.earned, hashSpent.spent, 'what one side earned, the other spent')
    assert.equal(hashEarned.earnedUnpaid, hashSpent.spentUnpaid)
    assert.equal(hashEarned.calls, hashSpent.calls)
    assert.equal(hashEarned.spent, 0n)
    // settlements pay promises already counted: no row of their own
    assert.ok(!earned.some(r => r.call === 'payments.settle'))
    // a period with nothing in it
    assert.deepEqual(await server.tabs.summary(Date.now() + 60_000), [])
  })

  it('admits a funded bitcoin credential under min-balance and refuses an empty one; refuses a forged one', async () => {
    const strict = await start('strict', testConfig({ payments: serverConfig.payments, policies: { global: { 'min-balance': '0.001 BTC' } } }))
    try {
      const strictAddr = strict.libp2p.getMultiaddrs()[0].toString()
      await assert.rejects(client.call(strictAddr, { service: 'info', method: 'node' }), /prove at least 0.001 BTC with a bitcoin credential/)
      await assert.rejects(client.call(strictAddr, { service: 'info', method: 'node', extraSigners: [client.bitcoinCredential()] }), (err: any) => {
        assert.ok(err instanceof AccessDeniedError)
        assert.match(err.message, /hold 0 BTC that qualifies/)
        return true
      })
      await regtest.faucet(client.wallet.identityAddress, parseBtc('0.002'))
      await mine()
      const ok = await client.call(strictAddr, { service: 'info', method: 'node', extraSigners: [client.bitcoinCredential()] })
      assert.equal(ok.statusName, 'ok')

      // a signature by another key for the funded address
      const forged = bitcoinSigner({ privateKey: new Uint8Array(32).fill(7), network: bitcoinNetwork('regtest') })
      const liar = { ...forged, credential: client.bitcoinCredential().credential }
      await assert.rejects(client.call(strictAddr, { service: 'info', method: 'node', extraSigners: [liar] }), InvalidSignatureError)
    } finally {
      await strict.stop()
    }
  })
})

describe('transactions from the wallet', () => {
  it('parse as the segwit transactions the chain checks', async () => {
    const dir = await tempDir()
    const regtest = new RegtestServer({ dir: dir.path, blockIntervalMs: 0 })
    await regtest.start()
    try {
      const chain = new EsploraClient({ url: regtest.url })
      const { Wallet } = await import('../../src/payments/wallet/wallet.ts')
      const wallet = await Wallet.open({ path: `${dir.path}/wallet.json`, network: 'regtest' })
      await regtest.faucet(await wallet.newAddress(), 100_000n)
      await regtest.chain.mine(1, regtest.faucetAddress)
      const sent = await wallet.send(chain, regtest.faucetAddress, 30_000n)
      const tx = Transaction.fromHex((await chain.transaction(sent.txid)).hex as string)
      assert.ok(tx.hasWitnesses())
      const history = await wallet.history(chain)
      assert.equal(history.find(h => h.txid === sent.txid)?.delta, -(30_000n + sent.fee))
    } finally {
      await regtest.stop()
      await dir.cleanup()
    }
  })
})
