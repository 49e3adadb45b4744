import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { tempDir, waitFor } from '../helpers/nodes.ts'
import { runCli, runShell, startDaemon, type Daemon } from '../helpers/cli.ts'

/**
 * `payments channels`, `payments channel close` and `call --pay channel:`
 * as a user runs them: the CLI in its own process against two daemons (a
 * payer and a payee charging for sha256.hash) on a local regtest chain, and
 * a third daemon with payments off.
 */

const PRICE = 3n // sat for a sha256.hash of a small body (3 sat per MiB, one MiB at least)

/** "0.00000309 BTC" */
const btc = (sats: bigint): string => `${(Number(sats) / 1e8).toFixed(8).replace(/0+$/, '')} BTC`

describe('payments channels and payments channel close, against daemons on a regtest chain', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  let server: Daemon
  let client: Daemon
  let off: Daemon
  let serverDir: string
  let clientDir: string
  let offDir: string
  let body: string

  const mine = async (): Promise<void> => { await regtest.chain.mine(1, regtest.faucetAddress) }
  const cli = async (dataDir: string, ...args: string[]) => runCli(['--data-dir', dataDir, ...args])
  const hash = async (...pay: string[]) => cli(clientDir, 'call', server.peerId, 'sha256.hash', '--body', body, ...pay)
  const listed = async (dataDir: string, all = false): Promise<any[]> => {
    const ran = await cli(dataDir, 'payments', 'channels', '--json', ...(all ? ['--all'] : []))
    assert.equal(ran.code, 0, ran.stderr)
    return JSON.parse(ran.stdout).channels
  }
  /** a daemon whose config.json is written before its first start, as the testnet does */
  const daemon = async (name: string, config: Record<string, unknown>, extra: string[] = []): Promise<[Daemon, string]> => {
    const dataDir = join(dir.path, name)
    await mkdir(dataDir, { recursive: true })
    await writeFile(join(dataDir, 'config.json'), JSON.stringify(config))
    return [await startDaemon(dataDir, extra), dataDir]
  }

  before(async () => {
    dir = await tempDir()
    body = join(dir.path, 'body.txt')
    await writeFile(body, 'pay me through a channel')
    regtest = new RegtestServer({ dir: join(dir.path, 'chain'), blockIntervalMs: 0 })
    await regtest.start()
    const payments = { network: 'regtest', chain: regtest.url, settleIntervalMs: 500 }
    // short channels, watched twice a second: a close is seen soon after its block
    const channels = { closeMarginBlocks: 2, lifeBlocks: 50, watchIntervalMs: 500 }
    ;[server, serverDir] = await daemon('server', { payments, channels, services: { sha256: { prices: { hash: Number(PRICE) } } } })
    ;[client, clientDir] = await daemon('client', { payments, channels }, ['--bootstrap', server.addrs[0]])
    ;[off, offDir] = await daemon('off', {})
    const address = (await cli(clientDir, 'wallet', 'address')).stdout.trim()
    await regtest.faucet(address, 2_000_000n)
    await mine()
  })

  after(async () => {
    await off?.stop()
    await client?.stop()
    await server?.stop()
    await regtest?.stop()
    await dir?.cleanup()
  })

  it('says when there are no channels, and what opens one', async () => {
    const empty = await cli(clientDir, 'payments', 'channels')
    assert.equal(empty.code, 0, empty.stderr)
    assert.match(empty.stdout, /^no open channels \(closed ones too: .* --data-dir \S+ payments channels --all\)\n/)
    assert.match(empty.stdout, /\n {2}.* --data-dir \S+ call <peer> sha256\.hash --body <file> --pay channel:1000sat\n/)
    assert.match(empty.stdout, /a store put opens them to its hosts where "channels.use"/)
    assert.deepEqual(await listed(clientDir), [])
    const none = await cli(clientDir, 'payments', 'channels', '--all')
    assert.match(none.stdout, /^no channels yet\n/)
  })

  let id: string

  it('lists the channel a --pay channel: call opened, on both sides, with its balance in payments tabs', async () => {
    const opened = await hash('--pay', `channel:${PRICE}sat`)
    assert.equal(opened.code, 0, opened.stderr)
    const decided = /^payment: opened channel ([0-9a-f]{64}:0) to the server: 0\.\d+ BTC until block \d+, funding fee 0\.\d+ BTC$/m.exec(opened.stderr)
    assert.ok(decided != null, opened.stderr)
    id = decided[1]
    assert.match(opened.stderr, new RegExp(`^payment: paid ${btc(PRICE).replace(/\./g, '\\.')} through channel ${id} \\(`, 'm'))
    // auto pays through the open channel with room; --json carries the payment
    const auto = await hash('--pay', 'auto', '--max-price', '10sat', '--json')
    assert.equal(auto.code, 0, auto.stderr)
    const answer = JSON.parse(auto.stdout)
    assert.deepEqual(answer.payment.payment, { type: 'channel', id, amount: btc(PRICE) })
    assert.match(answer.payment.decisions.at(-1), new RegExp(`through channel ${id}`))

    const [mine] = await listed(clientDir)
    assert.equal(mine.id, id)
    assert.deepEqual([mine.role, mine.peer, mine.state, mine.paid, mine.fundingTxid], ['payer', server.peerId, 'open', btc(2n * PRICE), id.split(':')[0]])
    const text = await cli(clientDir, 'payments', 'channels')
    assert.equal(text.code, 0, text.stderr)
    const [head, row, ...more] = text.stdout.trimEnd().split('\n')
    assert.match(head, /^PEER +ROLE +CAPACITY +PAID +REMAINING +EXPIRY +FUNDING TXID +STATE$/)
    assert.deepEqual(more, [])
    assert.deepEqual(row.split(/ {2,}/), [server.peerId, 'I pay', mine.capacity, btc(2n * PRICE), mine.remaining, `block ${mine.expiry} (${mine.blocksLeft} left)`, mine.fundingTxid, 'open'])
    assert.ok(mine.blocksLeft > 40 && mine.blocksLeft <= 52, `blocks left: ${mine.blocksLeft}`)
    // the payee's side of the same channel
    const theirs = await cli(serverDir, 'payments', 'channels')
    assert.match(theirs.stdout.split('\n')[1], new RegExp(`^${client.peerId} +pays me +${mine.capacity.replace('.', '\\.')} +${btc(2n * PRICE).replace('.', '\\.')} `))

    const tabs = await cli(clientDir, 'payments', 'tabs')
    assert.equal(tabs.code, 0, tabs.stderr)
    assert.match(tabs.stdout, /^no tabs yet\n\nchannels \(paid through them, not owed; .* payments channels has more\):\nPEER +ROLE +CAPACITY +PAID +REMAINING +STATE\n/)
    assert.match(tabs.stdout, new RegExp(`\\n${server.peerId} +I pay +\\S+ BTC +${btc(2n * PRICE).replace('.', '\\.')} +\\S+ BTC +open\\n$`))
  })

  it('closes by peer: as payee with nothing worth claiming it fails (exit 1), as payer it asks the payee, who is paid exactly what it was paid', async () => {
    // 6 sat is under the dust limit: nothing to claim on chain
    const dust = await cli(serverDir, 'payments', 'channel', 'close', client.peerId)
    assert.equal(dust.code, 1, dust.stdout)
    assert.match(dust.stdout, new RegExp(`^channel ${id} \\(pays me\\): not closed: channel ${id} has paid 0\\.00000006 BTC, less than bitcoin's dust limit`))
    const dustJson = await cli(serverDir, 'payments', 'channel', 'close', client.peerId, '--json')
    assert.equal(dustJson.code, 1)
    assert.equal(JSON.parse(dustJson.stdout).closed[0].role, 'payee')
    assert.match(JSON.parse(dustJson.stdout).closed[0].error, /dust limit/)

    // overpaying is the payer's choice: 300 sat more makes it worth a close
    const more = await hash('--pay', 'channel:300sat')
    assert.equal(more.code, 0, more.stderr)
    assert.doesNotMatch(more.stderr, /opened channel/)
    const total = 2n * PRICE + 300n
    const before = await listed(clientDir)
    const closed = await cli(clientDir, 'payments', 'channel', 'close', server.peerId)
    assert.equal(closed.code, 0, closed.stderr)
    const said = new RegExp(`^asked ${server.peerId} to close channel ${id} \\(I pay\\): its close is ([0-9a-f]{64}); it pays the payee ${btc(total).replace('.', '\\.')} and this wallet ${before[0].remaining.replace('.', '\\.')}\\n$`).exec(closed.stdout)
    assert.ok(said != null, closed.stdout)
    await mine()
    const balance = JSON.parse((await cli(serverDir, 'wallet', 'balance', '--json')).stdout)
    assert.equal(balance.confirmed, btc(total), 'the close paid the payee what went through the channel')
    await waitFor(async () => (await listed(clientDir)).length === 0, 15_000, 'the close to be seen by the payer')
    const all = await cli(clientDir, 'payments', 'channels', '--all')
    assert.match(all.stdout, new RegExp(`\\n${server.peerId} +I pay +.* +block \\d+ +${id.split(':')[0]} +closed\\n\\nchannel ${id}: closed in ${said[1]}\\n$`))

    // nothing left to close
    const again = await cli(clientDir, 'payments', 'channel', 'close', server.peerId)
    assert.equal(again.code, 1)
    assert.match(again.stderr, new RegExp(`^opencloud-node: no open channel with ${server.peerId}: nothing to close\\n {2}try: (.*)\\n$`))
    const hint = /try: (.*)$/m.exec(again.stderr)?.[1] as string
    const shown = await runShell(hint)
    assert.equal(shown.code, 0, shown.stderr)
    assert.match(shown.stdout, /^no open channels/)
  })

  it('closes as payee: a new channel, its latest state broadcast, claiming what it paid', async () => {
    const opened = await hash('--pay', 'channel:300sat', '--json')
    assert.equal(opened.code, 0, opened.stderr)
    const fresh = JSON.parse(opened.stdout).payment.payment.id
    assert.notEqual(fresh, id)
    const theirs = (await listed(serverDir)).find(c => c.id === fresh)
    const closed = await cli(serverDir, 'payments', 'channel', 'close', client.addrs[0])
    assert.equal(closed.code, 0, closed.stderr)
    assert.match(closed.stdout, new RegExp(`^closed channel ${fresh} \\(pays me\\): broadcast [0-9a-f]{64}, claiming 0\\.000003 BTC of its ${theirs.capacity.replace('.', '\\.')}\\n$`))
  })

  it('refuses mistakes with usage errors (exit 2) and explains itself in --help', async () => {
    for (const args of [['payments', 'channels', '--bogus'], ['payments', 'channels', 'extra'], ['payments', 'channel'], ['payments', 'channel', 'open', server.peerId],
      ['payments', 'channel', 'close'], ['payments', 'channel', 'close', 'not-a-peer'], ['payments', 'channels', '--since', '1h'], ['payments', 'tabs', '--all']]) {
      const ran = await cli(clientDir, ...args)
      assert.equal(ran.code, 2, `${args.join(' ')}: ${ran.stderr}`)
      assert.equal(ran.stdout, '')
    }
    const bad = await cli(clientDir, 'payments', 'channel', 'close', 'not-a-peer')
    assert.match(bad.stderr, /"not-a-peer" is not a peer: give the PeerId of the channel's other side/)
    const missing = await cli(clientDir, 'payments', 'channel')
    assert.match(missing.stderr, /usage:\n {2}(npx )?opencloud-node payments summary \[--since WHEN\]\n {2}(npx )?opencloud-node payments tabs\n/)

    const help = await runCli(['payments', '--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /^Usage: (npx )?opencloud-node payments summary \[--since WHEN\]\n {7}(npx )?opencloud-node payments tabs\n {7}(npx )?opencloud-node payments history\n {7}(npx )?opencloud-node payments channels \[--all\]\n {7}(npx )?opencloud-node payments channel close <peer>\n/)
    const list = await runCli(['payments', 'channels', '--help'])
    assert.match(list.stdout, /^Usage: (npx )?opencloud-node payments channels \[--all\]\n\n {2}payments channels {2}the open payment channels[\s\S]* {4}--all {12}also the closed/)
    const close = await runCli(['payments', 'channel', 'close', '--help'])
    assert.match(close.stdout, /^Usage: (npx )?opencloud-node payments channel close <peer>\n\n {2}payments channel close <peer>\n {21}close the open channels/)
    const call = await runCli(['call', '--help'])
    assert.match(call.stdout, /--pay MODE +attached:<amount>, defer:<amount>,\n +channel:<amount>, auto or none/)
    assert.match(call.stdout, /--pay channel:1000sat\n/)
  })

  it('says payments are off, and where to turn them on, on a node without a chain (exit 1)', async () => {
    for (const args of [['payments', 'channels'], ['payments', 'channel', 'close', server.peerId]]) {
      const ran = await cli(offDir, ...args)
      assert.equal(ran.code, 1, ran.stderr)
      assert.equal(ran.stderr, `opencloud-node: payments are off on this node: set "payments": {"chain": "<Esplora API URL>"} in ${join(offDir, 'config.json')} (for a local regtest chain, run npm run chain in a checkout and use http://127.0.0.1:3002), then restart the node\n`)
    }
    const balance = await cli(offDir, 'wallet', 'balance')
    assert.equal(balance.stderr, (await cli(offDir, 'payments', 'channels')).stderr, 'the same sentence as the other payments commands')
    // payments tabs works without a chain, with no channels beside the tabs
    const tabs = await cli(offDir, 'payments', 'tabs')
    assert.equal(tabs.stdout, 'no tabs yet\n')
  })
})
