import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { buffer } from 'node:stream/consumers'
import { setTimeout as sleep } from 'node:timers/promises'
import { MemoryDatastore } from 'datastore-core'
import { clientOf, FakeHosts } from './fake-hosts.ts'
import type { CallResponse } from '../../../src/protocols/rpc/rpc-client.ts'

const SEGMENT = 64 * 1024

/** a body as the RPC client gives one */
const bodyOf = (bytes: Uint8Array): CallResponse => ({ body: { length: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest(), bytes: async () => bytes, [Symbol.asyncIterator]: async function * () { yield bytes } } }) as unknown as CallResponse

/** The long tail of a get and the bytes it checks, on fake hosts without a network */
describe('storage client downloads: overdrive and checks', () => {
  it('overdrives a frozen host after a few times the others\' answers, not the hedge time, and asks at most ceil(K/4) more shards for it', { timeout: 20_000 }, async () => {
    const fake = await FakeHosts.create(8)
    // a hedge of a minute and a transfer timeout of hours: a get that
    // waited for either would end the test by its timeout
    const client = await clientOf(fake, new MemoryDatastore(), {}, { segmentSize: SEGMENT, hedgeMs: 60_000, minThroughput: 1 })
    const bytes = randomBytes(6 * SEGMENT)
    const object = await client.put({ stream: (async function * () { yield bytes })(), size: bytes.byteLength }, { name: 'tail', k: 4, n: 8 })
    const frozen = object.segments[0].shards[0].host
    assert.ok(object.segments.every(s => s.shards[0].host === frozen))
    fake.host(frozen).delays.set('get', Infinity)
    fake.asked.length = 0
    const { stream } = await client.getStream('tail')
    assert.ok((await buffer(stream)).equals(bytes), 'the same bytes')
    const gets = fake.calls('get')
    assert.equal(gets.filter(a => a.host === frozen).length, 1, 'the frozen host is asked for the first segment only: then it is slow')
    for (const [i, segment] of object.segments.entries()) {
      const asked = gets.filter(a => segment.shards.some(s => s.root === a.args[1])).length
      assert.ok(asked <= 4 + 1, `segment ${i}: ${asked} shards asked for, K = 4`)
    }
    await client.stop()
  })

  it('asks a host that was only late first again once its late answer comes, rather than for the rest of the transfer last', { timeout: 20_000 }, async () => {
    const fake = await FakeHosts.create(4)
    const client = await clientOf(fake, new MemoryDatastore(), {}, { segmentSize: SEGMENT, hedgeMs: 60_000 })
    const bytes = randomBytes(4 * SEGMENT)
    const object = await client.put({ stream: (async function * () { yield bytes })(), size: bytes.byteLength }, { name: 'late', k: 2, n: 4 })
    const late = object.segments[0].shards[0].host
    // its first answer takes 300 ms (overdriven after about 50), then it is quick
    let answers = 0
    fake.host(late).delays.set('get', () => answers++ === 0 ? 300 : 0)
    fake.asked.length = 0
    const { stream } = await client.getStream('late')
    const chunks: Uint8Array[] = []
    for await (const chunk of stream) {
      chunks.push(chunk)
      if (chunks.length === 1) {
        // the reader is slow: the late answer comes before the last segments are asked for
        await sleep(600)
      }
    }
    assert.ok(Buffer.concat(chunks).equals(bytes), 'the same bytes')
    const last = object.segments[object.segments.length - 1].shards[0].root
    assert.ok(fake.calls('get').some(a => a.host === late && a.args[1] === last), 'the late host serves its data shard of the last segment again')
    await client.stop()
  })

  it('finds a host that sends wrong bytes by the segment failing to open, condemns it, and gets the object from the others', { timeout: 20_000 }, async () => {
    const fake = await FakeHosts.create(4)
    let liar = ''
    const client = await clientOf(fake, new MemoryDatastore(), {
      call: async (peer, request, sats) => {
        const response = await fake.call(peer, request, sats)
        // the liar answers get with random bytes of the right length, under a digest of its own
        return peer === liar && request.method === 'get' ? bodyOf(randomBytes(Number(request.args?.[3]))) : response
      }
    }, { segmentSize: SEGMENT })
    const bytes = randomBytes(3 * SEGMENT)
    const object = await client.put({ stream: (async function * () { yield bytes })(), size: bytes.byteLength }, { name: 'lied', k: 2, n: 4 })
    liar = object.segments[0].shards[1].host
    const liarContract = object.segments[0].shards[1].contract
    const { stream } = await client.getStream('lied')
    assert.ok((await buffer(stream)).equals(bytes), 'the same bytes')
    // in the record once the get has ended (in the background)
    let seen = await client.find('lied')
    for (let i = 0; i < 100 && seen.contracts[liarContract].lost == null; i++) {
      await sleep(20)
      seen = await client.find('lied')
    }
    assert.equal(seen.contracts[liarContract].lostFor, 'cheated')
    assert.match(seen.contracts[liarContract].lostReason ?? '', /sent bytes that do not match shard/)
    // caught at the first segment, and asked last from then on
    assert.equal(fake.calls('get').filter(a => a.host === liar).length, 1)
    await client.stop()
  })
})
