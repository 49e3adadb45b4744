import { randomBytes } from 'node:crypto'
import { buffer } from 'node:stream/consumers'
import { Key } from 'interface-datastore'
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import { ServerError } from '../../../../src/protocols/rpc/errors.ts'
import { renewalDue } from '../../../../src/storage/client/upkeep/renewals.ts'
import { clientOf, contractRecord, DAY, FakeHosts, storeObject } from '../fake-hosts.ts'

const ROOT = '00'.repeat(32)

/** Renewals, with the hosts faked and the clock given */
describe('storage upkeep: renewals', () => {
  it('are due within renewBeforeMs of the end, or a third of a short contract', () => {
    const now = Date.now()
    const at = (startDaysAgo: number, lengthDays: number): ReturnType<typeof contractRecord> => contractRecord('h', { start: now - startDaysAgo * DAY, end: now + (lengthDays - startDaysAgo) * DAY })
    assert.equal(renewalDue(at(22, 30), now, 7 * DAY), false, '8 days left of 30')
    assert.equal(renewalDue(at(23, 30), now, 7 * DAY), true, '7 days left of 30')
    assert.equal(renewalDue(at(5, 9), now, 7 * DAY), false, '4 days left of 9: a third is 3')
    assert.equal(renewalDue(at(6.5, 9), now, 7 * DAY), true, '2.5 days left of 9')
    assert.equal(renewalDue({ ...at(23, 30), lost: now }, now, 7 * DAY), false, 'condemned')
    assert.equal(renewalDue({ ...at(23, 30), ended: now }, now, 7 * DAY), false, 'ended')
    assert.equal(renewalDue(at(31, 30), now, 7 * DAY), false, 'over')
  })

  it('renew a contract near its end with the same host, shards carried over, and leave the others', async () => {
    const fake = await FakeHosts.create(2)
    const [a, b] = fake.hosts.map(h => h.peer)
    const now = Date.now()
    // host A's contract ends in 3 days, host B's in 20
    for (const [host, id] of [[fake.hosts[0], 'aa'.repeat(32)], [fake.hosts[1], 'bb'.repeat(32)]] as const) {
      host.contracts.set(id, { shards: [{ root: Buffer.from(ROOT, 'hex'), length: 17 }], bytes: new Map(), revision: 1 })
    }
    const datastore = new MemoryDatastore()
    await storeObject(datastore, {
      ['aa'.repeat(32)]: contractRecord(a, { start: now - 27 * DAY, end: now + 3 * DAY }),
      ['bb'.repeat(32)]: contractRecord(b, { start: now - 10 * DAY, end: now + 20 * DAY })
    })
    const client = await clientOf(fake, datastore)
    assert.equal(await client.renewAll(now), 1)
    assert.deepEqual(fake.calls('renew').map(r => [r.host, r.args[0]]), [[a, 'aa'.repeat(32)]])
    const object = await client.find('f')
    const old = object.contracts['aa'.repeat(32)]
    assert.ok(old.ended != null && old.renewedAs != null)
    const renewed = object.contracts[old.renewedAs]
    assert.equal(renewed.host, a)
    assert.equal(renewed.revision, 1)
    assert.deepEqual(renewed.shards, [[ROOT, 17]], 'the shards carried over')
    assert.equal(renewed.end - renewed.start, 30 * DAY, 'the same length')
    assert.equal(object.segments[0].shards[0].contract, old.renewedAs, 'the segment points at the new contract')
    assert.equal(renewed.rentPaidPeriods, 1, 'its first period paid')
    assert.deepEqual(fake.calls('rent').map(r => r.args[0]), [old.renewedAs])
    assert.equal(object.contracts['bb'.repeat(32)].renewedAs, undefined)
    // renewed once: the next check has nothing to renew
    assert.equal(await client.renewAll(now), 0)
  })

  it('renew a contract two objects share once, and both name the new one', async () => {
    const fake = await FakeHosts.create(1)
    const [a] = fake.hosts.map(h => h.peer)
    const now = Date.now()
    const id = 'aa'.repeat(32)
    const other = '22'.repeat(32)
    fake.hosts[0].contracts.set(id, { shards: [{ root: Buffer.from(ROOT, 'hex'), length: 17 }, { root: Buffer.from(other, 'hex'), length: 5 }], bytes: new Map(), revision: 2 })
    const datastore = new MemoryDatastore()
    const shared = contractRecord(a, { start: now - 27 * DAY, end: now + 3 * DAY, revision: 2, shards: [[ROOT, 17], [other, 5]] })
    await storeObject(datastore, { [id]: shared })
    await storeObject(datastore, { [id]: shared }, { id: '33'.repeat(16), name: 'g', segments: [{ plainLength: 1, shardSize: 5, shards: [{ host: a, contract: id, root: other }] }] })
    const client = await clientOf(fake, datastore)
    assert.equal(await client.renewAll(now), 1)
    assert.equal(fake.calls('renew').length, 1, 'one renewal for both objects')
    const [f, g] = [await client.find('f'), await client.find('g')]
    const next = f.contracts[id].renewedAs as string
    assert.ok(next != null)
    assert.equal(f.segments[0].shards[0].contract, next)
    assert.equal(g.segments[0].shards[0].contract, next)
    assert.equal(f.contracts[next], g.contracts[next], 'one record, shared')
    assert.deepEqual(f.contracts[next].shards, [[ROOT, 17], [other, 5]])
  })

  it('ask a host that refuses again at the next check', async () => {
    const fake = await FakeHosts.create(1)
    const now = Date.now()
    fake.hosts[0].contracts.set('aa'.repeat(32), { shards: [{ root: Buffer.from(ROOT, 'hex'), length: 17 }], bytes: new Map(), revision: 1 })
    fake.hosts[0].failing.set('renew', () => new ServerError('not now'))
    const datastore = new MemoryDatastore()
    await storeObject(datastore, { ['aa'.repeat(32)]: contractRecord(fake.hosts[0].peer, { start: now - 27 * DAY, end: now + 3 * DAY }) })
    const client = await clientOf(fake, datastore)
    assert.equal(await client.renewAll(now), 0)
    assert.equal((await client.find('f')).contracts['aa'.repeat(32)].ended, undefined)
    fake.hosts[0].failing.clear()
    assert.equal(await client.renewAll(now), 1)
  })

  it('keeps the shards of a put under way when its contract is renewed meanwhile, and follows a renewal the records missed', async () => {
    const fake = await FakeHosts.create(1)
    const datastore = new MemoryDatastore()
    const client = await clientOf(fake, datastore, {}, { segmentSize: 4096 })
    const bytes = randomBytes(6 * 4096)
    // the file comes a segment every 100 ms: the renewal and the check come in between, while no shard is being put
    const slowly = async function * (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 6; i++) {
        await new Promise(resolve => setTimeout(resolve, 100))
        yield bytes.subarray(i * 4096, (i + 1) * 4096)
      }
    }
    const putting = client.put({ stream: slowly(), size: bytes.byteLength }, { name: 'slow', k: 1, n: 1 })
    while (fake.calls('put').length < 2) {
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    assert.equal(await client.renewAll(Date.now() + 25 * DAY), 1, 'renewed while the put runs')
    assert.deepEqual(await client.collectGarbage(), { deleted: 0, ended: 0 }, 'nothing of the put under way is taken for garbage')
    const object = await putting
    assert.equal(fake.calls('delete').length, 0)
    assert.ok((await buffer((await client.getStream('slow')).stream)).equals(bytes))
    const [renewedId] = Object.keys(object.contracts).filter(id => object.contracts[id].ended == null)
    assert.ok(object.segments.every(s => s.shards[0].contract === renewedId), 'every shard under the contract that took the old one\'s place')

    // a crash between the renewal and the save of the objects under it: the record still names the old contract
    const [oldId] = client.contractList().find(([, c]) => c.renewedAs === renewedId)!
    const raw = JSON.parse(new TextDecoder().decode(await datastore.get(new Key(`/storage/objects/${object.id}`))))
    raw.segments.forEach((s: any) => { s.shards[0].contract = oldId })
    raw.contractIds = [oldId]
    await datastore.put(new Key(`/storage/objects/${object.id}`), new TextEncoder().encode(JSON.stringify(raw)))
    const seen = await client.find('slow')
    assert.ok(seen.segments.every(s => s.shards[0].contract === renewedId), 'read as under the new contract')
    assert.deepEqual(await client.collectGarbage(), { deleted: 0, ended: 0 }, 'the new contract is not ended')
    assert.ok((await buffer((await client.getStream('slow')).stream)).equals(bytes))
  })
})
