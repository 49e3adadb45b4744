import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { CONTRACT_VERSION, transferCost } from '../../src/storage/protocol/contract.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'

const KIB = 1024
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** What a node's calls of one storage method cost it: promises it owes and payments it sent */
async function spentOn (node: OpenCloudNode, method: string): Promise<bigint> {
  let sats = 0n
  for (const p of await node.tabs.promises('payable')) {
    sats += p.service === 'storage' && p.method === method ? p.sats : 0n
  }
  for (const p of await node.tabs.payments()) {
    sats += p.direction === 'sent' && p.service === 'storage' && p.method === method ? p.sats : 0n
  }
  return sats
}

/**
 * The holder pays its own downloads (PROTOCOL.md 8h): on hosts whose get
 * costs whole satoshis per shard, a holder with payments on fetches a share
 * and owes the hosts for it; the owner pays nothing for the holder's gets
 */
describe('shares on paid hosts: the holder pays', () => {
  it('fetches a share on priced hosts, paying them at the contract\'s get price, the owner paying nothing for it', async () => {
    const dir = await tempDir()
    const regtest = new RegtestServer({ dir: join(dir.path, 'chain'), blockIntervalMs: 0 })
    await regtest.start()
    const nodes: OpenCloudNode[] = []
    try {
      const payments = { network: 'regtest', chain: regtest.url, settleIntervalMs: 500, graceMs: 600_000 }
      // get at 1 BTC per TiB: a 32 KiB shard's get is 2 whole satoshis, so it is paid for, not free
      const hostConfig = testConfig({ payments, services: { storage: { capacity: '1 GiB', prices: { rent: '1 BTC', put: '100 sat', get: '1 BTC' } } }, policies: { global: { 'max-tab': '0.001 BTC' } } })
      const hosts: OpenCloudNode[] = []
      for (let i = 0; i < 3; i++) {
        hosts[i] = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: hostConfig, bootstrap: i === 0 ? [] : [addrOf(hosts[0])] })
        await hosts[i].start()
        nodes.push(hosts[i])
      }
      const start = async (name: string): Promise<OpenCloudNode> => {
        const node = await OpenCloudNode.create({ dataDir: join(dir.path, name), config: testConfig({ payments, services: { storage: { enabled: false } } }), bootstrap: [addrOf(hosts[0])], storage: { segmentSize: 64 * KIB } })
        await node.start()
        nodes.push(node)
        await regtest.faucet(await node.wallet.newAddress(), 10_000_000n)
        for (const h of hosts) {
          await connect(node, h)
        }
        return node
      }
      const owner = await start('owner')
      const holder = await start('holder')
      await regtest.chain.mine(1, regtest.faucetAddress)
      await waitFor(async () => (await owner.storageHosts()).length === 3, 30_000, 'storage offers from every host')

      const data = randomBytes(200 * KIB)
      await writeFile(join(dir.path, 'paid.bin'), data)
      await owner.storage.put(join(dir.path, 'paid.bin'), { name: 'paid.bin', k: 2, n: 3 })
      const ownerGets = await spentOn(owner, 'get')
      const { text } = await owner.storage.share('paid.bin', { expiresInMs: 3600_000 })

      const [fetched] = await holder.storage.fetchShared(text, { out: join(dir.path, 'out.bin') })
      assert.equal(fetched.sha256, sha256(data))
      assert.equal(sha256(await readFile(join(dir.path, 'out.bin'))), sha256(data))
      // K shards of each segment at the contract's get price (whole satoshis, version 2: 2 sat for a
      // shard of 32 KiB, 0 for the last segment's small ones); N if every request were hedged
      const object = await owner.storage.find('paid.bin')
      const perShard = object.segments.map(s => transferCost(CONTRACT_VERSION, 100_000_000n, s.shardSize))
      const least = perShard.reduce((a, b) => a + b, 0n) * BigInt(object.k)
      assert.ok(least > 0n)
      const paid = await spentOn(holder, 'shared-get')
      assert.ok(paid >= least && paid <= least / BigInt(object.k) * BigInt(object.n), `the holder paid ${paid} sat for its shared-gets, K shards a segment cost ${least}`)
      assert.equal(await spentOn(owner, 'shared-get'), 0n)
      assert.equal(await spentOn(owner, 'get'), ownerGets, 'the owner paid nothing for the holder\'s downloads')
    } finally {
      for (const node of nodes.reverse()) {
        await node.stop().catch(() => {})
      }
      await regtest.stop()
      await dir.cleanup()
    }
  })
})
