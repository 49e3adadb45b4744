import { describe, it, before, after, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { LevelDatastore } from 'datastore-level'
import { DEFAULT_THRESHOLD, TabBook, ThresholdError, parseThreshold, type DeferredPromise } from '../../src/payments/tab-book.ts'
import { tempDir } from '../helpers/nodes.ts'

const MINUTE = 60_000
const GRACE = 10 * MINUTE
const T0 = Date.parse('2026-03-01T12:00:00Z')

/**
 * The tab book on a real LevelDB: when promises fall due and go overdue
 * (PROTOCOL.md 8a, "defer"), what a settlement pays off, the settlement in
 * flight, and what paying them took from the wallet. Each test has a book
 * of its own.
 */
describe('the tab book', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let datastore: LevelDatastore
  let now = T0
  let book: TabBook
  let n = 0

  const promise = (peer: string, sats: bigint, threshold: string, createdAt: number, extra: Partial<DeferredPromise> = {}): DeferredPromise =>
    ({ role: 'receivable', peer, id: `p${n++}`, sats, threshold, service: 'sha256', method: 'hash', createdAt, ...extra })

  before(async () => {
    dir = await tempDir()
  })

  beforeEach(async () => {
    now = T0
    datastore = new LevelDatastore(`${dir.path}/db-${n++}`)
    await datastore.open()
    book = new TabBook(datastore, { graceMs: GRACE, now: () => now })
  })

  afterEach(async () => {
    await datastore?.close()
  })

  after(async () => {
    await dir?.cleanup()
  })

  describe('thresholds', () => {
    it('reads time:<seconds>, amount:<BTC> and completion, an empty one as time:600, and refuses anything else', () => {
      assert.deepEqual(parseThreshold(''), { kind: 'time', seconds: 600 })
      assert.deepEqual(parseThreshold('  '), DEFAULT_THRESHOLD)
      assert.deepEqual(parseThreshold(' completion '), { kind: 'completion' })
      assert.deepEqual(parseThreshold('time:0'), { kind: 'time', seconds: 0 })
      assert.deepEqual(parseThreshold('time:999999999'), { kind: 'time', seconds: 999_999_999 })
      assert.deepEqual(parseThreshold('amount:0.000006'), { kind: 'amount', sats: 600n })
      for (const text of ['time:1000000000', 'time:-1', 'time:1.5', 'soon', 'amount:', 'completion:now']) {
        assert.throws(() => parseThreshold(text), (err: any) => err instanceof ThresholdError && err.message === `defer threshold "${text}" is not time:<seconds>, amount:<BTC> or completion`, text)
      }
      assert.throws(() => parseThreshold('amount:600sat'), (err: any) => err instanceof ThresholdError && /^defer threshold "amount:600sat": "600sat" is not a BTC amount/.test(err.message))
    })

    it('counts completion due at once, time:<s> that long after the promise, and an empty threshold ten minutes after', async () => {
      await book.addPromise(promise('clock', 100n, 'completion', T0))
      await book.addPromise(promise('clock', 200n, 'time:60', T0))
      await book.addPromise(promise('clock', 400n, '', T0))
      const at = async (ms: number): Promise<[bigint, number | undefined]> => {
        const tab = await book.tab('receivable', 'clock', T0 + ms)
        return [tab.due, tab.dueSince]
      }
      assert.deepEqual(await at(0), [100n, T0])
      assert.deepEqual(await at(59_999), [100n, T0])
      assert.deepEqual(await at(60_000), [300n, T0])
      assert.deepEqual(await at(10 * MINUTE - 1), [300n, T0])
      assert.deepEqual(await at(10 * MINUTE), [700n, T0])
      assert.equal((await book.tab('receivable', 'clock', T0 + 10 * MINUTE)).outstanding, 700n)
    })

    it('counts nothing due and no dueSince while nothing has reached its threshold', async () => {
      await book.addPromise(promise('never', 500n, 'amount:0.00001001', T0))
      await book.addPromise(promise('never', 500n, 'time:3600', T0))
      const tab = await book.tab('receivable', 'never', T0 + 59 * MINUTE)
      assert.deepEqual([tab.outstanding, tab.due, tab.overdue, tab.dueSince], [1000n, 0n, 0n, undefined])
    })

    it('counts an amount threshold due from when the unpaid promises reached it, not from the first promise', async () => {
      // 300 sat now and 300 sat twenty minutes later, each due at 600 sat
      await book.addPromise(promise('amount', 300n, 'amount:0.000006', T0))
      await book.addPromise(promise('amount', 300n, 'amount:0.000006', T0 + 20 * MINUTE))
      now = T0 + 25 * MINUTE
      const tab = await book.tab('receivable', 'amount')
      assert.equal(tab.due, 600n)
      assert.equal(tab.dueSince, T0 + 20 * MINUTE)
      assert.equal(tab.overdue, 0n, 'due for 5 minutes, within the grace period')
      assert.equal((await book.tab('receivable', 'amount', T0 + 31 * MINUTE)).overdue, 600n)
    })

    it('counts an amount promise made after the amount was reached due from when it was made', async () => {
      await book.addPromise(promise('late', 700n, 'completion', T0))
      await book.addPromise(promise('late', 50n, 'amount:0.000006', T0 + 30 * MINUTE))
      const tab = await book.tab('receivable', 'late', T0 + 35 * MINUTE)
      assert.equal(tab.due, 750n)
      assert.equal((await book.tab('receivable', 'late', T0 + 40 * MINUTE)).overdue, 700n, 'the amount promise fell due at T0 + 30 min, not at T0')
      assert.equal((await book.tab('receivable', 'late', T0 + 40 * MINUTE + 1)).overdue, 750n)
    })

    it('counts only unpaid promises toward an amount', async () => {
      const paid = promise('unpaid', 500n, 'completion', T0)
      await book.addPromise(paid)
      await book.addPromise(promise('unpaid', 200n, 'amount:0.000006', T0 + MINUTE))
      assert.equal((await book.tab('receivable', 'unpaid', T0 + 2 * MINUTE)).due, 700n)
      await book.markPaid('receivable', 'unpaid', [paid.id], 'a'.repeat(64))
      const tab = await book.tab('receivable', 'unpaid', T0 + 2 * MINUTE)
      assert.deepEqual([tab.promised, tab.paid, tab.outstanding, tab.due, tab.promises], [700n, 500n, 200n, 0n, 2])
    })
  })

  describe('overdue', () => {
    it('counts a due promise overdue only once it has been due longer than the grace period', async () => {
      await book.addPromise(promise('grace', 500n, 'time:60', T0))
      assert.equal((await book.tab('receivable', 'grace', T0 + MINUTE + GRACE)).overdue, 0n)
      assert.equal((await book.tab('receivable', 'grace', T0 + MINUTE + GRACE + 1)).overdue, 500n)
    })

    it('never counts a due total below the dust limit as overdue, and counts it once it reaches the limit', async () => {
      await book.addPromise(promise('dust', 100n, 'completion', T0))
      await book.addPromise(promise('dust', 150n, 'time:60', T0))
      await book.addPromise(promise('dust', 43n, 'completion', T0))
      const day = await book.tab('receivable', 'dust', T0 + 24 * 60 * MINUTE)
      assert.equal(day.due, 293n)
      assert.equal(day.overdue, 0n, '293 sat cannot be paid on chain on its own')
      now = T0 + 30 * MINUTE
      await book.addPromise(promise('dust', 1n, 'completion', now))
      const reached = await book.tab('receivable', 'dust')
      assert.equal(reached.due, 294n)
      // the old ones are past their grace; the new one is not
      assert.equal(reached.overdue, 293n)
    })

    it('sums the tabs of every peer of a role, sorted by peer', async () => {
      await book.addPromise(promise('b-peer', 100n, 'completion', T0))
      await book.addPromise(promise('a-peer', 200n, 'completion', T0))
      await book.addPromise(promise('c-peer', 300n, 'completion', T0, { role: 'payable' }))
      assert.deepEqual((await book.tabs('receivable')).map(t => [t.peer, t.outstanding]), [['a-peer', 200n], ['b-peer', 100n]])
      assert.deepEqual((await book.tabs('payable')).map(t => [t.peer, t.role, t.outstanding]), [['c-peer', 'payable', 300n]])
    })
  })

  describe('promises and settlements', () => {
    it('keeps a promise under its role, peer and id, whatever characters they hold', async () => {
      const odd = promise('peer/with%slash', 100n, 'completion', T0, { id: 'id/../x' })
      await book.addPromise(odd)
      assert.equal(await book.hasPromise('receivable', 'peer/with%slash', 'id/../x'), true)
      assert.equal(await book.hasPromise('payable', 'peer/with%slash', 'id/../x'), false)
      assert.equal(await book.hasPromise('receivable', 'peer/with%slash', 'x'), false)
      assert.deepEqual(await book.promises('receivable', 'peer/with%slash'), [odd])
      assert.deepEqual(await book.promises('payable'), [])
    })

    it('marks promises paid once, with the transaction that paid them, skipping ids it does not know', async () => {
      const a = promise('marks', 100n, 'completion', T0)
      const b = promise('marks', 200n, 'completion', T0 + 1)
      await book.addPromise(a)
      await book.addPromise(b)
      now = T0 + MINUTE
      const first = await book.markPaid('receivable', 'marks', [a.id, 'unknown'], 'a'.repeat(64))
      assert.deepEqual(first, [{ ...a, paidAt: T0 + MINUTE, txid: 'a'.repeat(64) }])
      now = T0 + 2 * MINUTE
      const second = await book.markPaid('receivable', 'marks', [a.id, b.id], 'b'.repeat(64))
      assert.deepEqual(second.map(p => p.id), [b.id], 'a was paid already')
      assert.deepEqual((await book.promises('receivable', 'marks')).map(p => [p.id, p.txid, p.paidAt]), [[a.id, 'a'.repeat(64), T0 + MINUTE], [b.id, 'b'.repeat(64), T0 + 2 * MINUTE]])
    })

    it('covers the unpaid promises oldest first, each only if what is left pays it in full', async () => {
      const p1 = promise('covered', 300n, 'completion', T0 + 1)
      const p2 = promise('covered', 200n, 'completion', T0 + 2)
      const p3 = promise('covered', 100n, 'completion', T0 + 3)
      const paid = promise('covered', 50n, 'completion', T0)
      // added out of order: the order is when they were made
      for (const p of [p3, paid, p1, p2]) {
        await book.addPromise(p)
      }
      await book.addPromise(promise('another', 10n, 'completion', T0))
      await book.addPromise(promise('covered', 10n, 'completion', T0, { role: 'payable', id: 'mine' }))
      await book.markPaid('receivable', 'covered', [paid.id], 'c'.repeat(64))
      const ids = async (sats: bigint, list?: string[]): Promise<string[]> => (await book.coverage('covered', sats, list)).map(p => p.id)
      assert.deepEqual(await ids(400n), [p1.id, p3.id], 'p2 is more than is left after p1; p3 is not')
      assert.deepEqual(await ids(600n), [p1.id, p2.id, p3.id])
      assert.deepEqual(await ids(10_000n), [p1.id, p2.id, p3.id], 'never another peer\'s, a payable or a paid one')
      assert.deepEqual(await ids(299n), [p2.id])
      assert.deepEqual(await ids(300n), [p1.id])
      assert.deepEqual(await ids(99n), [])
      assert.deepEqual(await ids(400n, []), [p1.id, p3.id], 'an empty list is no list')
    })

    it('covers the ids listed in their order, once each, skipping paid and unknown ones', async () => {
      const p1 = promise('listed', 300n, 'completion', T0 + 1)
      const p2 = promise('listed', 200n, 'completion', T0 + 2)
      const p3 = promise('listed', 100n, 'completion', T0 + 3)
      for (const p of [p1, p2, p3]) {
        await book.addPromise(p)
      }
      await book.markPaid('receivable', 'listed', [p3.id], 'd'.repeat(64))
      const ids = async (sats: bigint, list: string[]): Promise<string[]> => (await book.coverage('listed', sats, list)).map(p => p.id)
      assert.deepEqual(await ids(500n, [p2.id, p1.id]), [p2.id, p1.id])
      assert.deepEqual(await ids(400n, [p2.id, p1.id]), [p2.id], 'what is left after p2 does not pay p1 in full')
      assert.deepEqual(await ids(1000n, [p2.id, p2.id, 'nope', p3.id]), [p2.id])
    })

    it('keeps a settlement in flight per peer until it is cleared', async () => {
      const pending = { peer: 'settle-a', txid: 'e'.repeat(64), hex: '02000000', sats: 10_000_000_000_000n, fee: 141n, at: T0 }
      await book.setPendingSettlement(pending)
      await book.setPendingSettlement({ peer: 'settle-b', txid: 'f'.repeat(64), hex: '02', sats: 564n, at: T0 })
      assert.deepEqual(await book.pendingSettlement('settle-a'), pending)
      assert.deepEqual(await book.pendingSettlement('settle-b'), { peer: 'settle-b', txid: 'f'.repeat(64), hex: '02', sats: 564n, fee: undefined, at: T0 }, 'one kept before fees were')
      assert.equal(await book.pendingSettlement('settle-c'), undefined)
      await book.clearPendingSettlement('settle-a')
      assert.equal(await book.pendingSettlement('settle-a'), undefined)
      assert.equal((await book.pendingSettlement('settle-b'))?.txid, 'f'.repeat(64), 'the other peer\'s stays')
      // clearing what is not there is no error
      await book.clearPendingSettlement('settle-a')
    })

    it('keeps what a received settlement paid off, and which transactions were used', async () => {
      assert.equal(await book.settlement('1'.repeat(64)), undefined)
      await book.recordSettlement({ caller: 'caller', txid: '1'.repeat(64), settled: ['a', 'b'], sats: 500n })
      assert.deepEqual(await book.settlement('1'.repeat(64)), { caller: 'caller', txid: '1'.repeat(64), settled: ['a', 'b'], sats: 500n })
      assert.equal(await book.isUsed('1'.repeat(64)), false, 'a settlement record is not the replay guard')
      await book.markUsed('1'.repeat(64))
      assert.equal(await book.isUsed('1'.repeat(64)), true)
      assert.equal(await book.isUsed('2'.repeat(64)), false)
    })
  })

  describe('summaries', () => {
    it('shares a settlement\'s amount and fee among the services it paid, and counts attached payments with their fees', async () => {
      const host = 'host'
      const paid = [
        promise(host, 300n, 'completion', T0, { role: 'payable', service: 'storage', method: 'put' }),
        promise(host, 100n, 'completion', T0, { role: 'payable', service: 'sha256', method: 'hash' })
      ]
      for (const p of paid) {
        await book.addPromise(p)
      }
      await book.addPromise(promise(host, 50n, 'time:3600', T0, { role: 'payable', service: 'storage', method: 'rent' }))
      await book.markPaid('payable', host, paid.map(p => p.id), 'a'.repeat(64))
      await book.recordPayment({ direction: 'sent', peer: host, txid: 'a'.repeat(64), sats: 400n, fee: 200n, settles: paid.map(p => p.id), service: 'payments', method: 'settle' })
      await book.recordPayment({ direction: 'sent', peer: host, txid: 'b'.repeat(64), sats: 1000n, fee: 141n, settles: [], service: 'storage', method: 'get' })
      // the server's bookkeeping of what a settlement covered is not money moved
      await book.recordPayment({ direction: 'received', peer: 'caller', txid: `${'c'.repeat(64)}:settle`, sats: 500n, settles: ['x'], service: 'payments', method: 'settle' })
      await book.recordPayment({ direction: 'received', peer: 'caller', txid: 'c'.repeat(64), sats: 500n, settles: [], service: 'payments', method: 'settle' })

      // a payment through a channel is what a call cost, paid, and not on chain
      await book.recordPayment({ direction: 'sent', peer: host, txid: `channel:${'d'.repeat(64)}:0:25`, sats: 25n, settles: [], service: 'storage', method: 'rent' })

      assert.deepEqual(await book.costs({ service: 'storage' }), { promised: 1375n, unpaid: 50n, paidOnChain: 1300n, fees: 291n, throughChannels: 25n })
      assert.deepEqual(await book.costs({ service: 'sha256' }), { promised: 100n, unpaid: 0n, paidOnChain: 100n, fees: 50n, throughChannels: 0n })
      assert.deepEqual(await book.costs(), { promised: 1475n, unpaid: 50n, paidOnChain: 1400n, fees: 341n, throughChannels: 25n })
      assert.deepEqual(await book.onChain(), [
        { peer: 'caller', sent: 0n, fees: 0n, received: 500n, transactions: 0 },
        { peer: host, sent: 1400n, fees: 341n, received: 0n, transactions: 2 }
      ])
      assert.equal(await book.firstActivity(), T0)
    })

    it('counts what each call earned and spent when it was made, and settlements not again, within [since, until)', async () => {
      await book.addPromise(promise('earner', 300n, 'completion', T0))
      const paid = promise('earner', 200n, 'completion', T0 + MINUTE)
      await book.addPromise(paid)
      await book.addPromise(promise('earner', 700n, 'completion', T0 + 2 * MINUTE, { role: 'payable', service: 'storage', method: 'put' }))
      now = T0 + 3 * MINUTE
      await book.markPaid('receivable', 'earner', [paid.id], '3'.repeat(64))
      await book.recordPayment({ direction: 'received', peer: 'earner', txid: '3'.repeat(64), sats: 200n, settles: [], service: 'payments', method: 'settle' })
      await book.recordPayment({ direction: 'received', peer: 'earner', txid: `${'3'.repeat(64)}:settle`, sats: 200n, settles: [paid.id], service: 'payments', method: 'settle' })
      await book.recordPayment({ direction: 'received', peer: 'earner', txid: '4'.repeat(64), sats: 1000n, settles: [], service: 'sha256', method: 'hash' })
      now = T0 + 4 * MINUTE
      await book.recordPayment({ direction: 'sent', peer: 'earner', txid: '5'.repeat(64), sats: 400n, fee: 141n, settles: [], service: 'storage', method: 'get' })
      assert.deepEqual(await book.summary(), [
        { peer: 'earner', call: 'sha256.hash', earned: 1500n, earnedUnpaid: 300n, spent: 0n, spentUnpaid: 0n, calls: 3 },
        { peer: 'earner', call: 'storage.get', earned: 0n, earnedUnpaid: 0n, spent: 400n, spentUnpaid: 0n, calls: 1 },
        { peer: 'earner', call: 'storage.put', earned: 0n, earnedUnpaid: 0n, spent: 700n, spentUnpaid: 700n, calls: 1 }
      ])
      assert.deepEqual(await book.summary(T0 + MINUTE, T0 + 3 * MINUTE), [
        { peer: 'earner', call: 'sha256.hash', earned: 200n, earnedUnpaid: 0n, spent: 0n, spentUnpaid: 0n, calls: 1 },
        { peer: 'earner', call: 'storage.put', earned: 0n, earnedUnpaid: 0n, spent: 700n, spentUnpaid: 700n, calls: 1 }
      ])
      assert.deepEqual((await book.payments()).map(p => p.txid).slice(0, 1), ['5'.repeat(64)], 'newest first')
    })

    it('has no first activity before anything is promised or paid', async () => {
      assert.equal(await book.firstActivity(), undefined)
      now = T0 + MINUTE
      await book.recordPayment({ direction: 'received', peer: 'x', txid: '6'.repeat(64), sats: 1000n, settles: [], service: 'sha256', method: 'hash' })
      assert.equal(await book.firstActivity(), T0 + MINUTE)
      await book.addPromise(promise('x', 1n, 'completion', T0 - MINUTE, { role: 'payable' }))
      assert.equal(await book.firstActivity(), T0 - MINUTE)
    })
  })
})
