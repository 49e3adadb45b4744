import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { MemoryDatastore } from 'datastore-core'
import { MethodUnsupportedError } from '../../src/protocols/rpc/errors.ts'
import { Records, type ContractRecord, type StoredObject } from '../../src/storage/client/records.ts'
import { StorageSession } from '../../src/storage/client/session.ts'
import { IndexNotes } from '../../src/storage/client/recovery/index-notes.ts'
import { IndexWriteError } from '../../src/storage/errors.ts'
import { indexKeyFromSeed } from '../../src/storage/protocol/index-notes.ts'
import type { CallRequest, CallResponse } from '../../src/protocols/rpc/rpc-client.ts'

/**
 * The client's upkeep of the object index (PROTOCOL.md 8g, "Keeping the
 * index"), over hosts stubbed as a note map each: a put's note is at its
 * hosts before the commit, a crash at any point leaves the old note or the
 * new one and a mark the next flush finishes, and an older host keeps none.
 */

const DAY = 86_400_000
const key = indexKeyFromSeed(new Uint8Array(64).fill(7))

/** Hosts that keep notes in memory; `down` ones fail, `old` ones have no such method */
function fakeHosts (): { notes: Map<string, Map<string, Uint8Array>>, down: Set<string>, old: Set<string>, session: StorageSession } {
  const notes = new Map<string, Map<string, Uint8Array>>()
  const down = new Set<string>()
  const old = new Set<string>()
  const answer = (value: unknown): CallResponse => ({ body: { bytes: async () => new TextEncoder().encode(JSON.stringify(value)) } }) as unknown as CallResponse
  const session = new StorageSession(async (host: string, request: CallRequest): Promise<CallResponse> => {
    if (down.has(host)) {
      throw new Error(`${host} cannot be reached`)
    }
    if (old.has(host)) {
      throw new MethodUnsupportedError(`the storage service has no method "${request.method}"`)
    }
    const at = notes.get(host) ?? new Map<string, Uint8Array>()
    notes.set(host, at)
    const [id] = request.args ?? []
    switch (request.method) {
      case 'note-put': {
        const chunks: Uint8Array[] = []
        for await (const c of request.body!.open()) {
          chunks.push(c)
        }
        at.set(id, Buffer.concat(chunks))
        return answer({ id, bytes: 0 })
      }
      case 'note-delete':
        return answer({ id, deleted: at.delete(id) })
      case 'note-list':
        return answer({ notes: [...at].sort().filter(([n]) => id == null || n > id).map(([n, note]) => ({ id: n, note: Buffer.from(note).toString('base64') })), more: false })
      default:
        throw new Error(`no ${request.method} here`)
    }
  })
  return { notes, down, old, session }
}

function contractOn (host: string): ContractRecord {
  return { host, signed: '', start: Date.now(), end: Date.now() + 30 * DAY, maxBytes: 100, storagePrice: '0', uploadPrice: '0', downloadPrice: '0', rentPeriodMs: DAY, rentPaidPeriods: 1, revision: 1, shards: [], spent: { upload: '0', download: '0', rent: '0' } }
}

const contractIdOf = (host: string): string => createHash('sha256').update(host).digest('hex')

/** An object with one shard on each of `hosts`, under the one contract with each (in the records' table) */
function objectOn (records: Records, id: string, hosts: string[]): StoredObject {
  const contracts = Object.fromEntries(hosts.map(h => [contractIdOf(h), records.contracts.adopt(contractIdOf(h), contractOn(h))]))
  return {
    id, name: `file-${id.slice(0, 4)}`, size: 1, sha256: '', createdAt: Date.now(), k: 1, n: hosts.length, segmentSize: 4096,
    segments: [{ plainLength: 1, shardSize: 17, shards: Object.entries(contracts).map(([cid, c], i) => ({ host: c.host, contract: cid, root: String(i).repeat(64).slice(0, 64) })) }],
    contracts
  }
}

async function setUp (): Promise<{ records: Records, index: IndexNotes, hosts: ReturnType<typeof fakeHosts>, datastore: MemoryDatastore }> {
  const datastore = new MemoryDatastore()
  const records = new Records(datastore, { keepRemoved: 10 })
  const hosts = fakeHosts()
  const index = new IndexNotes({ datastore, records, session: hosts.session, indexKey: () => key })
  return { records, index, hosts, datastore }
}

const ID = 'ab'.repeat(16)

describe('the object index kept at the hosts', () => {
  it('puts a put\'s note at every host before the commit, and the commit fails when no host could take it', async () => {
    const { records, index, hosts } = await setUp()
    const noteId = index.noteId(ID)
    let seenAtCommit = 0
    const object = objectOn(records, ID, ['h1', 'h2', 'h3'])
    // the note is at the hosts when the object's write runs
    records.onObjectChange(async (kind, o, write) => {
      await (index as any).observe(kind, o, async () => {
        seenAtCommit = ['h1', 'h2', 'h3'].filter(h => hosts.notes.get(h)?.has(noteId) === true).length
        await write()
      })
    })
    hosts.down.add('h3')
    await records.commitStored(object)
    assert.equal(seenAtCommit, 2, 'two of three hosts held the note before the object was committed')
    const opened = index.open(noteId, hosts.notes.get('h1')!.get(noteId)!)
    assert.deepEqual([opened.id, opened.name, opened.contractIds.length, typeof opened.updatedAt], [ID, object.name, 3, 'number'])
    assert.equal((opened as any).contracts, undefined, 'the note names its contracts, it does not carry them')
    // the host that was down gets it at the next flush
    hosts.down.clear()
    assert.equal(await index.flush(new AbortController().signal), 1)
    assert.ok(hosts.notes.get('h3')!.has(noteId))
    assert.equal(await index.flush(new AbortController().signal), 0, 'nothing is left marked')

    // every host down: the put is not committed
    const other = objectOn(records, 'cd'.repeat(16), ['h1', 'h2'])
    hosts.down.add('h1').add('h2')
    await assert.rejects(records.commitStored(other), IndexWriteError)
    await assert.rejects(records.find(other.id))
  })

  it('leaves a crash between the note and the commit to the next flush, which deletes the note of an object never committed', async () => {
    const { records, index, hosts } = await setUp()
    const object = objectOn(records, ID, ['h1', 'h2'])
    const noteId = index.noteId(ID)
    // kill -9 after the notes were put, before the datastore's batch: the write never happens
    records.onObjectChange(async (kind, o) => (index as any).observe(kind, o, async () => { throw new Error('killed') }))
    await assert.rejects(records.commitStored(object), /killed/)
    assert.ok(hosts.notes.get('h1')!.has(noteId) && hosts.notes.get('h2')!.has(noteId))
    // the next start: a new process, the same datastore
    const again = new IndexNotes({ datastore: (index as any).components.datastore, records: new Records((index as any).components.datastore, { keepRemoved: 10 }), session: hosts.session, indexKey: () => key })
    assert.equal(await again.flush(new AbortController().signal), 1)
    assert.equal(hosts.notes.get('h1')!.has(noteId), false)
    assert.equal(hosts.notes.get('h2')!.has(noteId), false)
  })

  it('rewrites a changed record\'s note at its new hosts and deletes it where it no longer belongs; a removal deletes it', async () => {
    const { records, index, hosts } = await setUp()
    const object = objectOn(records, ID, ['h1', 'h2'])
    const noteId = index.noteId(ID)
    await records.commitStored(object)
    const before = Buffer.from(hosts.notes.get('h1')!.get(noteId)!)
    // a repair moves the shard off h2 to h3
    const moved: StoredObject = { ...object, contracts: { ...object.contracts }, segments: structuredClone(object.segments) }
    delete moved.contracts[contractIdOf('h2')]
    moved.contracts[contractIdOf('h3')] = records.contracts.adopt(contractIdOf('h3'), contractOn('h3'))
    moved.segments[0].shards[1] = { host: 'h3', contract: contractIdOf('h3'), root: '9'.repeat(64) }
    await records.saveObject(moved)
    assert.ok(Buffer.from(hosts.notes.get('h1')!.get(noteId)!).equals(before), 'the old note stays until the flush')
    assert.equal(await index.flush(new AbortController().signal), 1)
    assert.equal(hosts.notes.get('h2')!.has(noteId), false, 'h2 holds no shard of it now')
    assert.deepEqual(index.open(noteId, hosts.notes.get('h3')!.get(noteId)!).segments[0].shards[1].host, 'h3')
    assert.deepEqual(index.open(noteId, hosts.notes.get('h1')!.get(noteId)!).segments[0].shards[1].host, 'h3', 'rewritten where it stays')
    // a save that changes nothing the note carries marks nothing, nor one that only marks a shard lost
    await records.saveObject(moved)
    assert.equal(await index.flush(new AbortController().signal), 0)
    const marked: StoredObject = { ...moved, segments: structuredClone(moved.segments) }
    marked.segments[0].shards[0].lost = Date.now()
    await records.saveObject(marked)
    assert.equal(await index.flush(new AbortController().signal), 0)
    // removed: deleted at once where the hosts answer, at the next flush elsewhere
    hosts.down.add('h3')
    await records.commitRemoved(moved, Date.now())
    assert.equal(hosts.notes.get('h1')!.has(noteId), false)
    assert.ok(hosts.notes.get('h3')!.has(noteId))
    hosts.down.clear()
    assert.equal(await index.flush(new AbortController().signal), 1)
    assert.equal(hosts.notes.get('h3')!.has(noteId), false)
  })

  it('commits without an index when no host keeps one (older hosts), and marks objects stored before the index', async () => {
    const { records, index, hosts, datastore } = await setUp()
    hosts.old.add('h1')
    await records.commitStored(objectOn(records, ID, ['h1']))
    assert.equal((await records.find(ID)).id, ID)
    // and is not asked again at every save
    await records.saveObject(await records.find(ID))
    assert.equal(await index.flush(new AbortController().signal), 0)
    // an object from before the index (written by records without its observer): no note anywhere, no mark
    const plain = new Records(datastore, { keepRemoved: 10 })
    const early = objectOn(records, 'ef'.repeat(16), ['h2'])
    await plain.saveObject(early)
    assert.equal(await index.flush(new AbortController().signal), 0)
    assert.equal(await index.backfill(), 1)
    assert.equal(await index.flush(new AbortController().signal), 1)
    assert.ok(hosts.notes.get('h2')!.has(index.noteId(early.id)))
  })

  it('splits a large record into part notes named by their content: rewritten beside the old, the stale ones deleted, all of them on removal', async () => {
    const { records, index, hosts } = await setUp()
    const object = objectOn(records, ID, ['h1', 'h2'])
    // 1,000 segments of two shards: several times what one note carries
    object.segments = Array.from({ length: 1000 }, (_, i) => ({ plainLength: 4096, shardSize: 17, shards: ['h1', 'h2'].map(h => ({ host: h, contract: contractIdOf(h), root: createHash('sha256').update(`${h}${i}`).digest('hex') })) }))
    await records.commitStored(object)
    const at = hosts.notes.get('h1')!
    assert.ok(at.size >= 3, `the note and its parts: ${at.size}`)
    assert.ok([...at.values()].every(n => n.byteLength < 256 * 1024), 'each under the host\'s limit')
    const read = await index.readHost('h1', new AbortController().signal)
    assert.deepEqual([read.objects.length, read.unopened, read.incomplete], [1, [], []])
    assert.deepEqual(read.objects[0].object.segments, object.segments)
    // a repair changes the last segment's shard: only its part changes
    const before = new Set(at.keys())
    const changed: StoredObject = { ...object, segments: structuredClone(object.segments) }
    changed.segments[999].shards[0].root = 'f'.repeat(64)
    await records.saveObject(changed)
    assert.equal(await index.flush(new AbortController().signal), 1)
    const after = new Set(at.keys())
    assert.equal(after.size, before.size, 'the stale part is deleted')
    assert.equal([...after].filter(id => !before.has(id)).length, 1, 'one new part')
    assert.equal((await index.readHost('h2', new AbortController().signal)).objects[0].object.segments[999].shards[0].root, 'f'.repeat(64))
    // a part missing: the object is incomplete at that host
    const onH2 = hosts.notes.get('h2')!
    onH2.delete([...onH2.keys()].find(id => id !== index.noteId(ID))!)
    assert.deepEqual((await index.readHost('h2', new AbortController().signal)).incomplete, [ID])
    await records.commitRemoved(changed, Date.now())
    assert.equal(at.size, 0, 'the note and every part go')
  })
})
