/**
 * bench/storage/memory: what a storing daemon holds in memory, on a testnet
 * of daemons as a user runs them.
 *
 *   npm run bench:storage:memory [-- --nodes 9 --mib 1024 --concurrent 10 --concurrent-mib 20 --redundancy 4-of-8 --json]
 *
 * Node 1 stores a file of --mib through its control API and fetches it back,
 * then stores --concurrent files of --concurrent-mib at once; the other
 * nodes are its hosts. Node 1's resident memory is sampled from /proc every
 * 50 ms (the same figure GET /v1/process gives): the peak of each phase, and
 * the resident size when idle before and after, against the 300 MB the
 * storage issue promised for a 1 GiB put or get.
 */
import { open, readFile, rm, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { connectApi } from '../../src/cli/api-client.ts'
import { fund, nodeApi, startNode, stopAll, type Started } from '../../scripts/testnet/network.ts'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '9' },
    mib: { type: 'string', default: '1024' },
    concurrent: { type: 'string', default: '10' },
    'concurrent-mib': { type: 'string', default: '20' },
    // default: the node's own default for the hosts it knows
    redundancy: { type: 'string' },
    json: { type: 'boolean', default: false }
  }
})
const MIB = 1024 * 1024
const progress = (s: string): void => { if (values.json !== true) process.stderr.write(s) }

async function writeRandom (path: string, bytes: number): Promise<void> {
  const handle = await open(path, 'w')
  for (let written = 0; written < bytes; written += MIB) {
    await handle.write(randomBytes(Math.min(MIB, bytes - written)))
  }
  await handle.close()
}

async function rssOf (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) * 1024
}

const dir = await mkdtemp(join(tmpdir(), 'oc-bench-memory-'))
const chain = new RegtestServer({ dir: join(dir, 'chain'), blockIntervalMs: 1_000 })
const nodes: Started[] = []
try {
  await chain.start()
  const count = Number(values.nodes)
  progress(`starting ${count} daemons in ${dir}\n`)
  nodes.push(await startNode(1, dir, undefined, chain.url))
  const bootstrap = nodes[0].addrs.find(a => a.includes('/127.0.0.1/')) ?? nodes[0].addrs[0]
  for (let i = 2; i <= count; i++) {
    nodes.push(await startNode(i, dir, bootstrap, chain.url))
  }
  await fund(nodes[0], chain, 100_000_000n)
  await chain.chain.mine(1, chain.faucetAddress)
  const client = nodes[0]
  const pid = client.child.pid as number
  const deadline = Date.now() + 60_000
  for (;;) {
    const offers = await nodeApi(client, '/v1/market/prices?service=storage').catch(() => [])
    if (new Set(offers.filter((o: any) => o.method === 'rent').map((o: any) => o.provider)).size >= count - 1 || Date.now() > deadline) {
      break
    }
    await new Promise(resolve => setTimeout(resolve, 500))
  }

  let peak = 0
  // and the V8 side of it from the node itself, less often: what grew
  let parts: Record<string, number> = {}
  const sampler = setInterval(() => { void rssOf(pid).then(r => { peak = Math.max(peak, r) }, () => {}) }, 50)
  const partsSampler = setInterval(() => {
    void nodeApi(client, '/v1/process').then(({ memory }) => {
      for (const [key, value] of Object.entries(memory as Record<string, number>)) {
        parts[key] = Math.max(parts[key] ?? 0, value)
      }
    }, () => {})
  }, 250)
  const phase = async (name: string, work: () => Promise<unknown>): Promise<{ peakMB: number, seconds: number, peaksMB: Record<string, number> }> => {
    progress(`${name}\n`)
    peak = await rssOf(pid)
    parts = {}
    const started = performance.now()
    await work()
    return { peakMB: Math.round(peak / 1e6), seconds: Math.round((performance.now() - started) / 100) / 10, peaksMB: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Math.round(v / 1e6)])) }
  }
  const api = await connectApi(client.dataDir)
  const idleBefore = Math.round(await rssOf(pid) / 1e6)

  const big = join(dir, 'big.bin')
  await writeRandom(big, Number(values.mib) * MIB)
  const put = await phase(`store put, ${values.mib} MiB`, async () => api.events('/v1/store/put', { path: big, name: 'big.bin', redundancy: values.redundancy }, () => {}))
  const get = await phase('store get', async () => api.events('/v1/store/get', { object: 'big.bin', out: join(dir, 'big.out') }, () => {}))
  await rm(join(dir, 'big.out'))

  const files: string[] = []
  for (let i = 0; i < Number(values.concurrent); i++) {
    files.push(join(dir, `small-${i}.bin`))
    await writeRandom(files[i], Number(values['concurrent-mib']) * MIB)
  }
  const concurrent = await phase(`${files.length} concurrent puts of ${values['concurrent-mib']} MiB`, async () => Promise.all(files.map(async (path, i) => api.events('/v1/store/put', { path, name: `small-${i}.bin`, redundancy: values.redundancy }, () => {}))))
  clearInterval(sampler)
  clearInterval(partsSampler)
  // idle again: what the daemon keeps once the work is done
  await new Promise(resolve => setTimeout(resolve, 5_000))
  const idleAfter = Math.round(await rssOf(pid) / 1e6)

  const stored = (await nodeApi(client, '/v1/store')).objects.find((o: any) => o.name === 'big.bin')
  const result = { nodes: count, redundancy: stored?.redundancy, mib: Number(values.mib), idleBeforeMB: idleBefore, put, get, concurrent: { files: files.length, mib: Number(values['concurrent-mib']), ...concurrent }, idleAfterMB: idleAfter, targetMB: 300 }
  if (values.json === true) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  } else {
    process.stdout.write(`${result.redundancy} on ${count - 1} hosts: idle ${idleBefore} MB; put ${put.peakMB} MB peak (${put.seconds} s); get ${get.peakMB} MB peak (${get.seconds} s); ${files.length} concurrent puts ${concurrent.peakMB} MB peak (${concurrent.seconds} s); idle after ${idleAfter} MB; target: under 300 MB\n`)
  }
} finally {
  await stopAll(nodes)
  await chain.stop().catch(() => {})
  await rm(dir, { recursive: true, force: true })
}
