/**
 * bench/storage: store put and store get against a raw libp2p stream,
 * measured in the same run on one machine.
 *
 *   npm run bench:storage [-- --mib 256 --hosts 8 --segment-mib 4 --in-flight 1 --redundancy 4-of-8 --json]
 *
 * The hosts run in a second process, the client node in this one. Baseline:
 * one bare libp2p stream from the client into a byte sink on a host (the
 * median of three runs). Targets
 * (issue 9): upload (file bytes per second) >= K/N of the raw stream, since
 * every file byte is sent N/K times over the same loopback; download >= 0.6
 * of it. Also the Reed-Solomon coder, the cipher and the Merkle hasher alone
 * in MB/s, and this process's peak RSS (the client node).
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm, open, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { DEFAULT_CONFIG, validateConfig } from '../../src/node/config.ts'
import { ReedSolomon, split } from '../../src/storage/protocol/erasure.ts'
import { sealSegment, objectKey } from '../../src/storage/protocol/crypto.ts'
import { merkleRoot } from '../../src/storage/protocol/merkle.ts'
import { defaultRedundancy } from '../../src/storage/client/storage-client.ts'
import { parseRedundancy } from '../../src/storage/put-options.ts'
import { SINK_PROTOCOL } from './sink.ts'
import { sendBounded } from '../../src/protocols/rpc/frames.ts'
import type { Stream } from '@libp2p/interface'

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    hosts: { type: 'string', default: '8' },
    'segment-mib': { type: 'string' },
    'in-flight': { type: 'string', default: '1' },
    // default: what the node chooses for the hosts it knows (defaultRedundancy)
    redundancy: { type: 'string' },
    json: { type: 'boolean', default: false }
  }
})
const MIB = 1024 * 1024
const SIZE = Number(values.mib) * MIB
const HOSTS = Number(values.hosts)
const progress = (s: string): void => { if (values.json !== true) process.stderr.write(s) }

const dir = await mkdtemp(join(tmpdir(), 'oc-bench-storage-'))
const hostsProcess = spawn(process.execPath, [fileURLToPath(new URL('./hosts.ts', import.meta.url)), dir, String(HOSTS + 1)], { stdio: ['ignore', 'pipe', 'inherit'] })
try {
  const { addrs } = await new Promise<{ addrs: string[] }>((resolve, reject) => {
    createInterface({ input: hostsProcess.stdout as NodeJS.ReadableStream }).once('line', line => { resolve(JSON.parse(line)) })
    hostsProcess.once('exit', code => { reject(new Error(`the hosts exited with ${code}`)) })
  })
  const config = validateConfig({ ...structuredClone(DEFAULT_CONFIG), listen: ['/ip4/127.0.0.1/tcp/0'], dht: { addresses: 'private', protocol: DEFAULT_CONFIG.dht.protocol }, services: { storage: { enabled: false } } })
  const client = await OpenCloudNode.create({ dataDir: join(dir, 'client'), config, bootstrap: [addrs[1]], storage: { segmentSize: values['segment-mib'] == null ? undefined : Number(values['segment-mib']) * MIB, segmentsInFlight: Number(values['in-flight']) } })
  await client.start()
  // host 0 is the baseline's sink; the storage hosts are the others
  const sinkPeer = addrs[0].split('/p2p/')[1]
  const connection = await client.libp2p.dial(multiaddr(addrs[0]))
  for (const a of addrs.slice(1)) {
    await client.libp2p.dial(multiaddr(a))
  }
  progress(`waiting for the storage offers of ${HOSTS} hosts\n`)
  const deadline = Date.now() + 60_000
  while ((await client.storageHosts()).filter(h => h.peer !== sinkPeer).length < HOSTS && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 200))
  }

  const file = join(dir, 'file.bin')
  {
    const handle = await open(file, 'w')
    for (let written = 0; written < SIZE; written += MIB) {
      await handle.write(randomBytes(Math.min(MIB, SIZE - written)))
    }
    await handle.close()
  }

  // raw: one stream into the sink
  const raw = async (): Promise<number> => {
    const stream: Stream = await connection.newStream(SINK_PROTOCOL)
    const replies = stream[Symbol.asyncIterator]()
    await replies.next() // the sink is reading
    const chunk = randomBytes(256 * 1024)
    const started = performance.now()
    const header = Buffer.alloc(8)
    header.writeBigUInt64BE(BigInt(SIZE))
    stream.send(header)
    for (let sent = 0; sent < SIZE; sent += chunk.byteLength) {
      await sendBounded(stream, chunk)
    }
    await replies.next() // the sink's count: every byte arrived
    await stream.close()
    return SIZE / ((performance.now() - started) / 1000)
  }
  progress(`raw stream, ${SIZE / MIB} MiB\n`)
  // three runs, the median: one loopback stream on a shared machine varies by 2x
  const rawRuns = [await raw(), await raw(), await raw()].sort((a, b) => a - b)
  const rawBps = rawRuns[1]

  const rssBeforePut = process.memoryUsage().rss
  // the node's peak while it stores and fetches, sampled
  let rssPeak = rssBeforePut
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss) }, 50)
  const { k, n } = values.redundancy == null ? defaultRedundancy(HOSTS) : parseRedundancy(values.redundancy)
  progress(`store put, ${SIZE / MIB} MiB as ${k}-of-${n}\n`)
  const hostsCpu = async (): Promise<number> => {
    const fields = (await readFile(`/proc/${hostsProcess.pid}/stat`, 'utf8')).split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10
  }
  let hostsCpuBefore = await hostsCpu()
  let clientCpuBefore = process.cpuUsage()
  let started = performance.now()
  const object = await client.storage.put(file, { name: 'bench.bin', k, n })
  const putBps = SIZE / ((performance.now() - started) / 1000)
  const putMs = performance.now() - started
  const putCpu = { hosts: (await hostsCpu() - hostsCpuBefore) / putMs, client: (process.cpuUsage(clientCpuBefore).user + process.cpuUsage(clientCpuBefore).system) / 1000 / putMs }
  hostsCpuBefore = await hostsCpu()
  clientCpuBefore = process.cpuUsage()
  const rssAfterPut = process.memoryUsage().rss
  const putPeak = rssPeak

  progress('store get\n')
  const out = join(dir, 'out.bin')
  started = performance.now()
  await client.storage.get(object.id, out)
  const getBps = SIZE / ((performance.now() - started) / 1000)
  const getMs = performance.now() - started
  const getCpu = { hosts: (await hostsCpu() - hostsCpuBefore) / getMs, client: (process.cpuUsage(clientCpuBefore).user + process.cpuUsage(clientCpuBefore).system) / 1000 / getMs }
  clearInterval(sampler)
  const outHash = createHash('sha256')
  for await (const chunk of createReadStream(out)) {
    outHash.update(chunk)
  }
  const same = outHash.digest('hex') === object.sha256

  // the parts alone, on one 16 MiB segment
  const segment = randomBytes(16 * MIB)
  const time = (fn: () => void, reps = 4): number => { const t = performance.now(); for (let i = 0; i < reps; i++) fn(); return reps * segment.byteLength / ((performance.now() - t) / 1000) }
  const rs = new ReedSolomon(k, n)
  const data = split(segment, k)
  const encodeBps = time(() => { rs.encode(data) })
  const shards = [...data, ...rs.encode(data)]
  const missing = shards.map((s, i) => i < n - k ? undefined : s)
  const decodeBps = time(() => { rs.reconstruct(missing) })
  const key = objectKey(randomBytes(32), randomBytes(16))
  const cipherBps = time(() => { sealSegment(key, new Uint8Array(16), 0, segment) })
  const merkleBps = time(() => { merkleRoot(segment) })

  const results = {
    bytes: SIZE,
    redundancy: `${k}-of-${n}`,
    rawMBps: rawBps / 1e6,
    putMBps: putBps / 1e6,
    getMBps: getBps / 1e6,
    putRatio: putBps / rawBps,
    putTarget: k / n,
    getRatio: getBps / rawBps,
    getTarget: 0.6,
    identical: same,
    putCpu,
    getCpu,
    encodeMBps: encodeBps / 1e6,
    decodeMBps: decodeBps / 1e6,
    cipherMBps: cipherBps / 1e6,
    merkleMBps: merkleBps / 1e6,
    clientRssBeforePutMB: rssBeforePut / 1e6,
    clientRssAfterPutMB: rssAfterPut / 1e6,
    clientPeakRssMB: rssPeak / 1e6,
    clientPeakRssPutMB: putPeak / 1e6
  }
  if (values.json === true) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n')
  } else {
    const f = (x: number): string => x.toFixed(1).padStart(8)
    process.stdout.write(`bench:storage  ${SIZE / MIB} MiB, ${k}-of-${n} on ${n} hosts, one machine (2 processes)
                         MB/s     ratio to raw   target
raw libp2p stream    ${f(results.rawMBps)}
store put            ${f(results.putMBps)}     ${results.putRatio.toFixed(2).padStart(6)}       >= ${results.putTarget.toFixed(2)} (K/N)   cpu: hosts ${(putCpu.hosts * 100).toFixed(0)}%, client ${(putCpu.client * 100).toFixed(0)}%
store get            ${f(results.getMBps)}     ${results.getRatio.toFixed(2).padStart(6)}       >= 0.60   ${same ? 'identical' : 'DIFFERENT BYTES'}   cpu: hosts ${(getCpu.hosts * 100).toFixed(0)}%, client ${(getCpu.client * 100).toFixed(0)}%
Reed-Solomon encode  ${f(results.encodeMBps)}  (${k}-of-${n}, per MB of segment)
Reed-Solomon rebuild ${f(results.decodeMBps)}  (${n - k} data shards missing)
AES-256-GCM seal     ${f(results.cipherMBps)}
Merkle root          ${f(results.merkleMBps)}
client RSS           ${f(results.clientRssBeforePutMB)} MB before put, ${results.clientRssAfterPutMB.toFixed(1)} MB after, peak ${results.clientPeakRssPutMB.toFixed(1)} MB in put, ${results.clientPeakRssMB.toFixed(1)} MB in put and get (target < 300)
`)
  }
  await client.stop()
} finally {
  hostsProcess.kill('SIGTERM')
  await new Promise(resolve => hostsProcess.once('exit', resolve))
  await rm(dir, { recursive: true, force: true })
}
