import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import { ServerError } from '../../../../src/protocols/rpc/errors.ts'
import { rentPerPeriodV1 } from '../../../../src/storage/protocol/contract.ts'
import { clientOf, contractRecord, DAY, FakeHosts, storeObject } from '../fake-hosts.ts'

/** Rent, with the hosts faked and the clock given: what falls due is paid, and nothing else */
describe('storage upkeep: rent', () => {
  it('pays the periods that fall due, half a period ahead, and nothing else', async () => {
    const fake = await FakeHosts.create(4)
    const [a, b, c, d] = fake.hosts.map(h => h.peer)
    const datastore = new MemoryDatastore()
    const start = Date.now()
    await storeObject(datastore, {
      ca: contractRecord(a, { start }),
      // condemned, ended, expired: paid no more
      cb: contractRecord(b, { start, lost: start, lostFor: 'cheated' }),
      cc: contractRecord(c, { start, ended: start }),
      cd: contractRecord(d, { start: start - 31 * DAY })
    })
    const client = await clientOf(fake, datastore)
    // a third of a period on: period 2 starts more than half a period ahead
    assert.equal(await client.payRent(start + DAY / 3), 0)
    // two days on: periods 2 and 3 (the next starts within half a period)
    assert.equal(await client.payRent(start + 2 * DAY), 2)
    // a version 1 record (written before version 2): rent on max-bytes, each period rounded up
    const sats = rentPerPeriodV1({ storagePrice: 1000n, maxBytes: 1000, rentPeriodMs: DAY })
    assert.deepEqual(fake.calls('rent').map(r => [r.host, r.args, r.sats]), [[a, ['ca', '1'], sats], [a, ['ca', '1'], sats]])
    const record = (await client.find('f')).contracts.ca
    assert.equal(record.rentPaidPeriods, 3)
    assert.equal(record.spent.rent, String(2n * sats))
    // asked again at the same time: all paid already
    assert.equal(await client.payRent(start + 2 * DAY), 0)
    // never past the contract's end: 30 periods in all
    assert.equal(await client.payRent(start + 40 * DAY), 0, 'an expired contract is paid no more')
    assert.equal(await client.payRent(start + 29 * DAY), 27)
    assert.equal((await client.find('f')).contracts.ca.rentPaidPeriods, 30)
    assert.equal(await client.payRent(start + 29.9 * DAY), 0)
  })

  it('pays a version 2 contract on the bytes it holds, accrued exactly: a fraction of a satoshi a day costs whole satoshis only as they add up', async () => {
    const fake = await FakeHosts.create(1)
    const [a] = fake.hosts.map(h => h.peer)
    const datastore = new MemoryDatastore()
    const start = Date.now()
    // 1 GiB held at 1833 sat per TiB-month (Storj's host payout): 0.0597 sat a day
    await storeObject(datastore, { ca: contractRecord(a, { start, version: 2, maxBytes: 2 * 1024 ** 3, storagePrice: '1833', rentAccrued: '0', rentPaid: '0', shards: [['00'.repeat(32), 1024 ** 3]] }) })
    const client = await clientOf(fake, datastore)
    assert.equal(await client.payRent(start + 29 * DAY), 29)
    const sats = fake.calls('rent').map(r => r.sats)
    assert.equal(sats.length, 29)
    // 29 days x 1833 / 1024 / 30 = 1.73 sat, paid as 2 whole sat: the first period and the one where the sum passes 1
    assert.deepEqual(sats.filter(x => x > 0n), [1n, 1n])
    assert.equal(sats[0], 1n)
    const record = (await client.find('f')).contracts.ca
    assert.equal(record.rentPaid, '2')
    assert.equal(record.spent.rent, '2')
    // the exact sum: 29 periods x price x bytes x period, in units of 2^40 x 30 days per sat
    assert.equal(record.rentAccrued, String(29n * 1833n * 1024n ** 3n * BigInt(DAY)))
  })

  it('stops paying a host that refuses until the next check, and pays the others', async () => {
    const fake = await FakeHosts.create(2)
    const [a, b] = fake.hosts.map(h => h.peer)
    fake.hosts[0].failing.set('rent', () => new ServerError('the host is busy'))
    const datastore = new MemoryDatastore()
    const start = Date.now()
    await storeObject(datastore, { ca: contractRecord(a, { start }), cb: contractRecord(b, { start }) })
    const client = await clientOf(fake, datastore)
    assert.equal(await client.payRent(start + 3 * DAY), 3)
    // one try of the refusing host, not one per period due
    assert.equal(fake.calls('rent').filter(r => r.host === a).length, 1)
    const object = await client.find('f')
    assert.deepEqual([object.contracts.ca.rentPaidPeriods, object.contracts.cb.rentPaidPeriods], [1, 4])
    fake.hosts[0].failing.clear()
    assert.equal(await client.payRent(start + 3 * DAY), 3, 'paid at the next check')
  })

  it('takes a host\'s rent sums only when they are believable: never a paid sum of nothing, nor an accrued one far over its own count', async () => {
    const fake = await FakeHosts.create(1)
    const [a] = fake.hosts.map(h => h.peer)
    const datastore = new MemoryDatastore()
    const start = Date.now()
    const units = 1833n * 1024n ** 3n * BigInt(DAY)
    await storeObject(datastore, { ca: contractRecord(a, { start, version: 2, maxBytes: 2 * 1024 ** 3, storagePrice: '1833', rentAccrued: '0', rentCounted: '0', rentPaid: '0', shards: [['00'.repeat(32), 1024 ** 3]] }) })
    const client = await clientOf(fake, datastore)
    // a host that says it was paid nothing: taken, this node would pay everything again
    fake.hosts[0].rentAnswer = () => ({ rentPaidPeriods: 2, rentAccrued: String(units), rentPaid: '0 BTC' })
    assert.equal(await client.payRent(start + DAY), 1)
    let c = (await client.find('f')).contracts.ca
    assert.deepEqual([c.rentAccrued, c.rentPaid], [String(units), '1'])
    // one that counts 2,000 sat more than this node asked for: not taken
    fake.hosts[0].rentAnswer = () => ({ rentPaidPeriods: 3, rentAccrued: String(2n * units + 2000n * 1024n ** 4n * 2_592_000_000n), rentPaid: '0.00002001 BTC' })
    assert.equal(await client.payRent(start + 2 * DAY), 1)
    c = (await client.find('f')).contracts.ca
    assert.deepEqual([c.rentAccrued, c.rentPaid], [String(2n * units), '1'])
    // one that counted less (a transfer it never served) and was paid what this node paid: taken
    fake.hosts[0].rentAnswer = () => ({ rentPaidPeriods: 4, rentAccrued: String(3n * units - 5n), rentPaid: '0.00000001 BTC' })
    assert.equal(await client.payRent(start + 3 * DAY), 1)
    c = (await client.find('f')).contracts.ca
    assert.deepEqual([c.rentAccrued, c.rentPaid, c.rentCounted], [String(3n * units - 5n), '1', String(3n * units)])
  })
})
