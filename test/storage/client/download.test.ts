import { buffer } from 'node:stream/consumers'
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { MemoryDatastore } from 'datastore-core'
import { clientOf, FakeHosts } from './fake-hosts.ts'

/** How a get chooses its hosts, on fake hosts without a network */
describe('storage client downloads', () => {
  it('does not hedge on to a host that left a request unanswered, when live hosts slower than the hedge time are still on their way', async () => {
    const fake = await FakeHosts.create(4)
    const client = await clientOf(fake, new MemoryDatastore(), {}, { segmentSize: 64 * 1024, hedgeMs: 100 })
    const bytes = randomBytes(4 * 64 * 1024)
    const object = await client.put({ stream: (async function * () { yield bytes })(), size: bytes.byteLength }, { name: 'hedged', k: 2, n: 4 })
    // the same host holds slot s of every segment
    const slotHost = [0, 1, 2, 3].map(s => object.segments[0].shards[s].host)
    assert.ok(object.segments.every(seg => seg.shards.every((shard, s) => shard.host === slotHost[s])))
    // slot 0 frozen, slots 1 and 2 slower than the hedge (about 130 ms for
    // these shards) but well within three hedge times, slot 3 quick
    fake.host(slotHost[0]).delays.set('get', Infinity)
    fake.host(slotHost[1]).delays.set('get', 250)
    fake.host(slotHost[2]).delays.set('get', 250)
    fake.asked.length = 0
    const { stream } = await client.getStream('hedged')
    assert.ok((await buffer(stream)).equals(bytes), 'the same bytes')
    const frozen = fake.calls('get').filter(a => a.host === slotHost[0]).length
    // segment 0 asks it (nothing is known yet); after that the two slow
    // live hosts and the quick one can make up K, so it is not asked again
    assert.equal(frozen, 1, `the frozen host was asked ${frozen} times for ${object.segments.length} segments`)
    await client.stop()
  })

  it('asks a host left unanswered after all once a host that froze just now has run three hedge times, rather than wait out its transfer timeout', { timeout: 60_000 }, async () => {
    const fake = await FakeHosts.create(4)
    // a transfer timeout of hours: a get that waited it out would end the test by its timeout
    const client = await clientOf(fake, new MemoryDatastore(), {}, { segmentSize: 64 * 1024, hedgeMs: 100, minThroughput: 1 })
    const bytes = randomBytes(3 * 64 * 1024)
    const object = await client.put({ stream: (async function * () { yield bytes })(), size: bytes.byteLength }, { name: 'freezing', k: 2, n: 4 })
    const slotHost = [0, 1, 2, 3].map(s => object.segments[0].shards[s].host)
    // slot 0 answers its first get and then freezes; slots 1 and 2 slower
    // than two hedge times, so segment 0 is done by slots 0 and 3 before
    // either answers and both are left unanswered; slot 3 quick
    let answered = 0
    fake.host(slotHost[0]).delays.set('get', () => answered++ === 0 ? 0 : Infinity)
    fake.host(slotHost[1]).delays.set('get', 400)
    fake.host(slotHost[2]).delays.set('get', 400)
    fake.asked.length = 0
    const { stream } = await client.getStream('freezing')
    assert.ok((await buffer(stream)).equals(bytes), 'the same bytes')
    assert.ok(fake.calls('get').filter(a => a.host === slotHost[1] || a.host === slotHost[2]).length > 2, 'the slow hosts were asked again once the frozen one had run three hedge times')
    await client.stop()
  })
})
