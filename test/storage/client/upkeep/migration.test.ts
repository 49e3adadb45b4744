import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openCloudSigner } from '../../../../src/protocols/rpc/credentials.ts'
import { StorageClient, type ContractRecord } from '../../../../src/storage/client/storage-client.ts'
import { markMigrations, marketView, migrationReason } from '../../../../src/storage/client/upkeep/migration.ts'
import { contractRecord } from '../fake-hosts.ts'
import type { StoredObject } from '../../../../src/storage/client/storage-client.ts'

const POLICY = { migrateAbovePrice: 3, minTrust: 0, trustDrop: 0.25, trustGraceMs: 3600_000 }

/** Why the upkeep moves shards off a host that did nothing wrong, and when */
describe('storage upkeep: migration', () => {
  it('moves off a price above 3x the median, and not at 3x', () => {
    assert.match(migrationReason({}, { price: 3001n, median: 1000n }, POLICY) ?? '', /its price rose to .* over 3x the market median/)
    assert.equal(migrationReason({}, { price: 3000n, median: 1000n }, POLICY), undefined)
    // a free market has no median to rise above
    assert.equal(migrationReason({}, { price: 5n, median: 0n }, POLICY), undefined)
  })

  it('moves off a trust that fell under a quarter of what it was, only for hosts trusted then', () => {
    assert.match(migrationReason({ trustAtStart: 2 }, { trust: 0.49 }, POLICY) ?? '', /trust score fell to 0\.49 from 2\.00/)
    assert.equal(migrationReason({ trustAtStart: 2 }, { trust: 0.5 }, POLICY), undefined)
    // a host nobody trusted yet (under TRUSTED_SCORE) cannot fall
    assert.equal(migrationReason({ trustAtStart: 0.4 }, { trust: 0 }, POLICY), undefined)
    // minTrust is off at 0, on when set
    assert.equal(migrationReason({}, { trust: 0.1 }, POLICY), undefined)
    assert.match(migrationReason({}, { trust: 0.1 }, { ...POLICY, minTrust: 0.2 }) ?? '', /under 0\.2/)
  })

  it('marks a price rise at once, and a trust drop only once it has lasted the grace', () => {
    const now = Date.now()
    const object = {
      id: 'o', name: 'f', segments: [],
      contracts: { c1: contractRecord('pricey', { trustAtStart: 1 }), c2: contractRecord('falling', { trustAtStart: 2 }), c3: contractRecord('fine', { trustAtStart: 2 }) }
    } as unknown as StoredObject
    let trust = 0.1
    const market = marketView([{ peer: 'pricey', storage: 10_000n, upload: 0n, download: 0n }, { peer: 'falling', storage: 1000n, upload: 0n, download: 0n }, { peer: 'fine', storage: 1000n, upload: 0n, download: 0n }], peer => peer === 'falling' ? trust : 2)
    assert.equal(market.median, 1000n)
    assert.deepEqual(markMigrations(object, market, POLICY, now), { migrate: true, changed: true })
    assert.match(object.contracts.c1.migrating ?? '', /price rose/)
    assert.equal(object.contracts.c2.migrating, undefined, 'within the grace')
    assert.equal(object.contracts.c2.trustLowSince, now)
    assert.equal(markMigrations(object, market, POLICY, now + POLICY.trustGraceMs - 1).migrate, false)
    // back up for a moment: forgotten, and the grace starts again
    trust = 2
    assert.deepEqual(markMigrations(object, market, POLICY, now + POLICY.trustGraceMs), { migrate: false, changed: true })
    assert.equal(object.contracts.c2.trustLowSince, undefined)
    trust = 0.1
    markMigrations(object, market, POLICY, now + 2 * POLICY.trustGraceMs)
    assert.equal(markMigrations(object, market, POLICY, now + 3 * POLICY.trustGraceMs - 1).migrate, false)
    assert.equal(markMigrations(object, market, POLICY, now + 3 * POLICY.trustGraceMs).migrate, true)
    assert.match(object.contracts.c2.migrating ?? '', /trust score fell to 0\.10 from 2\.00/)
    assert.equal(object.contracts.c3.migrating, undefined)
  })

  /*
   * through the client's repair check, with its components stubbed: a
   * score that falls only for a moment (a restarted node computes every
   * score as 0 until its first computation is done) moves nothing
   */
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
