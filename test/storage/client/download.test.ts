import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { MemoryDatastore } from 'datastore-core'
import { clientOf, FakeHosts } from './fake-hosts.ts'

async function collect (stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of stream) {
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/** How a get chooses its hosts, on fake hosts without a network */
describe('storage client downloads', () => {
  it('does not hedge on to a host that left a request unanswered, when live hosts slower than the hedge time are still on their way', async () => {
    const fake = await FakeHosts.create(4)
    const client = await clientOf(fake, new MemoryDatastore(), {}, { segmentSize: 64 * 1024, hedgeMs: 40 })
    const bytes = randomBytes(4 * 64 * 1024)
    const object = await client.put({ stream: (async function * () { yield bytes })(), size: bytes.byteLength }, { name: 'hedged', k: 2, n: 4 })
    // the same host holds slot s of every segment
    const slotHost = [0, 1, 2, 3].map(s => object.segments[0].shards[s].host)
    assert.ok(object.segments.every(seg => seg.shards.every((shard, s) => shard.host === slotHost[s])))
    // slot 0 frozen, slots 1 and 2 slower than the hedge (about 70 ms for these shards), slot 3 quick
    fake.host(slotHost[0]).delays.set('get', Infinity)
    fake.host(slotHost[1]).delays.set('get', 400)
    fake.host(slotHost[2]).delays.set('get', 400)
    fake.asked.length = 0
    const { stream } = await client.getStream('hedged')
    assert.ok((await collect(stream)).equals(bytes), 'the same bytes')
    const frozen = fake.calls('get').filter(a => a.host === slotHost[0]).length
    // segment 0 asks it (nothing is known yet); after that the two slow
    // live hosts and the quick one can make up K, so it is not asked again
    assert.equal(frozen, 1, `the frozen host was asked ${frozen} times for ${object.segments.length} segments`)
    await client.stop()
  })
})
