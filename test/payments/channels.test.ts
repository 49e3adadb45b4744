import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Transaction } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { EsploraClient } from '../../src/payments/chain/esplora.ts'
import { bitcoinNetwork } from '../../src/protocols/bitcoin-networks.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { PaymentDeclinedError, PaymentTooLowError } from '../../src/protocols/rpc/errors.ts'
import { formatBtc } from '../../src/protocols/units.ts'
import {
  channelOutput, signChannel, signedRefund, stateTransaction, usable, payoutScript, type ChannelTerms
} from '../../src/payments/channels/channel-script.ts'
import { testConfig, tempDir } from '../helpers/nodes.ts'
import type { Config } from '../../src/node/config.ts'
import type { Payment } from '../../src/protocols/rpc/messages.ts'
import type { ChannelRecord } from '../../src/payments/channels/channel-store.ts'

const PRICE = 3n // sat per sha256.hash call of a small body
const network = bitcoinNetwork('regtest')

describe('payment channels between nodes on a local regtest chain', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  let chain: EsploraClient
  let server: OpenCloudNode
  let client: OpenCloudNode
  let serverConfig: Config

  const mine = async (blocks = 1): Promise<void> => { await regtest.chain.mine(blocks, regtest.faucetAddress) }
  const hash = (text = 'pay me') => ({ service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode(text)) })
  // the tip is asked afresh each time: the tests mine between calls
  const start = async (name: string, config: Config, modules: Record<string, unknown> = { payments: { channels: { tipTtlMs: 0 } } }): Promise<OpenCloudNode> => {
    const node = await OpenCloudNode.create({ dataDir: `${dir.path}/${name}`, config, modules })
    await node.start()
    return node
  }
  const target = (node = server): string => node.libp2p.getMultiaddrs()[0].toString()
  const channels = (node: OpenCloudNode) => node.channels as NonNullable<OpenCloudNode['channels']>
  /** the payer's own key of a channel it opened */
  const payerKey = (ch: ChannelRecord): Uint8Array => client.wallet.privateKeyOf(client.wallet.addressOfKey(ch.payerKey) as string)
  /** a channel payment built by hand: the state for `total`, signed by `key` */
  const statePayment = (ch: ChannelTerms & { id: string }, amount: bigint, tx: Transaction, key: Uint8Array): Payment =>
    ({ type: 'channel', currency: 'BTC', amount: formatBtc(amount), channel: ch.id, txn: tx.toBuffer(), signature: signChannel(ch, tx, key) })
  const refusal = (pattern: RegExp, type: any = PaymentDeclinedError) => (err: any) => {
    assert.ok(err instanceof type, `${err.name}: ${err.message}`)
    assert.match(err.message, pattern)
    return true
  }

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: `${dir.path}/chain`, blockIntervalMs: 0 })
    await regtest.start()
    chain = new EsploraClient({ url: regtest.url })
    const payments = { network: 'regtest', chain: regtest.url, settleIntervalMs: 200, graceMs: 600_000 }
    // short channels: a margin of 2 blocks, lives of 20, watched only when the test says
    const settings = { closeMarginBlocks: 2, lifeBlocks: 20, watchIntervalMs: 3_600_000 }
    serverConfig = testConfig({ payments, channels: settings, services: { sha256: { prices: { hash: Number(PRICE) } } } })
    server = await start('server', serverConfig)
    client = await start('client', testConfig({ payments, channels: settings }))
    await regtest.faucet(await client.wallet.newAddress(), 5_000_000n)
    await mine()
  })

  after(async () => {
    await client?.stop()
    await server?.stop()
    await regtest?.stop()
    await dir?.cleanup()
  })

  let first: ChannelRecord

  it('1,000 paid calls, many at once, make two transactions on chain, and the close pays the payee exactly what it was paid', async () => {
    const serverBefore = await server.wallet.balance(chain)
    const opened = await client.paidCall(target(), hash(), { pay: { kind: 'channel', sats: PRICE } })
    assert.equal(opened.response.statusName, 'ok')
    assert.equal(opened.payment?.type, 'channel')
    assert.ok(opened.decisions.some(d => /^opened channel [0-9a-f]{64}:0 to the server/.test(d)), opened.decisions.join('\n'))
    // 999 more, ten in flight at a time: states of one channel stay in order, none paid twice
    for (let i = 0; i < 999; i += 10) {
      const batch = Array.from({ length: Math.min(10, 999 - i) }, async (_, j) => client.paidCall(target(), hash(`call ${i + j}`), { pay: { kind: 'channel', sats: PRICE } }))
      for (const r of await Promise.all(batch)) {
        assert.equal(r.response.statusName, 'ok')
        assert.match(r.decisions.at(-1) as string, /through channel/)
      }
    }
    const [mine1] = channels(client).store.all('payer')
    first = mine1
    const theirs = channels(server).store.get('payee', first.id) as ChannelRecord
    assert.equal(first.total, 1000n * PRICE)
    assert.equal(theirs.total, 1000n * PRICE, 'the payee holds the latest state')
    assert.equal(theirs.payments, 1000)

    const closed = await channels(client).closeWith(server.peerId.toString())
    assert.equal(closed[0].role, 'payer')
    assert.match(closed[0].txid as string, /^[0-9a-f]{64}$/)
    await mine()
    const address = channelOutput(first, network).address
    const txs = await chain.transactions(address)
    assert.equal(txs.length, 2, 'the funding and the close: nothing else touched the channel')
    const close = await chain.transaction(closed[0].txid as string)
    const toPayee = close.outputs.find(o => o.scriptPubKey === Buffer.from(payoutScript(first.payeeKey)).toString('hex'))
    const toPayer = close.outputs.find(o => o.scriptPubKey === Buffer.from(payoutScript(first.payerKey)).toString('hex'))
    assert.equal(toPayee?.value, 1000n * PRICE)
    assert.equal(toPayer?.value, usable(first) - 1000n * PRICE)
    const serverAfter = await server.wallet.balance(chain)
    assert.equal(serverAfter.confirmed - serverBefore.confirmed, 1000n * PRICE, 'the payee\'s wallet counts what the close paid it')
    await channels(client).watch()
    await channels(server).watch()
    assert.equal(channels(client).store.get('payer', first.id)?.state, 'closed')
    assert.equal(channels(server).store.get('payee', first.id)?.state, 'closed')
    // the calls are in the summaries, paid through the channel
    const received = (await server.tabs.payments()).filter(p => p.txid.startsWith(`channel:${first.id}:`))
    assert.equal(received.length, 1000)
    assert.equal(received.reduce((s, p) => s + p.sats, 0n), 1000n * PRICE)
  })

  let ch: ChannelRecord

  it('refuses states that are not exactly the latest plus the price, signed by the payer', async () => {
    await client.paidCall(target(), hash(), { pay: { kind: 'channel', sats: PRICE } })
    ch = channels(client).store.all('payer').find(c => c.state === 'open') as ChannelRecord
    assert.ok(ch != null && ch.id !== first.id)
    const key = payerKey(ch)
    const call = async (payment: Payment) => client.call(target(), { ...hash(), payment })
    // the latest state again: paid once
    const latest = stateTransaction(ch, ch.total)
    await assert.rejects(call(statePayment(ch, PRICE, latest, key)), refusal(/latest state again/))
    // an old state
    await assert.rejects(call(statePayment(ch, PRICE, stateTransaction(ch, 0n), key)), refusal(/not the latest/))
    // pays the payee less than the latest plus the price
    await assert.rejects(call(statePayment(ch, PRICE, stateTransaction(ch, ch.total + PRICE - 1n), key)), refusal(/not the latest/))
    // the payer's output changed: a bigger fee taken from it
    const greedy = stateTransaction(ch, ch.total + PRICE)
    greedy.outs[greedy.outs.length - 1].value -= 100n
    await assert.rejects(call(statePayment(ch, PRICE, greedy, key)), refusal(/pays the payer/))
    // signed by another key
    const stranger = secp256k1.utils.randomSecretKey()
    await assert.rejects(call(statePayment(ch, PRICE, stateTransaction(ch, ch.total + PRICE), stranger)), refusal(/not the payer's key/))
    // a payment under the price
    await assert.rejects(call(statePayment(ch, PRICE - 1n, stateTransaction(ch, ch.total + PRICE - 1n), key)), refusal(/costs/, PaymentTooLowError))
    // more than is left
    const left = usable(ch) - ch.total
    await assert.rejects(call(statePayment(ch, left + 1n, stateTransaction(ch, ch.total), key)), refusal(/more than the .* left in channel/))
    // none of it moved the payee's state
    assert.equal(channels(server).store.get('payee', ch.id)?.total, ch.total)
    // and the honest next state is still taken
    const ok = await client.paidCall(target(), hash(), { pay: { kind: 'channel', sats: PRICE } })
    assert.equal(ok.response.statusName, 'ok')
    assert.equal(channels(server).store.get('payee', ch.id)?.total, ch.total + PRICE)
  })

  it('after a lost answer the payer asks the payee before its next state, and nothing is paid twice', async () => {
    const before = channels(client).store.get('payer', ch.id) as ChannelRecord
    // the state reaches the payee, the answer never comes back
    await assert.rejects(channels(client).pay(server.peerId.toString(), PRICE, async (payment) => {
      await client.call(target(), { ...hash(), payment })
      throw new Error('the stream reset before the answer')
    }), /stream reset/)
    // a state signed and written, never sent (a crash between the two)
    await assert.rejects(channels(client).pay(server.peerId.toString(), PRICE, async () => {
      throw new Error('killed before sending')
    }), /killed/)
    assert.equal(channels(client).store.get('payer', ch.id)?.total, before.total + 2n * PRICE, 'the payer keeps what it signed')
    const next = await client.paidCall(target(), hash(), { pay: { kind: 'channel', sats: PRICE } })
    assert.equal(next.response.statusName, 'ok')
    assert.equal(channels(server).store.get('payee', ch.id)?.total, before.total + 2n * PRICE, 'the unsent state was taken back: two payments, not three')
    assert.equal(channels(client).store.get('payer', ch.id)?.total, before.total + 2n * PRICE)
  })

  it('a state taken back that reaches the payee after all: the payer goes on from it, on the same channel', async () => {
    const before = channels(client).store.get('payer', ch.id) as ChannelRecord
    const peer = server.peerId.toString()
    let late: Payment | undefined
    // signed, written, and held up on the way
    await assert.rejects(channels(client).pay(peer, 2n * PRICE, async (payment) => { late = payment; throw new Error('held up on the way') }), /held up/)
    // the next payment asks the payee, which holds nothing of it: taken back; this one is lost
    await assert.rejects(channels(client).pay(peer, PRICE, async () => { throw new Error('lost as well') }), /lost as well/)
    assert.equal(channels(client).store.get('payer', ch.id)?.total, before.total + PRICE)
    // the first arrives after all, and the payee takes it: more than the payer's latest, but a state it signed
    await client.call(target(), { ...hash(), payment: late as Payment })
    const next = await client.paidCall(target(), hash(), { pay: { kind: 'channel', sats: PRICE } })
    assert.equal(next.payment?.id, ch.id, 'the same channel, not a new one')
    assert.equal(channels(server).store.get('payee', ch.id)?.total, before.total + 3n * PRICE)
    assert.equal(channels(client).store.get('payer', ch.id)?.total, before.total + 3n * PRICE)
  })

  it('a payee restarted keeps its latest state and closes with it; auto pays through the open channel', async () => {
    const auto = await client.paidCall(target(), hash(), { pay: { kind: 'auto' }, maxPrice: 10n })
    assert.equal(auto.payment?.type, 'channel', auto.decisions.join('\n'))
    assert.equal(auto.payment?.sats, PRICE, 'auto pays the price, not the dust limit an attached payment would need')
    // paying more than the price is allowed: enough that the payee has something to claim on chain
    await client.paidCall(target(), hash(), { pay: { kind: 'channel', sats: 300n } })
    const total = (channels(server).store.get('payee', ch.id) as ChannelRecord).total
    await server.stop()
    server = await start('server', serverConfig)
    assert.equal(channels(server).store.get('payee', ch.id)?.total, total)
    const closed = await channels(server).closeWith(client.peerId.toString())
    assert.equal(closed[0].role, 'payee')
    assert.equal(closed[0].error, undefined)
    await mine()
    const close = await chain.transaction(closed[0].txid as string)
    assert.equal(close.outputs.find(o => o.scriptPubKey === Buffer.from(payoutScript(ch.payeeKey)).toString('hex'))?.value, total)
    // no payment is taken after the close
    await assert.rejects(client.call(target(), { ...hash(), payment: statePayment(ch, PRICE, stateTransaction(ch, total + PRICE), payerKey(ch)) }), refusal(/is (closing|closed)/))
  })

  it('a payee that never closes: the script refuses an early refund, the payer refunds after the expiry', async () => {
    await client.paidCall(target(), hash(), { pay: { kind: 'channel', sats: PRICE } })
    const open = channels(client).store.all('payer').find(c => c.state === 'open') as ChannelRecord
    await server.stop()
    // early: the chain refuses it (its lock time is the expiry)
    await assert.rejects(chain.broadcast(signedRefund(open, payerKey(open)).toHex()), /NonFinalError: lock time \d+ is above the tip/)
    await assert.rejects(channels(client).refund(open.id), /can be refunded from block/)
    const tip = await chain.tipHeight()
    await mine(open.expiry - tip)
    const balance = await client.wallet.balance(chain)
    await channels(client).watch()
    assert.equal(channels(client).store.get('payer', open.id)?.state, 'closing')
    await mine()
    await channels(client).watch()
    assert.equal(channels(client).store.get('payer', open.id)?.state, 'refunded')
    const after = await client.wallet.balance(chain)
    assert.equal(after.confirmed - balance.confirmed, usable(open), 'the whole channel less its fee came back')
    server = await start('server', serverConfig)
    await channels(server).watch()
    assert.equal(channels(server).store.get('payee', open.id)?.state, 'refunded')
  })

  it('a payee closes by itself at its margin before the expiry, and refuses payments inside it', async () => {
    await client.paidCall(target(), hash(), { pay: { kind: 'channel', sats: PRICE } })
    const open = channels(client).store.all('payer').find(c => c.state === 'open') as ChannelRecord
    const tip = await chain.tipHeight()
    await mine(open.expiry - open.closeMargin - tip)
    // the client would not pay through it now; the payee refuses a state sent anyway
    const theirs = channels(server).store.get('payee', open.id) as ChannelRecord
    await assert.rejects(client.call(target(), { ...hash(), payment: statePayment(open, PRICE, stateTransaction(open, theirs.total + PRICE), payerKey(open)) }), refusal(/within 2 blocks of the expiry|expires at block/))
    // below the dust limit there is nothing to claim: the payee leaves it to the payer's refund
    assert.ok(theirs.total < 294n)
    await channels(server).watch()
    assert.equal(channels(server).store.get('payee', open.id)?.state, 'open')

    // one paid enough to claim: the payee's watcher closes it at the margin, with the latest state
    const paid = await client.paidCall(target(), hash(), { pay: { kind: 'channel', sats: 500n } })
    assert.ok(paid.decisions.some(d => /^opened channel/.test(d)), 'the old one is near its end: a new one is opened')
    const next = channels(client).store.all('payer').find(c => c.state === 'open' && c.id !== open.id) as ChannelRecord
    await mine(next.expiry - next.closeMargin - await chain.tipHeight())
    await channels(server).watch()
    const closing = channels(server).store.get('payee', next.id) as ChannelRecord
    assert.equal(closing.state, 'closing')
    await mine()
    const close = await chain.transaction(closing.closeTxid as string)
    assert.equal(close.outputs.find(o => o.scriptPubKey === Buffer.from(payoutScript(next.payeeKey)).toString('hex'))?.value, 500n)
    await channels(server).watch()
    await channels(client).watch()
    assert.equal(channels(server).store.get('payee', next.id)?.state, 'closed')
    assert.equal(channels(client).store.get('payer', next.id)?.state, 'closed', 'the payer sees the close on chain')
  })

  it('refuses payments on a channel whose funding is unconfirmed or was double-spent', async () => {
    const strict = await start('strict', testConfig({ payments: { network: 'regtest', chain: regtest.url }, channels: { closeMarginBlocks: 2 }, services: { sha256: { prices: { hash: Number(PRICE) } } } }), { payments: { channels: { confirmations: 1, tipTtlMs: 0 } } })
    try {
      const unconfirmed = await client.paidCall(target(strict), hash(), { pay: { kind: 'channel', sats: PRICE } }).catch(err => err)
      assert.ok(unconfirmed instanceof PaymentDeclinedError, String(unconfirmed))
      assert.match(unconfirmed.message, /after 1 confirmation/)
      await mine()
      const ok = await client.paidCall(target(strict), hash(), { pay: { kind: 'channel', sats: PRICE } })
      assert.equal(ok.response.statusName, 'ok')

      // a funding transaction the payee agreed to, whose coins then went elsewhere
      const offerRes = await client.call(target(strict), { service: 'payments', method: 'channel-terms' })
      const offer = JSON.parse(new TextDecoder().decode(await offerRes.body.bytes()))
      const mineKey = await client.wallet.channelKey()
      const terms: ChannelTerms = { txid: '', vout: 0, capacity: 20_000n, fee: 400n, expiry: (await chain.tipHeight()) + 20, payerKey: mineKey.publicKey, payeeKey: Buffer.from(offer.key, 'hex') }
      const funding = await client.wallet.createPayment(chain, [{ address: channelOutput(terms, network).address, value: terms.capacity }])
      const fundingTx = Transaction.fromHex(funding.hex)
      await client.call(target(strict), { service: 'payments', method: 'channel-open', args: ['0', Buffer.from(terms.payerKey).toString('hex'), offer.key, String(terms.expiry), '0.000004'], body: bodyFromBytes(fundingTx.toBuffer()) })
      const elsewhere = await client.wallet.createPayment(chain, [{ address: await client.wallet.newAddress(), value: 10_000n }])
      const outpoints = (tx: Transaction): string[] => tx.ins.map(i => `${Buffer.from(i.hash).toString('hex')}:${i.index}`)
      assert.ok(outpoints(Transaction.fromHex(elsewhere.hex)).some(o => outpoints(fundingTx).includes(o)), 'the second payment spends a coin of the funding')
      await chain.broadcast(elsewhere.hex)
      const spentTerms = { ...terms, txid: funding.txid, id: `${funding.txid}:0` }
      const key = client.wallet.privateKeyOf(mineKey.address)
      await assert.rejects(client.call(target(strict), { ...hash(), payment: statePayment(spentTerms, PRICE, stateTransaction(spentTerms, PRICE), key) }), refusal(/not on the chain/))
    } finally {
      await strict.stop()
    }
  })
})
