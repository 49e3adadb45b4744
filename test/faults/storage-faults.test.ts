import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { healthOf, NotEnoughHostsError, ObjectBeingStoredError, PaymentRefusedError, RepairStuckError, ShardUnavailableError, StorageStoppedError, type StoredObject } from '../../src/storage/client/storage-client.ts'
import { healthView, objectInfo, objectSummary } from '../../src/storage/views.ts'
import { startNode, stopAll, type Started } from '../../scripts/testnet/network.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import type { Config } from '../../src/node/config.ts'
import type { CallRequest } from '../../src/protocols/rpc/rpc-client.ts'

const KIB = 1024
const SEGMENT = 64 * KIB
/** in-process hosts (stopped, restarted, corrupted on disk); one more host is a daemon (frozen with SIGSTOP) */
const HOSTS = 6
const HOUR = 3600_000

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/**
 * The storage client against the faults a probe found on a testnet (issue
 * 17, "Faults and a new user"): hosts stopped, frozen, serving corrupt or
 * wrong bytes, refusing an overdue renter, failing mid-upload. Six hosts are
 * nodes in this process; the seventh is a daemon, the cheapest, so it holds
 * the first shard of every object (the one a get asks first) and can be
 * frozen. Segments of 64 KiB give several segments per small file; the
 * hedge is 1 s (an answer on this loaded machine takes up to a few hundred
 * ms), so a frozen host costs a second.
 */
describe('storage faults: killed, frozen, corrupt and owed hosts, on real nodes over TCP', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  let hostConfig: Config
  const hosts: OpenCloudNode[] = []
  let daemon: Started
  let client: OpenCloudNode
  let clientStopped = false
  let files = 0

  const startHost = async (i: number): Promise<OpenCloudNode> => {
    // joined through any host that is up (host 0 may be the one stopped and started again)
    const through = hosts.find((h, j) => j !== i && h?.libp2p.status === 'started')
    const node = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: hostConfig, bootstrap: through == null ? [] : [addrOf(through)] })
    await node.start()
    return node
  }
  const hostOf = (peer: string): OpenCloudNode | undefined => hosts.find(h => h.peerId.toString() === peer)
  const shardFile = (peer: string, contract: string, root: string): string => {
    const host = hostOf(peer)
    return join(host == null ? daemon.dataDir : host.paths.root, 'storage', contract, root)
  }
  /** a random file of `bytes`, stored as `name` */
  const putFile = async (name: string, bytes: number, k: number, n: number): Promise<{ object: StoredObject, data: Buffer, path: string }> => {
    const data = randomBytes(bytes)
    const path = join(dir.path, `in-${files++}.bin`)
    await writeFile(path, data)
    const object = await client.storage.put(path, { name, k, n })
    return { object, data, path }
  }
  const partFiles = async (): Promise<string[]> => (await readdir(dir.path)).filter(f => f.endsWith('.part'))
  /** make a host's disk refuse shards from its `from`-th write on (0: the first); returns the undo */
  const failWrites = (host: OpenCloudNode, from: number): () => void => {
    const store = host.storageHost.store
    const real = store.write.bind(store)
    let writes = 0
    store.write = async (...args) => {
      if (writes++ >= from) {
        throw new Error('disk failure (injected by the test)')
      }
      return real(...args)
    }
    return () => { store.write = real }
  }
  /** count the client's storage calls by method and host */
  const countCalls = (): { count: (method: string, peer: string) => number, started: (method: string, peer: string) => Promise<void>, undo: () => void } => {
    const components = (client.storage as any).components
    const real = components.call
    const counts = new Map<string, number>()
    const waiters: Array<{ key: string, resolve: () => void }> = []
    components.call = async (peer: string, request: CallRequest, sats: bigint) => {
      const key = `${request.method} ${peer}`
      counts.set(key, (counts.get(key) ?? 0) + 1)
      for (const w of waiters.filter(w => w.key === key)) {
        w.resolve()
      }
      return real(peer, request, sats)
    }
    return {
      count: (method, peer) => counts.get(`${method} ${peer}`) ?? 0,
      started: async (method, peer) => new Promise(resolve => { waiters.push({ key: `${method} ${peer}`, resolve }) }),
      undo: () => { components.call = real }
    }
  }
  /** audit every contract as if `hours` had passed */
  let clock = Date.now()
  const auditLater = async (hours: number): Promise<{ passed: number, failed: number, unreachable: number }> => {
    clock += hours * HOUR
    return client.storage.audit(clock)
  }

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: join(dir.path, 'chain'), blockIntervalMs: 0 })
    await regtest.start()
    const payments = { network: 'regtest', chain: regtest.url, settleIntervalMs: 500, graceMs: 600_000 }
    // far over the daemon's (the testnet's 1833 sat per TiB-month): the market ranks the daemon first.
    // Downloads at 1 BTC per TiB (3 sat for a 32 KiB shard): a get costs whole satoshis, so an owed host refuses it
    hostConfig = testConfig({ payments, services: { storage: { capacity: '1 GiB', prices: { rent: '4096000 sat', put: '1024000 sat', get: '1 BTC' } } }, policies: { global: { 'max-tab': '0.001 BTC' } } })
    for (let i = 0; i < HOSTS; i++) {
      hosts[i] = await startHost(i)
    }
    daemon = await startNode(1, dir.path, addrOf(hosts[0]), regtest.url)
    client = await OpenCloudNode.create({
      dataDir: join(dir.path, 'client'),
      config: testConfig({ payments }),
      bootstrap: [addrOf(hosts[0])],
      // upkeep only when a test asks for it (a repair check after a get that found a loss runs on its own)
      storage: { segmentSize: SEGMENT, hedgeMs: 1000, rentCheckMs: 24 * HOUR, auditGraceMs: HOUR }
    })
    await client.start()
    await regtest.faucet(await client.wallet.newAddress(), 10_000_000n)
    await regtest.chain.mine(1, regtest.faucetAddress)
    for (const host of hosts) {
      await connect(client, host)
    }
    await client.libp2p.dial(multiaddr(daemon.addrs.find(a => a.includes('/127.0.0.1/')) ?? daemon.addrs[0]))
    await waitFor(async () => (await client.storageHosts()).length === HOSTS + 1, 60_000, 'storage offers from every host')
    assert.equal((await client.storageHosts())[0].peer, daemon.peerId, 'the daemon is the cheapest host')
  })

  after(async () => {
    if (daemon?.child.pid != null) {
      try { process.kill(daemon.child.pid, 'SIGCONT') } catch {}
    }
    if (!clientStopped) {
      await client?.stop().catch(() => {})
    }
    for (const h of hosts) {
      await h?.stop().catch(() => {})
    }
    if (daemon != null) {
      await stopAll([daemon])
    }
    await regtest?.stop()
    await dir?.cleanup()
  })

  it('holds one name for one object: a failed put lets the name go, and of two puts of the same name at once one is refused', async () => {
    const a = join(dir.path, 'same-a.bin')
    const b = join(dir.path, 'same-b.bin')
    await writeFile(a, randomBytes(10 * KIB))
    await writeFile(b, randomBytes(10 * KIB))
    // puts that fail before any host is asked, and hold the name no longer
    await assert.rejects(client.storage.put(a, { name: 'same', k: 2, n: 50 }), NotEnoughHostsError)
    await assert.rejects(client.storage.put(a, { name: 'same', k: 1, n: 2, maxStoragePrice: 1n }), (err: any) => {
      assert.ok(err instanceof NotEnoughHostsError, err.message)
      assert.match(err.message, /no storage host asks 0\.00000001 BTC per TiB-month or less: the cheapest of the [0-9]+ the market knows asks/)
      return true
    })
    // one put on one host each: what is tested is the name
    const results = await Promise.allSettled([client.storage.put(a, { name: 'same', k: 1, n: 1 }), client.storage.put(b, { name: 'same', k: 1, n: 1 })])
    assert.deepEqual(results.map(r => r.status).sort(), ['fulfilled', 'rejected'])
    const refused = results.find(r => r.status === 'rejected') as PromiseRejectedResult
    assert.ok(refused.reason instanceof ObjectBeingStoredError, refused.reason.message)
    assert.match(refused.reason.message, /"same" is being stored right now by another put/)
    assert.equal((await client.storage.list()).filter(o => o.name === 'same').length, 1)
    // once the first is stored, another put of the name is its next version (issue 21)
    const second = await client.storage.put(b, { name: 'same', k: 1, n: 1, force: true })
    assert.equal(second.version, 2)
    assert.equal((await client.storage.list()).filter(o => o.name === 'same').length, 2)
    await client.storage.remove('same')
    assert.equal((await client.storage.list()).filter(o => o.name === 'same').length, 0)
  })

  it('ends a get with a clear error when fewer than K shards can be had although the last answer is a good one, leaves no plaintext, ends a repair the same way, and rm still works', { timeout: 60_000 }, async () => {
    const { object } = await putFile('scarce.bin', 4 * SEGMENT, 2, 4)
    const segment = object.segments[0]
    // slot 1 answers, slowly: its good shard is the last answer to arrive;
    // the three others have lost theirs (deleted on their disks)
    const slow = hostOf(segment.shards[1].host)!
    const store = slow.storageHost.store
    const range = store.range.bind(store)
    store.range = async (...args) => {
      await new Promise(resolve => setTimeout(resolve, 500))
      return range(...args)
    }
    try {
      for (const slot of [0, 2, 3]) {
        await rm(shardFile(segment.shards[slot].host, segment.shards[slot].contract, segment.shards[slot].root))
        await rm(`${shardFile(segment.shards[slot].host, segment.shards[slot].contract, segment.shards[slot].root)}.leaves`, { force: true })
      }
      await assert.rejects(client.storage.get('scarce.bin', join(dir.path, 'scarce.out')), (err: any) => {
        assert.ok(err instanceof ShardUnavailableError, err.message)
        assert.match(err.message, /only 1 of the 2 shards needed for segment 0 of "scarce\.bin"/)
        return true
      })
      assert.deepEqual(await partFiles(), [], 'no plaintext left beside --out')
      // the three count as lost now, and a repair cannot rebuild segment 0: it ends, saying why
      await waitFor(async () => (await client.storage.find('scarce.bin')).segments[0].shards.filter(s => s.lost != null).length === 3, 10_000, 'the three lost shards in the record')
      const after = await client.storage.find('scarce.bin')
      assert.equal(healthOf(after).state, 'lost')
      await assert.rejects(client.storage.repair('scarce.bin'), (err: any) => err instanceof RepairStuckError && /only 1 of the 2 shards needed for segment 0/.test(err.message))
    } finally {
      store.range = range
    }
    // nothing holds the records: rm goes through, and info still shows what each side rated
    const { object: removed } = await client.storage.remove('scarce.bin')
    assert.ok(Object.values(removed.contracts).every(c => c.ended != null))
    const info = objectInfo(await client.storage.findWithRemoved('scarce.bin')) as any
    assert.equal(info.health.state, 'removed')
    assert.equal(info.segments, 4)
    for (const c of info.contracts) {
      assert.ok(c.ratings != null, `contract ${c.id} keeps its ratings`)
      assert.match(c.ratings.signedByYou, /^[A-Za-z0-9+/]+=*$/)
    }
    assert.ok(info.contracts.some((c: any) => c.ratings.byYou === 'unsatisfactory'), 'hosts that lost shards are rated so')
    assert.ok(info.contracts.some((c: any) => c.ratings.byHost === 'satisfactory'), 'the hosts\' ratings came back')
  })

  it('records corruption a get runs into at once: a shard its host finds corrupt is lost, a host that sends wrong bytes is condemned, and both are repaired on their own', { timeout: 60_000 }, async () => {
    const { object, data } = await putFile('corrupt.bin', 4 * SEGMENT, 2, 4)
    // segment 1's shard 1, flipped on its host's disk: the host notices and refuses it
    const flipped = object.segments[1].shards[1]
    const path = shardFile(flipped.host, flipped.contract, flipped.root)
    const bytes = await readFile(path)
    bytes[100] ^= 0xff
    await writeFile(path, bytes)
    // shard 2's host sends random bytes for everything, and is asked once shard 1 fails
    const liar = hostOf(object.segments[1].shards[2].host)!
    const liarContract = object.segments[1].shards[2].contract
    const store = liar.storageHost.store
    const range = store.range.bind(store)
    store.range = async (...args) => bodyFromBytes(randomBytes((await range(...args)).length))
    try {
      const out = join(dir.path, 'corrupt.out')
      await client.storage.get('corrupt.bin', out)
      assert.equal(sha256(await readFile(out)), sha256(data))
      // in the record as soon as no upkeep holds the records (the repair it
      // starts may already have moved the lost shard: what it counted
      // against whom stays)
      await waitFor(async () => (await client.storage.find('corrupt.bin')).contracts[liarContract].lost != null, 10_000, 'what the get found in the record')
      const seen = await client.storage.find('corrupt.bin')
      assert.equal(seen.contracts[flipped.contract].shardsLost, 1)
      assert.equal(seen.contracts[flipped.contract].lost, undefined, 'the host said so itself: only that shard')
      assert.equal(seen.contracts[liarContract].lostFor, 'cheated')
      assert.match(seen.contracts[liarContract].lostReason ?? '', /sent bytes that do not match shard/)
      assert.ok((await client.reputation.store.records(liar.peerId.toString())).some(r => r.event === 'corrupt' && r.method === 'get'), 'the liar is rated')
      // the get started a repair check: both slots move, never to the liar
      await waitFor(async () => healthOf(await client.storage.find('corrupt.bin')).state === 'healthy', 30_000, 'the repair after the get')
    } finally {
      store.range = range
    }
    const repaired = await client.storage.find('corrupt.bin')
    assert.ok(repaired.segments.every((s, i) => s.shards.every((x, slot) => x.root === object.segments[i].shards[slot].root)), 'every shard rebuilt to its root')
    assert.notEqual(repaired.segments[1].shards[1].host, flipped.host)
    assert.ok(repaired.segments.every(s => s.shards[2].host !== liar.peerId.toString()), 'the liar holds nothing that counts')
    const out = join(dir.path, 'corrupt-repaired.out')
    await client.storage.get('corrupt.bin', out)
    assert.equal(sha256(await readFile(out)), sha256(data))
    await client.storage.remove('corrupt.bin')
  })

  it('takes a host\'s server-error as transient: a get asks another host and loses nothing, an audit tries it again within the grace', { timeout: 60_000 }, async () => {
    const { object, data } = await putFile('failing.bin', SEGMENT, 2, 4)
    // shard 1 is asked for at once; its host fails every read on its side
    // (the RPC server answers server-error, as for any exception)
    const shard = object.segments[0].shards[1]
    const failing = hostOf(shard.host)!
    const store = failing.storageHost.store
    const [range, prove] = [store.range.bind(store), store.prove.bind(store)]
    store.range = async () => { throw Object.assign(new Error('i/o error (injected by the test)'), { code: 'EIO' }) }
    store.prove = store.range as any
    try {
      const out = join(dir.path, 'failing.out')
      await client.storage.get('failing.bin', out)
      assert.equal(sha256(await readFile(out)), sha256(data))
      // audit every contract: the failing host is neither caught nor lost
      const audited = await auditLater(10)
      assert.equal(audited.failed, 0)
      assert.ok(audited.unreachable >= 1)
      const seen = await client.storage.find('failing.bin')
      const c = seen.contracts[shard.contract]
      assert.deepEqual([c.lost, c.shardsLost ?? 0, seen.segments[0].shards[1].lost], [undefined, 0, undefined])
      assert.match(c.audit?.lastError ?? '', /the service failed/)
      assert.ok(c.audit?.unreachableSince != null, 'the audit grace runs')
      assert.equal(healthOf(seen).healthy, 4)
    } finally {
      store.range = range
      store.prove = prove
    }
    // it serves again: the next audit passes and the grace ends
    await auditLater(0.1)
    assert.equal((await client.storage.find('failing.bin')).contracts[shard.contract].audit?.unreachableSince, undefined)
    await client.storage.remove('failing.bin')
  })

  it('counts the shards of a host replaced during a put as lost, counts hosts right, ends the contract of one replaced before it held anything, and says why when no host is left', { timeout: 60_000 }, async () => {
    const order = (await client.storageHosts()).map(h => h.peer)
    // the put's slots 1 and 2: one fails its first shard, one its second
    const first = hostOf(order[1])!
    const second = hostOf(order[2])!
    const undo = [failWrites(first, 0), failWrites(second, 1)]
    let object: StoredObject
    try {
      ({ object } = await putFile('replaced.bin', 4 * SEGMENT, 2, 4))
    } finally {
      undo.forEach(u => { u() })
    }
    // a failed put condemns nothing shared: the first host took no shard of the file, so the object names no contract there;
    // the second took segment 0's, which counts as lost (this object's only), under a contract that is not condemned
    assert.ok(Object.values(object.contracts).every(c => c.host !== first.peerId.toString()))
    const lostShard = object.segments[0].shards.find(s => s.host === second.peerId.toString())!
    assert.match(lostShard.lostReason ?? '', /replaced during the upload after it failed shard/)
    const partId = lostShard.contract
    assert.equal(object.contracts[partId].lost, undefined)
    assert.ok(object.segments.slice(1).every(s => s.shards.every(x => x.host !== second.peerId.toString())))
    const health = healthOf(object)
    assert.deepEqual([health.state, health.healthy, health.hosts], ['degraded', 3, 4])
    assert.equal((objectSummary(object) as any).hosts, 4, 'the replaced hosts are not counted')

    // the first host's contract holds nothing any object names: ended (no rent for it); the shard is repaired
    const [emptyId] = client.storage.contractList().find(([, c]) => c.host === first.peerId.toString() && c.ended == null)!
    assert.ok((await client.storage.collectGarbage()).ended >= 1)
    assert.ok(client.storage.contractList().find(([id]) => id === emptyId)![1].ended != null)
    await assert.rejects(client.call(first.peerId, { service: 'storage', method: 'list', args: [emptyId] }), /has ended/)
    assert.equal(await client.storage.repair('replaced.bin'), 1)
    const repaired = await client.storage.find('replaced.bin')
    assert.equal(healthOf(repaired).state, 'healthy')
    // the old copy of segment 0's shard is named by nothing now: deleted from the second host, or its contract ended
    await client.storage.collectGarbage()
    const secondContract = client.storage.contractList().find(([id]) => id === partId)![1]
    assert.ok(secondContract.ended != null || secondContract.shards.every(([root]) => root !== lostShard.root), 'the old copy goes')
    await client.storage.remove('replaced.bin')

    // every host in use: a failed slot has nowhere to go, and the error says so
    const undoAll = failWrites(first, 0)
    try {
      await assert.rejects(putFile('full.bin', SEGMENT, 2, HOSTS + 1), (err: any) => {
        assert.ok(err instanceof NotEnoughHostsError, err.message)
        assert.match(err.message, /each of the 7 hosts the market knows holds a shard of this file already or failed it/)
        assert.doesNotMatch(err.message, /the hosts tried said/)
        return true
      })
    } finally {
      undoAll()
    }
  })

  it('cleans up after a repair that fails half-way: the hosts it went to keep none of its shards', { timeout: 60_000 }, async () => {
    const { object } = await putFile('halfway.bin', 4 * SEGMENT, 2, 4)
    // shard 3's host silently drops everything: the next audit condemns it
    const [cheatId, cheat] = Object.entries(object.contracts).find(([, c]) => c.host === object.segments[0].shards[3].host)!
    await rm(join(hostOf(cheat.host)!.paths.root, 'storage', cheatId), { recursive: true })
    await auditLater(10)
    assert.equal((await client.storage.find('halfway.bin')).contracts[cheatId].lostFor, 'cheated')
    // every other host takes one shard and then its disk fails
    const used = new Set(Object.values(object.contracts).map(c => c.host))
    const spares = hosts.filter(h => !used.has(h.peerId.toString()))
    const undo = spares.map(h => failWrites(h, 1))
    const calls = countCalls()
    const stuckAt = Date.now()
    try {
      await assert.rejects(client.storage.repair('halfway.bin'), (err: any) => err instanceof RepairStuckError && /no host took shard 4/.test(err.message))
      // the upkeep does not try again at every check: not before its retry
      // time, and then not with the hosts that just failed it
      // hosts asked to take the slot's shards (each under the one contract this node holds with it, formed if need be)
      const formed = (): number => spares.filter(h => calls.count('put', h.peerId.toString()) > 0).length
      const tried = formed()
      assert.equal(tried, spares.length)
      const puts = (): number => hosts.reduce((n, h) => n + calls.count('put', h.peerId.toString()), 0)
      const asked = puts()
      const stuck = (await client.storage.find('halfway.bin')).repair!
      assert.equal(stuck.attempts, 1)
      assert.ok(stuck.retryAt! >= stuckAt + 10 * 60_000, 'tried again in 10 minutes')
      assert.deepEqual(Object.keys(stuck.hosts ?? {}).sort(), spares.map(h => h.peerId.toString()).sort())
      assert.equal(await client.storage.repairAll(stuckAt + 60_000), 0)
      assert.equal(puts(), asked, 'no host asked before the retry time')
      // at its retry time the hosts that failed are still held off (their
      // wait doubles from the first): the repair says why, forms nothing
      assert.equal(await client.storage.repairAll(stuck.retryAt! + 1000), 0)
      assert.equal(puts(), asked)
      const again = (await client.storage.find('halfway.bin')).repair!
      assert.equal(again.attempts, 2)
      assert.ok(again.retryAt! - (stuck.retryAt! + 1000) >= 20 * 60_000, 'the next wait is twice as long')
      assert.match(again.problem, /failed an upload of this repair recently/)
    } finally {
      calls.undo()
      undo.forEach(u => { u() })
    }
    // the shard each spare took is named by nothing: the next check deletes it (or ends a contract that holds nothing else)
    const after = await client.storage.find('halfway.bin')
    assert.ok(Object.values(after.contracts).every(c => !spares.some(h => h.peerId.toString() === c.host)), 'the object names no contract it has no shard under')
    await client.storage.collectGarbage()
    for (const h of spares) {
      for (const [id, c] of client.storage.contractList().filter(([, c]) => c.host === h.peerId.toString())) {
        assert.equal(await h.storageHost.store.has(id, object.segments[0].shards[3].root), false, 'the shard it took is deleted')
        assert.ok(c.ended != null || c.shards.every(([root]) => root !== object.segments[0].shards[3].root))
      }
    }
    assert.ok(after.segments.every(s => s.shards[3].contract === cheatId), 'the slot is where it was')
    assert.match((healthView(after) as any).repairProblem, /no host can take shard 4 .* failed an upload of this repair recently/)
    await client.storage.remove('halfway.bin')
  })

  it('shows unreachable hosts; says why a repair is stuck; and uses a host condemned for being unreachable once it answers again', { timeout: 90_000 }, async () => {
    // six of the seven hosts: one spare
    const { object } = await putFile('spare.bin', 2 * SEGMENT, 2, HOSTS)
    const inProcess = object.segments[0].shards.map(s => s.host).filter(p => hostOf(p) != null)
    const [x, z] = inProcess.map(p => hosts.findIndex(h => h.peerId.toString() === p))
    const xPeer = hosts[x].peerId.toString()
    await auditLater(10)

    // x stops: audits cannot reach it, within the grace its shards still count
    await hosts[x].stop()
    await auditLater(10)
    let view = healthView(await client.storage.find('spare.bin')) as any
    assert.deepEqual([view.state, view.healthyShards, view.reachableShards, view.unreachableHosts], ['healthy', HOSTS, HOSTS - 1, 1])

    // past the grace it is condemned, and the spare takes its shards
    await auditLater(10)
    assert.equal(Object.values((await client.storage.find('spare.bin')).contracts).find(c => c.host === xPeer)?.lostFor, 'unreachable')
    assert.equal(await client.storage.repair('spare.bin'), 2)
    assert.equal(healthOf(await client.storage.find('spare.bin')).state, 'healthy')

    // z stops too and is condemned: the only hosts holding nothing of the file are x and z, both down
    await hosts[z].stop()
    await auditLater(10)
    await auditLater(10)
    await assert.rejects(client.storage.repair('spare.bin'), RepairStuckError)
    view = healthView(await client.storage.find('spare.bin')) as any
    assert.match(view.repairProblem, /no host took shard \d+ of "spare\.bin"; the hosts tried said:/)
    assert.ok(view.repairProblem.includes(xPeer), view.repairProblem)

    // x answers again: repair puts z's shards on it
    hosts[x] = await startHost(x)
    await connect(client, hosts[x])
    assert.equal(await client.storage.repair('spare.bin'), 2)
    const healed = await client.storage.find('spare.bin')
    assert.equal(healthOf(healed).state, 'healthy')
    assert.equal((healthView(healed) as any).repairProblem, null)
    assert.ok(healed.segments.every(s => s.shards.some(sh => sh.host === xPeer && healed.contracts[sh.contract].lost == null)), 'x holds a shard of every segment again')
    hosts[z] = await startHost(z)
    await connect(client, hosts[z])
    await client.storage.remove('spare.bin')
  })

  it('gets around a host that refuses an overdue renter, and refuses the get with the hosts\' reason only when too few are left', { timeout: 60_000 }, async () => {
    const { object, data } = await putFile('owed.bin', 2 * SEGMENT, 2, 4)
    const me = client.peerId.toString()
    // each of these hosts holds an old unpaid promise of this node
    const owe = async (slot: number): Promise<OpenCloudNode> => {
      const host = hostOf(object.segments[0].shards[slot].host)!
      await host.tabs.addPromise({ role: 'receivable', peer: me, id: 'old-debt', sats: 5000n, threshold: '', service: 'storage', method: 'get', createdAt: Date.now() - HOUR })
      return host
    }
    // shard 1 is asked for first (after the daemon's shard 0): two others serve
    const owed = [await owe(1)]
    const failedGets = async (host: OpenCloudNode): Promise<number> => (await client.reputation.store.records(host.peerId.toString())).filter(r => r.event === 'failed' && r.method === 'get').length
    const failedBefore = await failedGets(owed[0])
    try {
      const out = join(dir.path, 'owed.out')
      await client.storage.get('owed.bin', out)
      assert.equal(sha256(await readFile(out)), sha256(data))
      assert.equal(await failedGets(owed[0]), failedBefore, 'a refusal over money is not the host failing')
      // with three of the four refusing, one shard is left of the two needed
      owed.push(await owe(2), await owe(3))
      await assert.rejects(client.storage.get('owed.bin', join(dir.path, 'owed-again.out')), (err: any) => {
        assert.ok(err instanceof PaymentRefusedError, `${err.name}: ${err.message}`)
        assert.match(err.message, /only 1 of the 2 shards needed for segment 0/)
        for (const host of owed) {
          assert.ok(err.message.includes(host.peerId.toString()), host.peerId.toString())
        }
        assert.match(err.message, /overdue deferred payments/)
        assert.match(err.message, /3 of the hosts asked refuse over money .* "payments tabs"/)
        return true
      })
      assert.deepEqual(await partFiles(), [])
    } finally {
      for (const host of owed) {
        await host.tabs.markPaid('receivable', me, ['old-debt'], 'test')
      }
    }
    await client.storage.remove('owed.bin')
  })

  it('asks a frozen host (SIGSTOP) once, not again for every segment', { timeout: 60_000 }, async () => {
    const { object, data } = await putFile('frozen.bin', 8 * SEGMENT, 2, 4)
    assert.ok(object.segments.every(s => s.shards[0].host === daemon.peerId), 'the daemon holds the first shard of each segment')
    const calls = countCalls()
    process.kill(daemon.child.pid as number, 'SIGSTOP')
    try {
      const out = join(dir.path, 'frozen.out')
      await client.storage.get('frozen.bin', out)
      assert.equal(sha256(await readFile(out)), sha256(data))
      assert.equal(calls.count('get', daemon.peerId), 1, 'asked for the first segment only')
    } finally {
      calls.undo()
      process.kill(daemon.child.pid as number, 'SIGCONT')
    }
    await client.storage.remove('frozen.bin')
  })

  it('moves a put off a host that freezes (SIGSTOP) mid-upload as soon as the others are ahead, not at its transfer timeout', { timeout: 60_000 }, async () => {
    const data = randomBytes(16 * SEGMENT)
    const path = join(dir.path, `in-${files++}.bin`)
    await writeFile(path, data)
    let frozen = false
    let object: StoredObject
    try {
      object = await client.storage.put(path, {
        name: 'frozen-put.bin',
        k: 2,
        n: 4,
        onProgress: p => {
          // once segment 0 is stored whole (its 4 shards are a SEGMENT of
          // progress): the daemon, in slot 0 as the cheapest, holds one
          if (p.phase === 'upload' && p.done >= SEGMENT - 16 && !frozen) {
            frozen = true
            process.kill(daemon.child.pid as number, 'SIGSTOP')
          }
        }
      })
    } finally {
      process.kill(daemon.child.pid as number, 'SIGCONT')
    }
    assert.ok(frozen)
    const last = object.segments.at(-1)!
    assert.ok(!last.shards.some(s => s.host === daemon.peerId), 'the last segment went to another host')
    const moved = object.segments.flatMap(s => s.shards).filter(s => s.lost != null)
    assert.ok(moved.length > 0, 'the daemon\'s shards count as lost, for repair')
    // the overdrive stopped it (HostStalledError), not the transfer timeout (TRANSFER_BASE_MS, 10 s)
    assert.match(moved[0].lostReason ?? '', /held shard 1 of segment \d+ for \d+ ms while the other hosts had taken theirs .*, and did not answer a ping within 1000 ms/)
    const out = join(dir.path, 'frozen-put.out')
    await client.storage.get('frozen-put.bin', out)
    assert.equal(sha256(await readFile(out)), sha256(data))
    await client.storage.remove('frozen-put.bin')
  })

  it('stops promptly: a get does not wait for a repair waiting on a frozen host, and stop() ends that repair', { timeout: 60_000 }, async () => {
    const { object } = await putFile('stopping.bin', 2 * SEGMENT, 2, 4)
    // shard 3's host drops everything (a repair to do), and segment 0's
    // shards 1 and 2 are gone: only the daemon's shard 0 can rebuild it
    const [cheatId, cheat] = Object.entries(object.contracts).find(([, c]) => c.host === object.segments[0].shards[3].host)!
    await rm(join(hostOf(cheat.host)!.paths.root, 'storage', cheatId), { recursive: true })
    await auditLater(10)
    // another file (after the audit, which would catch it), with a shard its
    // host finds corrupt: what its get finds is recorded while the repair
    // of the first holds the records
    const other = await putFile('other.bin', SEGMENT, 2, 4)
    const flipped = other.object.segments[0].shards[1]
    const otherPath = shardFile(flipped.host, flipped.contract, flipped.root)
    const otherBytes = await readFile(otherPath)
    otherBytes[100] ^= 0xff
    await writeFile(otherPath, otherBytes)
    for (const slot of [1, 2]) {
      const s = object.segments[0].shards[slot]
      await rm(shardFile(s.host, s.contract, s.root))
      await rm(`${shardFile(s.host, s.contract, s.root)}.leaves`, { force: true })
    }
    const calls = countCalls()
    const asked = calls.started('get', daemon.peerId)
    process.kill(daemon.child.pid as number, 'SIGSTOP')
    try {
      const repairing = client.storage.repairAll()
      repairing.catch(() => {})
      await asked
      // the repair's new contract was in the record before anything went to its host
      const during = await client.storage.find('stopping.bin')
      const added = Object.entries(during.contracts).filter(([id]) => object.contracts[id] == null)
      assert.equal(added.length, 1)
      assert.deepEqual([added[0][1].ended, added[0][1].shards], [undefined, []])
      // the get answers while the repair still runs (its record waits its turn)
      let repairDone = false
      repairing.then(() => { repairDone = true }, () => { repairDone = true })
      const out = join(dir.path, 'other.out')
      await client.storage.get('other.bin', out)
      assert.equal(sha256(await readFile(out)), sha256(other.data))
      assert.equal(repairDone, false, 'the get waited for the repair of another file')
      await client.stop()
      clientStopped = true
      await assert.rejects(repairing, StorageStoppedError)
    } finally {
      calls.undo()
      process.kill(daemon.child.pid as number, 'SIGCONT')
    }
  })
})
