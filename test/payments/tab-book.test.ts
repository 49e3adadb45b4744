import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { LevelDatastore } from 'datastore-level'
import { TabBook, type DeferredPromise } from '../../src/payments/tab-book.ts'
import { tempDir } from '../helpers/nodes.ts'

const MINUTE = 60_000
const GRACE = 10 * MINUTE
const T0 = Date.parse('2026-03-01T12:00:00Z')

/**
 * The tab book on a real LevelDB: when promises fall due and go overdue
 * (PROTOCOL.md 8a, "defer"), and what paying them took from the wallet.
 */
describe('the tab book', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let datastore: LevelDatastore
  let now = T0
  let ledger: TabBook
  let n = 0

  const promise = (peer: string, sats: bigint, threshold: string, createdAt: number, extra: Partial<DeferredPromise> = {}): DeferredPromise =>
    ({ role: 'receivable', peer, id: `p${n++}`, sats, threshold, service: 'sha256', method: 'hash', createdAt, ...extra })

  before(async () => {
    dir = await tempDir()
    datastore = new LevelDatastore(`${dir.path}/db`)
    await datastore.open()
    ledger = new TabBook(datastore, { graceMs: GRACE, now: () => now })
  })

  after(async () => {
    await datastore?.close()
    await dir?.cleanup()
  })

  it('counts an amount threshold due from when the unpaid promises reached it, not from the first promise', async () => {
    // 300 sat now and 300 sat twenty minutes later, each due at 600 sat
    await ledger.addPromise(promise('amount', 300n, 'amount:0.000006', T0))
    await ledger.addPromise(promise('amount', 300n, 'amount:0.000006', T0 + 20 * MINUTE))
    now = T0 + 25 * MINUTE
    const tab = await ledger.tab('receivable', 'amount')
    assert.equal(tab.due, 600n)
    assert.equal(tab.dueSince, T0 + 20 * MINUTE)
    assert.equal(tab.overdue, 0n, 'due for 5 minutes, within the grace period')
    assert.equal((await ledger.tab('receivable', 'amount', T0 + 31 * MINUTE)).overdue, 600n)
  })

  it('never counts a due total below the dust limit as overdue, and counts it once it reaches the limit', async () => {
    await ledger.addPromise(promise('dust', 100n, 'completion', T0))
    await ledger.addPromise(promise('dust', 150n, 'time:60', T0))
    const day = await ledger.tab('receivable', 'dust', T0 + 24 * 60 * MINUTE)
    assert.equal(day.due, 250n)
    assert.equal(day.overdue, 0n, '250 sat cannot be paid on chain on its own')
    now = T0 + 30 * MINUTE
    await ledger.addPromise(promise('dust', 44n, 'completion', now))
    const reached = await ledger.tab('receivable', 'dust')
    assert.equal(reached.due, 294n)
    // the two old ones are past their grace; the new one is not
    assert.equal(reached.overdue, 250n)
  })

  it('shares a settlement\'s amount and fee among the services it paid, and counts attached payments with their fees', async () => {
    const host = 'host'
    const paid = [
      promise(host, 300n, 'completion', T0, { role: 'payable', service: 'storage', method: 'put' }),
      promise(host, 100n, 'completion', T0, { role: 'payable', service: 'sha256', method: 'hash' })
    ]
    for (const p of paid) {
      await ledger.addPromise(p)
    }
    await ledger.addPromise(promise(host, 50n, 'time:3600', T0, { role: 'payable', service: 'storage', method: 'rent' }))
    await ledger.markPaid('payable', host, paid.map(p => p.id), 'a'.repeat(64))
    await ledger.recordPayment({ direction: 'sent', peer: host, txid: 'a'.repeat(64), sats: 400n, fee: 200n, settles: paid.map(p => p.id), service: 'payments', method: 'settle' })
    await ledger.recordPayment({ direction: 'sent', peer: host, txid: 'b'.repeat(64), sats: 1000n, fee: 141n, settles: [], service: 'storage', method: 'get' })
    // the server's bookkeeping of what a settlement covered is not money moved
    await ledger.recordPayment({ direction: 'received', peer: 'caller', txid: `${'c'.repeat(64)}:settle`, sats: 500n, settles: ['x'], service: 'payments', method: 'settle' })
    await ledger.recordPayment({ direction: 'received', peer: 'caller', txid: 'c'.repeat(64), sats: 500n, settles: [], service: 'payments', method: 'settle' })

    assert.deepEqual(await ledger.costs({ service: 'storage' }), { promised: 1350n, unpaid: 50n, paidOnChain: 1300n, fees: 291n })
    assert.deepEqual(await ledger.costs({ service: 'sha256' }), { promised: 100n, unpaid: 0n, paidOnChain: 100n, fees: 50n })
    assert.deepEqual(await ledger.costs(), { promised: 1450n, unpaid: 50n, paidOnChain: 1400n, fees: 341n })
    assert.deepEqual(await ledger.onChain(), [
      { peer: 'caller', sent: 0n, fees: 0n, received: 500n, transactions: 0 },
      { peer: host, sent: 1400n, fees: 341n, received: 0n, transactions: 2 }
    ])
    assert.equal(await ledger.firstActivity(), T0)
  })
})
