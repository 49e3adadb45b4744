import { describe, it, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import { payments as btcPayments } from 'bitcoinjs-lib'
import { HoldingsCheck, PaymentDesk } from '../../../src/services/payments/payment-desk.ts'
import { TabBook } from '../../../src/payments/tab-book.ts'
import { buildTransaction, signerFor } from '../../../src/payments/wallet/tx-builder.ts'
import { bitcoinNetwork } from '../../../src/protocols/bitcoin-networks.ts'
import { formatBtc } from '../../../src/protocols/units.ts'
import { AccessDeniedError, BadRequestError, NoDeferError, PaymentDeclinedError, PaymentTooLowError, type RpcError } from '../../../src/protocols/rpc/errors.ts'
import { ChainUnavailableError, SpentInputError, TransactionRejectedError } from '../../../src/payments/chain/errors.ts'
import type { ChainBackend, Utxo } from '../../../src/payments/chain/interface.ts'
import type { Wallet } from '../../../src/payments/wallet/wallet.ts'
import type { Payment } from '../../../src/protocols/rpc/messages.ts'
import type { ServiceContext } from '../../../src/services/interface.ts'
import type { PaymentPolicy } from '../../../src/services/policy/policy.ts'

/**
 * The payment desk (the server's side of payments, PROTOCOL.md 8a) with its
 * components stubbed: a wallet that owns one address, a chain that records
 * what is broadcast and answers the confirmations it is told, a real tab
 * book on an in-memory datastore, and real signed bitcoin transactions
 * built with test keys. No network, no chain.
 */

const NETWORK = bitcoinNetwork('regtest')
const addressOf = (fill: number): string => btcPayments.p2wpkh({ pubkey: signerFor(new Uint8Array(32).fill(fill)).publicKey, network: NETWORK }).address as string
/** the desk's wallet owns this one */
const OURS = addressOf(3)
const ELSEWHERE = addressOf(4)
const PAYER_KEY = new Uint8Array(32).fill(5)
const CALLER = 'caller-a'
const OTHER_CALLER = 'caller-b'
const T0 = Date.parse('2026-03-01T12:00:00Z')
const GRACE = 10 * 60_000

let coins = 0
/** A signed transaction paying each output, spending a coin of its own (so every one has its own txid) */
function transaction (outputs: Array<{ address: string, value: bigint }>): { txn: Uint8Array, txid: string } {
  const coin = { txid: (++coins).toString(16).padStart(64, '0'), vout: 0, value: 1_000_000n, privateKey: PAYER_KEY }
  const built = buildTransaction({ coins: [coin], payees: outputs, changeAddress: addressOf(5), feeRate: 1, network: NETWORK })
  return { txn: Uint8Array.from(Buffer.from(built.hex, 'hex')), txid: built.txid }
}

const attached = (sats: bigint, txn: Uint8Array): Payment => ({ type: 'attached', currency: 'BTC', amount: formatBtc(sats), txn })
const deferred = (sats: bigint, id: string, threshold = 'completion'): Payment => ({ type: 'defer', currency: 'BTC', amount: formatBtc(sats), id, threshold })

const policy = (p: Partial<PaymentPolicy> = {}): PaymentPolicy => ({ maxTab: 1000n, noDefer: false, minBalance: 0n, minHoldingAge: 0, minTrust: 0, deferMinTrust: 0, ...p })

const context = (payment: Payment, extra: Partial<ServiceContext> = {}): ServiceContext => ({
  caller: CALLER,
  credentials: [],
  remotePeer: undefined as any,
  service: 'sha256',
  method: 'hash',
  args: [],
  payment,
  body: undefined as any,
  signal: new AbortController().signal,
  ...extra
})

/** The refusal `err` must be: its class, its message and the payment it offers instead (none: it offers none) */
function refusal (Class: new (...args: any[]) => RpcError, message: RegExp, acceptable?: { type: 'attached' | 'defer', sats: bigint }): (err: any) => boolean {
  return (err: any) => {
    assert.ok(err instanceof Class, `a ${Class.name}, not ${err.name}: ${err.message}`)
    assert.match(err.message, message)
    assert.deepEqual(err.acceptablePayment, acceptable == null ? undefined : { type: acceptable.type, currency: 'BTC', amount: formatBtc(acceptable.sats) })
    return true
  }
}

describe('the payment desk', () => {
  let now: number
  let tabs: TabBook
  let desk: PaymentDesk
  /** what the stub chain was sent, and what it answers */
  let broadcasts: string[]
  let confirmationsAsked: string[]
  let refuseWith: Error | undefined
  let confirmations: number
  let broadcastGate: Promise<void> | undefined
  /** what the stub wallet was told was paid */
  let markedPaid: string[]
  let trust: number
  let records: Array<Record<string, unknown>>

  beforeEach(() => {
    now = T0
    tabs = new TabBook(new MemoryDatastore(), { graceMs: GRACE, now: () => now })
    broadcasts = []
    confirmationsAsked = []
    refuseWith = undefined
    confirmations = 0
    broadcastGate = undefined
    markedPaid = []
    trust = 1
    records = []
    const chain = {
      broadcast: async (hex: string) => {
        broadcasts.push(hex)
        await broadcastGate
        if (refuseWith != null) {
          throw refuseWith
        }
        return 'txid'
      },
      confirmations: async (txid: string) => {
        confirmationsAsked.push(txid)
        return confirmations
      }
    } as unknown as ChainBackend
    const wallet = { owns: (address: string) => address === OURS, markPaid: async (addresses: string[]) => { markedPaid.push(...addresses) } } as unknown as Wallet
    desk = new PaymentDesk({ wallet, chain, tabs, trustScore: async () => trust, record: async (r) => { records.push(r) } }, { network: 'regtest' })
  })

  /** A receivable promise of the caller's, made `ago` ms before now */
  const owed = async (id: string, sats: bigint, ago = 0, caller = CALLER, threshold = 'completion'): Promise<void> => {
    await tabs.addPromise({ role: 'receivable', peer: caller, id, sats, threshold, service: 'sha256', method: 'hash', createdAt: now - ago })
  }

  describe('a priced call that carries no payment', () => {
    it('lets a free call through and offers nothing', async () => {
      const ctx = context({ type: 'none' })
      await desk.check({ required: 0n, ctx, policy: policy() })
      assert.equal(ctx.paid, undefined)
      assert.equal(ctx.pending, undefined)
    })

    it('offers a deferred payment of the price within the caller\'s credit, below the dust limit too', async () => {
      await assert.rejects(desk.check({ required: 500n, ctx: context({ type: 'none' }), policy: policy() }),
        refusal(PaymentTooLowError, /^sha256\.hash costs 0\.000005 BTC and the request carries no payment$/, { type: 'defer', sats: 500n }))
      // a tab may reach max-tab exactly
      await owed('old', 500n)
      await assert.rejects(desk.check({ required: 500n, ctx: context({ type: 'none' }), policy: policy() }), refusal(PaymentTooLowError, /no payment/, { type: 'defer', sats: 500n }))
      await assert.rejects(desk.check({ required: 10n, ctx: context({ type: 'none' }), policy: policy() }), refusal(PaymentTooLowError, /no payment/, { type: 'defer', sats: 10n }))
    })

    it('offers an attached payment of the price when the tab has no room for it', async () => {
      await owed('old', 600n)
      await assert.rejects(desk.check({ required: 500n, ctx: context({ type: 'none' }), policy: policy() }), refusal(PaymentTooLowError, /no payment/, { type: 'attached', sats: 500n }))
    })

    it('offers an attached payment, at least the dust limit of 294 sat, where the caller gets no credit', async () => {
      const cases: Array<[string, Partial<PaymentPolicy>]> = [['max-tab 0', { maxTab: 0n }], ['no-defer', { noDefer: true }], ['a trust score under defer-min-trust', { deferMinTrust: 2 }]]
      for (const [why, p] of cases) {
        await assert.rejects(desk.check({ required: 100n, ctx: context({ type: 'none' }), policy: policy(p) }), refusal(PaymentTooLowError, /no payment/, { type: 'attached', sats: 294n }), why)
        await assert.rejects(desk.check({ required: 500n, ctx: context({ type: 'none' }), policy: policy(p) }), refusal(PaymentTooLowError, /no payment/, { type: 'attached', sats: 500n }), why)
      }
    })

    it('offers an attached payment to a caller with an overdue tab', async () => {
      await owed('late', 300n, GRACE + 1)
      assert.equal((await tabs.tab('receivable', CALLER)).overdue, 300n)
      await assert.rejects(desk.check({ required: 100n, ctx: context({ type: 'none' }), policy: policy({ maxTab: 100_000n }) }), refusal(PaymentTooLowError, /no payment/, { type: 'attached', sats: 294n }))
    })

    it('says the credit it gives: the max-tab, refused outright for no-defer and under defer-min-trust', async () => {
      assert.deepEqual(await desk.credit(CALLER, policy()), { maxTab: 1000n, refused: false })
      assert.deepEqual(await desk.credit(CALLER, policy({ noDefer: true })), { maxTab: 1000n, refused: true })
      trust = 0.5
      assert.deepEqual(await desk.credit(CALLER, policy({ deferMinTrust: 0.6 })), { maxTab: 1000n, refused: true })
      assert.deepEqual(await desk.credit(CALLER, policy({ deferMinTrust: 0.5 })), { maxTab: 1000n, refused: false })
    })

    it('refuses promo codes and other currencies, offering the attached payment', async () => {
      await assert.rejects(desk.check({ required: 500n, ctx: context({ type: 'promo', code: new Uint8Array(32), authorization: new Uint8Array(64) }), policy: policy() }),
        refusal(PaymentDeclinedError, /promo codes are redeemed by a Cloud Ledger member cloud/, { type: 'attached', sats: 500n }))
      await assert.rejects(desk.check({ required: 500n, ctx: context({ type: 'defer', currency: 'USD', amount: '5', id: 'x', threshold: '' }), policy: policy() }),
        refusal(PaymentDeclinedError, /^this node is paid in BTC, not USD$/, { type: 'attached', sats: 500n }))
    })
  })

  describe('a deferred payment', () => {
    it('is accepted within max-tab and binds only when the call is committed', async () => {
      await owed('old', 400n)
      const ctx = context(deferred(600n, 'p1', 'time:60'))
      await desk.check({ required: 500n, ctx, policy: policy() })
      assert.ok(ctx.pending != null, 'the promise waits for the call to be served')
      assert.equal(ctx.paid, undefined)
      assert.equal(await tabs.hasPromise('receivable', CALLER, 'p1'), false, 'not on the tab before the call is served')
      assert.equal((await tabs.tab('receivable', CALLER)).outstanding, 400n)
      await ctx.pending.commit()
      const [promise] = (await tabs.promises('receivable', CALLER)).filter(p => p.id === 'p1')
      assert.deepEqual(promise, { role: 'receivable', peer: CALLER, id: 'p1', sats: 600n, threshold: 'time:60', service: 'sha256', method: 'hash', createdAt: T0 })
      assert.equal((await tabs.tab('receivable', CALLER)).outstanding, 1000n)
      assert.deepEqual(records, [])
    })

    it('leaves nothing owed when the call is released, and frees its room on the tab', async () => {
      const first = context(deferred(600n, 'p1'))
      await desk.check({ required: 500n, ctx: first, policy: policy() })
      // in flight, the first counts against max-tab
      await assert.rejects(desk.check({ required: 500n, ctx: context(deferred(600n, 'p2')), policy: policy() }),
        refusal(NoDeferError, /^your tab would reach 0\.000012 BTC, over this node's max-tab of 0\.00001 BTC$/, { type: 'attached', sats: 500n }))
      first.pending?.release()
      assert.deepEqual(await tabs.promises('receivable', CALLER), [])
      const second = context(deferred(600n, 'p2'))
      await desk.check({ required: 500n, ctx: second, policy: policy() })
      await second.pending?.commit()
      assert.deepEqual((await tabs.promises('receivable', CALLER)).map(p => p.id), ['p2'])
    })

    it('counts the promises of calls in flight per caller only', async () => {
      await desk.check({ required: 500n, ctx: context(deferred(600n, 'p1')), policy: policy() })
      await desk.check({ required: 500n, ctx: context(deferred(600n, 'p1'), { caller: OTHER_CALLER }), policy: policy() })
    })

    it('is refused over max-tab, and without credit at max-tab 0', async () => {
      await owed('old', 401n)
      await assert.rejects(desk.check({ required: 500n, ctx: context(deferred(600n, 'p1')), policy: policy() }),
        refusal(NoDeferError, /^your tab would reach 0\.00001001 BTC, over this node's max-tab of 0\.00001 BTC$/, { type: 'attached', sats: 500n }))
      await assert.rejects(desk.check({ required: 100n, ctx: context(deferred(100n, 'p2'), { caller: OTHER_CALLER }), policy: policy({ maxTab: 0n }) }),
        refusal(NoDeferError, /^this node gives no credit \(max-tab 0\): attach the payment$/, { type: 'attached', sats: 294n }))
    })

    it('is refused while the caller owes something overdue, which reputation hears of', async () => {
      await owed('late', 500n, GRACE + 1)
      await assert.rejects(desk.check({ required: 300n, ctx: context(deferred(300n, 'p1')), policy: policy({ maxTab: 100_000n }) }),
        refusal(NoDeferError, /^you owe this node 0\.000005 BTC in overdue deferred payments; settle them before asking for credit$/, { type: 'attached', sats: 300n }))
      assert.deepEqual(records, [{ peer: CALLER, role: 'caller', outcome: 'unsatisfactory', event: 'overdue', promised: '0.000005 BTC deferred' }])
    })

    it('is refused under defer-min-trust and by a no-defer policy, before anything else is checked', async () => {
      trust = 0.5
      await assert.rejects(desk.check({ required: 300n, ctx: context(deferred(100n, 'bad id!')), policy: policy({ deferMinTrust: 0.75 }) }),
        refusal(NoDeferError, /^this node gives credit to callers with a trust score of at least 0\.75; yours is 0\.50: attach the payment$/, { type: 'attached', sats: 300n }))
      await assert.rejects(desk.check({ required: 300n, ctx: context(deferred(300n, 'p1')), policy: policy({ noDefer: true }) }),
        refusal(NoDeferError, /^this node does not accept deferred payment for sha256\.hash$/, { type: 'attached', sats: 300n }))
      // a score at the threshold gets credit
      const ctx = context(deferred(300n, 'p1'))
      await desk.check({ required: 300n, ctx, policy: policy({ deferMinTrust: 0.5 }) })
      assert.ok(ctx.pending != null)
    })

    it('is refused below the price, offering a deferred payment of the price', async () => {
      await assert.rejects(desk.check({ required: 500n, ctx: context(deferred(499n, 'p1')), policy: policy() }),
        refusal(PaymentTooLowError, /^sha256\.hash costs 0\.000005 BTC; the promise offers 0\.00000499$/, { type: 'defer', sats: 500n }))
    })

    it('is refused with an id used before by the same caller, or in use by a call in flight', async () => {
      await owed('p1', 100n)
      await assert.rejects(desk.check({ required: 100n, ctx: context(deferred(100n, 'p1')), policy: policy() }), refusal(BadRequestError, /^deferred payment id "p1" was used before; choose a new one$/))
      // ids are the caller's own
      await desk.check({ required: 100n, ctx: context(deferred(100n, 'p1'), { caller: OTHER_CALLER }), policy: policy() })
      await assert.rejects(desk.check({ required: 100n, ctx: context(deferred(100n, 'p1'), { caller: OTHER_CALLER }), policy: policy() }),
        refusal(BadRequestError, /^deferred payment id "p1" is in use by a call in flight; choose a new one$/))
    })

    it('is refused with a malformed threshold or id', async () => {
      await assert.rejects(desk.check({ required: 100n, ctx: context(deferred(100n, 'p1', 'time:soon')), policy: policy() }), refusal(BadRequestError, /defer threshold "time:soon" is not time:<seconds>, amount:<BTC> or completion/))
      for (const id of ['', 'a/b', 'x'.repeat(65)]) {
        await assert.rejects(desk.check({ required: 100n, ctx: context(deferred(100n, id)), policy: policy() }), refusal(BadRequestError, /^a deferred payment id is 1 to 64 letters/), JSON.stringify(id))
      }
      await desk.check({ required: 100n, ctx: context(deferred(100n, 'x'.repeat(64))), policy: policy() })
    })
  })

  describe('an attached payment', () => {
    it('is broadcast, marked used and recorded, counting all it pays to this node', async () => {
      const { txn, txid } = transaction([{ address: OURS, value: 600n }])
      const ctx = context(attached(500n, txn))
      await desk.check({ required: 500n, ctx, policy: policy() })
      assert.deepEqual(ctx.paid, { txid, sats: 600n, settles: undefined })
      assert.deepEqual(broadcasts, [Buffer.from(txn).toString('hex')])
      assert.deepEqual(confirmationsAsked, [], 'regtest serves at 0 confirmations')
      assert.equal(await tabs.isUsed(txid), true)
      assert.deepEqual(markedPaid, [OURS])
      assert.deepEqual(await tabs.payments(), [{ direction: 'received', peer: CALLER, txid, sats: 600n, settles: [], service: 'sha256', method: 'hash', at: T0, fee: undefined }])
    })

    it('is refused below the price, offering the price, at least the dust limit, before it is broadcast', async () => {
      const { txn } = transaction([{ address: OURS, value: 400n }])
      await assert.rejects(desk.check({ required: 500n, ctx: context(attached(400n, txn)), policy: policy() }),
        refusal(PaymentTooLowError, /^sha256\.hash costs 0\.000005 BTC; the payment offers 0\.000004$/, { type: 'attached', sats: 500n }))
      await assert.rejects(desk.check({ required: 300n, ctx: context(attached(200n, new Uint8Array(1))), policy: policy() }),
        refusal(PaymentTooLowError, /costs 0\.000003 BTC/, { type: 'attached', sats: 300n }))
      await assert.rejects(desk.check({ required: 100n, ctx: context(attached(50n, new Uint8Array(1))), policy: policy() }),
        refusal(PaymentTooLowError, /costs 0\.000001 BTC/, { type: 'attached', sats: 294n }))
      assert.deepEqual(broadcasts, [])
    })

    it('is refused when it pays another address, or pays this node less than it claims', async () => {
      const elsewhere = transaction([{ address: ELSEWHERE, value: 500n }])
      await assert.rejects(desk.check({ required: 500n, ctx: context(attached(500n, elsewhere.txn)), policy: policy() }),
        refusal(PaymentDeclinedError, /^the transaction pays 0 BTC to this node's addresses, less than the 0\.000005 BTC it claims; ask payments\.address for where to pay$/))
      const split = transaction([{ address: OURS, value: 300n }, { address: ELSEWHERE, value: 300n }])
      await assert.rejects(desk.check({ required: 500n, ctx: context(attached(500n, split.txn)), policy: policy() }),
        refusal(PaymentDeclinedError, /^the transaction pays 0\.000003 BTC to this node's addresses, less than the 0\.000005 BTC it claims/))
      assert.deepEqual(broadcasts, [])
      assert.equal(await tabs.isUsed(elsewhere.txid), false)
    })

    it('is refused when it is not a transaction', async () => {
      await assert.rejects(desk.check({ required: 500n, ctx: context(attached(500n, new Uint8Array([1, 2, 3]))), policy: policy() }), refusal(PaymentDeclinedError, /^the attached payment is not a bitcoin transaction: /))
    })

    it('is used once: refused when it paid for a call before, or while another call is checking it', async () => {
      const { txn, txid } = transaction([{ address: OURS, value: 500n }])
      await desk.check({ required: 500n, ctx: context(attached(500n, txn)), policy: policy() })
      await assert.rejects(desk.check({ required: 500n, ctx: context(attached(500n, txn)), policy: policy() }), refusal(PaymentDeclinedError, new RegExp(`^transaction ${txid} has already paid for a call: a payment is used once$`)))

      const other = transaction([{ address: OURS, value: 500n }])
      let open!: () => void
      broadcastGate = new Promise(resolve => { open = resolve })
      const first = desk.check({ required: 500n, ctx: context(attached(500n, other.txn)), policy: policy() })
      // the first is at the chain
      for (let turns = 0; turns < 100 && broadcasts.length < 2; turns++) {
        await new Promise(resolve => setImmediate(resolve))
      }
      assert.equal(broadcasts.length, 2)
      const second = assert.rejects(desk.check({ required: 500n, ctx: context(attached(500n, other.txn), { caller: OTHER_CALLER }), policy: policy() }),
        refusal(PaymentDeclinedError, new RegExp(`^transaction ${other.txid} is being checked for another call: a payment is used once$`)))
      open()
      await first
      await second
      assert.equal(broadcasts.length, 2, 'each transaction was broadcast once')
    })

    it('is refused when the chain refuses it, and not marked used; one the chain knows already is taken', async () => {
      const { txn, txid } = transaction([{ address: OURS, value: 500n }])
      refuseWith = new SpentInputError('input 0 is spent')
      await assert.rejects(desk.check({ required: 500n, ctx: context(attached(500n, txn)), policy: policy() }), refusal(PaymentDeclinedError, /^the chain refused the payment: input 0 is spent$/))
      // an unreachable chain that says "already in" is no answer about the transaction
      refuseWith = new ChainUnavailableError('already in trouble')
      await assert.rejects(desk.check({ required: 500n, ctx: context(attached(500n, txn)), policy: policy() }), refusal(PaymentDeclinedError, /^the chain refused the payment: already in trouble$/))
      assert.equal(await tabs.isUsed(txid), false)
      assert.deepEqual(await tabs.payments(), [])
      // the caller broadcast it itself
      refuseWith = new TransactionRejectedError('transaction already known')
      const ctx = context(attached(500n, txn))
      await desk.check({ required: 500n, ctx, policy: policy() })
      assert.equal(ctx.paid?.txid, txid)
      assert.equal(await tabs.isUsed(txid), true)
    })

    it('waits for the confirmations the policy asks, and serves the same transaction once they are there', async () => {
      const { txn, txid } = transaction([{ address: OURS, value: 500n }])
      await assert.rejects(desk.check({ required: 500n, ctx: context(attached(500n, txn)), policy: policy({ confirmations: 2 }) }),
        refusal(PaymentDeclinedError, new RegExp(`^this node serves after 2 confirmation\\(s\\); ${txid} has 0: send the call again once it confirms$`)))
      confirmations = 1
      await assert.rejects(desk.check({ required: 500n, ctx: context(attached(500n, txn)), policy: policy({ confirmations: 2 }) }), refusal(PaymentDeclinedError, /has 1: send the call again/))
      assert.equal(await tabs.isUsed(txid), false)
      assert.deepEqual(markedPaid, [])
      confirmations = 2
      const ctx = context(attached(500n, txn))
      await desk.check({ required: 500n, ctx, policy: policy({ confirmations: 2 }) })
      assert.equal(ctx.paid?.txid, txid)
      assert.deepEqual(confirmationsAsked, [txid, txid, txid])
    })

    it('needs no confirmation on regtest and one elsewhere, unless the policy says', () => {
      const stub = { wallet: {} as Wallet, chain: {} as ChainBackend, tabs }
      assert.equal(desk.confirmationsFor(policy()), 0)
      assert.equal(desk.confirmationsFor(policy({ confirmations: 3 })), 3)
      for (const network of ['testnet4', 'signet', 'mainnet'] as const) {
        assert.equal(new PaymentDesk(stub, { network }).confirmationsFor(policy()), 1, network)
      }
      assert.equal(new PaymentDesk(stub, { network: 'mainnet' }).confirmationsFor(policy({ confirmations: 0 })), 0)
    })
  })

  describe('a settlement (payments.settle)', () => {
    const settle = (payment: Payment, extra: Partial<ServiceContext> = {}): ServiceContext => context(payment, { service: 'payments', method: 'settle', ...extra })

    it('pays off the unpaid promises it covers in full, oldest first or those it names, found before it is broadcast', async () => {
      await owed('p1', 300n, 3000)
      await owed('p2', 200n, 2000)
      await owed('p3', 100n, 1000)
      await owed('paid', 50n, 4000)
      await tabs.markPaid('receivable', CALLER, ['paid'], 'f'.repeat(64))
      const oldest = transaction([{ address: OURS, value: 400n }])
      const ctx = settle(attached(400n, oldest.txn))
      await desk.check({ required: 0n, ctx, policy: policy() })
      assert.deepEqual(ctx.paid?.settles?.map(p => p.id), ['p1', 'p3'], 'p2 is more than is left after p1')
      assert.equal(ctx.paid?.sats, 400n)

      const named = transaction([{ address: OURS, value: 400n }])
      const ctx2 = settle(attached(400n, named.txn), { args: ['p3', 'p2', 'p3', 'p1'] })
      await desk.check({ required: 0n, ctx: ctx2, policy: policy() })
      assert.deepEqual(ctx2.paid?.settles?.map(p => p.id), ['p3', 'p2'])
      // the desk finds what it pays; the payments service marks it paid
      assert.equal((await tabs.tab('receivable', CALLER)).outstanding, 600n)
    })

    it('is refused and not broadcast when it pays off nothing', async () => {
      await owed('p1', 500n)
      const { txn, txid } = transaction([{ address: OURS, value: 400n }])
      await assert.rejects(desk.check({ required: 0n, ctx: settle(attached(400n, txn)), policy: policy() }),
        refusal(PaymentDeclinedError, /^this payment of 0\.000004 BTC pays off none of your unpaid deferred payments \(ask payments\.tab\); it was not broadcast$/))
      assert.deepEqual(broadcasts, [])
      assert.equal(await tabs.isUsed(txid), false)
    })

    it('sent again by the same caller answers as repeated and is not broadcast again; from anyone else or for a call it is refused', async () => {
      await owed('p1', 300n)
      const { txn, txid } = transaction([{ address: OURS, value: 300n }])
      const ctx = settle(attached(300n, txn))
      await desk.check({ required: 0n, ctx, policy: policy() })
      // as the payments service does with it
      await tabs.markPaid('receivable', CALLER, ['p1'], txid)
      await tabs.recordSettlement({ caller: CALLER, txid, settled: ['p1'], sats: 300n })

      const again = settle(attached(300n, txn))
      await desk.check({ required: 0n, ctx: again, policy: policy() })
      assert.deepEqual(again.paid, { txid, sats: 300n, repeated: true })
      assert.equal(broadcasts.length, 1)
      await assert.rejects(desk.check({ required: 0n, ctx: settle(attached(300n, txn), { caller: OTHER_CALLER }), policy: policy() }), refusal(PaymentDeclinedError, /has already paid for a call/))
      await assert.rejects(desk.check({ required: 300n, ctx: context(attached(300n, txn)), policy: policy() }), refusal(PaymentDeclinedError, /has already paid for a call/))
      assert.equal(broadcasts.length, 1)
    })
  })
})

describe('the holdings check', () => {
  const TIP = 100
  const utxo = (value: bigint, blockHeight?: number): Utxo => ({ txid: '0'.repeat(64), vout: 0, value, status: blockHeight == null ? { confirmed: false } : { confirmed: true, blockHeight } })
  const held: Record<string, Utxo[]> = {
    [OURS]: [utxo(60_000_000n, TIP - 9), utxo(30_000_000n, TIP), utxo(50_000_000n)],
    [ELSEWHERE]: [utxo(40_000_000n, TIP - 50)]
  }
  const chain = { tipHeight: async () => TIP, utxos: async (address: string) => held[address] ?? [] } as unknown as ChainBackend
  const check = new HoldingsCheck(chain)
  const ctx = (...addresses: string[]): ServiceContext => context({ type: 'none' }, { credentials: ['oc:someone', ...addresses.map(a => `btc:${a}`)] })
  const needs = (minBalance: bigint, minHoldingAge = 0): PaymentPolicy => policy({ minBalance, minHoldingAge })

  it('asks for a bitcoin credential', async () => {
    await assert.rejects(check.check(ctx(), needs(1n)), refusal(AccessDeniedError, /^this node deals only with callers who prove at least 0\.00000001 BTC with a bitcoin credential \(btc:<address>\)$/))
  })

  it('counts confirmed coins only, held at least min-holding-age blocks, over all the credentials', async () => {
    await check.check(ctx(OURS), needs(90_000_000n))
    await assert.rejects(check.check(ctx(OURS), needs(90_000_001n)), refusal(AccessDeniedError, /hold 0\.9 BTC that qualifies$/))
    await assert.rejects(check.check(ctx(OURS), needs(90_000_000n, 10)), refusal(AccessDeniedError, /^this node deals only with callers who prove at least 0\.9 BTC held for 10 blocks; your bitcoin credentials hold 0\.6 BTC that qualifies$/))
    await check.check(ctx(OURS, ELSEWHERE), needs(1n * 100_000_000n, 10))
  })
})
