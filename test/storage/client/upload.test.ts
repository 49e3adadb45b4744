import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import { NotEnoughHostsError } from '../../../src/storage/errors.ts'
import { randomBytes } from 'node:crypto'
import { buffer } from 'node:stream/consumers'
import { clientOf, FakeHosts } from './fake-hosts.ts'

const KB = 1000
const stream = (bytes: Uint8Array): { stream: AsyncIterable<Uint8Array>, size: number } => ({ stream: (async function * () { yield bytes })(), size: bytes.byteLength })

const FILE = { stream: (async function * () { yield new Uint8Array(22) })(), size: 22 }

/** What a put says when it cannot start, on fake hosts without a network */
describe('storage client uploads', () => {
  it('tells a node that knows no storage host how to find one, not to choose a smaller redundancy than 1-of-0', async () => {
    const fake = await FakeHosts.create(0)
    const client = await clientOf(fake, new MemoryDatastore())
    await assert.rejects(client.put({ ...FILE }, { name: 'notes.txt' }), (err: any) => {
      assert.ok(err instanceof NotEnoughHostsError, err.message)
      assert.match(err.message, /^no storage host is known: .* --bootstrap <multiaddr of a peer> .*npm run testnet/)
      assert.doesNotMatch(err.message, /1-of-0|redundancy/)
      return true
    })
    assert.deepEqual(await client.list(), [])
  })

  it('names the cheapest host\'s price when --max-price is under every one of them', async () => {
    const fake = await FakeHosts.create(3)
    const client = await clientOf(fake, new MemoryDatastore())
    const cheapest = fake.hosts.map(h => h.offer.storage).reduce((a, b) => b < a ? b : a)
    assert.ok(cheapest > 1n)
    await assert.rejects(client.put({ ...FILE }, { name: 'notes.txt', maxStoragePrice: 1n }), (err: any) => {
      assert.ok(err instanceof NotEnoughHostsError, err.message)
      assert.match(err.message, /^no storage host asks 0\.00000001 BTC per TiB-month or less: the cheapest of the 3 the market knows asks ([0-9.]+ BTC) per TiB-month; raise --max-price to at least "\1"$/)
      return true
    })
  })

  it('puts every object into the one contract it holds with each host while it has room, then forms a second one twice as large', async () => {
    const fake = await FakeHosts.create(2)
    const client = await clientOf(fake, new MemoryDatastore(), {}, { contractAllowance: 100 * KB })
    const data = [randomBytes(60 * KB), randomBytes(30 * KB), randomBytes(60 * KB), randomBytes(60 * KB)]
    const stored = []
    for (const [i, bytes] of data.entries()) {
      stored.push(await client.put(stream(bytes), { name: `f${i}`, k: 1, n: 2 }))
    }
    const ids = stored.map(o => Object.keys(o.contracts).sort().join(' '))
    // 60 KB + 30 KB fit the first contract's 100 KB; the third does not, and goes into a new one of 200 KB, the fourth with it
    assert.equal(ids[0], ids[1], 'the second object shares the first one\'s contracts')
    assert.notEqual(ids[2], ids[0])
    assert.equal(ids[3], ids[2])
    for (const host of fake.hosts) {
      assert.equal(host.contracts.size, 2, 'two contracts with each host, for four objects')
      assert.deepEqual(host.signed, [100 * KB, 200 * KB])
    }
    for (const [i, bytes] of data.entries()) {
      assert.ok((await buffer((await client.getStream(`f${i}`)).stream)).equals(bytes))
    }
  })

  it('has puts that start together share the contract the first one forms with each host', async () => {
    const fake = await FakeHosts.create(3)
    const client = await clientOf(fake, new MemoryDatastore())
    const objects = await Promise.all(Array.from({ length: 10 }, async (_, i) => client.put(stream(randomBytes(2 * KB + i)), { name: `f${i}`, k: 1, n: 3 })))
    assert.ok(fake.hosts.every(h => h.contracts.size === 1), 'one contract per host for ten puts at once')
    assert.equal(new Set(objects.flatMap(o => Object.keys(o.contracts))).size, 3)
    for (const host of fake.hosts) {
      const [c] = [...host.contracts.values()]
      assert.deepEqual([c.shards.length, c.revision], [10, 10], 'ten revisions, one after another')
    }
  })

  it('forms a contract of just the put\'s size with a host that has no room for the allowance', async () => {
    const fake = await FakeHosts.create(2)
    fake.hosts[0].capacity = 80 * KB
    const client = await clientOf(fake, new MemoryDatastore(), {}, { contractAllowance: 100 * KB })
    const object = await client.put(stream(randomBytes(60 * KB)), { name: 'f', k: 1, n: 2 })
    assert.equal(Object.keys(object.contracts).length, 2)
    const held = Object.values(object.contracts).find(c => c.host === fake.hosts[0].peer)!
    assert.equal(held.maxBytes, 60 * KB + 16, 'the shard (the file and its 16-byte tag) and no more')
    assert.deepEqual(fake.hosts[0].signed, [60 * KB + 16])
    assert.deepEqual(fake.hosts[1].signed, [100 * KB])
  })

  it('removes one object of many from a shared contract by revision, and ends the contract with the last', async () => {
    const fake = await FakeHosts.create(2)
    const client = await clientOf(fake, new MemoryDatastore())
    const a = await client.put(stream(randomBytes(5 * KB)), { name: 'a', k: 1, n: 2 })
    const b = await client.put(stream(randomBytes(7 * KB)), { name: 'b', k: 1, n: 2 })
    assert.deepEqual(Object.keys(a.contracts).sort(), Object.keys(b.contracts).sort())
    await client.remove('a')
    assert.equal(fake.calls('delete').length, 2, 'a\'s shard deleted on each host')
    assert.equal(fake.calls('end').length, 0, 'the contracts go on: b is in them')
    for (const host of fake.hosts) {
      const [c] = [...host.contracts.values()]
      assert.deepEqual(c.shards.map(s => s.length), [7 * KB + 16], 'only b\'s shard is left')
    }
    assert.ok((await buffer((await client.getStream('b')).stream)).byteLength === 7 * KB)
    await client.remove('b')
    assert.equal(fake.calls('end').length, 2, 'the last object ends them')
    assert.ok(fake.hosts.every(h => h.contracts.size === 0))
  })

  // the overdrive (UPLOAD_STALL_FACTOR): host 0 (slot 0) takes 1.6 s over each shard after its first, the others none
  const slowPut = async (answers: boolean): Promise<{ object: Awaited<ReturnType<Awaited<ReturnType<typeof clientOf>>['put']>>, fake: FakeHosts, pinged: string[] }> => {
    const fake = await FakeHosts.create(5)
    let puts = 0
    fake.hosts[0].delays.set('put', () => puts++ === 0 ? 0 : 1600)
    const pinged: string[] = []
    const client = await clientOf(fake, new MemoryDatastore(), { alive: async (peer) => { pinged.push(peer); return answers } }, { segmentSize: 4 * KB })
    const object = await client.put(stream(randomBytes(12 * KB)), { name: 'slow', k: 2, n: 4 })
    return { object, fake, pinged }
  }

  it('keeps a slow host that answers a ping: the put waits for it, and nothing is left to repair', async () => {
    const { object, fake, pinged } = await slowPut(true)
    assert.ok(pinged.length > 0 && pinged.every(p => p === fake.hosts[0].peer), 'the slow host was pinged')
    assert.ok(object.segments.every(s => s.shards[0].host === fake.hosts[0].peer && s.shards[0].lost == null))
    assert.equal(fake.calls('contract').length, 4, 'no fifth contract')
  })

  it('moves a put off a host that stalls and does not answer a ping, onto the spare host', async () => {
    const { object, fake, pinged } = await slowPut(false)
    assert.ok(pinged.includes(fake.hosts[0].peer))
    assert.equal(object.segments.at(-1)!.shards[0].host, fake.hosts[4].peer, 'slot 0 moved to the fifth host')
    const lost = object.segments.flatMap(s => s.shards).filter(s => s.lost != null)
    assert.ok(lost.length > 0 && lost.every(s => s.host === fake.hosts[0].peer))
    assert.match(lost[0].lostReason ?? '', /held shard 1 of segment \d+ for \d+ ms while the other hosts had taken theirs .*did not answer a ping within 1000 ms/)
  })
})
