import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, rm, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { bytesHeld, DecryptError, healthOf, ObjectNotFoundError } from '../../src/storage/client/storage-client.ts'
import { RENT_UNITS_PER_SAT } from '../../src/storage/protocol/contract.ts'
import { formatAmount } from '../../src/protocols/units.ts'
import { objectInfo } from '../../src/storage/views.ts'
import { openRating } from '../../src/storage/protocol/rating.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import type { Config } from '../../src/node/config.ts'

const MIB = 1024 * 1024
const HOSTS = 9
/** 8 hosts are needed for 4-of-8; the ninth is full and must be passed over */
const FULL_HOST = 0

async function sha256File (path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex')
}

/** every file under a directory, recursively */
async function filesUnder (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      out.push(join(entry.parentPath, entry.name))
    }
  }
  return out
}

describe('storage: put and get across paid hosts over TCP', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  const hosts: OpenCloudNode[] = []
  const hostConfigs: Config[] = []
  let client: OpenCloudNode
  let file: string
  const marker = 'PLAINTEXT-MARKER-7f3a9c'

  const startHost = async (i: number): Promise<OpenCloudNode> => {
    const node = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: hostConfigs[i], bootstrap: i === 1 ? [] : [addrOf(hosts[1])] })
    await node.start()
    return node
  }

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: join(dir.path, 'chain'), blockIntervalMs: 0 })
    await regtest.start()
    const payments = { network: 'regtest', chain: regtest.url, settleIntervalMs: 500, graceMs: 600_000 }
    // one more config: a spare host joins later, for repairs
    for (let i = 0; i <= HOSTS; i++) {
      hostConfigs[i] = testConfig({
        payments,
        // rent far above a market's (1 BTC per TiB-month), so that the few MiB here come to whole satoshis a day
        services: { storage: { capacity: i === FULL_HOST ? '1 MiB' : '1 GiB', prices: { rent: '1 BTC', put: '100 sat', get: '200 sat' } } },
        policies: { global: { 'max-tab': '0.001 BTC' } }
      })
    }
    // host 1 first: the others join through it
    hosts[1] = await startHost(1)
    for (let i = 0; i < HOSTS; i++) {
      if (i !== 1) {
        hosts[i] = await startHost(i)
      }
    }
    client = await OpenCloudNode.create({ dataDir: join(dir.path, 'client'), config: testConfig({ payments }), bootstrap: [addrOf(hosts[1])], storage: { segmentSize: 4 * MIB, contractAllowance: 32 * MIB } })
    await client.start()
    await regtest.faucet(await client.wallet.newAddress(), 10_000_000n)
    await regtest.chain.mine(1, regtest.faucetAddress)
    // connected up front (each connection also pulls the host's offers):
    // these tests are about storage, not about finding hosts on a loaded machine
    for (const host of hosts) {
      await connect(client, host)
    }
    await waitFor(async () => (await client.storageHosts()).length === HOSTS, 60_000, 'storage offers from every host')

    file = join(dir.path, 'file.bin')
    const bytes = randomBytes(64 * MIB)
    bytes.write(marker, 5 * MIB)
    await writeFile(file, bytes)
  })

  after(async () => {
    await client?.stop()
    for (const h of hosts) {
      await h?.stop().catch(() => {})
    }
    await regtest?.stop()
    await dir?.cleanup()
  })

  it('stores 64 MiB as 4-of-8 on hosts with room (the full one is passed over) and gets back identical bytes', async () => {
    const progress: number[] = []
    const object = await client.storage.put(file, { name: 'file.bin', k: 4, n: 8, onProgress: (p) => { if (p.phase === 'upload') progress.push(p.done) } })
    assert.equal(object.segments.length, 16)
    const used = new Set(object.segments.flatMap(s => s.shards.map(x => x.host)))
    assert.equal(used.size, 8)
    assert.ok(!used.has(hosts[FULL_HOST].peerId.toString()), 'the full host holds nothing')
    assert.equal(progress.at(-1), 64 * MIB)
    const out = join(dir.path, 'out.bin')
    await client.storage.get('file.bin', out)
    assert.equal(await sha256File(out), await sha256File(file))
  })

  it('leaves no plaintext on any host\'s disk', async () => {
    let scanned = 0
    for (let i = 0; i < HOSTS; i++) {
      for (const path of await filesUnder(join(dir.path, `host${i}`))) {
        const content = await readFile(path)
        assert.equal(content.indexOf(marker), -1, `${path} holds plaintext`)
        scanned += content.byteLength
      }
    }
    // the shards themselves were scanned: 64 MiB at 2x is 128 MiB of ciphertext
    assert.ok(scanned > 128 * MIB, `scanned ${scanned} bytes`)
  })

  it('gets the file with N-K hosts stopped, and a restarted host still has its shards', async () => {
    const object = await client.storage.find('file.bin')
    const holders = [...new Set(object.segments[0].shards.map(s => s.host))]
    const stopped = hosts.map((h, i) => ({ h, i })).filter(({ h }) => holders.includes(h.peerId.toString())).slice(0, object.n - object.k)
    for (const { h } of stopped) {
      await h.stop()
    }
    const out = join(dir.path, 'out-degraded.bin')
    await client.storage.get('file.bin', out)
    assert.equal(await sha256File(out), await sha256File(file))
    for (const { i } of stopped) {
      hosts[i] = await startHost(i)
    }
    const restarted = hosts[stopped[0].i]
    const mine = object.segments.flatMap(s => s.shards).filter(s => s.host === restarted.peerId.toString())
    assert.ok(mine.length > 0)
    for (const s of mine) {
      assert.ok(await restarted.storageHost.store.has(s.contract, s.root), `shard ${s.root} survived the restart`)
    }
  })

  it('refuses a shard over the contract\'s maximum', async () => {
    const object = await client.storage.find('file.bin')
    const [id, c] = Object.entries(object.contracts)[0]
    await assert.rejects(
      client.paidCall(c.host, { service: 'storage', method: 'put', args: [id, '00'.repeat(32), 'AA=='], body: bodyFromBytes(randomBytes(c.maxBytes - bytesHeld(c) + 1)) }, { pay: { kind: 'defer', sats: 1000n }, maxPrice: 1000n }),
      (err: any) => err.name === 'BodyTooLargeError' && /over contract .* maximum/.test(err.message)
    )
  })

  it('says "cannot decrypt" with the wrong key and writes nothing', async () => {
    const components = (client.storage as any).components
    const right = components.storageKey
    components.storageKey = () => randomBytes(32)
    const out = join(dir.path, 'out-wrong-key.bin')
    try {
      await assert.rejects(client.storage.get('file.bin', out), (err: any) => err instanceof DecryptError && /cannot decrypt/.test(err.message))
    } finally {
      components.storageKey = right
    }
    await assert.rejects(stat(out), { code: 'ENOENT' })
    assert.deepEqual((await readdir(dir.path)).filter(f => f.includes('out-wrong-key')), [], 'no partial file is left')
  })

  it('pays rent as periods fall due, on the bytes each host holds, accrued exactly: host and client agree to the unit, and rent goes through the payment machinery', async () => {
    const before = await client.storage.find('file.bin')
    const contracts = Object.entries(before.contracts).filter(([, c]) => c.ended == null)
    assert.equal(contracts.length, 8, 'one contract per host')
    // the records are shared (one per contract): what they said before, copied
    // what was paid (the host credits its own price, which a payment of this node's may be over by a fraction's satoshi)
    const rentBefore = new Map(contracts.map(([id, c]) => [id, BigInt(c.spent.rent)]))
    const listOf = async (id: string, host: string): Promise<any> => {
      const node = hosts.find(h => h.peerId.toString() === host)!
      return JSON.parse(new TextDecoder().decode(await (await client.call(node.peerId, { service: 'storage', method: 'list', args: [id] })).body.bytes()))
    }
    // the host's count: this node's may be over it by the gets it asked for and the host never served (a hedge cut short)
    const accruedBefore = new Map<string, bigint>()
    for (const [id, c] of contracts) {
      accruedBefore.set(id, BigInt((await listOf(id, c.host)).rentAccrued))
    }
    for (const [, c] of contracts) {
      assert.equal(c.rentPaidPeriods, 1, 'the first period is paid when the contract is formed')
      // with nothing held then: 0 sat (the sum has grown since by the uploads' fractions of a satoshi, paid with the next rent)
      assert.equal(c.rentPaid, '0', 'with nothing held yet: 0 sat')
    }
    const period = contracts[0][1].rentPeriodMs
    // two days on: periods 2 and 3 are due (the next is paid half a period ahead)
    const paid = await client.storage.payRent(Date.now() + 2 * period)
    assert.equal(paid, 8 * 2)
    const after = await client.storage.find('file.bin')
    let rent = 0n
    for (const [id] of contracts) {
      const now = after.contracts[id]
      assert.equal(now.rentPaidPeriods, 3)
      // each period on the bytes held then: the first with nothing yet, the two since with the file's shards
      const accrued = BigInt(now.rentAccrued ?? '0') - (accruedBefore.get(id) ?? 0n)
      assert.equal(accrued, 100_000_000n * BigInt(bytesHeld(now)) * BigInt(period) * 2n)
      assert.equal(BigInt(now.rentPaid ?? '0'), (BigInt(now.rentAccrued ?? '0') + RENT_UNITS_PER_SAT - 1n) / RENT_UNITS_PER_SAT, 'paid: the accrued sum rounded up to the satoshi')
      rent += BigInt(now.spent.rent) - (rentBefore.get(id) ?? 0n)
      const answer = await listOf(id, now.host)
      assert.deepEqual([answer.rentPaidPeriods, answer.rentAccrued, answer.rentPaid, answer.bytes], [3, now.rentAccrued, formatAmount(BigInt(now.rentPaid ?? '0')), bytesHeld(now)])
    }
    assert.ok(rent > 8n * 2n * 40n, `about 48 sat a day per host for 16 MiB at 1 BTC per TiB-month: ${rent} sat`)
    // nothing more is due yet
    assert.equal(await client.storage.payRent(Date.now() + 2 * period), 0)
    // rent goes through the payment machinery: at these prices a channel to
    // each host costs less on chain than settling deferred promises (the
    // auto strategy), so the put opened one to each of its 8 hosts, all in
    // one funding transaction, and the rent went through them
    const channels = client.channels?.store.all('payer') ?? []
    assert.deepEqual(channels.map(c => c.peer).sort(), contracts.map(([, c]) => c.host).sort(), 'a channel to each host holding a contract (not to the full one it passed over)')
    assert.equal(new Set(channels.map(c => c.txid)).size, 1, 'one funding transaction for all of them')
    const throughChannels = (await client.tabs.payments()).filter(p => p.direction === 'sent' && p.txid.startsWith('channel:') && p.service === 'storage' && p.method === 'rent')
    const promised = (await client.tabs.promises('payable')).filter(p => p.service === 'storage' && p.method === 'rent')
    assert.equal(promised.length, 0, 'nothing deferred')
    assert.equal(throughChannels.reduce((n, p) => n + p.sats, 0n), rent)
    const [id0, c0] = contracts[0]
    const host = hosts.find(h => h.peerId.toString() === c0.host)!
    const hostSide = (await host.tabs.payments()).filter(p => p.direction === 'received' && p.txid.startsWith('channel:') && p.service === 'storage' && p.method === 'rent' && p.peer === client.peerId.toString())
    assert.equal(hostSide.length, 2, `the host of ${id0} was paid the two periods that cost something through its channel (the first held nothing: 0 sat)`)
    const theirs = host.channels?.store.all('payee').find(c => c.peer === client.peerId.toString())
    const allFromClient = (await host.tabs.payments()).filter(p => p.direction === 'received' && p.txid.startsWith(`channel:${theirs?.id}:`))
    assert.equal(theirs?.total, allFromClient.reduce((n, p) => n + p.sats, 0n), 'the host holds the latest state: every payment through the channel')
  })

  it('audits every host: one that silently deleted its shards is caught and rated, one down for a while is not condemned', async () => {
    const HOUR = 3600_000
    let now = Date.now() + 24 * HOUR
    const first = await client.storage.audit(now)
    assert.deepEqual(first, { passed: 8, failed: 0, unreachable: 0 })
    const object = await client.storage.find('file.bin')
    assert.equal(healthOf(object).state, 'healthy')

    // host of shard 1 deletes what it holds, telling nobody
    const [cheatId, cheat] = Object.entries(object.contracts).find(([, c]) => c.host === object.segments[0].shards[1].host)!
    const cheatIndex = hosts.findIndex(h => h.peerId.toString() === cheat.host)
    await rm(join(dir.path, `host${cheatIndex}`, 'storage', cheatId), { recursive: true })
    // host of shard 2 is down
    const downIndex = hosts.findIndex(h => h.peerId.toString() === object.segments[0].shards[2].host)
    await hosts[downIndex].stop()
    now += 24 * HOUR
    const second = await client.storage.audit(now)
    assert.deepEqual(second, { passed: 6, failed: 1, unreachable: 1 })
    const audited = await client.storage.find('file.bin')
    assert.match(audited.contracts[cheatId].lostReason ?? '', /no longer has shard/)
    const health = healthOf(audited)
    assert.deepEqual([health.state, health.healthy, health.lostContracts], ['degraded', 7, 1])
    const records = await client.reputation.store.records(cheat.host)
    assert.ok(records.some(r => r.event === 'corrupt' && r.method === 'prove'), 'the cheat is rated')

    // back within the grace period: audited again at the next check, and passes
    hosts[downIndex] = await startHost(downIndex)
    await connect(client, hosts[downIndex])
    const third = await client.storage.audit(now + 60_000)
    assert.deepEqual(third, { passed: 1, failed: 0, unreachable: 0 })
    assert.equal(healthOf(await client.storage.find('file.bin')).healthy, 7)
    // the file still comes back, and no rent goes to the cheat
    const out = join(dir.path, 'out-audited.bin')
    await client.storage.get('file.bin', out)
    assert.equal(await sha256File(out), await sha256File(file))
  })

  it('repairs the condemned host\'s shards onto a new host (as the daemon\'s periodic check does), and the file comes back whole', async () => {
    const before = await client.storage.find('file.bin')
    assert.equal(healthOf(before).lostContracts, 1)
    const [lostId, lost] = Object.entries(before.contracts).find(([, c]) => c.lost != null)!
    const lostSlot = before.segments[0].shards.findIndex(s => s.contract === lostId)
    // 4-of-8 repairs after 2 losses by default; one is not enough
    assert.equal(await client.storage.repairAll(), 0)
    // a spare host joins the market
    hosts[HOSTS] = await startHost(HOSTS)
    const spare = hosts[HOSTS].peerId.toString()
    await waitFor(async () => (await client.storageHosts()).some(h => h.peer === spare), 30_000, 'the spare host\'s offer')
    await connect(client, hosts[HOSTS])
    const rebuilt = await client.storage.repair('file.bin')
    assert.equal(rebuilt, before.segments.length)
    const after = await client.storage.find('file.bin')
    assert.equal(healthOf(after).state, 'healthy')
    assert.ok(after.segments.every((s, i) => s.shards[lostSlot].host === spare && s.shards[lostSlot].root === before.segments[i].shards[lostSlot].root), 'every lost shard is on the spare, with its original root')
    // nothing names the condemned contract's shards now: the daemon's next check ends it (this one, or its own periodic one)
    await client.storage.collectGarbage()
    assert.ok((await client.storage.find('file.bin')).contracts[lostId].ended != null, 'the condemned contract is ended')
    assert.equal(lost.host, after.contracts[lostId].host)
    // nothing to do twice
    assert.equal(await client.storage.repair('file.bin'), 0)
    const spareStore = hosts[HOSTS].storageHost.store
    const newContract = after.segments[0].shards[lostSlot].contract
    assert.equal(await spareStore.has(newContract, after.segments[0].shards[lostSlot].root), true)
    const out = join(dir.path, 'out-repaired.bin')
    await client.storage.get('file.bin', out)
    assert.equal(await sha256File(out), await sha256File(file))
  })

  it('detects a host that sends wrong bytes, routes around it, rates it and condemns its contract', async () => {
    const object = await client.storage.find('file.bin')
    const liar = hosts.find(h => h.peerId.toString() === object.segments[0].shards[0].host)!
    const store = liar.storageHost.store
    const honest = store.range.bind(store)
    store.range = async (...args) => {
      const real = await honest(...args)
      return bodyFromBytes(randomBytes(real.length))
    }
    try {
      const out = join(dir.path, 'out-liar.bin')
      await client.storage.get('file.bin', out)
      assert.equal(await sha256File(out), await sha256File(file))
      const records = await client.reputation.store.records(liar.peerId.toString())
      assert.ok(records.some(r => r.event === 'corrupt'), 'the liar is rated')
      // as a failed audit: its shards count no more, and repair never uses it
      // again (in the record once no upkeep holds the records)
      await waitFor(async () => (await client.storage.find('file.bin')).contracts[object.segments[0].shards[0].contract].lost != null, 10_000, 'the liar condemned in the record')
      const seen = await client.storage.find('file.bin')
      const c = seen.contracts[object.segments[0].shards[0].contract]
      assert.equal(c.lostFor, 'cheated')
      assert.match(c.lostReason ?? '', /sent bytes that do not match shard/)
      assert.deepEqual([healthOf(seen).healthy, healthOf(seen).lostContracts], [7, 2])
    } finally {
      store.range = honest
    }
  })

  it('never serves a shard corrupted on disk: the host refuses, the file still comes back, and the shard counts as lost', async () => {
    const object = await client.storage.find('file.bin')
    const shard = object.segments[1].shards[1]
    const host = hosts.find(h => h.peerId.toString() === shard.host)!
    await client.libp2p.dial(host.libp2p.getMultiaddrs()[0])
    const path = join(host.paths.root, 'storage', shard.contract, shard.root)
    const bytes = await readFile(path)
    bytes[100] ^= 0xff
    await writeFile(path, bytes)
    const pay = { pay: { kind: 'defer' as const, sats: 1000n }, maxPrice: 1000n }
    await assert.rejects(client.paidCall(host.peerId, { service: 'storage', method: 'get', args: [shard.contract, shard.root, '0', String(object.segments[1].shardSize)] }, pay), (err: any) => err.name === 'NotFoundError' && /corrupt on this host/.test(err.message))
    const out = join(dir.path, 'out-corrupt.bin')
    await client.storage.get('file.bin', out)
    assert.equal(await sha256File(out), await sha256File(file))
    // counted against the host; the host said so itself, so only that
    // shard is lost, and the repair check the get started rebuilds it
    await waitFor(async () => (await client.storage.find('file.bin')).contracts[shard.contract].shardsLost === 1, 10_000, 'the lost shard in the record')
    const seen = await client.storage.find('file.bin')
    assert.equal(seen.contracts[shard.contract].shardsLost, 1)
    assert.equal(seen.contracts[shard.contract].lost, undefined)
    // the only host that holds no other shard of the segment is the one that
    // lost it: the shard goes back under its contract there, and the re-put
    // replaces the corrupt copy (PROTOCOL.md 8d, "Storing and serving shards")
    await waitFor(async () => {
      const now = (await client.storage.find('file.bin')).segments[1].shards[1]
      return now.root === shard.root && now.lost == null
    }, 30_000, 'the corrupt shard rebuilt')
    const now = (await client.storage.find('file.bin')).segments[1].shards[1]
    if (now.host === shard.host) {
      assert.equal(now.contract, shard.contract, 'under the one contract with that host')
      assert.notEqual((await readFile(path))[100], bytes[100], 'the corrupt copy is replaced')
    }
  })

  it('answers an unknown object clearly, and rm ends the contracts on every host', async () => {
    await assert.rejects(client.storage.get('no-such-file', join(dir.path, 'x')), ObjectNotFoundError)
    const object = await client.storage.find('file.bin')
    const { object: removed, unreachable } = await client.storage.remove('file.bin')
    assert.deepEqual(unreachable, [])
    // every contract ended with signed ratings both ways: the condemned host
    // rated badly by this node; every host says the rent was paid
    for (const [id, c] of Object.entries(removed.contracts)) {
      if (c.renewedAs != null) continue
      assert.ok(c.ratings != null, `contract ${id} is rated`)
      const mine = openRating(Buffer.from(c.ratings.renter, 'base64'))
      assert.deepEqual([mine.rater, mine.rated, mine.satisfactory], [client.peerId.toString(), c.host, c.lost == null && (c.shardsLost ?? 0) === 0])
      if (c.lost == null) {
        const theirs = openRating(Buffer.from(c.ratings.host!, 'base64'))
        assert.deepEqual([theirs.rater, theirs.rated, theirs.satisfactory, theirs.reason], [c.host, client.peerId.toString(), true, 'rent paid as agreed'])
        const host = hosts.find(h => h.peerId.toString() === c.host)!
        assert.ok((await host.reputation.store.records(client.peerId.toString())).some(r => r.event === 'contract-ended' && r.outcome === 'satisfactory'))
      }
    }
    await assert.rejects(client.storage.find('file.bin'), ObjectNotFoundError)
    for (const [id, c] of Object.entries(object.contracts)) {
      const host = hosts.find(h => h.peerId.toString() === c.host)!
      assert.equal(await host.storageHost.store.has(id, object.segments[0].shards[0].root), false)
    }
    assert.deepEqual(await client.storage.list(), [])
  })

  it('stores 200 small files in one contract per host, rent on the bytes held; removing one while another put runs loses nothing of the others', { timeout: 240_000 }, async () => {
    const small = Array.from({ length: 200 }, (_, i) => randomBytes(1024 + (i % 7) * 300))
    const paths = await Promise.all(small.map(async (bytes, i) => {
      const path = join(dir.path, `small-${i}.bin`)
      await writeFile(path, bytes)
      return path
    }))
    // ten puts at a time: their revisions of the same contracts take turns
    for (let i = 0; i < paths.length; i += 10) {
      await Promise.all(paths.slice(i, i + 10).map(async path => client.storage.put(path)))
    }
    const objects = await client.storage.list()
    assert.equal(objects.length, 200)
    const live = new Set(objects.flatMap(o => Object.entries(o.contracts).filter(([, c]) => c.ended == null).map(([id]) => id)))
    assert.ok(live.size >= 8, `${live.size} contracts for 200 files stored 4-of-8`)
    const byHost = new Map<string, number>()
    for (const id of live) {
      const c = objects[0].contracts[id] ?? objects.find(o => o.contracts[id] != null)!.contracts[id]
      byHost.set(c.host, (byHost.get(c.host) ?? 0) + 1)
      // rent is on what the contract holds: the sum of every object's shards there
      const named = objects.reduce((n, o) => n + o.segments.reduce((m, s) => m + s.shards.filter(x => x.contract === id).length * s.shardSize, 0), 0)
      assert.equal(bytesHeld(c), named)
      const host = hosts.find(h => h.peerId.toString() === c.host)!
      const listed = JSON.parse(new TextDecoder().decode(await (await client.call(host.peerId, { service: 'storage', method: 'list', args: [id] })).body.bytes()))
      assert.deepEqual([listed.revision, listed.bytes], [c.revision, named], 'the host holds the revision this node recorded')
    }
    assert.ok([...byHost.values()].every(n => n === 1), 'one contract per host for all 200 files')
    // each object's share of each contract shows in its info
    const info = objectInfo(objects[0]) as any
    assert.ok(info.contracts.every((c: any) => c.objectBytes > 0 && c.objectBytes < c.bytesHeld && /%$/.test(c.objectShare)))

    // one object removed while another is being stored under the same contracts
    const big = join(dir.path, 'big-during-rm.bin')
    await writeFile(big, randomBytes(9 * MIB))
    const victim = objects[0]
    const [stored, removed] = await Promise.all([client.storage.put(big), client.storage.remove(victim.id)])
    assert.deepEqual(removed.unreachable, [])
    for (const [id, c] of Object.entries(victim.contracts).filter(([, c]) => c.ended == null)) {
      const host = hosts.find(h => h.peerId.toString() === c.host)!
      assert.equal(await host.storageHost.store.has(id, victim.segments[0].shards.find(x => x.contract === id)!.root), false, 'its shard is deleted')
    }
    const out = join(dir.path, 'big-during-rm.out')
    await client.storage.get(stored.id, out)
    assert.equal(await sha256File(out), await sha256File(big))
    for (const i of [1, 100, 199]) {
      await client.storage.get(`small-${i}.bin`, join(dir.path, `small-${i}.out`))
      assert.ok((await readFile(join(dir.path, `small-${i}.out`))).equals(small[i]))
    }
    // every host still agrees with this node's record of each contract
    for (const [id, c] of client.storage.contractList().filter(([, c]) => c.ended == null)) {
      const host = hosts.find(h => h.peerId.toString() === c.host)!
      const listed = JSON.parse(new TextDecoder().decode(await (await client.call(host.peerId, { service: 'storage', method: 'list', args: [id] })).body.bytes()))
      assert.deepEqual([listed.revision, listed.bytes], [c.revision, bytesHeld(c)])
    }
  })
})
