/**
 * bench/gossip: how long a price change takes to reach every node, on
 * testnets of daemons in separate processes on 127.0.0.1.
 *
 *   npm run bench:gossip [-- --sizes 10,30 --rounds 5 --json]
 *
 * Each round changes node 1's price for sha256.hash and records, on every
 * other node, when the new offer arrived (its own clock, the same machine's):
 * latency = received-at minus issued-at. Printed beside gossipsub's heartbeat
 * interval (1 s), which bounds how fast gossip (as opposed to mesh
 * forwarding) can repair a miss. Target (issue 4): every node within 2 s at
 * p95 on 30 nodes.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { nodeApi, startNode, stopAll, type Started } from '../../scripts/testnet/network.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'

const HEARTBEAT_MS = 1000

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,30' },
    rounds: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false }
  }
})
const sizes = (values.sizes as string).split(',').map(Number)
const rounds = Number(values.rounds)
const progress = (s: string): void => { if (values.json !== true) process.stderr.write(s) }

function quantile (sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

async function measure (size: number): Promise<{ nodes: number, samples: number, p50: number, p95: number, max: number, missed: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'oc-bench-gossip-'))
  const nodes: Started[] = []
  // a price needs payments on, so the nodes get a chain (nothing is paid)
  const chain = new RegtestServer({ dir: join(dir, 'chain'), blockIntervalMs: 0 })
  try {
    await chain.start()
    progress(`${size} nodes: starting\n`)
    nodes.push(await startNode(1, dir, undefined, chain.url))
    const bootstrap = nodes[0].addrs[0]
    for (let i = 2; i <= size; i += 4) {
      const batch = []
      for (let j = i; j < Math.min(i + 4, size + 1); j++) {
        batch.push(startNode(j, dir, bootstrap, chain.url))
      }
      nodes.push(...await Promise.all(batch))
    }
    // let meshes form: a few heartbeats
    await new Promise(resolve => setTimeout(resolve, 5 * HEARTBEAT_MS))
    const seller = nodes[0]
    const latencies: number[] = []
    let missed = 0
    for (let round = 0; round < rounds; round++) {
      const price = 1000 + round
      const set = await nodeApi(seller, '/v1/market/price', { method: 'POST', body: JSON.stringify({ service: 'sha256', method: 'hash', amount: `${price} sat`, confirm: true }) })
      const issuedAt = Date.parse(set.offer.issuedAt)
      const deadline = Date.now() + 10_000
      const pending = new Set(nodes.slice(1))
      while (pending.size > 0 && Date.now() < deadline) {
        await Promise.all([...pending].map(async node => {
          const offers = await nodeApi(node, '/v1/market/prices?service=sha256&method=hash')
          const offer = offers.find((o: any) => o.provider === seller.peerId && Date.parse(o.issuedAt) === issuedAt)
          if (offer != null) {
            latencies.push(Date.parse(offer.receivedAt) - issuedAt)
            pending.delete(node)
          }
        }))
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      missed += pending.size
      progress(`  round ${round + 1}: ${nodes.length - 1 - pending.size}/${nodes.length - 1} nodes\n`)
      await new Promise(resolve => setTimeout(resolve, HEARTBEAT_MS))
    }
    latencies.sort((a, b) => a - b)
    return { nodes: size, samples: latencies.length, p50: quantile(latencies, 0.5), p95: quantile(latencies, 0.95), max: latencies[latencies.length - 1], missed }
  } finally {
    await stopAll(nodes)
    await chain.stop().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

const results = []
for (const size of sizes) {
  results.push(await measure(size))
}
if (values.json === true) {
  process.stdout.write(JSON.stringify({ heartbeatMs: HEARTBEAT_MS, results }, null, 2) + '\n')
} else {
  process.stdout.write(`\nbench/gossip: a price change on node 1 until it reaches every other node (daemons in separate processes, 127.0.0.1)\n\n`)
  process.stdout.write('nodes  samples   p50 ms   p95 ms   max ms  missed  p95/heartbeat  target\n')
  for (const r of results) {
    process.stdout.write(`${String(r.nodes).padStart(5)}  ${String(r.samples).padStart(7)}  ${String(r.p50).padStart(7)}  ${String(r.p95).padStart(7)}  ${String(r.max).padStart(7)}  ${String(r.missed).padStart(6)}  ${(r.p95 / HEARTBEAT_MS).toFixed(2).padStart(13)}  ${r.nodes >= 30 ? 'p95 <= 2000 ms' : ''}\n`)
  }
  process.stdout.write(`gossipsub heartbeat: ${HEARTBEAT_MS} ms\n`)
}
