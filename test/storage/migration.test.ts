import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openCloudSigner } from '../../src/protocols/rpc/credentials.ts'
import { StorageClient, type ContractRecord, type StoredObject } from '../../src/storage/client/storage-client.ts'

/**
 * Migration on a trust fall, with the storage client's components stubbed:
 * a score that falls only for a moment (a restarted node computes every
 * score as 0 until its first computation is done) moves nothing.
 */
describe('storage migration on a trust fall', () => {
  it('moves off a host only once its trust has stayed low for trustGraceMs', async () => {
    const key = await generateKeyPair('Ed25519')
    const datastore = new MemoryDatastore()
    let trust = 2
    const client = new StorageClient({
      peerId: peerIdFromPrivateKey(key).toString(),
      signer: openCloudSigner(key),
      datastore,
      storageKey: () => new Uint8Array(32),
      hosts: async () => [{ peer: 'host-a', storage: 1000n, upload: 0n, download: 0n }],
      trust: () => trust,
      call: async () => { throw new Error('no host answers in this test') }
    }, { trustGraceMs: 3600_000 })
    const contract: ContractRecord = {
      host: 'host-a', signed: '', start: Date.now(), end: Date.now() + 86_400_000, maxBytes: 100, storagePrice: '1000', uploadPrice: '0', downloadPrice: '0',
      rentPeriodMs: 86_400_000, rentPaidPeriods: 1, revision: 1, shards: [['00'.repeat(32), 17]], spent: { upload: '0', download: '0', rent: '0' }, trustAtStart: 2
    }
    const object: StoredObject = {
      id: '11'.repeat(16), name: 'f', size: 1, sha256: '', createdAt: Date.now(), k: 1, n: 1, segmentSize: 4096,
      segments: [{ plainLength: 1, shardSize: 17, shards: [{ host: 'host-a', contract: 'c1', root: '00'.repeat(32) }] }],
      contracts: { c1: contract }
    }
    await datastore.put(new Key(`/storage/objects/${object.id}`), new TextEncoder().encode(JSON.stringify(object)))
    const record = async (): Promise<ContractRecord> => (await client.find(object.id)).contracts.c1

    // each check at its time, an hour's grace
    const start = Date.now()
    const MINUTE = 60_000
    await client.repairAll(start)
    assert.equal((await record()).migrating, undefined)
    // a moment at 0 (a restart): noted, nothing moves, and forgotten once the score is back
    trust = 0
    await client.repairAll(start + MINUTE)
    assert.equal((await record()).migrating, undefined)
    assert.equal((await record()).trustLowSince, start + MINUTE)
    trust = 2
    await client.repairAll(start + 2 * MINUTE)
    assert.equal((await record()).trustLowSince, undefined)
    // low for longer than the grace: its shards are to move
    trust = 0
    await client.repairAll(start + 3 * MINUTE)
    await client.repairAll(start + 62 * MINUTE)
    assert.equal((await record()).migrating, undefined, 'low for 59 minutes: within the grace')
    await client.repairAll(start + 63 * MINUTE)
    assert.match((await record()).migrating ?? '', /trust score fell to 0\.00 from 2\.00/)
  })
})
