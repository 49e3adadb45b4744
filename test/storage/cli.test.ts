import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir, waitFor } from '../helpers/nodes.ts'
import { runCli, runShell, startDaemon, type Daemon } from '../helpers/cli.ts'
import { killGroup, startTestnet } from '../helpers/testnet.ts'
import { connectApi } from '../../src/cli/api-client.ts'

const MIB = 1024 * 1024

async function sha256Of (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk)
  }
  return hash.digest('hex')
}

async function writeRandom (path: string, bytes: number): Promise<void> {
  const handle = await open(path, 'w')
  for (let written = 0; written < bytes; written += MIB) {
    await handle.write(randomBytes(Math.min(MIB, bytes - written)))
  }
  await handle.close()
}

/** Peak and current RSS of a process, in bytes, from /proc */
async function memoryOf (pid: number): Promise<{ peak: number, now: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024
  return { peak: kb('VmHWM'), now: kb('VmRSS') }
}

async function pidOf (dataDir: string): Promise<number> {
  return JSON.parse(await readFile(join(dataDir, 'api.json'), 'utf8')).pid
}

/** Shard files under a host's data directory */
async function shardFiles (dataDir: string): Promise<string[]> {
  const root = join(dataDir, 'storage')
  const files: string[] = []
  for (const contract of await readdir(root).catch(() => [])) {
    for (const name of await readdir(join(root, contract)).catch(() => [])) {
      files.push(join(contract, name))
    }
  }
  return files
}

describe('store from the command line, on a testnet of daemons', () => {
  it('puts, lists, gets and removes a file; survives kill -9 mid-upload; keeps the node\'s memory flat for a large file', async () => {
    const dir = await tempDir()
    const { child, network } = await startTestnet(5, dir.path)
    let restarted: Daemon | undefined
    try {
      const { nodes } = network
      const client = nodes[0]
      const hosts = nodes.slice(1)
      const cli = async (...args: string[]): Promise<ReturnType<typeof runCli>> => runCli(['--data-dir', client.dataDir, ...args])
      await waitFor(async () => {
        const offers = JSON.parse((await cli('market', 'prices', '--service', 'storage', '--json')).stdout)
        return new Set(offers.filter((o: any) => o.method === 'rent').map((o: any) => o.provider)).size >= 4
      }, 30_000, 'the storage offers of the four other nodes')

      // a large file: the daemon streams it, segment by segment
      const big = join(dir.path, 'big.bin')
      const size = 192 * MIB
      await writeRandom(big, size)
      const bigHash = await sha256Of(big)

      // kill -9 of the client's daemon while the shards are going out
      const api = await connectApi(client.dataDir)
      const pid = await pidOf(client.dataDir)
      let killedAt = 0
      await assert.rejects(api.events('/v1/store/put', { path: big }, (e) => {
        if (e.phase === 'upload' && e.done > 0 && killedAt === 0) {
          killedAt = e.done
          process.kill(pid, 'SIGKILL')
        }
      }))
      assert.ok(killedAt > 0 && killedAt < size, `killed mid-upload at ${killedAt} of ${size} bytes`)
      // (on three of the four: one is kept spare)
      await waitFor(async () => (await Promise.all(hosts.map(async (h: any) => shardFiles(h.dataDir)))).some(f => f.length > 0), 5_000, 'shards of the interrupted upload on a host')

      restarted = await startDaemon(client.dataDir, ['--bootstrap', hosts[0].addrs[0]])
      // nothing half-stored is listed, and the hosts are told to drop what they got
      const listed = await cli('store', 'ls', '--json')
      assert.equal(listed.code, 0, listed.stderr)
      assert.deepEqual(JSON.parse(listed.stdout).objects, [])
      for (const host of hosts) {
        await waitFor(async () => (await shardFiles(host.dataDir)).length === 0, 30_000, `host ${host.index} to delete the interrupted upload's shards`)
      }

      // the same file again works, with the default redundancy for 4 hosts
      // (one kept spare for repairs)
      const putting = cli('store', 'put', big, '--json')
      // a second put of the name while the first runs is refused; the hint
      // lists what is stored (store rm would fail now, and remove the other's file after)
      await waitFor(async () => /"big\.bin" is being stored right now/.test((await cli('store', 'info', 'big.bin')).stderr), 30_000, 'the put to hold its name')
      const meanwhile = await cli('store', 'put', big)
      assert.equal(meanwhile.code, 1)
      assert.match(meanwhile.stderr, /an object named "big\.bin" is being stored right now by another put/)
      assert.match(meanwhile.stderr, /try: .* store ls$/m)
      const put = await putting
      assert.equal(put.code, 0, put.stderr)
      const stored = JSON.parse(put.stdout)
      assert.equal(stored.name, 'big.bin')
      assert.equal(stored.size, size)
      assert.equal(stored.sha256, bigHash)
      assert.equal(stored.redundancy, '1-of-3')
      assert.equal(stored.hosts, 3)
      // every amount carries its unit. At the testnet's market prices uploads
      // are free (Storj pays no ingress), the first day of rent was paid on
      // the empty contract (0 sat), and 576 MiB held at 1833 sat per
      // TiB-month accrue 1.007 sat a month, shown rounded up
      assert.deepEqual([stored.spent.upload, stored.spent.rent], ['0 BTC', '0 BTC'])
      assert.equal(stored.rentPerMonth, '0.00000002 BTC')

      // kill -9 mid-get leaves a partial plaintext file; the restarted node removes it
      const out = join(dir.path, 'big.out')
      const parts = async (): Promise<string[]> => (await readdir(dir.path)).filter(f => f.startsWith('big.out.') && f.endsWith('.part'))
      const getPid = restarted.child.pid as number
      let killedGet = false
      await assert.rejects((await connectApi(client.dataDir)).events('/v1/store/get', { object: 'big.bin', out }, (e) => {
        if (e.phase === 'download' && e.done > 0 && !killedGet) {
          killedGet = true
          process.kill(getPid, 'SIGKILL')
        }
      }))
      assert.ok(killedGet, 'killed mid-get')
      assert.equal((await parts()).length, 1, 'the partial file is there after kill -9')
      restarted = await startDaemon(client.dataDir, ['--bootstrap', hosts[0].addrs[0]])
      await waitFor(async () => (await parts()).length === 0, 10_000, 'the restarted node to remove the partial file')

      const got = await cli('store', 'get', 'big.bin', '--out', out)
      assert.equal(got.code, 0, got.stderr)
      assert.match(got.stdout, /^wrote .*big\.out \(192 MiB, SHA-256 [0-9a-f]{64} checked\)$/m)
      assert.equal(await sha256Of(out), bigHash)

      // memory: the daemon never held the file (192 MiB in, 192 MiB out)
      const memory = await memoryOf(restarted.child.pid as number)
      assert.ok(memory.peak < 300 * 1e6, `the client daemon peaked at ${(memory.peak / 1e6).toFixed(0)} MB (limit 300 MB)`)

      // the output is never replaced unasked, and the hint runs as printed
      const again = await cli('store', 'get', 'big.bin', '--out', out)
      assert.equal(again.code, 1)
      assert.match(again.stderr, /exists already/)
      const hint = /^ {2}try: (.*)$/m.exec(again.stderr)?.[1]
      assert.ok(hint != null, again.stderr)
      assert.match(hint, /--force$/)
      const forced = await runShell(hint)
      assert.equal(forced.code, 0, forced.stderr)
      assert.equal(await sha256Of(out), bigHash)

      // a second put of the same file under its name stores nothing, and says so (issue 21: a changed one is a new version)
      const dup = await cli('store', 'put', big)
      assert.equal(dup.code, 0, dup.stderr)
      assert.match(dup.stdout, /^big\.bin is unchanged \(the same 192 MiB and SHA-256 as version 1, stored .*\): nothing stored \(--force stores it again\)$/m)

      const status = await cli('store', 'status')
      assert.equal(status.code, 0, status.stderr)
      assert.match(status.stdout, /^NAME\s+STATE\s+SHARDS\s+NEEDED\s+UNREACHABLE\s+LOST HOSTS\s+LOST SHARDS/m)
      assert.match(status.stdout, /^big\.bin\s+healthy\s+3\/3\s+1\s+0\s+0\s+0\s/m)

      const ls = await cli('store', 'ls')
      assert.match(ls.stdout, /^big\.bin\s+192 MiB\s+1-of-3\s+3\s+0\.\d+ BTC/m)
      // what storage took from the wallet on chain beside what its calls cost: at the testnet's market
      // prices nothing has cost a whole satoshi yet (the transfers' fractions wait for the rent), so no line
      assert.doesNotMatch(ls.stdout, /on chain, storage has taken/)
      const lsJson = JSON.parse((await cli('store', 'ls', '--json')).stdout)
      assert.deepEqual([lsJson.costs.calls, lsJson.costs.onChain], ['0 BTC', '0 BTC'])
      assert.equal(lsJson.objects[0].name, 'big.bin')
      assert.deepEqual(Object.keys(lsJson.costs).sort(), ['calls', 'fees', 'onChain', 'paidOnChain', 'throughChannels', 'unpaid'])
      assert.ok(Object.values(lsJson.costs).every(v => /^[0-9.]+ BTC$/.test(v as string)))
      const statusJson = JSON.parse((await cli('store', 'status', '--json')).stdout)
      assert.deepEqual([statusJson.objects[0].name, statusJson.objects[0].state, statusJson.paymentProblem], ['big.bin', 'healthy', null])
      assert.match((await cli('store', 'info', 'big.bin')).stdout, /^redundancy\s+1-of-3 \(any 1 of its 3 hosts rebuild it\)$/m)
      const info = JSON.parse((await cli('store', 'info', 'big.bin', '--json')).stdout)
      assert.equal(info.contracts.length, 3)
      const peers = new Set(hosts.map((h: any) => h.peerId))
      assert.ok(info.contracts.every((c: any) => peers.has(c.host)))
      assert.equal(new Set(info.contracts.map((c: any) => c.host)).size, 3)
      for (const c of info.contracts) {
        assert.equal(c.storagePrice, '0.00001833 BTC per TiB-month')
        // 48 segments of 4 MiB, each sealed with a 16-byte tag: one data shard, two copies of it
        assert.equal(c.bytesHeld, 48 * (4 * MIB + 16))
      }
      const unknown = await cli('store', 'get', 'nope.bin', '--out', join(dir.path, 'nope'))
      assert.equal(unknown.code, 1)
      assert.match(unknown.stderr, /no stored object is named "nope\.bin"/)
      assert.match(unknown.stderr, /try: .* store ls$/m)

      const rm = await cli('store', 'rm', 'big.bin')
      assert.equal(rm.code, 0, rm.stderr)
      assert.match(rm.stdout, /^removed big\.bin: its shards are deleted from its 3 contracts, and a contract that held nothing else is ended$/m)
      // what the removed file's contracts were, and the ratings both sides signed (it was the only file: they ended)
      const infoLine = /^its contracts, and the ratings both sides signed when one ended: (.*)$/m.exec(rm.stdout)?.[1]
      assert.ok(infoLine != null, rm.stdout)
      const removed = await runShell(`${infoLine} --json`)
      assert.equal(removed.code, 0, removed.stderr)
      const removedInfo = JSON.parse(removed.stdout)
      assert.equal(removedInfo.health.state, 'removed')
      assert.ok(removedInfo.contracts.every((c: any) => c.ratings?.byYou === 'satisfactory' && c.ratings?.byHost === 'satisfactory'), removed.stdout)
      for (const host of hosts) {
        assert.deepEqual(await shardFiles(host.dataDir), [])
      }
      assert.match((await cli('store', 'ls')).stdout, /nothing stored yet/)
    } finally {
      await restarted?.stop().catch(() => {})
      killGroup(child)
      await dir.cleanup()
    }
  })
})
