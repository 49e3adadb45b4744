import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Key } from 'interface-datastore'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { ObjectUnchangedError, VersionPrunedError } from '../../src/storage/client/storage-client.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import type { CallRequest } from '../../src/protocols/rpc/rpc-client.ts'

const KIB = 1024
const HOSTS = 3

/**
 * Versions of a name (issue 21) on real nodes over TCP: free hosts, a
 * client storing 1-of-2. A second put of a name keeps the first, which
 * stays the name's until the second commits; old versions are fetched,
 * removed one at a time, and pruned past versionsKeptFor.
 */
describe('storage versions: a name put again keeps the version before, on real nodes over TCP', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  const hosts: OpenCloudNode[] = []
  let client: OpenCloudNode
  let files = 0

  const fileOf = async (data: Buffer): Promise<string> => {
    const path = join(dir.path, `in-${files++}.bin`)
    await writeFile(path, data)
    return path
  }
  const fetched = async (name: string, version?: number): Promise<Buffer> => {
    const out = join(dir.path, `out-${files++}.bin`)
    await client.storage.get(name, out, { version })
    return readFile(out)
  }

  before(async () => {
    dir = await tempDir()
    for (let i = 0; i < HOSTS; i++) {
      hosts[i] = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: testConfig(), bootstrap: i === 0 ? [] : [addrOf(hosts[0])] })
      await hosts[i].start()
    }
    client = await OpenCloudNode.create({
      dataDir: join(dir.path, 'client'),
      config: testConfig(),
      bootstrap: [addrOf(hosts[0])],
      // upkeep only when a test asks for it; versions kept 1 s (pruned by pruneVersions with a clock moved on)
      storage: { segmentSize: 16 * KIB, rentCheckMs: 86_400_000, versionsKeptForMs: 1000 }
    })
    await client.start()
    for (const host of hosts) {
      await connect(client, host)
    }
    await waitFor(async () => (await client.storageHosts()).length === HOSTS, 60_000, 'storage offers from every host')
  })

  after(async () => {
    await client?.stop()
    for (const host of hosts) {
      await host?.stop()
    }
    await dir?.cleanup()
  })

  it('keeps version 1 when the name is put again; the name is version 1 at every moment until version 2 commits', { timeout: 60_000 }, async () => {
    const first = randomBytes(40 * KIB)
    const second = randomBytes(50 * KIB)
    const v1 = await client.storage.put(await fileOf(first), { name: 'doc.bin', k: 1, n: 2 })
    assert.equal(v1.version, 1)

    // the second put's shards are held back at the hosts' door until the test has looked
    const components = (client.storage as any).components
    const real = components.call
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    let putStarted!: () => void
    const started = new Promise<void>(resolve => { putStarted = resolve })
    components.call = async (peer: string, request: CallRequest, sats: bigint) => {
      if (request.method === 'put') {
        putStarted()
        await held
      }
      return real(peer, request, sats)
    }
    // the name is looked up the whole time the put runs, and is never missing
    let looking = true
    const seen = new Set<number>()
    const lookups = (async () => {
      while (looking) {
        seen.add((await client.storage.find('doc.bin')).version ?? 1)
        await new Promise(resolve => setImmediate(resolve))
      }
    })()
    try {
      const putting = client.storage.put(await fileOf(second), { name: 'doc.bin', k: 1, n: 2 })
      await started
      // mid-put: the name is version 1, and a get of it returns version 1's bytes
      assert.equal((await client.storage.find('doc.bin')).id, v1.id)
      assert.deepEqual(await fetched('doc.bin'), first)
      assert.deepEqual((await client.storage.versions('doc.bin')).map(v => v.version), [1])
      release()
      const v2 = await putting
      assert.equal(v2.version, 2)
      await waitFor(() => seen.has(2), 5_000, 'a lookup after the commit')
      looking = false
      await lookups
    } finally {
      components.call = real
      release()
      looking = false
    }
    assert.deepEqual([...seen].sort(), [1, 2], 'the name was version 1, then version 2, and never missing')
    assert.deepEqual(await fetched('doc.bin'), second)
    assert.deepEqual(await fetched('doc.bin', 1), first, 'version 1 byte-identical to the first file')
    const versions = await client.storage.versions('doc.bin')
    assert.deepEqual(versions.map(v => [v.version, v.supersededAt != null]), [[1, true], [2, false]])
    // ls shows the current version with its count
    const current = (await client.storage.current()).find(c => c.object.name === 'doc.bin')
    assert.equal(current?.object.version, 2)
    assert.equal(current?.versions, 2)
  })

  it('stores nothing for a file identical to the current version, unless forced', { timeout: 60_000 }, async () => {
    const data = randomBytes(10 * KIB)
    const path = await fileOf(data)
    const v1 = await client.storage.put(path, { name: 'same.bin', k: 1, n: 2 })
    await assert.rejects(client.storage.put(path, { name: 'same.bin', k: 1, n: 2 }), (err: any) => {
      assert.ok(err instanceof ObjectUnchangedError, err.message)
      assert.match(err.message, /same\.bin is unchanged \(the same 10 KiB and SHA-256 as version 1, stored .*\): nothing stored \(--force stores it again\)/)
      assert.equal((err.object as any).id, v1.id)
      return true
    })
    assert.equal((await client.storage.versions('same.bin')).length, 1)
    const forced = await client.storage.put(path, { name: 'same.bin', k: 1, n: 2, force: true })
    assert.equal(forced.version, 2)
  })

  it('removes one version with --version (the current one: the highest left is current), and every version by name', { timeout: 60_000 }, async () => {
    const datas = [randomBytes(5 * KIB), randomBytes(6 * KIB), randomBytes(7 * KIB)]
    for (const data of datas) {
      await client.storage.put(await fileOf(data), { name: 'three.bin', k: 1, n: 2 })
    }
    await client.storage.remove('three.bin', undefined, { version: 2 })
    assert.deepEqual((await client.storage.versions('three.bin')).map(v => v.version), [1, 3])
    await assert.rejects(client.storage.get('three.bin', join(dir.path, 'never'), { version: 2 }), (err: any) => err instanceof VersionPrunedError && /version 2 of three\.bin was removed on /.test(err.message))
    // the current one removed: version 1 is current again
    await client.storage.remove('three.bin', undefined, { version: 3 })
    assert.equal((await client.storage.find('three.bin')).version, 1)
    assert.deepEqual(await fetched('three.bin'), datas[0])
    // a name: every version
    await client.storage.put(await fileOf(randomBytes(1000)), { name: 'three.bin', k: 1, n: 2 })
    const { versions } = await client.storage.remove('three.bin')
    assert.deepEqual(versions.map(v => v.version), [1, 4])
    assert.deepEqual(await client.storage.versions('three.bin'), [])
    assert.equal((await client.storage.list()).filter(o => o.name === 'three.bin').length, 0)
  })

  it('prunes versions superseded longer than versionsKeptFor, and says so on a get of one', { timeout: 60_000 }, async () => {
    const old = randomBytes(3 * KIB)
    const next = randomBytes(4 * KIB)
    await client.storage.put(await fileOf(old), { name: 'pruned.bin', k: 1, n: 2 })
    const v2 = await client.storage.put(await fileOf(next), { name: 'pruned.bin', k: 1, n: 2 })
    // not yet: superseded under a second ago
    assert.equal(await client.storage.pruneVersions(Date.now() - 5000), 0)
    // a version whose supersededAt was lost (a save racing the commit) is superseded again at the next check, from then
    const records = (client.storage as any).records
    const raw = JSON.parse(new TextDecoder().decode(await records.datastore.get(new Key(`/storage/objects/${(await client.storage.findVersion('pruned.bin', 1)).id}`))))
    delete raw.supersededAt
    await records.datastore.put(new Key(`/storage/objects/${raw.id as string}`), new TextEncoder().encode(JSON.stringify(raw)))
    assert.equal((await client.storage.findVersion('pruned.bin', 1)).supersededAt, undefined)
    const healedAt = Date.now() - 5000
    assert.equal(await client.storage.pruneVersions(healedAt), 0)
    assert.equal((await client.storage.findVersion('pruned.bin', 1)).supersededAt, healedAt)
    assert.equal((await client.storage.versions('pruned.bin')).length, 2)
    const v1 = await client.storage.findVersion('pruned.bin', 1)
    const shards = v1.segments.flatMap(s => s.shards)
    assert.ok(await client.storage.pruneVersions(Date.now() + 2000) >= 1)
    assert.deepEqual((await client.storage.versions('pruned.bin')).map(v => v.id), [v2.id])
    await assert.rejects(fetched('pruned.bin', 1), (err: any) => {
      assert.ok(err instanceof VersionPrunedError, err.message)
      assert.match(err.message, /^version 1 of pruned\.bin was pruned on \d{4}-\d\d-\d\dT.* \(versions are kept 1000 ms: storage\.versionsKeptFor\)/)
      return true
    })
    // its shards are gone from the hosts, as store rm deletes them
    for (const shard of shards) {
      const host = hosts.find(h => h.peerId.toString() === shard.host)
      await waitFor(async () => !(await readFile(join(host!.paths.root, 'storage', shard.contract, shard.root)).then(() => true, () => false)), 10_000, 'the pruned shard deleted')
    }
    assert.deepEqual(await fetched('pruned.bin'), next)
  })
})
