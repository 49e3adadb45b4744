/**
 * A local testnet: N opencloud-node daemons as separate processes on
 * 127.0.0.1, all joined through the first one.
 *
 *   npm run testnet -- --nodes 5 [--dir .testnet] [--json]
 *
 * Node i keeps its data in DIR/node-i, so any CLI command works against it:
 *   npx opencloud-node --data-dir .testnet/node-2 call <PeerId> sha256.hash --body FILE
 * The testnet also runs a local regtest chain, funds every node's wallet from
 * its faucet, and prices sha256.hash on the even-numbered nodes (with credit
 * for deferred payments), so paid calls work out of the box:
 *   npx opencloud-node --data-dir .testnet/node-3 call <PeerId of node 2> sha256.hash --body FILE --pay auto --max-price 10000sat
 * Ctrl-C stops them all; a second Ctrl-C kills any that has not stopped yet.
 */
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { formatAmount, parseAmount } from '../../src/protocols/units.ts'
import { fund, hasEnded, howItEnded, startNode, stopAll, TESTNET_HASH_PRICE, TESTNET_STORAGE_PRICES, type Started, writeLedgerGenesis } from './network.ts'

const HELP = `Usage: npm run testnet -- [--nodes N] [--dir DIR] [--s3 HOST:PORT] [--json]

Starts N opencloud-node daemons on 127.0.0.1 (random free ports), the first
as the bootstrap peer of the others, prints a table of them and runs until
Ctrl-C, then stops them all (a second Ctrl-C kills those still stopping).
Node i's data directory is DIR/node-i and its log is DIR/node-i/daemon.log.

It also runs a local bitcoin regtest chain (DIR/chain), funds every node's
wallet with --fund, and prices sha256.hash at 0.000001 BTC (100 sat) per
MiB on the even-numbered nodes. Every node hosts storage (2 GiB) at a real
market's prices (what Storj pays its hosts): 0.00001833 BTC (1833 sat) per
TiB-month of bytes held, nothing per upload and 0.00002444 BTC per TiB
downloaded, and gives up to 0.001 BTC of credit. With 8 nodes, "store put" on one of them
stores 2-of-5 on five of the other seven (two are spares for repair).
Nodes pay each other through payment channels (channels.use "always", a
close margin of 6 blocks, channels living 4320 blocks past it; a block
comes every 5 s): a store put opens channels to its hosts in one funding
transaction, and "payments channels" lists them.

Options:
  --nodes N       how many nodes, default 5
  --fund AMOUNT   what each node's wallet gets from the faucet, default "0.1 BTC"
  --dir DIR       where the data directories go, default $OPENCLOUD_TESTNET_DIR
                  or .testnet
  --parallel K    how many nodes start at once, default 4
  --ledger-validators V
                  run a Cloud Ledger (promo codes) with nodes 1 to V as its
                  validators (1 s slots, a bitcoin checkpoint every 100
                  blocks); every node follows it. Default 0: no ledger
  --s3 HOST:PORT  node 1 serves the S3 gateway there, e.g. 127.0.0.1:4102
                  (README, "S3 gateway"); default: none
  --json          print the nodes as JSON
  -h, --help      show this help`

async function main (): Promise<number> {
  let values
  try {
    values = parseArgs({
      options: {
        nodes: { type: 'string', default: '5' },
        dir: { type: 'string', default: process.env.OPENCLOUD_TESTNET_DIR ?? '.testnet' },
        parallel: { type: 'string', default: '4' },
        'ledger-validators': { type: 'string', default: '0' },
        fund: { type: 'string', default: '0.1 BTC' },
        s3: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' }
      }
    }).values
  } catch (err: any) {
    process.stderr.write(`testnet: ${err.message}\n\n${HELP}\n`)
    return 2
  }
  if (values.help === true) {
    process.stdout.write(HELP + '\n')
    return 0
  }
  const count = Number(values.nodes)
  const parallel = Number(values.parallel)
  if (!Number.isSafeInteger(count) || count < 1 || count > 200) {
    process.stderr.write('testnet: --nodes takes a number from 1 to 200\n')
    return 2
  }
  const validators = Number(values['ledger-validators'])
  if (!Number.isSafeInteger(validators) || validators < 0 || validators > count) {
    process.stderr.write(`testnet: --ledger-validators takes a number from 0 to the number of nodes (${count})\n`)
    return 2
  }
  if (!Number.isSafeInteger(parallel) || parallel < 1) {
    process.stderr.write('testnet: --parallel takes a positive number\n')
    return 2
  }
  let funding: bigint
  try {
    funding = parseAmount(values.fund as string, '--fund')
  } catch (err: any) {
    process.stderr.write(`testnet: --fund: ${err.message}\n`)
    return 2
  }
  const dir = resolve(values.dir as string)
  const nodes: Started[] = []
  const chain = new RegtestServer({ dir: join(dir, 'chain'), blockIntervalMs: 5_000 })
  let stopping = false
  const shutdown = new Promise<void>(resolve => {
    const onSignal = (): void => {
      if (stopping) {
        // a second Ctrl-C (or SIGTERM) waits for nothing: a node that does
        // not stop (frozen, stuck) must not keep the testnet from ending
        process.stderr.write('testnet: stopping now: killing the nodes that have not stopped\n')
        for (const node of nodes) {
          if (!hasEnded(node.child)) {
            node.child.kill('SIGKILL')
          }
        }
        process.exit(130)
      }
      stopping = true
      resolve()
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })

  try {
    const progress = (text: string): void => { if (values.json !== true) process.stderr.write(text) }
    await chain.start()
    progress(`regtest chain at ${chain.url}\nstarting ${count} nodes in ${dir}\n`)
    const genesis = validators > 0 ? await writeLedgerGenesis(dir, validators) : undefined
    if (genesis != null) {
      progress(`Cloud Ledger with nodes 1 to ${validators} as validators (${genesis})\n`)
    }
    const first = await startNode(1, dir, undefined, chain.url, genesis, values.s3 != null ? ['--s3', values.s3] : [])
    nodes.push(first)
    progress(`  node 1 ${first.peerId}\n`)
    const bootstrap = first.addrs.find(a => a.includes('/127.0.0.1/')) ?? first.addrs[0]
    for (let i = 2; i <= count && !stopping; i += parallel) {
      const batch = []
      for (let j = i; j < Math.min(i + parallel, count + 1); j++) {
        batch.push(startNode(j, dir, bootstrap, chain.url, genesis))
      }
      for (const node of await Promise.all(batch)) {
        nodes.push(node)
        progress(`  node ${node.index} ${node.peerId}\n`)
      }
    }
    progress(`funding every wallet with ${formatAmount(funding)}\n`)
    for (const node of nodes) {
      await fund(node, chain, funding)
    }
    await chain.chain.mine(1, chain.faucetAddress)
  } catch (err: any) {
    process.stderr.write(`testnet: ${err.message}\n`)
    await stopAll(nodes)
    await chain.stop().catch(() => {})
    return 1
  }

  nodes.sort((a, b) => a.index - b.index)
  if (values.json === true) {
    process.stdout.write(JSON.stringify({ chain: chain.url, nodes: nodes.map(({ child, ...n }) => ({ ...n, listen: n.addrs[0] })) }, null, 2) + '\n')
  } else {
    const rows = [['#', 'PEERID', 'LISTEN', 'API', 'DATA DIR', 'SHA256.HASH'], ...nodes.map(n => [String(n.index), n.peerId, n.addrs[0].replace(/\/p2p\/.*/, ''), n.api, n.dataDir, n.priced ? `${formatAmount(parseAmount(TESTNET_HASH_PRICE))} per MiB` : 'free'])]
    const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
    process.stdout.write(rows.map(r => r.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n') + '\n')
    const paid = nodes.find(n => n.priced)
    process.stdout.write(`\n${nodes.length} nodes running, regtest chain at ${chain.url}, each wallet funded with ${formatAmount(funding)}; every node hosts storage at ${formatAmount(parseAmount(TESTNET_STORAGE_PRICES.rent))} per TiB-month, ${formatAmount(parseAmount(TESTNET_STORAGE_PRICES.put))} per TiB up and ${formatAmount(parseAmount(TESTNET_STORAGE_PRICES.get))} per TiB down. Try:\n` +
      `  npx opencloud-node --data-dir ${nodes[nodes.length - 1].dataDir} call ${nodes[0].peerId} sha256.hash --body package.json\n` +
      (paid == null ? '' : `  npx opencloud-node --data-dir ${nodes[0].dataDir} call ${paid.peerId} sha256.hash --body package.json --pay auto --max-price 10000sat\n`) +
      (paid == null ? '' : `  npx opencloud-node --data-dir ${nodes[0].dataDir} call ${paid.peerId} sha256.hash --body package.json --pay channel:1000sat\n`) +
      `  npx opencloud-node --data-dir ${nodes[0].dataDir} store put package.json\n` +
      `  npx opencloud-node --data-dir ${nodes[0].dataDir} payments channels\n` +
      `  npx opencloud-node --data-dir ${nodes[0].dataDir} store get package.json --out /tmp/package.json\n` +
      (nodes[0].s3 == null ? '' : `Node 1 serves S3 at ${nodes[0].s3}; a key for aws and rclone: npx opencloud-node --data-dir ${nodes[0].dataDir} s3 keys create\n`) +
      'Ctrl-C stops them all.\n')
  }

  for (const node of nodes) {
    node.child.once('exit', (code, signal) => {
      if (!stopping) {
        process.stderr.write(`testnet: node ${node.index} ${howItEnded(code, signal)}; see ${join(node.dataDir, 'daemon.log')}\n`)
      }
    })
  }
  await shutdown
  process.stderr.write('stopping the testnet...\n')
  await stopAll(nodes)
  await chain.stop()
  process.stderr.write('stopped\n')
  return 0
}

process.exitCode = await main()
