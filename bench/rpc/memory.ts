/**
 * bench/rpc/memory: live memory while a large body streams through an
 * OpenCloud call, against the same bytes sent over a bare libp2p stream
 * into a sink on the same connection, measured in the same run. Both nodes
 * live in this process, so memory either end holds counts.
 *
 *   node bench/rpc/memory.ts [--mib 100] [--json]
 *
 * Target (was an assertion of test/integration/rpc.test.ts): the call's
 * peak growth stays well under the body (under 64 MiB for 100 MiB): a node
 * that buffered the body, or a writer that ignored backpressure (the
 * @libp2p/utils 7.4 onDrain bug in NOTES-libp2p-v3.md), holds all of it.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { MAX_DATA_FRAME } from '../../src/protocols/rpc/constants.ts'
import { sendBounded } from '../../src/protocols/rpc/frames.ts'
import type { OutgoingBody } from '../../src/protocols/rpc/body.ts'
import { SINK_PROTOCOL, testConfigFor } from './config.ts'

const { values } = parseArgs({ options: { mib: { type: 'string', default: '100' }, json: { type: 'boolean', default: false } } })
const BYTES = Number(values.mib) * 1024 * 1024
const MIB = 1024 * 1024

/** A full collection, so the samples measure live memory, not garbage waiting for collection */
function forceGc (): () => void {
  if (typeof global.gc === 'function') {
    return global.gc
  }
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc')
}
const gc = forceGc()
const live = (): number => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers }

/** Peak live memory above what was live before, while `fn` runs */
async function peakGrowth (fn: () => Promise<void>): Promise<number> {
  gc()
  const baseline = live()
  let peak = 0
  const sampler = setInterval(() => { gc(); peak = Math.max(peak, live() - baseline) }, 50)
  try {
    await fn()
  } finally {
    clearInterval(sampler)
  }
  return peak
}

const chunk = new Uint8Array(MAX_DATA_FRAME).fill(0x42)
const pieces = function * (): Generator<Uint8Array> {
  for (let n = 0; n < BYTES; n += chunk.length) {
    yield chunk.subarray(0, Math.min(chunk.length, BYTES - n))
  }
}
const hash = createHash('sha256')
for (const p of pieces()) hash.update(p)
const body: OutgoingBody = { length: BYTES, sha256: Uint8Array.from(hash.digest()), open: async function * () { yield * pieces() } }

const dir = await mkdtemp(join(tmpdir(), 'oc-bench-memory-'))
const client = await OpenCloudNode.create({ dataDir: join(dir, 'client'), config: testConfigFor() })
const server = await OpenCloudNode.create({ dataDir: join(dir, 'server'), config: testConfigFor() })
try {
  await server.libp2p.handle(SINK_PROTOCOL, (stream) => {
    stream.addEventListener('message', () => {})
    stream.addEventListener('remoteCloseWrite', () => { void stream.close().catch(() => {}) }, { once: true })
  })
  await Promise.all([client.start(), server.start()])
  const target = server.libp2p.getMultiaddrs()[0]
  const connection = await client.libp2p.dial(target)

  const raw = await peakGrowth(async () => {
    const stream = await connection.newStream(SINK_PROTOCOL)
    for (const p of pieces()) await sendBounded(stream, p)
    await stream.close()
  })
  const opencloud = await peakGrowth(async () => {
    const r = await client.call(target, { service: 'sha256', method: 'hash', body })
    if (Buffer.compare(await r.body.bytes(), body.sha256) !== 0) {
      throw new Error('the call answered another hash')
    }
  })
  const results = { bytes: BYTES, rawPeakMiB: raw / MIB, opencloudPeakMiB: opencloud / MIB, ratio: opencloud / Math.max(raw, 1), shareOfBody: opencloud / BYTES, target: 'opencloud peak < 64 MiB for 100 MiB' }
  if (values.json === true) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n')
  } else {
    process.stdout.write(`
bench/rpc/memory: ${BYTES / MIB} MiB through one call, both nodes in this process, live memory (heap + array buffers after a full GC) sampled every 50 ms

                     peak growth   share of the body
raw libp2p sink      ${(raw / MIB).toFixed(1).padStart(8)} MiB   ${(raw / BYTES * 100).toFixed(1).padStart(6)} %
OpenCloud sha256     ${(opencloud / MIB).toFixed(1).padStart(8)} MiB   ${(opencloud / BYTES * 100).toFixed(1).padStart(6)} %   ratio ${results.ratio.toFixed(2)}   target < 64 MiB for 100 MiB
`)
  }
} finally {
  await Promise.all([client.stop(), server.stop()])
  await rm(dir, { recursive: true, force: true })
}
