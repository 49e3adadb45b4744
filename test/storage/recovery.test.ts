import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateMnemonic } from '@scure/bip39'
import { wordlist } from '@scure/bip39/wordlists/english.js'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { Wallet } from '../../src/payments/wallet/wallet.ts'
import { NoIndexFoundError } from '../../src/storage/client/storage-client.ts'
import { RECOVERY_MARKER } from '../../src/storage/constants.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'

const MIB = 1024 * 1024
const HOSTS = 3

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/**
 * Recovery from the words alone (issue 21, PROTOCOL.md 8g), over TCP: a
 * node stores files on free hosts and is lost but for its mnemonic; a fresh
 * data directory restored from the words is the same renter and gets the
 * files back from the index the hosts keep.
 */
describe('storage recovery: the files come back from the words alone', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  const hosts: OpenCloudNode[] = []
  const nodes: OpenCloudNode[] = []
  const files: Record<string, Buffer> = {}
  let words: string
  let oldPeerId: string
  let oldContracts: string[]
  const ids: Record<string, string> = {}
  let removedId: string

  const startHost = async (i: number): Promise<OpenCloudNode> => {
    const node = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: testConfig({ services: { storage: { capacity: '1 GiB' } } }), bootstrap: i === 0 ? [] : [addrOf(hosts[0])] })
    await node.start()
    return node
  }

  /** A client node on `dataDir`, connected to every host and seeing their offers */
  const startClient = async (dataDir: string, storage: Record<string, number> = {}): Promise<OpenCloudNode> => {
    // not a host itself: the clients' offers would be counted with the hosts'
    const node = await OpenCloudNode.create({ dataDir, config: testConfig({ services: { storage: { enabled: false } } }), bootstrap: [addrOf(hosts[0])], storage: { segmentSize: MIB, ...storage } })
    await node.start()
    nodes.push(node)
    for (const host of hosts) {
      await connect(node, host)
    }
    await waitFor(async () => (await node.storageHosts()).length === HOSTS, 30_000, 'storage offers from every host')
    return node
  }

  before(async () => {
    dir = await tempDir()
    for (let i = 0; i < HOSTS; i++) {
      hosts[i] = await startHost(i)
    }
    const old = await startClient(join(dir.path, 'old'))
    for (const [name, size] of [['photo.jpg', 2 * MIB + 77], ['notes.txt', 1234], ['gone.bin', 5000]] as const) {
      files[name] = randomBytes(size)
      await writeFile(join(dir.path, name), files[name])
      ids[name] = (await old.storage.put(join(dir.path, name), { name, k: 2, n: 3 })).id
    }
    removedId = ids['gone.bin']
    await old.storage.remove('gone.bin')
    // a second version of notes.txt: the first is kept, and comes back too
    files['notes.txt v2'] = randomBytes(999)
    await writeFile(join(dir.path, 'notes.txt'), files['notes.txt v2'])
    ids['notes.txt v2'] = (await old.storage.put(join(dir.path, 'notes.txt'), { name: 'notes.txt', k: 2, n: 3 })).id
    // and a folder
    await mkdir(join(dir.path, 'album', 'sub'), { recursive: true })
    for (const [name, size] of [['album/a.txt', 700], ['album/sub/b.txt', 300_000]] as const) {
      files[name] = randomBytes(size)
      await writeFile(join(dir.path, name), files[name])
    }
    await old.storage.putTree([join(dir.path, 'album')], { k: 2, n: 3 })
    words = old.wallet.backupPhrase()
    oldPeerId = old.peerId.toString()
    oldContracts = old.storage.contractList().filter(([, c]) => c.ended == null).map(([id]) => id).sort()
    // lost right after the puts returned: no check ran, nothing was flushed
    await old.stop()
    // and the hosts restart: the notes are in their datastores, not in memory
    for (let i = 0; i < HOSTS; i++) {
      await hosts[i].stop()
    }
    for (let i = 0; i < HOSTS; i++) {
      hosts[i] = await startHost(i)
    }
  })

  after(async () => {
    for (const n of nodes) {
      await n.stop().catch(() => {})
    }
    for (const h of hosts) {
      await h?.stop().catch(() => {})
    }
    await dir?.cleanup()
  })

  it('a fresh data directory restored from the mnemonic is the same renter, and recovers every object, byte-identical, under the same contracts', async () => {
    const root = join(dir.path, 'restored')
    await mkdir(root, { mode: 0o700 })
    await Wallet.restore({ path: join(root, 'wallet.json'), network: testConfig().payments.network, mnemonic: words })
    // what `wallet restore` leaves: the first start recovers by itself
    await writeFile(join(root, RECOVERY_MARKER), '{}\n')
    const node = await startClient(root)
    assert.equal(node.peerId.toString(), oldPeerId, 'the identity comes from the words')
    await waitFor(async () => (await node.storage.list()).length === 5, 30_000, 'the recovery at the first start')
    await waitFor(async () => access(join(root, RECOVERY_MARKER)).then(() => false, () => true), 5000, 'the marker to go')
    const report = await node.storage.recover({ waitMs: 10_000 })
    assert.equal(report.hostsAsked, HOSTS)
    assert.equal(report.hostsAnswered, HOSTS)
    assert.deepEqual([report.objectsAdded, report.objectsKnown, report.contractsAdded, report.notesUnopened], [0, 5, 0, 0], 'a second recovery finds them known')
    const listed = await node.storage.list()
    assert.deepEqual(listed.filter(o => !o.name.startsWith('album/')).map(o => o.id).sort(), [ids['notes.txt'], ids['notes.txt v2'], ids['photo.jpg']].sort())
    assert.deepEqual(listed.filter(o => o.name.startsWith('album/')).map(o => o.name).sort(), ['album/a.txt', 'album/sub/b.txt'])
    // the versions as they were: version 2 current, version 1 superseded
    assert.deepEqual((await node.storage.versions('notes.txt')).map(o => [o.id, o.version ?? 1, o.supersededAt != null]), [[ids['notes.txt'], 1, true], [ids['notes.txt v2'], 2, false]])
    assert.ok(!listed.some(o => o.id === removedId), 'a removed object is not brought back')
    assert.deepEqual(node.storage.contractList().map(([id]) => id).sort(), oldContracts, 'the same contracts, none new')
    for (const [name, version, file] of [['photo.jpg', undefined, 'photo.jpg'], ['notes.txt', undefined, 'notes.txt v2'], ['notes.txt', 1, 'notes.txt']] as const) {
      const out = join(root, `out-${file}`)
      await node.storage.get(name, out, { version })
      assert.equal(sha256(await readFile(out)), sha256(files[file]), `${file} is byte-identical`)
    }
    // the folder as a tree
    const tree = join(root, 'album-out')
    await node.storage.getTree('album/', tree)
    for (const name of ['album/a.txt', 'album/sub/b.txt']) {
      assert.equal(sha256(await readFile(join(tree, name.slice('album/'.length)))), sha256(files[name]), `${name} is byte-identical`)
    }
    // rent goes on under them: the next period is paid to the same contracts
    const paidBefore = new Map(node.storage.contractList().map(([id, c]) => [id, c.rentPaidPeriods]))
    const paid = await node.storage.payRent(Date.now() + 24 * 3600_000)
    assert.ok(paid >= 1, 'rent was paid')
    assert.ok(node.storage.contractList().some(([id, c]) => c.rentPaidPeriods > (paidBefore.get(id) ?? 0)))
    assert.deepEqual(node.storage.contractList().map(([id]) => id).sort(), oldContracts, 'no contract formed to pay it')
  })

  it('two machines with the same words: what one stores, the other\'s garbage collection imports and never deletes', async () => {
    // machine B is the restored node of the test before; machine A, the old data directory, runs again beside it
    const b = nodes.filter(n => n.peerId.toString() === oldPeerId).at(-1) as OpenCloudNode
    const a = await startClient(join(dir.path, 'old'))
    assert.equal(a.peerId.toString(), b.peerId.toString())
    const bytesB = randomBytes(300_000)
    await writeFile(join(dir.path, 'from-b.bin'), bytesB)
    const fromB = await b.storage.put(join(dir.path, 'from-b.bin'), { name: 'from-b.bin', k: 2, n: 3 })
    // A stores too, under the contracts both share: its revisions are behind B's,
    // so it takes the hosts' (resync) and with them B's shards, which no object of A's names
    const bytesA = randomBytes(200_000)
    await writeFile(join(dir.path, 'from-a.bin'), bytesA)
    await a.storage.put(join(dir.path, 'from-a.bin'), { name: 'from-a.bin', k: 2, n: 3 })
    const behind = a.storage.contractList().filter(([, c]) => c.ended == null && fromB.segments[0].shards.some(x => c.shards.some(([root]) => root === x.root)))
    assert.ok(behind.length > 0, 'A\'s contracts hold B\'s shards now')
    // A's garbage collection reads the hosts' notes first: B's object is imported, its shards stay
    assert.deepEqual(await a.storage.collectGarbage(), { deleted: 0, ended: 0 })
    assert.equal((await a.storage.find('from-b.bin')).id, fromB.id, 'A knows B\'s object, under its id')
    for (const [node, name] of [[b, 'from-b.bin'], [a, 'from-b.bin'], [a, 'photo.jpg']] as const) {
      const out = join(dir.path, `two-${node === a ? 'a' : 'b'}-${name}`)
      await node.storage.get(name, out)
      assert.equal(sha256(await readFile(out)), sha256(name === 'from-b.bin' ? bytesB : files[name]), `${name} from ${node === a ? 'A' : 'B'}`)
    }
    await a.stop()
    nodes.splice(nodes.indexOf(a), 1)
  })

  it('two machines: a put the other has not committed (its shards at the hosts, no note yet) is not taken by the periodic collection within the grace', async () => {
    const b = nodes.filter(n => n.peerId.toString() === oldPeerId).at(-1) as OpenCloudNode
    const bytes = randomBytes(100_000)
    await writeFile(join(dir.path, 'pending.bin'), bytes)
    const pending = await b.storage.put(join(dir.path, 'pending.bin'), { name: 'pending.bin', k: 2, n: 3 })
    // as the hosts are while B's put is still under way: its shards stored, no note of it
    for (const host of hosts) {
      await host.storageHost.notes.deleteAll(oldPeerId)
    }
    const a = await startClient(join(dir.path, 'old'), { orphanGraceMs: 4000 })
    try {
      // A's next put takes the hosts' revisions (resync), and with them B's unnamed shards
      await writeFile(join(dir.path, 'from-a2.bin'), randomBytes(50_000))
      await a.storage.put(join(dir.path, 'from-a2.bin'), { name: 'from-a2.bin', k: 2, n: 3 })
      const roots = new Set(pending.segments.flatMap(s => s.shards.map(x => x.root)))
      assert.ok(a.storage.contractList().some(([, c]) => c.shards.some(([root]) => roots.has(root))), 'A\'s contracts hold B\'s uncommitted shards')
      // two periodic passes at once: named by nothing, but not for the grace yet
      assert.equal((await a.storage.collectGarbage(undefined, { twoPasses: true })).deleted, 0)
      assert.equal((await a.storage.collectGarbage(undefined, { twoPasses: true })).deleted, 0, 'a second pass within the grace takes nothing')
      const out = join(dir.path, 'pending-back.bin')
      await b.storage.get('pending.bin', out)
      assert.equal(sha256(await readFile(out)), sha256(bytes))
      // past the grace, nothing still names them (the put never committed, as far as A can tell): taken
      await new Promise(resolve => setTimeout(resolve, 4100))
      assert.ok((await a.storage.collectGarbage(undefined, { twoPasses: true })).deleted > 0, 'taken once the grace is over')
    } finally {
      await a.stop()
      nodes.splice(nodes.indexOf(a), 1)
    }
  })

  it('the wrong words find no index, and nothing is written', async () => {
    const root = join(dir.path, 'wrong')
    await mkdir(root, { mode: 0o700 })
    await Wallet.restore({ path: join(root, 'wallet.json'), network: testConfig().payments.network, mnemonic: generateMnemonic(wordlist, 256) })
    const node = await startClient(root)
    await assert.rejects(node.storage.recover({ waitMs: 10_000 }), (err: any) => {
      assert.ok(err instanceof NoIndexFoundError)
      assert.match(err.message, new RegExp(`^no index found for these words: none of the ${HOSTS} storage host\\(s\\) asked \\(${HOSTS} answered\\) holds notes for ${node.peerId.toString()}; nothing was created`))
      return true
    })
    assert.deepEqual(await node.storage.list(), [])
    assert.deepEqual(node.storage.contractList(), [])
  })
})
