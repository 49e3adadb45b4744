/**
 * A local testnet: N opencloud-node daemons as separate processes on
 * 127.0.0.1, all joined through the first one.
 *
 *   npm run testnet -- --nodes 5 [--dir .testnet] [--json]
 *
 * Node i keeps its data in DIR/node-i, so any CLI command works against it:
 *   npx opencloud-node --data-dir .testnet/node-2 call <PeerId> sha256.hash --body FILE
 * Ctrl-C stops them all.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('../../bin/opencloud-node.js', import.meta.url))

const HELP = `Usage: npm run testnet -- [--nodes N] [--dir DIR] [--json]

Starts N opencloud-node daemons on 127.0.0.1 (random free ports), the first
as the bootstrap peer of the others, prints a table of them and runs until
Ctrl-C, then stops them all. Node i's data directory is DIR/node-i and its
log is DIR/node-i/daemon.log.

Options:
  --nodes N       how many nodes, default 5
  --dir DIR       where the data directories go, default .testnet
  --parallel K    how many nodes start at once, default 4
  --json          print the nodes as JSON
  -h, --help      show this help`

interface Started {
  index: number
  peerId: string
  addrs: string[]
  api: string
  dataDir: string
  child: ChildProcess
}

async function startNode (index: number, dir: string, bootstrap: string | undefined): Promise<Started> {
  const dataDir = join(dir, `node-${index}`)
  await mkdir(dataDir, { recursive: true })
  const args = [BIN, 'daemon', '--json', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0']
  if (bootstrap != null) {
    args.push('--bootstrap', bootstrap)
  }
  const log = createWriteStream(join(dataDir, 'daemon.log'), { flags: 'a' })
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stderr?.pipe(log)
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    const onExit = (code: number | null): void => {
      reject(new Error(`node ${index} exited with code ${code} before it started; see ${join(dataDir, 'daemon.log')}`))
    }
    child.once('exit', onExit)
    lines.on('line', line => {
      log.write(line + '\n')
      let event: any
      try {
        event = JSON.parse(line)
      } catch {
        return
      }
      if (event.event === 'started') {
        child.off('exit', onExit)
        resolve({ index, peerId: event.peerId, addrs: event.addrs, api: event.api, dataDir, child })
      }
    })
  })
}

async function stopAll (nodes: Started[]): Promise<void> {
  await Promise.all(nodes.map(async n => {
    if (n.child.exitCode != null) {
      return
    }
    const exited = new Promise(resolve => n.child.once('exit', resolve))
    n.child.kill('SIGTERM')
    const timer = setTimeout(() => n.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }))
}

async function main (): Promise<number> {
  let values
  try {
    values = parseArgs({
      options: {
        nodes: { type: 'string', default: '5' },
        dir: { type: 'string', default: '.testnet' },
        parallel: { type: 'string', default: '4' },
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
  if (!Number.isSafeInteger(parallel) || parallel < 1) {
    process.stderr.write('testnet: --parallel takes a positive number\n')
    return 2
  }
  const dir = resolve(values.dir as string)
  const nodes: Started[] = []
  let stopping = false
  const shutdown = new Promise<void>(resolve => {
    const onSignal = (): void => {
      if (stopping) {
        return
      }
      stopping = true
      resolve()
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })

  try {
    const progress = (text: string): void => { if (values.json !== true) process.stderr.write(text) }
    progress(`starting ${count} nodes in ${dir}\n`)
    const first = await startNode(1, dir, undefined)
    nodes.push(first)
    progress(`  node 1 ${first.peerId}\n`)
    const bootstrap = first.addrs.find(a => a.includes('/127.0.0.1/')) ?? first.addrs[0]
    for (let i = 2; i <= count && !stopping; i += parallel) {
      const batch = []
      for (let j = i; j < Math.min(i + parallel, count + 1); j++) {
        batch.push(startNode(j, dir, bootstrap))
      }
      for (const node of await Promise.all(batch)) {
        nodes.push(node)
        progress(`  node ${node.index} ${node.peerId}\n`)
      }
    }
  } catch (err: any) {
    process.stderr.write(`testnet: ${err.message}\n`)
    await stopAll(nodes)
    return 1
  }

  nodes.sort((a, b) => a.index - b.index)
  if (values.json === true) {
    process.stdout.write(JSON.stringify(nodes.map(({ child, ...n }) => ({ ...n, listen: n.addrs[0] })), null, 2) + '\n')
  } else {
    const rows = [['#', 'PEERID', 'LISTEN', 'API', 'DATA DIR'], ...nodes.map(n => [String(n.index), n.peerId, n.addrs[0].replace(/\/p2p\/.*/, ''), n.api, n.dataDir])]
    const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
    process.stdout.write(rows.map(r => r.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n') + '\n')
    process.stdout.write(`\n${nodes.length} nodes running. Try:\n  npx opencloud-node --data-dir ${nodes[nodes.length - 1].dataDir} call ${nodes[0].peerId} sha256.hash --body package.json\nCtrl-C stops them all.\n`)
  }

  for (const node of nodes) {
    node.child.once('exit', code => {
      if (!stopping) {
        process.stderr.write(`testnet: node ${node.index} exited with code ${code}; see ${join(node.dataDir, 'daemon.log')}\n`)
      }
    })
  }
  await shutdown
  process.stderr.write('stopping the testnet...\n')
  await stopAll(nodes)
  process.stderr.write('stopped\n')
  return 0
}

process.exitCode = await main()
