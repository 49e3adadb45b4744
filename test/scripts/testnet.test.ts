import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { access, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir, waitFor } from '../helpers/nodes.ts'
import { BIN, runCli, runShell } from '../helpers/cli.ts'
import { startTestnet, killGroup } from '../helpers/testnet.ts'
import { stopAll, type Started } from '../../scripts/testnet/network.ts'

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
const pidOf = async (dataDir: string): Promise<number> => JSON.parse(await readFile(join(dataDir, 'api.json'), 'utf8')).pid

/**
 * The exit code and signal of the testnet once it ends; a testnet that hangs
 * fails the test after `ms` instead of holding it (and its daemons) for ever
 */
async function exitOf (child: ChildProcess, ms = 60_000): Promise<[number | null, string | null]> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      new Promise<[number | null, string | null]>(resolve => child.once('exit', (code, signal) => { resolve([code, signal]) })),
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`the testnet did not end within ${ms / 1000} s`)) }, ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** How many shard files a host holds (under <data dir>/storage/<contract>/) */
async function shardCount (dataDir: string): Promise<number> {
  let count = 0
  for (const contract of await readdir(join(dataDir, 'storage')).catch(() => [])) {
    count += (await readdir(join(dataDir, 'storage', contract)).catch(() => [])).length
  }
  return count
}

describe('scripts/testnet', () => {
  it('starts N joined nodes that the CLI can use by data directory, and stops them all on Ctrl-C, also after one was killed', async () => {
    const dir = await tempDir()
    const { child, network, stderr } = await startTestnet(4, dir.path)
    try {
      const { chain, nodes } = network
      assert.match(chain, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.equal(nodes.length, 4)
      assert.deepEqual(nodes.map((n: any) => n.dataDir), [1, 2, 3, 4].map(i => join(dir.path, `node-${i}`)))

      const call = await runCli(['--data-dir', nodes[3].dataDir, 'call', nodes[0].peerId, 'info.node', '--json'])
      assert.equal(call.code, 0, call.stderr)
      assert.equal(JSON.parse(call.stdout).body.peerId, nodes[0].peerId)

      // every wallet is funded, and the even nodes charge for sha256.hash
      const balance = await runCli(['--data-dir', nodes[0].dataDir, 'wallet', 'balance', '--json'])
      assert.equal(balance.code, 0, balance.stderr)
      assert.deepEqual(JSON.parse(balance.stdout), { network: 'regtest', confirmed: '0.1 BTC', unconfirmed: '0 BTC' })
      const unpaid = await runCli(['--data-dir', nodes[0].dataDir, 'call', nodes[1].peerId, 'sha256.hash', '--body', '-'], { stdin: 'x' })
      assert.equal(unpaid.code, 1)
      assert.match(unpaid.stderr, /payment-declined\/too-low: sha256.hash costs 0.000001 BTC/)
      // the refusal names the command that would succeed, and it does, as printed
      const hint = /^ {2}try: (.*)$/m.exec(unpaid.stderr)?.[1]
      assert.ok(hint != null, unpaid.stderr)
      assert.match(hint, /^npx opencloud-node --data-dir \S+ call \S+ sha256\.hash --body - --pay auto --max-price 100sat$/)
      const paid = await runShell(hint, 'x')
      assert.equal(paid.code, 0, paid.stderr)
      assert.match(paid.stderr, /payment: too-low: the server asks 0.000001 BTC; offering 0.000001 BTC defer/)
      const tabs = JSON.parse((await runCli(['--data-dir', nodes[0].dataDir, 'payments', 'tabs', '--json'])).stdout)
      assert.deepEqual(tabs.payable.map((t: any) => [t.peer, t.outstanding]), [[nodes[1].peerId, '0.000001 BTC']])

      const dust = await runCli(['--data-dir', nodes[2].dataDir, 'call', nodes[1].peerId, 'sha256.hash', '--body', '-', '--pay', 'attached:100sat'], { stdin: 'y' })
      assert.equal(dust.code, 1)
      assert.match(dust.stderr, /below bitcoin's dust limit of 0.00000294 BTC.*defer small payments/)
      // overpaying is the payer's choice: 300 sat for a 100 sat call
      const attached = await runCli(['--data-dir', nodes[2].dataDir, 'call', nodes[1].peerId, 'sha256.hash', '--body', '-', '--pay', 'attached:300sat', '--json'], { stdin: 'y' })
      assert.equal(attached.code, 0, attached.stdout)
      assert.equal(JSON.parse(attached.stdout).payment.payment.type, 'attached')
      const received = JSON.parse((await runCli(['--data-dir', nodes[1].dataDir, 'payments', 'history', '--json'])).stdout)
      assert.equal(received[0].direction, 'received')
      assert.equal(received[0].peer, nodes[2].peerId)

      const to = (await runCli(['--data-dir', nodes[3].dataDir, 'wallet', 'address', '--new'])).stdout.trim()
      const sent = await runCli(['--data-dir', nodes[0].dataDir, 'wallet', 'send', to, '0.01 BTC', '--json'])
      assert.equal(sent.code, 0, sent.stdout)
      const { txid } = JSON.parse(sent.stdout)
      const history = JSON.parse((await runCli(['--data-dir', nodes[3].dataDir, 'wallet', 'history', '--json'])).stdout)
      assert.ok(history.some((h: any) => h.txid === txid && h.delta === '0.01 BTC'))

      // the priced nodes' offers reach every node by gossip
      const sellers = [nodes[1].peerId, nodes[3].peerId].sort()
      await waitFor(async () => {
        const prices = JSON.parse((await runCli(['--data-dir', nodes[2].dataDir, 'market', 'prices', '--service', 'sha256', '--json'])).stdout)
        return JSON.stringify(prices.map((p: any) => p.provider).sort()) === JSON.stringify(sellers)
      }, 20_000, 'both offers at node 3')
      const set = await runCli(['--data-dir', nodes[3].dataDir, 'market', 'price', 'set', 'sha256.hash', '50 sat'])
      assert.equal(set.code, 0, set.stderr)
      await waitFor(async () => {
        const stats = JSON.parse((await runCli(['--data-dir', nodes[0].dataDir, 'market', 'stats', '--json'])).stdout)
        return stats.some((s: any) => s.method === 'hash' && s.min === '0.0000005 BTC')
      }, 20_000, 'the new price at node 1')
      // the cheapest provider, at no more than the market median
      const auto = await runCli(['--data-dir', nodes[0].dataDir, 'call', 'auto', 'sha256.hash', '--body', '-', '--pay', 'auto', '--max-price', 'market', '--json'], { stdin: 'z' })
      assert.equal(auto.code, 0, auto.stdout)
      assert.equal(JSON.parse(auto.stdout).server, nodes[3].peerId)

      // a folder is stored file by file, by its relative paths
      const folder = join(dir.path, 'photos')
      await mkdir(folder)
      await writeFile(join(folder, 'a.txt'), 'a photo')
      const stored = await runCli(['--data-dir', nodes[3].dataDir, 'store', 'put', folder])
      assert.equal(stored.code, 0, stored.stderr)
      assert.match(stored.stdout, /^stored photos\/a\.txt \(7 bytes, version 1\)\n1 stored, 0 unchanged, 0 skipped/)

      // node 4's daemon killed while it answers a store put: the CLI says
      // what happened (it said "terminated"), and where to look
      const big = join(dir.path, 'big.bin')
      await writeFile(big, randomBytes(24 * 1024 * 1024))
      const hosts = nodes.slice(0, 3)
      const hostPids = await Promise.all(hosts.map(async (n: any) => pidOf(n.dataDir)))
      const clientPid = await pidOf(nodes[3].dataDir)
      await waitFor(async () => {
        const offers = JSON.parse((await runCli(['--data-dir', nodes[3].dataDir, 'market', 'prices', '--service', 'storage', '--json'])).stdout)
        return new Set(offers.filter((o: any) => o.method === 'rent').map((o: any) => o.provider)).size >= 3
      }, 30_000, 'the storage offers of the three hosts')
      const held = async (): Promise<number> => (await Promise.all(hosts.map(async (n: any) => shardCount(n.dataDir)))).reduce((a, b) => a + b, 0)
      const before = await held()
      const put = runCli(['--data-dir', nodes[3].dataDir, 'store', 'put', big, '--redundancy', '1-of-3'])
      await waitFor(async () => await held() > before, 60_000, 'the first shards of the put at a host')
      // the hosts stand still, so the put cannot end before its node is killed
      for (const pid of hostPids) process.kill(pid, 'SIGSTOP')
      try {
        process.kill(clientPid, 'SIGKILL')
        const broken = await put
        assert.equal(broken.code, 1, broken.stderr)
        assert.equal(broken.stderr, `opencloud-node: the node (pid ${clientPid}) stopped while answering; see its log: ${join(nodes[3].dataDir, 'daemon.log')}\n`)
      } finally {
        for (const pid of hostPids) process.kill(pid, 'SIGCONT')
      }
      await waitFor(() => /node 4 was killed by SIGKILL/.test(stderr()), 10_000, 'the testnet to notice node 4 is gone')

      // Ctrl-C stops the others, and does not wait for the one killed (it hung)
      const exited = exitOf(child)
      child.kill('SIGINT')
      assert.deepEqual(await exited, [0, null], stderr())
      for (const node of hosts) {
        await assert.rejects(access(join(node.dataDir, 'api.json')), `${node.dataDir} stopped cleanly`)
      }
    } finally {
      killGroup(child)
      await dir.cleanup()
    }
  })

  it('stops at once on a second Ctrl-C, killing a node that does not stop', async () => {
    const dir = await tempDir()
    const { child, network, stderr } = await startTestnet(2, dir.path)
    try {
      const frozen = await pidOf(network.nodes[1].dataDir)
      process.kill(frozen, 'SIGSTOP')
      // within less than the 10 s after which the first Ctrl-C kills it anyway
      const exited = exitOf(child, 8_000)
      child.kill('SIGINT')
      // the first waits for the frozen node (10 s, then it kills it)...
      await waitFor(() => stderr().includes('stopping the testnet...'), 10_000, 'the testnet to start stopping')
      // ...a second does not
      child.kill('SIGINT')
      assert.deepEqual(await exited, [130, null], stderr())
      assert.match(stderr(), /testnet: stopping now: killing the nodes that have not stopped/)
      await waitFor(() => !alive(frozen), 10_000, 'the frozen node to be gone')
    } finally {
      killGroup(child)
      await dir.cleanup()
    }
  })

  it('stopAll does not wait for a node that was killed by a signal', { timeout: 30_000 }, async () => {
    // kill -9 leaves a child with no exit code, only a signalCode, and its
    // exit event fired already: waiting for another hung the testnet
    const killed = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    const running = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    try {
      const gone = new Promise(resolve => killed.once('exit', resolve))
      killed.kill('SIGKILL')
      await gone
      assert.equal(killed.exitCode, null)
      await stopAll([{ child: killed }, { child: running }] as Started[])
      assert.equal(running.signalCode, 'SIGTERM')
    } finally {
      running.kill('SIGKILL')
    }
  })

  it('leaves no orphan nodes when its supervisor is killed, and a killed node\'s stale api.json is cleared', async () => {
    const dir = await tempDir()
    const { child, network } = await startTestnet(2, dir.path)
    try {
      const { nodes } = network
      const pids: number[] = []
      for (const node of nodes) {
        pids.push(JSON.parse(await readFile(join(node.dataDir, 'api.json'), 'utf8')).pid)
      }
      const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
      // kill -9 of the supervisor alone: its nodes notice and stop
      child.kill('SIGKILL')
      await waitFor(() => pids.every(pid => !alive(pid)), 15_000, 'the nodes to stop')

      // a node killed with -9 leaves its api.json behind: the CLI says so and clears it
      const again = spawn(process.execPath, [BIN, 'daemon', '--json', '--data-dir', nodes[0].dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] })
      await new Promise<void>(resolve => { again.stdout.on('data', d => { if (String(d).includes('"started"')) resolve() }) })
      again.kill('SIGKILL')
      await new Promise(resolve => again.once('exit', resolve))
      const stale = await runCli(['--data-dir', nodes[0].dataDir, 'id'])
      assert.equal(stale.code, 1)
      assert.match(stale.stderr, /is not running: it stopped without cleaning up, and its stale api.json was removed; start it again with: (npx )?opencloud-node --data-dir/)
      await assert.rejects(access(join(nodes[0].dataDir, 'api.json')))
    } finally {
      killGroup(child)
      await dir.cleanup()
    }
  })
})
