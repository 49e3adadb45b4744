import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { Records, type StoredObject } from '../../src/storage/client/records.ts'
import { ObjectBeingStoredError, VersionPrunedError } from '../../src/storage/errors.ts'
import { DEFAULT_CONFIG, validateConfig } from '../../src/node/config.ts'
import { versionsKeptForMs } from '../../src/services/storage/index.ts'
import { durationText } from '../../src/utils/duration.ts'

/**
 * The versions of a name in the client's records (issue 21, decision 3):
 * commits number them and supersede the current one, removals and prunes
 * move the name, and importObject merges records from the network index
 */

let counter = 0
function objectNamed (name: string, fields: Partial<StoredObject> = {}): StoredObject {
  const id = (++counter).toString(16).padStart(32, '0')
  return {
    id, name, size: 1, sha256: 'ab'.repeat(32), createdAt: 1_000 + counter, k: 1, n: 1, segmentSize: 4096,
    segments: [], contracts: {}, ...fields
  }
}

async function recordsOn (datastore = new MemoryDatastore()): Promise<Records> {
  const records = new Records(datastore, { keepRemoved: 1000 })
  await records.ready()
  return records
}

/** Store an object through a put's reservation and commit, as the uploader does */
async function put (records: Records, object: StoredObject): Promise<StoredObject> {
  await records.reserveName(object.name, { id: object.id, name: object.name, contracts: [] })
  await records.commitStored(object)
  records.forgetReservation(object.name)
  return object
}

describe('versions in the records', () => {
  it('numbers the versions of a name, supersedes the current one at commit, and keeps the name on it while a put runs', async () => {
    const datastore = new MemoryDatastore()
    const records = await recordsOn(datastore)
    const first = await put(records, objectNamed('a.txt'))
    assert.equal(first.version, 1)
    const second = objectNamed('a.txt')
    await records.reserveName('a.txt', { id: second.id, name: 'a.txt', contracts: [] })
    // during the put the name is the first version's, and a second put of it is refused
    assert.equal((await records.find('a.txt')).id, first.id)
    await assert.rejects(records.reserveName('a.txt', { id: 'ff'.repeat(16), name: 'a.txt', contracts: [] }), ObjectBeingStoredError)
    const { superseded } = await records.commitStored(second)
    records.forgetReservation('a.txt')
    assert.equal(second.version, 2)
    assert.equal(superseded?.id, first.id)
    assert.equal((await records.find('a.txt')).id, second.id)
    const versions = await records.versions('a.txt')
    assert.deepEqual(versions.map(v => [v.version, v.id, v.supersededAt != null]), [[1, first.id, true], [2, second.id, false]])
    assert.equal((await records.findVersion('a.txt', 1)).id, first.id)
    assert.equal(dec(await datastore.get(new Key('/storage/versions/a.txt/0000000002'))), second.id)
    // the hold is gone with the commit
    assert.equal(await datastore.has(new Key('/storage/reserving/a.txt')), false)
  })

  it('makes the highest version left current when the current one is removed, says a pruned one was pruned, and forgets the name with its last version', async () => {
    const records = await recordsOn()
    const v1 = await put(records, objectNamed('doc'))
    const v2 = await put(records, objectNamed('doc'))
    const v3 = await put(records, objectNamed('doc'))
    await records.commitRemoved(await records.find('doc'), 5_000)
    const current = await records.find('doc')
    assert.equal(current.id, v2.id)
    assert.equal(current.supersededAt, undefined)
    await assert.rejects(records.findVersion('doc', 3), (err: any) => err instanceof VersionPrunedError && /version 3 of doc was removed on 1970-01-01T00:00:05.000Z/.test(err.message))
    await records.commitRemoved(await records.findVersion('doc', 1), 6_000, { pruned: true })
    await assert.rejects(records.findVersion('doc', 1, '30d'), /version 1 of doc was pruned on 1970-01-01T00:00:06.000Z \(versions are kept 30d: storage.versionsKeptFor\)/)
    assert.deepEqual((await records.versions('doc')).map(v => v.id), [v2.id])
    // a new put goes on from the highest number used
    const v4 = await put(records, objectNamed('doc'))
    assert.equal(v4.version, 4)
    for (const v of await records.versions('doc')) {
      await records.commitRemoved(v, 7_000)
    }
    await assert.rejects(records.find('doc'), /no stored object is named "doc"/)
    assert.deepEqual(await records.versions('doc'), [])
    assert.equal((await put(records, objectNamed('doc'))).version, 1)
    void v1; void v3
  })

  it('tells the observer of every version record a commit or a removal changes (the object index keeps a note of each)', async () => {
    const records = await recordsOn()
    const seen: Array<[string, string, number | undefined, boolean]> = []
    records.onObjectChange(async (kind, object, write) => {
      await write()
      seen.push([kind, object.id, object.version, object.supersededAt != null])
    })
    const v1 = await put(records, objectNamed('watched'))
    const v2 = await put(records, objectNamed('watched'))
    assert.deepEqual(seen, [['stored', v1.id, 1, false], ['stored', v2.id, 2, false], ['saved', v1.id, 1, true]])
    seen.length = 0
    await records.commitRemoved(await records.find('watched'), 1_000)
    assert.deepEqual(seen, [['removed', v2.id, 2, false], ['saved', v1.id, 1, false]])
    seen.length = 0
    // an import that supersedes the local current version
    const newer = objectNamed('watched', { version: 5, createdAt: 1e12 })
    assert.equal(await records.importObject(newer), 'added')
    assert.deepEqual(seen, [['saved', v1.id, 1, true]])
  })

  it('keeps supersededAt when upkeep saves a copy of a version read before a put superseded it', async () => {
    const records = await recordsOn()
    const v1 = await put(records, objectNamed('raced'))
    const stale = await records.find('raced')
    await put(records, objectNamed('raced'))
    await records.saveObject({ ...stale, size: 2 })
    const after = await records.findVersion('raced', 1)
    assert.equal(after.size, 2)
    assert.notEqual(after.supersededAt, undefined)
    void v1
  })

  it('reads a record written before versions as version 1', async () => {
    const datastore = new MemoryDatastore()
    const old = objectNamed('old')
    await datastore.put(new Key(`/storage/objects/${old.id}`), enc({ ...old, contracts: undefined, contractIds: [] }))
    await datastore.put(new Key('/storage/names/old'), enc(old.id))
    const records = await recordsOn(datastore)
    assert.deepEqual((await records.versions('old')).map(v => [v.version, v.id]), [[1, old.id]])
    const next = await put(records, objectNamed('old'))
    assert.equal(next.version, 2)
    assert.equal((await records.findVersion('old', 1)).supersededAt != null, true)
  })

  it('imports an object from the network index: known ids change nothing (but a newer record), new ones take their version or the next free one', async () => {
    const records = await recordsOn()
    const mine = await put(records, objectNamed('f', { createdAt: 2_000 }))
    assert.equal(await records.importObject({ ...mine, size: 99 }), 'known')
    assert.equal((await records.find('f')).size, 1)
    assert.equal(await records.importObject({ ...mine, size: 99, updatedAt: 10 }), 'known')
    assert.equal((await records.find('f')).size, 99)

    // another machine's version 2, newer: it becomes current
    const theirs2 = objectNamed('f', { version: 2, createdAt: 3_000 })
    assert.equal(await records.importObject(theirs2), 'added')
    assert.equal((await records.find('f')).id, theirs2.id)
    const merged = Date.now()
    assert.ok(((await records.findVersion('f', 1)).supersededAt ?? 0) >= merged - 1000, 'superseded from the merge on: the prune counts from now')

    // two machines both wrote version 2: the import gets 3; it is older, so it is the superseded one
    const clash = objectNamed('f', { version: 2, createdAt: 2_500 })
    assert.equal(await records.importObject(clash), 'added')
    const after = await records.versions('f')
    assert.deepEqual(after.map(v => [v.version, v.id]), [[1, mine.id], [2, theirs2.id], [3, clash.id]])
    assert.ok((after[2].supersededAt ?? 0) >= merged - 1000)
    assert.equal(after[1].supersededAt, undefined)
    assert.equal((await records.find('f')).id, theirs2.id)

    // a version that is already superseded at the other machine stays so, and the name stays
    const older = objectNamed('f', { version: 7, createdAt: 100, supersededAt: 200 })
    assert.equal(await records.importObject(older), 'added')
    assert.equal((await records.find('f')).id, theirs2.id)

    // a removed object is not brought back
    const gone = await put(records, objectNamed('g'))
    await records.commitRemoved(gone, 9_000)
    assert.equal(await records.importObject(gone), 'known')
    await assert.rejects(records.find('g'), /no stored object/)

    // a name not known here at all
    const fresh = objectNamed('dir/new', { version: 4 })
    assert.equal(await records.importObject(fresh), 'added')
    assert.equal((await records.find('dir/new')).id, fresh.id)
    assert.equal((await records.findVersion('dir/new', 4)).id, fresh.id)
  })
})

describe('storage.versionsKeptFor in config.json', () => {
  it('defaults to 30 days, takes "0" and periods, and refuses what is not one', () => {
    assert.equal((DEFAULT_CONFIG as any).storage.versionsKeptFor, '30d')
    assert.equal(versionsKeptForMs('30d'), 30 * 86_400_000)
    assert.equal(versionsKeptForMs('0'), 0)
    assert.equal(versionsKeptForMs('90min'), 5_400_000)
    assert.equal((validateConfig({ storage: { versionsKeptFor: '180d' } }) as any).storage.versionsKeptFor, '180d')
    assert.throws(() => validateConfig({ storage: { versionsKeptFor: '1m' } }), /storage\.versionsKeptFor "1m" could be minutes or months/)
    assert.throws(() => validateConfig({ storage: { versionsKeptFor: 30 } }), /storage\.versionsKeptFor takes a period such as "30d", "12h" or "0", not 30/)
    assert.equal(durationText(30 * 86_400_000), '30d')
    assert.equal(durationText(0), '0')
  })
})

function enc (value: unknown): Uint8Array { return new TextEncoder().encode(JSON.stringify(value)) }
function dec (bytes: Uint8Array): unknown { return JSON.parse(new TextDecoder().decode(bytes)) }
