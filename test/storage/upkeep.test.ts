import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { healthOf } from '../../src/storage/client/storage-client.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import type { Config } from '../../src/node/config.ts'

const MIB = 1024 * 1024

/**
 * The daemon's own upkeep, with nobody calling anything: short intervals
 * (a check every 300 ms, audits every second) so a cheat is caught and
 * repaired within seconds.
 */
describe('storage upkeep: audits, repair and unpaid rent, by the running nodes', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  const hosts: OpenCloudNode[] = []
  let client: OpenCloudNode
  let hostConfig: () => Config

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: join(dir.path, 'chain'), blockIntervalMs: 0 })
    await regtest.start()
    const payments = { network: 'regtest', chain: regtest.url, settleIntervalMs: 500, graceMs: 600_000 }
    hostConfig = () => testConfig({ payments, services: { storage: { capacity: '1 GiB', prices: { rent: '1000 sat', put: '100 sat', get: '200 sat' } } }, policies: { global: { 'max-tab': '0.001 BTC' } } })
    for (let i = 0; i < 5; i++) {
      hosts[i] = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: hostConfig(), bootstrap: i === 0 ? [] : [addrOf(hosts[0])] })
      await hosts[i].start()
    }
    client = await OpenCloudNode.create({
      dataDir: join(dir.path, 'client'),
      config: testConfig({ payments }),
      bootstrap: [addrOf(hosts[0])],
      storage: { segmentSize: MIB, rentCheckMs: 300, auditIntervalMs: 1000, auditGraceMs: 60_000 }
    })
    await client.start()
    await regtest.faucet(await client.wallet.newAddress(), 10_000_000n)
    await regtest.chain.mine(1, regtest.faucetAddress)
    // connected up front (each connection also pulls the host's offers):
    // these tests are about storage, not about finding hosts on a loaded machine
    for (const host of hosts) {
      await connect(client, host)
    }
    await waitFor(async () => (await client.storageHosts()).length === 5, 60_000, 'storage offers from every host')
  })

  after(async () => {
    await client?.stop()
    for (const h of hosts) {
      await h?.stop().catch(() => {})
    }
    await regtest?.stop()
    await dir?.cleanup()
  })

  it('catches a host that silently deleted its shards and puts the file back at full redundancy on its own', async () => {
    const file = join(dir.path, 'file.bin')
    const bytes = randomBytes(4 * MIB + 1234)
    await writeFile(file, bytes)
    // 2-of-4 on 4 of the 5 hosts: one is spare; 2-of-4 repairs after 1 loss
    const object = await client.storage.put(file, { name: 'file.bin', k: 2, n: 4 })
    assert.equal(healthOf(object).state, 'healthy')
    const used = new Set(Object.values(object.contracts).map(c => c.host))
    const spare = hosts.find(h => !used.has(h.peerId.toString()))!.peerId.toString()

    const [cheatId, cheat] = Object.entries(object.contracts)[0]
    const cheatIndex = hosts.findIndex(h => h.peerId.toString() === cheat.host)
    const slot = object.segments[0].shards.findIndex(s => s.contract === cheatId)
    await rm(join(dir.path, `host${cheatIndex}`, 'storage', cheatId), { recursive: true })

    // no call from here on: the node's checks audit, condemn and repair
    await waitFor(async () => {
      const now = await client.storage.find('file.bin')
      return now.contracts[cheatId].lost != null && now.segments.every(s => s.shards[slot].host === spare)
    }, 60_000, 'the cheat caught and its shards rebuilt on the spare host')
    const repaired = await client.storage.find('file.bin')
    assert.equal(healthOf(repaired).state, 'healthy')
    assert.match(repaired.contracts[cheatId].lostReason ?? '', /no longer has shard/)
    // nothing names its shards now: the next check ends the contract (no more rent)
    await waitFor(async () => (await client.storage.find('file.bin')).contracts[cheatId].ended != null, 60_000, 'the cheat\'s contract ended')
    const records = await client.reputation.store.records(cheat.host)
    assert.ok(records.some(r => r.event === 'corrupt' && r.method === 'prove'))

    // with the cheat gone for good, the file still comes back
    await hosts[cheatIndex].stop()
    const out = join(dir.path, 'out.bin')
    await client.storage.get('file.bin', out)
    assert.equal(createHash('sha256').update(await readFile(out)).digest('hex'), createHash('sha256').update(bytes).digest('hex'))
  })

  it('renews contracts that end soon with the same hosts, carrying the shards over without sending them again', async () => {
    const before = await client.storage.find('file.bin')
    const live = Object.entries(before.contracts).filter(([, c]) => c.ended == null && c.lost == null)
    // 25 days into 30-day contracts: 5 days left, under the 7 days that start a renewal
    const renewed = await client.storage.renewAll(Date.now() + 25 * 86_400_000)
    assert.equal(renewed, live.length)
    const after = await client.storage.find('file.bin')
    for (const [oldId, old] of live) {
      const newId = after.contracts[oldId].renewedAs!
      const next = after.contracts[newId]
      assert.equal(next.host, old.host)
      assert.ok(next.end > old.end, 'the new contract runs longer')
      assert.deepEqual(next.shards, old.shards)
      assert.equal(next.rentPaidPeriods, 1, 'its first period is paid')
      assert.ok(after.segments.every(s => s.shards.every(x => x.contract !== oldId)), 'no segment points at the old contract')
      const host = hosts.find(h => h.peerId.toString() === old.host)!
      const listed = JSON.parse(new TextDecoder().decode(await (await client.call(host.peerId, { service: 'storage', method: 'list', args: [newId] })).body.bytes()))
      assert.deepEqual(listed.shards.map((x: any) => [x.root, x.bytes]), old.shards)
      assert.equal(listed.revision, 1)
      await assert.rejects(client.call(host.peerId, { service: 'storage', method: 'list', args: [oldId] }), /renewed as/)
    }
    assert.equal(healthOf(after).state, 'healthy')
    // nothing is due today, and the file reads back from the renewed contracts
    assert.equal(await client.storage.renewAll(Date.now()), 0)
    const out = join(dir.path, 'out-renewed.bin')
    await client.storage.get('file.bin', out)
    assert.equal(createHash('sha256').update(await readFile(out)).digest('hex'), after.sha256)
  })

  it('moves the shards off a host whose price rises far above the market, and rates it fairly', async () => {
    // a new host joins, with room
    const running = hosts.find(h => h.libp2p.status === 'started')!
    hosts.push(await OpenCloudNode.create({ dataDir: join(dir.path, 'host5'), config: hostConfig(), bootstrap: [addrOf(running)] }))
    const newcomer = hosts[5]
    await newcomer.start()
    await waitFor(async () => (await client.storageHosts()).some(h => h.peer === newcomer.peerId.toString()), 30_000, 'the new host\'s offer')
    await connect(client, newcomer)
    const before = await client.storage.find('file.bin')
    const [id, c] = Object.entries(before.contracts).find(([, c]) => c.ended == null && c.lost == null)!
    const slot = before.segments[0].shards.findIndex(s => s.contract === id)
    const greedy = hosts.find(h => h.peerId.toString() === c.host)!
    // 10x the others' 1000 sat per TiB-month: over the 3x that moves data away
    await greedy.market.setPrice('storage', 'rent', 10_000n)
    // no call from here on: the node's checks see the price and migrate
    await waitFor(async () => (await client.storage.find('file.bin')).segments.every(s => s.shards[slot].host === newcomer.peerId.toString()), 60_000, 'the shards moved to the new host')
    // nothing names its shards now: the next check ends the contract (no more rent)
    await waitFor(async () => (await client.storage.find('file.bin')).contracts[id].ended != null, 60_000, 'the old contract ended')
    const after = await client.storage.find('file.bin')
    assert.match(after.contracts[id].migrating ?? '', /price rose to 0\.0001 BTC per TiB-month/)
    // it did nothing wrong: rated satisfactory, not condemned
    assert.equal(after.contracts[id].lost, undefined)
    assert.equal(after.contracts[id].ratings?.renterSatisfied, true)
    assert.equal(healthOf(after).state, 'healthy')
  })

  it('ends the contracts of a renter that stops paying rent, after the grace period, and rates it', async () => {
    const object = await client.storage.find('file.bin')
    const live = Object.entries(object.contracts).filter(([, c]) => c.ended == null && c.lost == null)
    const [id, c] = live[0]
    const host = hosts.find(h => h.peerId.toString() === c.host)!
    const DAY = 86_400_000
    // rent is paid a day at a time: five days behind is within the 7-day grace
    assert.deepEqual(await host.storageHost.endUnpaid(Date.now() + 5 * DAY), [])
    assert.equal(await host.storageHost.store.has(id, object.segments[0].shards.find(s => s.contract === id)!.root), true)
    const ended = await host.storageHost.endUnpaid(Date.now() + 9 * DAY)
    assert.ok(ended.includes(id), `contract ${id} ended`)
    assert.equal(await host.storageHost.store.has(id, object.segments[0].shards.find(s => s.contract === id)!.root), false)
    const records = await host.reputation.store.records(client.peerId.toString())
    assert.ok(records.some(r => r.event === 'rent-unpaid' && r.role === 'caller'), 'the renter is rated')
    // the renter is told why when it asks
    await assert.rejects(client.call(host.peerId, { service: 'storage', method: 'list', args: [id] }), /has ended \(rent unpaid\)/)
  })

  it('deletes the shards of a contract that expired more than the grace ago, and rates the renter', async () => {
    const object = await client.storage.find('file.bin')
    // one the host still holds (the test before ended its host's contracts)
    let found: [string, typeof object.contracts[string], typeof hosts[number], string] | undefined
    for (const [id, c] of Object.entries(object.contracts)) {
      const host = hosts.find(h => h.peerId.toString() === c.host)
      const root = object.segments[0].shards.find(s => s.contract === id)?.root
      if (c.ended == null && c.lost == null && host != null && root != null && await host.storageHost.store.has(id, root)) {
        found = [id, c, host, root]
        break
      }
    }
    assert.ok(found != null, 'a contract still held')
    const [id, c, host, root] = found
    const DAY = 86_400_000
    // a day past its end is within the grace: the renter may still take its data out
    assert.ok(!(await host.storageHost.endExpired(c.end + DAY)).includes(id))
    assert.equal(await host.storageHost.store.has(id, root), true)
    const ended = await host.storageHost.endExpired(c.end + 8 * DAY)
    assert.ok(ended.includes(id), `contract ${id} ended`)
    assert.equal(await host.storageHost.store.has(id, root), false)
    // rent was paid a day at a time, not through the end: the renter is rated for it
    const records = await host.reputation.store.records(client.peerId.toString())
    assert.ok(records.some(r => r.event === 'rent-unpaid' && r.method === 'end'), 'the renter is rated')
    await assert.rejects(client.call(host.peerId, { service: 'storage', method: 'list', args: [id] }), /has ended \(expired, rent unpaid\)/)
  })

  it('holds no host to an audit while this node itself reaches nobody', async () => {
    for (const h of hosts) {
      await h.stop()
    }
    // after any check already under way (audits run one at a time)
    await client.storage.audit(Date.now())
    const before = await client.storage.find('file.bin')
    const lostBefore = Object.values(before.contracts).filter(c => c.lost != null).length
    // two hours on, past the hour's grace: still nobody condemned
    for (const hours of [2, 4]) {
      const counts = await client.storage.audit(Date.now() + hours * 3600_000)
      assert.equal(counts.passed + counts.failed, 0)
      assert.ok(counts.unreachable > 0)
    }
    const after = await client.storage.find('file.bin')
    assert.equal(Object.values(after.contracts).filter(c => c.lost != null).length, lostBefore)
    // no grace started or ran on while nobody could be reached
    const since = (o: typeof before): Array<number | undefined> => Object.values(o.contracts).map(c => c.audit?.unreachableSince)
    assert.deepEqual(since(after), since(before))
  })
})
