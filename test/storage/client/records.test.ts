import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openCloudSigner } from '../../../src/protocols/rpc/credentials.ts'
import { ObjectNotFoundError, StorageClient, type ContractRecord, type HostOffer, type StorageClientComponents, type StoredObject } from '../../../src/storage/client/storage-client.ts'
import type { CallRequest, CallResponse } from '../../../src/protocols/rpc/rpc-client.ts'
import { tempDir, waitFor } from '../../helpers/nodes.ts'

const DAY = 86_400_000
/** two hosts' PeerIds (ratings name them in bytes) */
const [HOST_A, HOST_B] = await Promise.all([generateKeyPair('Ed25519'), generateKeyPair('Ed25519')]).then(keys => keys.map(k => peerIdFromPrivateKey(k).toString()))

/** A storage client on a datastore of its own, with its hosts and calls stubbed */
async function clientOn (datastore: MemoryDatastore, components: Partial<StorageClientComponents> = {}, init = {}): Promise<StorageClient> {
  const key = await generateKeyPair('Ed25519')
  return new StorageClient({
    peerId: peerIdFromPrivateKey(key).toString(),
    signer: openCloudSigner(key),
    datastore,
    storageKey: () => new Uint8Array(32),
    hosts: async () => [],
    call: async () => { throw new Error('no host answers in this test') },
    ...components
  }, init)
}

/** A stored object of one shard on one host, written straight into the records */
async function stored (datastore: MemoryDatastore, name: string, id: string): Promise<StoredObject> {
  const contract: ContractRecord = {
    host: HOST_A, signed: '', start: Date.now(), end: Date.now() + 30 * DAY, maxBytes: 100, storagePrice: '0', uploadPrice: '0', downloadPrice: '0',
    rentPeriodMs: DAY, rentPaidPeriods: 1, revision: 1, shards: [['00'.repeat(32), 17]], spent: { upload: '0', download: '0', rent: '0' }
  }
  const object: StoredObject = {
    id, name, size: 1, sha256: '', createdAt: Date.now(), k: 1, n: 1, segmentSize: 4096,
    segments: [{ plainLength: 1, shardSize: 17, shards: [{ host: HOST_A, contract: `${id}${id}`, root: '00'.repeat(32) }] }],
    contracts: { [`${id}${id}`]: contract }
  }
  const batch = datastore.batch()
  batch.put(new Key(`/storage/objects/${id}`), new TextEncoder().encode(JSON.stringify(object)))
  batch.put(new Key(`/storage/names/${encodeURIComponent(name)}`), new TextEncoder().encode(JSON.stringify(id)))
  await batch.commit()
  return object
}

/** An `end` call's answer with no rating: the host ended the contract */
const ended = async (): Promise<CallResponse> => ({ body: { bytes: async () => new TextEncoder().encode('{}') } }) as unknown as CallResponse

/**
 * The storage client's records under crashes, interruptions and time, with
 * its components stubbed: a name held by a put that crashed, a removal cut
 * short, and the records of removed objects
 */
describe('storage records', () => {
  it('lets a name go that a put held when the node crashed before any host was asked', async () => {
    const dir = await tempDir()
    try {
      const file = join(dir.path, 'file.bin')
      await writeFile(file, 'x')
      const datastore = new MemoryDatastore()
      // the market never answers: the put holds its name and waits
      let answer!: (offers: HostOffer[]) => void
      let asked!: () => void
      const askedMarket = new Promise<void>(resolve => { asked = resolve })
      const crashed = await clientOn(datastore, { hosts: async () => { asked(); return new Promise(resolve => { answer = resolve }) } })
      const put = crashed.put(file, { name: 'held' })
      put.catch(() => {})
      await askedMarket
      await assert.rejects(crashed.find('held'), /"held" is being stored right now/)
      // the node is gone (kill -9): a new one starts on the same records
      const restarted = await clientOn(datastore)
      await restarted.cleanUploads()
      await assert.rejects(restarted.find('held'), (err: any) => err instanceof ObjectNotFoundError && /no stored object is named "held"/.test(err.message))
      answer([])
    } finally {
      await dir.cleanup()
    }
  })

  it('keeps an object whose removal is interrupted, with the hosts told already ended, and removes it when asked again', async () => {
    const datastore = new MemoryDatastore()
    const object = await stored(datastore, 'two', '22'.repeat(16))
    const second: ContractRecord = { ...object.contracts[`${object.id}${object.id}`], host: HOST_B }
    object.contracts['ee'.repeat(32)] = second
    object.segments[0].shards.push({ host: HOST_B, contract: 'ee'.repeat(32), root: '00'.repeat(32) })
    await datastore.put(new Key(`/storage/objects/${object.id}`), new TextEncoder().encode(JSON.stringify(object)))
    // host A answers; host B does not, until the caller gives up (Ctrl-C)
    const told: string[] = []
    const controller = new AbortController()
    const client = await clientOn(datastore, {
      call: async (peer: string, request: CallRequest) => {
        if (peer === HOST_A) {
          told.push(peer)
          return ended()
        }
        const waiting = new Promise<CallResponse>((resolve, reject) => { request.signal?.addEventListener('abort', () => { reject(request.signal?.reason) }) })
        controller.abort(new Error('the API client went away'))
        return waiting
      }
    })
    await assert.rejects(client.remove('two', controller.signal), /the API client went away/)
    const kept = await client.find('two')
    assert.ok(kept.contracts[`${object.id}${object.id}`].ended != null, 'the host told is ended')
    assert.equal(kept.contracts['ee'.repeat(32)].ended, undefined, 'the host not told is not')
    // asked again: only the host not told yet is asked
    const again = await clientOn(datastore, { call: async (peer: string) => { told.push(peer); return ended() } })
    await again.remove('two')
    assert.deepEqual(told, [HOST_A, HOST_B])
    await assert.rejects(again.find('two'), ObjectNotFoundError)
  })

  it('finds removed objects by name and id without reading them all, and forgets the oldest past keepRemoved', async () => {
    const datastore = new MemoryDatastore()
    const client = await clientOn(datastore, { call: ended }, { keepRemoved: 2 })
    const ids = ['a1', 'b2', 'c3', 'd4'].map(x => x.repeat(16))
    for (const [i, id] of ids.entries()) {
      await stored(datastore, i < 2 ? 'same' : `name-${i}`, id)
      // (removals in the same millisecond are ordered by id: these are in order)
      await client.remove(id)
    }
    // the two latest are kept, by id and by name; the two oldest are forgotten
    assert.equal((await client.findWithRemoved(ids[3])).id, ids[3])
    assert.equal((await client.findWithRemoved('name-2')).id, ids[2])
    for (const gone of [ids[0], ids[1], 'same']) {
      await assert.rejects(client.findWithRemoved(gone), ObjectNotFoundError, gone)
    }
    const kept = []
    for await (const { key } of datastore.query({ prefix: '/storage/removed/' })) {
      kept.push(key.toString())
    }
    assert.deepEqual(kept.sort(), [`/storage/removed/${ids[2]}`, `/storage/removed/${ids[3]}`])
    // an object stored again under a removed name is found as itself
    const current = await stored(datastore, 'name-2', 'e5'.repeat(16))
    assert.equal((await client.findWithRemoved('name-2')).id, current.id)
  })

  it('indexes the removed objects kept before removals were indexed, once, the latest of each name', async () => {
    const datastore = new MemoryDatastore()
    const old = (id: string, name: string, removedAt: number): Promise<unknown> => Promise.resolve(datastore.put(new Key(`/storage/removed/${id}`), new TextEncoder().encode(JSON.stringify({ id, name, removedAt, segments: [], contracts: {} }))))
    await old('f6'.repeat(16), 'kept', 1000)
    await old('a7'.repeat(16), 'kept', 2000)
    const client = await clientOn(datastore)
    await assert.rejects(client.findWithRemoved('kept'), ObjectNotFoundError)
    client.start()
    try {
      await waitFor(async () => datastore.has(new Key('/storage/removals/indexed')), 5_000, 'the index of the old records')
      assert.equal((await client.findWithRemoved('kept')).id, 'a7'.repeat(16))
    } finally {
      await client.stop()
    }
  })
})
