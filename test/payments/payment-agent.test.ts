import { describe, it, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { MemoryDatastore } from 'datastore-core'
import { Transaction, address as btcAddress, payments as btcPayments } from 'bitcoinjs-lib'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { BiddingError, PaymentAgent, type PaidCallOptions } from '../../src/payments/payment-agent.ts'
import { TabBook } from '../../src/payments/tab-book.ts'
import { Wallet } from '../../src/payments/wallet/wallet.ts'
import { signerFor } from '../../src/payments/wallet/tx-builder.ts'
import { ChainUnavailableError, TransactionNotFoundError } from '../../src/payments/chain/errors.ts'
import { bitcoinNetwork } from '../../src/protocols/bitcoin-networks.ts'
import { formatBtc, parseBtc } from '../../src/protocols/units.ts'
import { NoDeferError, PaymentDeclinedError, PaymentTooLowError, ServerError } from '../../src/protocols/rpc/errors.ts'
import { Status } from '../../src/protocols/rpc/status.ts'
import { tempDir } from '../helpers/nodes.ts'
import type { ChainBackend, TxInfo } from '../../src/payments/chain/interface.ts'
import type { CallRequest, CallResponse } from '../../src/protocols/rpc/rpc-client.ts'
import type { PayMode } from '../../src/payments/pay-options.ts'

/**
 * The payment agent (the client's side of payments: bidding, deferred
 * promises, settling) with its components stubbed: `call` is a function
 * answering what a server would and recording what it was sent, the chain
 * a stub that holds one coin of the wallet and answers a fee rate, the
 * wallet a real one from a fixed mnemonic, the tab book real on an
 * in-memory datastore. No network, no chain.
 */

const NETWORK = bitcoinNetwork('regtest')
const SERVER = peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(9)))
const SERVER_ID = SERVER.toString()
const SERVER_ADDRESS = btcPayments.p2wpkh({ pubkey: signerFor(new Uint8Array(32).fill(6)).publicKey, network: NETWORK }).address as string
const MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about'
const GRACE = 600_000
const REQUEST: CallRequest = { service: 'sha256', method: 'hash', args: [] }

/** An answer from the server: `json` as its body */
function ok (json: unknown = {}): CallResponse {
  const bytes = new TextEncoder().encode(JSON.stringify(json))
  return {
    status: Status.OK,
    statusName: 'ok',
    message: '',
    server: SERVER_ID,
    head: {} as any,
    proof: new Uint8Array(),
    body: { length: bytes.byteLength, sha256: new Uint8Array(32), bytes: async () => bytes, [Symbol.asyncIterator]: async function * () { yield bytes } }
  }
}

/** A refusal carrying the payment the server would accept, as the RPC client turns it back into its class */
function refused<E extends Error> (err: E, sats?: bigint, type: 'attached' | 'defer' = 'attached'): E {
  return Object.assign(err, { acceptablePayment: sats == null ? undefined : { type, currency: 'BTC', amount: formatBtc(sats) } })
}

/** One request the stub server was sent, as a line: `sha256.hash defer 0.000003`, `payments.tab sha256.hash` */
function line (request: CallRequest): string {
  const p = request.payment
  const payment = p == null || p.type === 'none' ? '' : ` ${p.type} ${(p as { amount: string }).amount}`
  const args = request.args == null || request.args.length === 0 ? '' : ` ${request.args.join(' ')}`
  return `${request.service}.${request.method}${args}${payment}`
}

/** What an attached payment pays the server, read from its transaction */
function paysServer (request: CallRequest): bigint {
  assert.equal(request.payment?.type, 'attached')
  const tx = Transaction.fromBuffer(request.payment.txn)
  return tx.outs.reduce((sum, out) => {
    try {
      return sum + (btcAddress.fromOutputScript(out.script, NETWORK) === SERVER_ADDRESS ? out.value : 0n)
    } catch {
      return sum
    }
  }, 0n)
}

type Handler = (request: CallRequest, nth: number) => unknown
const amountOf = (request: CallRequest): bigint => parseBtc((request.payment as { amount: string }).amount)

describe('the payment agent', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let wallet: Wallet
  let tabs: TabBook
  let agent: PaymentAgent
  /** what the stub server was sent, in order */
  let sent: CallRequest[]
  let handlers: Record<string, Handler>
  /** the stub chain's fee rate (undefined: it does not answer) and the transactions it knows */
  let feeRate: number | undefined
  let known: Set<string>

  const chain = {
    utxos: async (address: string) => address === wallet.identityAddress ? [{ txid: 'a'.repeat(64), vout: 0, value: 1_000_000n, status: { confirmed: true, blockHeight: 1 } }] : [],
    transactions: async () => [],
    feeRate: async () => {
      if (feeRate == null) {
        throw new ChainUnavailableError('the chain does not answer')
      }
      return feeRate
    },
    transaction: async (txid: string) => {
      if (known.has(txid)) {
        return { txid } as TxInfo
      }
      throw new TransactionNotFoundError(`no transaction ${txid}`)
    }
  } as unknown as ChainBackend

  const call = async (peer: unknown, request: CallRequest): Promise<CallResponse> => {
    sent.push(request)
    const what = `${request.service}.${request.method}`
    const handler = handlers[what]
    if (handler == null) {
      throw new Error(`the stub server has no ${what}`)
    }
    const nth = sent.filter(r => r.service === request.service && r.method === request.method).length
    return ok(await handler(request, nth))
  }

  const lines = (): string[] => sent.map(line)

  before(async () => {
    dir = await tempDir()
    wallet = await Wallet.open({ path: join(dir.path, 'wallet.json'), network: 'regtest', mnemonic: MNEMONIC })
  })

  after(async () => {
    await dir?.cleanup()
  })

  beforeEach(() => {
    sent = []
    feeRate = 1
    known = new Set()
    handlers = { 'payments.address': () => ({ address: SERVER_ADDRESS, network: 'regtest' }) }
    tabs = new TabBook(new MemoryDatastore(), { graceMs: GRACE })
    agent = new PaymentAgent({ call, wallet, chain, tabs }, { feeRateTtlMs: 0, settleIntervalMs: 1000 })
  })

  /** A promise this node made the server, `ago` ms ago */
  const owe = async (id: string, sats: bigint, ago = 1000, threshold = 'completion'): Promise<void> => {
    await tabs.addPromise({ role: 'payable', peer: SERVER_ID, id, sats, threshold, service: 'sha256', method: 'hash', createdAt: Date.now() - ago })
  }

  const pay = (mode: PayMode, maxPrice?: bigint, threshold?: string): PaidCallOptions => ({ pay: mode, maxPrice, threshold })

  describe('bidding', () => {
    it('raises an attached offer on too-low to what the server asks, within the maximum, and records what it paid', async () => {
      handlers['sha256.hash'] = (request) => {
        if (amountOf(request) < 400n) {
          throw refused(new PaymentTooLowError('sha256.hash costs 0.000004 BTC'), 400n)
        }
        return { hash: 'x' }
      }
      const result = await agent.call(SERVER, REQUEST, pay({ kind: 'attached', sats: 300n }, 500n))
      assert.deepEqual(lines(), ['payments.address', 'sha256.hash attached 0.000003', 'payments.address', 'sha256.hash attached 0.000004'])
      assert.equal(paysServer(sent[3]), 400n)
      assert.equal(result.payment?.type, 'attached')
      assert.equal(result.payment?.sats, 400n)
      assert.equal(result.payment?.txid, Transaction.fromBuffer((sent[3].payment as { txn: Uint8Array }).txn).getId())
      assert.equal(result.fee, 141n, 'one coin in, payee and change out, at 1 sat/vB')
      assert.deepEqual(result.decisions, [
        'too-low: the server asks 0.000004 BTC; offering 0.000004 BTC attached (maximum 0.000005 BTC)',
        `paid 0.000004 BTC attached in ${result.payment?.txid}, with a fee of 0.00000141 BTC`
      ])
      // the refused offer never reached the chain: only the paid one is money spent
      assert.deepEqual((await tabs.payments()).map(p => [p.direction, p.peer, p.sats, p.fee, p.txid]), [['sent', SERVER_ID, 400n, 141n, result.payment?.txid]])
      assert.deepEqual(await tabs.promises('payable'), [])
    })

    it('gives up on too-low when the server asks more than the maximum, and says what it asked', async () => {
      handlers['sha256.hash'] = () => { throw refused(new PaymentTooLowError('sha256.hash costs 0.000006 BTC'), 600n) }
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n }, 599n)), (err: any) => {
        assert.ok(err instanceof BiddingError)
        assert.equal(err.message, 'the server asks 0.000006 BTC for sha256.hash, more than --max-price 0.00000599 BTC')
        assert.equal(err.asked, 600n)
        assert.deepEqual(err.decisions, ['too-low: the server asks 0.000006 BTC, over the maximum of 0.00000599 BTC: giving up'])
        return true
      })
      assert.deepEqual(lines(), ['sha256.hash defer 0.000003'])
    })

    it('offers nothing over the maximum in the first place', async () => {
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'attached', sats: 600n }, 500n)), /^BiddingError: the payment of 0\.000006 BTC is over --max-price 0\.000005 BTC$/)
      assert.deepEqual(sent, [])
    })

    it('with --pay none answers too-low as the server said it, without a second offer', async () => {
      handlers['sha256.hash'] = () => { throw refused(new PaymentTooLowError('sha256.hash costs 0.000004 BTC and the request carries no payment'), 400n, 'defer') }
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'none' }, 1000n)), (err: any) => err instanceof PaymentTooLowError && !(err instanceof BiddingError))
      assert.deepEqual(lines(), ['sha256.hash'])
    })

    it('with auto asks for free, then offers the kind of payment the server says it accepts', async () => {
      for (const kind of ['defer', 'attached'] as const) {
        sent = []
        handlers['sha256.hash'] = (request) => {
          if (request.payment?.type === 'none') {
            throw refused(new PaymentTooLowError('sha256.hash costs 0.000003 BTC and the request carries no payment'), 300n, kind)
          }
          return {}
        }
        const result = await agent.call(SERVER, REQUEST, pay({ kind: 'auto' }, 1000n))
        assert.deepEqual(lines().filter(l => l.startsWith('sha256')), ['sha256.hash', `sha256.hash ${kind} 0.000003`])
        assert.equal(result.payment?.type, kind)
        assert.match(result.decisions[0], new RegExp(`^too-low: the server asks 0\\.000003 BTC; offering 0\\.000003 BTC ${kind} \\(maximum 0\\.00001 BTC\\)$`))
      }
    })

    it('records a promise only once the server answered ok, under the server that signed it, with the default threshold', async () => {
      handlers['sha256.hash'] = (request, nth) => {
        if (nth === 1) {
          throw refused(new PaymentTooLowError('sha256.hash costs 0.000004 BTC'), 400n, 'defer')
        }
        return {}
      }
      const result = await agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n }, 400n))
      const [refusedOffer, accepted] = sent.map(r => r.payment as { id: string, threshold: string })
      assert.notEqual(refusedOffer.id, accepted.id, 'each offer is a promise of its own')
      // due once the tab is worth a settlement: four times a 141 vB payment at 1 sat/vB
      assert.equal(accepted.threshold, 'amount:0.00000564')
      assert.deepEqual(result.payment, { type: 'defer', sats: 400n, id: accepted.id })
      assert.deepEqual(result.decisions.at(-1), `promised 0.000004 BTC as deferred payment ${accepted.id}`)
      const promises = await tabs.promises('payable')
      assert.deepEqual(promises.map(p => [p.peer, p.id, p.sats, p.threshold, p.service, p.method]), [[SERVER_ID, accepted.id, 400n, 'amount:0.00000564', 'sha256', 'hash']])
    })

    it('records no promise when the call fails, and keeps its decisions on the error', async () => {
      handlers['sha256.hash'] = (request, nth) => {
        if (nth === 1) {
          throw refused(new PaymentTooLowError('sha256.hash costs 0.000004 BTC'), 400n, 'defer')
        }
        throw new ServerError('the service failed')
      }
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n }, 400n, 'time:60')), (err: any) => {
        assert.ok(err instanceof ServerError)
        assert.deepEqual((err as ServerError & { decisions?: string[] }).decisions, ['too-low: the server asks 0.000004 BTC; offering 0.000004 BTC defer (maximum 0.000004 BTC)'])
        return true
      })
      assert.deepEqual(sent.map(r => (r.payment as { threshold: string }).threshold), ['time:60', 'time:60'])
      assert.deepEqual(await tabs.promises('payable'), [])
    })

    it('records an attached payment the server broadcast before it failed the call, and none it did not', async () => {
      handlers['sha256.hash'] = (request) => {
        if (request.payment?.type === 'attached' && amountOf(request) === 500n) {
          // broadcast, then the service failed
          known.add(Transaction.fromBuffer(request.payment.txn).getId())
        }
        throw new ServerError('the service failed')
      }
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'attached', sats: 400n })), ServerError)
      assert.deepEqual(await tabs.payments(), [])
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'attached', sats: 500n })), ServerError)
      assert.deepEqual((await tabs.payments()).map(p => [p.direction, p.peer, p.sats]), [['sent', SERVER_ID, 500n]])
    })

    it('on no-defer with nothing owed switches to an attached payment under auto, at the price the server asks', async () => {
      handlers['sha256.hash'] = (request) => {
        if (request.payment?.type === 'none') {
          throw refused(new PaymentTooLowError('sha256.hash costs 0.000003 BTC'), 300n, 'defer')
        }
        if (request.payment?.type === 'defer') {
          throw refused(new NoDeferError('this node does not accept deferred payment for sha256.hash'), 350n)
        }
        return {}
      }
      const result = await agent.call(SERVER, REQUEST, pay({ kind: 'auto' }, 1000n))
      // nothing owed: payments.tab is not even asked
      assert.deepEqual(lines(), ['sha256.hash', 'sha256.hash defer 0.000003', 'payments.address', 'sha256.hash attached 0.0000035'])
      assert.equal(result.payment?.type, 'attached')
      assert.equal(result.decisions[1], 'no-defer: this node does not accept deferred payment for sha256.hash; switching to an attached payment of 0.0000035 BTC')
      assert.deepEqual(await tabs.promises('payable'), [])
    })

    it('on no-defer under auto gives up when the attached price the server asks is over the maximum', async () => {
      handlers['sha256.hash'] = (request) => {
        if (request.payment?.type === 'none') {
          throw refused(new PaymentTooLowError('sha256.hash costs 0.000003 BTC'), 300n, 'defer')
        }
        throw refused(new NoDeferError('no credit'), 1001n)
      }
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'auto' }, 1000n)), (err: any) => {
        assert.ok(err instanceof BiddingError)
        assert.equal(err.message, 'the server wants 0.00001001 BTC attached, more than --max-price 0.00001 BTC')
        assert.equal(err.asked, 1001n)
        return true
      })
      assert.deepEqual(lines(), ['sha256.hash', 'sha256.hash defer 0.000003'])
    })

    it('on no-defer under --pay defer gives up, attaching nothing', async () => {
      handlers['sha256.hash'] = () => { throw refused(new NoDeferError('this node gives no credit (max-tab 0): attach the payment'), 300n) }
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n })), (err: any) => {
        assert.ok(err instanceof BiddingError)
        assert.equal(err.message, 'the server refuses deferred payment: this node gives no credit (max-tab 0): attach the payment')
        assert.deepEqual(err.decisions, ['no-defer: this node gives no credit (max-tab 0): attach the payment; --pay defer allows nothing else: giving up'])
        return true
      })
      assert.deepEqual(lines(), ['sha256.hash defer 0.000003'])
    })

    it('makes at most five offers', async () => {
      handlers['sha256.hash'] = (request) => { throw refused(new PaymentTooLowError('more'), amountOf(request) + 1n, 'defer') }
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n }, 10_000n)), (err: any) => {
        assert.ok(err instanceof BiddingError)
        assert.equal(err.message, 'the server kept asking for more; giving up after 5 offers')
        assert.equal(err.decisions.length, 5)
        return true
      })
      assert.deepEqual(lines(), [300, 301, 302, 303, 304].map(sats => `sha256.hash defer ${formatBtc(BigInt(sats))}`))
      assert.deepEqual(await tabs.promises('payable'), [])
    })
  })

  describe('settling for credit (no-defer on a promise)', () => {
    /** the server refuses the first promise because of the tab, accepts the next; answers payments.tab with `tab` */
    const server = (tab: unknown): void => {
      handlers['sha256.hash'] = (request, nth) => {
        if (nth === 1) {
          throw refused(new NoDeferError('your tab would reach 0.000009 BTC, over this node\'s max-tab of 0.00001 BTC'), 300n)
        }
        return {}
      }
      handlers['payments.tab'] = () => {
        if (tab instanceof Error) {
          throw tab
        }
        return tab
      }
      handlers['payments.settle'] = () => ({ settled: ['old'], tab: { outstanding: '0 BTC' } })
    }
    const credit = (maxTab: string, refused = false): Record<string, unknown> => ({ outstanding: '0.000006 BTC', overdue: '0 BTC', credit: { maxTab, refused } })

    it('settles the tab and asks again when the server\'s credit says settling makes room', async () => {
      await owe('old', 600n)
      server(credit('0.00001 BTC'))
      const result = await agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n }))
      assert.deepEqual(lines(), ['sha256.hash defer 0.000003', 'payments.tab sha256.hash', 'payments.address', 'payments.settle attached 0.000006', 'sha256.hash defer 0.000003'])
      assert.equal(paysServer(sent[3]), 600n)
      const txid = Transaction.fromBuffer((sent[3].payment as { txn: Uint8Array }).txn).getId()
      assert.equal(result.decisions[0], `no-defer: your tab would reach 0.000009 BTC, over this node's max-tab of 0.00001 BTC; settled 0.000006 BTC owed in ${txid} and asking again`)
      const promises = await tabs.promises('payable', SERVER_ID)
      assert.deepEqual(promises.map(p => [p.id, p.txid]), [['old', txid], [result.payment?.id, undefined]])
      assert.equal(await tabs.pendingSettlement(SERVER_ID), undefined)
    })

    it('pays nothing early where settling cannot make room, and says why', async () => {
      const cases: Array<[string, unknown, RegExp]> = [
        ['an older server', { outstanding: '0.000006 BTC', overdue: '0 BTC' }, /the server does not say what credit it gives for sha256\.hash \(its payments\.tab answers no credit\): settling might not make room, so the tab is not paid early$/],
        ['no answer', new ServerError('payments.tab failed'), /the server does not say what credit it gives for sha256\.hash/],
        ['no-defer or trust', credit('0.00001 BTC', true), /; the server gives this node no credit for sha256\.hash whatever it owes: settling would not change that$/],
        ['max-tab 0', credit('0 BTC'), /; the server gives this node no credit for sha256\.hash whatever it owes/],
        ['max-tab under the promise', credit('0.00000299 BTC'), /; the promise of 0\.000003 BTC is over the server's max-tab of 0\.00000299 BTC for sha256\.hash: settling would not make room$/],
        ['nothing owed at the server', { ...credit('0.00001 BTC'), outstanding: '0 BTC' }, /; the server counts nothing owed: settling would pay off nothing$/]
      ]
      for (const [why, tab, message] of cases) {
        sent = []
        tabs = new TabBook(new MemoryDatastore(), { graceMs: GRACE })
        agent = new PaymentAgent({ call, wallet, chain, tabs }, { feeRateTtlMs: 0 })
        await owe('old', 600n)
        server(tab)
        await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n })), (err: any) => {
          assert.ok(err instanceof BiddingError, why)
          assert.match(err.message, message, why)
          return true
        })
        assert.deepEqual(lines(), ['sha256.hash defer 0.000003', 'payments.tab sha256.hash'], why)
        assert.equal((await tabs.tab('payable', SERVER_ID)).outstanding, 600n, why)
      }
    })

    it('does not ask for credit when it owes less than the dust limit', async () => {
      await owe('old', 293n)
      server(credit('0.00001 BTC'))
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n })), BiddingError)
      assert.deepEqual(lines(), ['sha256.hash defer 0.000003'])
    })

    it('pays by the fee-share rule, and whatever the fee up to the tab once the server counts it overdue', async () => {
      // 141 sat in fee is more than a quarter of 400
      await owe('old', 400n)
      server(credit('0.00001 BTC'))
      await assert.rejects(agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n })), (err: any) => {
        assert.match(err.message, /; the tab with it is not settled now: the fee would be 0\.00000141 BTC, more than a quarter of the 0\.000004 BTC owed: it waits for more promises or until it must be paid$/)
        return true
      })
      assert.deepEqual(lines(), ['sha256.hash defer 0.000003', 'payments.tab sha256.hash', 'payments.address'])
      assert.deepEqual(agent.settlementStates().map(s => [s.peer, s.state, s.code]), [[SERVER_ID, 'waiting', 'fee-out-of-proportion']])

      sent = []
      server({ ...credit('0.00001 BTC'), outstanding: '0.000004 BTC', overdue: '0.000004 BTC' })
      const result = await agent.call(SERVER, REQUEST, pay({ kind: 'defer', sats: 300n }))
      assert.deepEqual(lines(), ['sha256.hash defer 0.000003', 'payments.tab sha256.hash', 'payments.address', 'payments.settle attached 0.000004', 'sha256.hash defer 0.000003'])
      assert.equal(result.payment?.type, 'defer')
      assert.deepEqual(agent.settlementStates(), [], 'settled: the tab is no longer waiting')
    })
  })

  describe('settling what is due', () => {
    beforeEach(() => {
      handlers['payments.settle'] = async () => ({ settled: (await tabs.promises('payable', SERVER_ID)).filter(p => p.paidAt == null).map(p => p.id) })
    })

    const settles = (): string[] => lines().filter(l => l.startsWith('payments.settle'))

    it('pays nothing before something is due', async () => {
      await owe('later', 100_000n, 1000, 'time:3600')
      assert.deepEqual(await agent.settleDue(), [])
      assert.deepEqual(sent, [])
      assert.deepEqual(agent.settlementStates(), [])
    })

    it('waits while what is owed is below the dust limit', async () => {
      await owe('small', 293n)
      assert.deepEqual(await agent.settleDue(), [])
      assert.deepEqual(sent, [])
      assert.deepEqual(agent.settlementStates().map(s => [s.state, s.code]), [['waiting', 'below-dust']])
    })

    it('pays at once when the fee is at most a quarter of the tab, all of it in one transaction, and not before', async () => {
      await owe('a', 300n, 2000)
      await owe('b', 263n, 1000)
      // 563 sat: a 141 sat fee is more than a quarter
      assert.deepEqual(await agent.settleDue(), [])
      assert.deepEqual(sent, [])
      const [waiting] = agent.settlementStates()
      assert.equal(waiting.code, 'fee-out-of-proportion')
      assert.match(waiting.reason, /^a settlement's fee of about 0\.00000141 BTC would be more than a quarter of the 0\.00000563 BTC owed: it waits for more promises, or until .* when it must be paid$/)

      await owe('c', 1n, 500, 'time:3600')
      const [settled] = await agent.settleDue()
      assert.deepEqual(settles(), ['payments.settle attached 0.00000564'], 'what is owed, due or not, and never rounded up')
      assert.equal(paysServer(sent[sent.length - 1]), 564n)
      assert.deepEqual(settled.ids, ['a', 'b', 'c'])
      assert.equal((await tabs.tab('payable', SERVER_ID)).outstanding, 0n)
      const [payment] = await tabs.payments()
      assert.deepEqual([payment.direction, payment.sats, payment.fee, payment.txid, payment.settles], ['sent', 564n, 141n, settled.txid, ['a', 'b', 'c']])
      assert.equal(await tabs.pendingSettlement(SERVER_ID), undefined)
      assert.deepEqual(agent.settlementStates(), [])
    })

    it('waits at a higher fee rate for the same tab', async () => {
      feeRate = 2
      await owe('a', 564n)
      assert.deepEqual(await agent.settleDue(), [])
      assert.deepEqual(agent.settlementStates().map(s => s.code), ['fee-out-of-proportion'])
      assert.match(agent.settlementStates()[0].reason, /fee of about 0\.00000282 BTC/)
    })

    it('pays a dear tab once half the grace period since it fell due has passed, never with a fee over the tab', async () => {
      // due a little less than half the grace period ago: it waits
      await owe('a', 400n, GRACE / 2 - 60_000)
      assert.deepEqual(await agent.settleDue(), [])
      assert.deepEqual(sent, [])

      tabs = new TabBook(new MemoryDatastore(), { graceMs: GRACE })
      agent = new PaymentAgent({ call, wallet, chain, tabs }, { feeRateTtlMs: 0 })
      await owe('a', 400n, GRACE / 2 + 1000)
      const [settled] = await agent.settleDue()
      assert.deepEqual(settled.ids, ['a'])
      assert.deepEqual(settles(), ['payments.settle attached 0.000004'])

      // at 3 sat/vB the fee (423 sat) is more than the 300 owed: never paid
      sent = []
      feeRate = 3
      tabs = new TabBook(new MemoryDatastore(), { graceMs: GRACE })
      agent = new PaymentAgent({ call, wallet, chain, tabs }, { feeRateTtlMs: 0 })
      await owe('b', 300n, GRACE / 2 + 1000)
      assert.deepEqual(await agent.settleDue(), [])
      assert.deepEqual(settles(), [])
      const [state] = agent.settlementStates()
      assert.deepEqual([state.state, state.code], ['failing', 'fee-over-amount'])
      assert.match(state.reason, /^the fee would be 0\.00000423 BTC, more than the 0\.000003 BTC it may be: a payment never costs more in fee than it pays$/)
      assert.equal(await tabs.pendingSettlement(SERVER_ID), undefined)
    })

    it('sends the kept transaction again after a lost answer, and builds none anew', async () => {
      await owe('a', 1000n)
      handlers['payments.settle'] = (request, nth) => {
        if (nth === 1) {
          throw new Error('connection reset: the answer was lost')
        }
        return { settled: ['a'], repeated: true }
      }
      assert.deepEqual(await agent.settleDue(), [])
      const pending = await tabs.pendingSettlement(SERVER_ID)
      assert.ok(pending != null)
      assert.deepEqual(agent.settlementStates().map(s => [s.state, s.code]), [['failing', 'error']])
      const [settled] = await agent.settleDue()
      assert.equal(settled.txid, pending.txid)
      assert.deepEqual(lines(), ['payments.address', 'payments.settle attached 0.00001', 'payments.settle attached 0.00001'])
      assert.deepEqual(sent[1].payment, sent[2].payment)
      assert.equal(await tabs.pendingSettlement(SERVER_ID), undefined)
    })

    it('builds anew after a refusal of a settlement that never reached the chain', async () => {
      await owe('a', 1000n)
      handlers['payments.settle'] = (request, nth) => {
        if (nth === 1) {
          throw new PaymentDeclinedError('the chain refused the payment: input 0 is spent')
        }
        return { settled: ['a'] }
      }
      assert.deepEqual(await agent.settleDue(), [])
      assert.equal(await tabs.pendingSettlement(SERVER_ID), undefined)
      assert.deepEqual(agent.settlementStates().map(s => [s.state, s.code]), [['failing', 'refused']])
      await agent.settleDue()
      assert.deepEqual(lines(), ['payments.address', 'payments.settle attached 0.00001', 'payments.address', 'payments.settle attached 0.00001'])
    })

    it('settles on its interval once started, and stop waits for the round', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      await owe('a', 1000n)
      agent = new PaymentAgent({ call, wallet, chain, tabs }, { feeRateTtlMs: 0, settleIntervalMs: 5000 })
      agent.start()
      t.mock.timers.tick(4999)
      await new Promise(resolve => setImmediate(resolve))
      assert.deepEqual(sent, [])
      t.mock.timers.tick(1)
      await agent.stop()
      assert.deepEqual(settles(), ['payments.settle attached 0.00001'])
      assert.equal((await tabs.tab('payable', SERVER_ID)).outstanding, 0n)
    })

    it('takes 1 sat/vB while the chain gives no fee estimate', async () => {
      feeRate = undefined
      assert.equal(await agent.defaultThreshold(), 'amount:0.00000564')
      feeRate = 5
      // four times a 141 vB payment at 5 sat/vB
      assert.equal(await agent.defaultThreshold(), 'amount:0.0000282')
    })
  })
})
