import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir, waitFor } from '../helpers/nodes.ts'
import { BIN, runCli, runShell } from '../helpers/cli.ts'
import { startTestnet, killGroup } from '../helpers/testnet.ts'

describe('scripts/testnet', () => {
  it('starts N joined nodes that the CLI can use by data directory, and stops them all on Ctrl-C', async () => {
    const dir = await tempDir()
    const { child, network } = await startTestnet(4, dir.path)
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
      assert.match(dust.stderr, /below bitcoin's dust limit of 294 sat.*defer small payments/)
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

      const exited = new Promise<number | null>(resolve => child.once('exit', resolve))
      child.kill('SIGINT')
      assert.equal(await exited, 0)
      for (const node of nodes) {
        await assert.rejects(access(join(node.dataDir, 'api.json')), `${node.dataDir} stopped cleanly`)
      }
    } finally {
      killGroup(child)
      await dir.cleanup()
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
