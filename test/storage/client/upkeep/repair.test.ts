import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { ServerError } from '../../../../src/protocols/rpc/errors.ts'
import { repairCandidates, repairWaitMs } from '../../../../src/storage/client/upkeep/repair.ts'
import { MAX_REPAIR_RETRY_MS } from '../../../../src/storage/constants.ts'
import { clientOf, contractRecord, FakeHosts } from '../fake-hosts.ts'
import type { HostOffer, StoredObject } from '../../../../src/storage/client/storage-client.ts'

const MINUTE = 60_000
const offer = (peer: string): HostOffer => ({ peer, storage: 1000n, upload: 0n, download: 0n })

/** Repair, with the hosts faked and the clock given */
describe('storage upkeep: repair', () => {
  it('offers a lost shard to new hosts first, then to hosts used before that hold none of its segment, never to a cheat or a host held off', () => {
    const now = Date.now()
    const object = {
      id: 'o', name: 'f', k: 1, n: 3,
      segments: [{ plainLength: 1, shardSize: 17, shards: [{ host: 'cheat', contract: 'c1', root: 'r' }, { host: 'holder', contract: 'c2', root: 'r' }, { host: 'gone', contract: 'c3', root: 'r' }] }],
      contracts: {
        c1: contractRecord('cheat', { lost: now, lostFor: 'cheated' }),
        c2: contractRecord('holder'),
        c3: contractRecord('gone', { lost: now, lostFor: 'unreachable' }),
        c4: contractRecord('lossy', { ended: now, shardsLost: 1 })
      }
    } as unknown as StoredObject
    const offers = ['lossy', 'cheat', 'holder', 'gone', 'new', 'failed'].map(offer)
    const { hosts } = repairCandidates(object, [0], offers, now, new Set(['failed']))
    assert.deepEqual(hosts.map(h => h.peer), ['new', 'gone', 'lossy'])
    // with no new host and the others out: none, and why
    const none = repairCandidates(object, [0], ['cheat', 'holder', 'failed'].map(offer), now, new Set(['failed']))
    assert.deepEqual(none.hosts, [])
    assert.match(none.why, /of the 3 hosts the market knows, 1 hold a shard of those segments already, 1 were caught cheating, 1 failed an upload of this repair recently/)
  })

  it('waits twice as long after each stuck attempt, up to 6 h', () => {
    assert.deepEqual([1, 2, 3, 4].map(a => repairWaitMs(10 * MINUTE, a)), [10, 20, 40, 80].map(m => m * MINUTE))
    assert.equal(repairWaitMs(10 * MINUTE, 10), MAX_REPAIR_RETRY_MS)
  })

  it('holds off a host that failed a repair\'s upload, doubling, and retries the object at doubling waits', async () => {
    const fake = await FakeHosts.create(3)
    const [a, b, c] = fake.hosts.map(h => h.peer)
    const datastore = new MemoryDatastore()
    const rated: string[] = []
    const client = await clientOf(fake, datastore, { rate: (peer, event, method) => { rated.push(`${peer === c ? 'c' : peer} ${event} ${method}`) } }, { repairRetryMs: 10 * MINUTE })
    // 1-of-2 on hosts A and B; C is the spare, and fails every upload
    const stored = await client.put({ stream: (async function * () { yield randomBytes(5000) })(), size: 5000 }, { name: 'f', k: 1, n: 2 })
    assert.deepEqual(Object.values(stored.contracts).map(x => x.host).sort(), [a, b].sort())
    fake.hosts[2].failing.set('put', () => new ServerError('the disk is full'))
    const [lostId] = Object.entries(stored.contracts).find(([, x]) => x.host === a)!
    stored.contracts[lostId].lost = Date.now()
    stored.contracts[lostId].lostFor = 'cheated'
    await datastore.put(new Key(`/storage/objects/${stored.id}`), new TextEncoder().encode(JSON.stringify(stored)))

    const now = Date.now()
    assert.equal(await client.repairAll(now), 0)
    let object = await client.find('f')
    assert.equal(object.repair?.attempts, 1)
    assert.equal(object.repair?.retryAt, now + 10 * MINUTE)
    assert.deepEqual(object.repair?.hosts, { [c]: { failures: 1, until: now + 20 * MINUTE } }, 'held off for twice the object\'s wait')
    assert.deepEqual(rated, ['c failed put'])
    // the contract C signed holds nothing any object uses: the object does not name it, and it is ended
    assert.equal(Object.values(object.contracts).filter(x => x.host === c).length, 0)
    assert.deepEqual(await client.collectGarbage(), { deleted: 0, ended: 1 })
    assert.equal(fake.calls('end').filter(x => x.host === c).length, 1)

    // before its retry time: not tried
    const asked = fake.asked.length
    assert.equal(await client.repairAll(now + 10 * MINUTE - 1), 0)
    assert.equal(fake.asked.length, asked, 'no host asked')
    // at its retry time C is still held off: stuck without asking anyone, twice the wait
    assert.equal(await client.repairAll(now + 10 * MINUTE), 0)
    object = await client.find('f')
    assert.equal(fake.calls('contract').filter(x => x.host === c).length, 1)
    assert.equal(object.repair?.attempts, 2)
    assert.equal(object.repair?.retryAt, now + 30 * MINUTE)
    assert.match(object.repair?.problem ?? '', /1 failed an upload of this repair recently/)
    // then C is asked again, fails again, and is held off for twice as long
    assert.equal(await client.repairAll(now + 30 * MINUTE), 0)
    object = await client.find('f')
    assert.equal(object.repair?.attempts, 3)
    assert.equal(object.repair?.retryAt, now + 70 * MINUTE)
    assert.deepEqual(object.repair?.hosts, { [c]: { failures: 2, until: now + 70 * MINUTE } })
    // C works again: the next attempt moves the shard, and the repair state goes
    fake.hosts[2].failing.clear()
    assert.equal(await client.repairAll(now + 70 * MINUTE), 1)
    object = await client.find('f')
    assert.equal(object.repair, undefined)
    assert.deepEqual(object.segments[0].shards.map(s => s.host).sort(), [b, c].sort())
  })
})
