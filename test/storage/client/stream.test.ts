import { buffer } from 'node:stream/consumers'
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { MemoryDatastore } from 'datastore-core'
import { StreamSizeError } from '../../../src/storage/errors.ts'
import { clientOf, FakeHosts } from './fake-hosts.ts'

/** `bytes` as a stream of uneven chunks, as a socket or an HTTP body would give them */
async function * chunked (bytes: Uint8Array, sizes = [1, 1000, 65_536, 7]): AsyncGenerator<Uint8Array> {
  let offset = 0
  for (let i = 0; offset < bytes.byteLength; i++) {
    const size = sizes[i % sizes.length]
    yield bytes.subarray(offset, offset + size)
    offset += size
  }
}

/**
 * put from a byte stream and get as one (DESIGN.md: "the CLI streams a
 * file, a gateway streams an HTTP body"), on fake hosts without a network
 */
describe('storage client streams', () => {
  it('puts an in-memory stream with no file and reads the get stream back byte for byte, segment by segment', async () => {
    const fake = await FakeHosts.create(4)
    const client = await clientOf(fake, new MemoryDatastore(), {}, { segmentSize: 64 * 1024 })
    // three segments and a bit: the stream's chunks do not fall on segment bounds
    const bytes = randomBytes(3 * 64 * 1024 + 1234)
    const object = await client.put({ stream: chunked(bytes), size: bytes.byteLength }, { name: 'streamed', k: 2, n: 4 })
    assert.equal(object.size, bytes.byteLength)
    assert.equal(object.segments.length, 4)
    const { object: found, stream } = await client.getStream('streamed')
    assert.equal(found.id, object.id)
    const chunks: Uint8Array[] = []
    for await (const chunk of stream) {
      chunks.push(chunk)
    }
    assert.deepEqual(chunks.map(c => c.byteLength), [65_536, 65_536, 65_536, 1234], 'one chunk per segment, in order')
    assert.ok(Buffer.concat(chunks).equals(bytes), 'the same bytes')
  })

  it('refuses a stream shorter than the size it declared, with a clear error, and stores nothing', async () => {
    const fake = await FakeHosts.create(4)
    const client = await clientOf(fake, new MemoryDatastore(), {}, { segmentSize: 64 * 1024 })
    const bytes = randomBytes(100_000)
    await assert.rejects(client.put({ stream: chunked(bytes), size: 150_000 }, { name: 'short', k: 2, n: 4 }),
      (err: any) => err instanceof StreamSizeError && /the stream ended after 100000 bytes of the 150000 it declared; nothing is stored/.test(err.message))
    assert.deepEqual(await client.list(), [], 'no object is recorded')
    await assert.rejects(client.find('short'), /no stored object is named "short"/)
    // the name is free again; the contracts it formed hold nothing any object names, and are ended
    await client.cleanUploads()
    assert.deepEqual(await client.collectGarbage(), { deleted: 0, ended: 4 })
    assert.ok(fake.hosts.every(h => h.contracts.size === 0), 'no host keeps a contract')
    const again = await client.put({ stream: chunked(bytes), size: bytes.byteLength }, { name: 'short', k: 2, n: 4 })
    assert.ok((await buffer((await client.getStream(again.id)).stream)).equals(bytes))
  })

  it('refuses a stream longer than the size it declared, and one with no name', async () => {
    const fake = await FakeHosts.create(4)
    const client = await clientOf(fake, new MemoryDatastore(), {}, { segmentSize: 64 * 1024 })
    const bytes = randomBytes(100_000)
    await assert.rejects(client.put({ stream: chunked(bytes), size: 99_999 }, { name: 'long', k: 2, n: 4 }),
      (err: any) => err instanceof StreamSizeError && /went on past the 99999 bytes it declared/.test(err.message))
    assert.deepEqual(await client.list(), [])
    await assert.rejects(client.put({ stream: chunked(bytes), size: bytes.byteLength }), /a stream has no file name: give the object a name/)
  })
})
