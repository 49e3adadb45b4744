import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import { NotEnoughHostsError } from '../../../src/storage/errors.ts'
import { clientOf, FakeHosts } from './fake-hosts.ts'

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
})
