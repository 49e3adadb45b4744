/**
 * bench/rpc: OpenCloud calls against a bare libp2p baseline, measured in the
 * same run between two nodes in separate processes over TCP on 127.0.0.1.
 *
 *   npm run bench:rpc [-- --calls 3000 --bulk-mib 256 --json]
 *
 * Every OpenCloud call is signed by the client and the server and verified by
 * both. Baselines: a new stream per call with a 64-byte echo (small calls),
 * one stream into a byte sink (bulk). Targets (issue 2): small calls at 64 in
 * flight >= 2x the new-stream baseline; latency at 1 in flight <= one
 * new-stream echo; large bodies >= 80% of raw single-stream throughput.
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { bodyFromBytes, bodyFromFile, type OutgoingBody } from '../../src/protocols/rpc/body.ts'
import { MAX_DATA_FRAME } from '../../src/protocols/rpc/constants.ts'
import { ECHO_PROTOCOL, SINK_PROTOCOL, testConfigFor } from './config.ts'
import type { Connection, Stream } from '@libp2p/interface'

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '3000' },
    'bulk-mib': { type: 'string', default: '256' },
    json: { type: 'boolean', default: false }
  }
})
const CALLS = Number(values.calls)
const BULK = Number(values['bulk-mib']) * 1024 * 1024
const progress = (s: string): void => { if (values.json !== true) process.stderr.write(s) }

const dir = await mkdtemp(join(tmpdir(), 'oc-bench-'))
const server = spawn(process.execPath, [fileURLToPath(new URL('./server.ts', import.meta.url)), join(dir, 'server')], { stdio: ['ignore', 'pipe', 'inherit'] })
const { addr } = await new Promise<any>((resolve, reject) => {
  createInterface({ input: server.stdout as NodeJS.ReadableStream }).once('line', line => { resolve(JSON.parse(line)) })
  server.once('exit', code => { reject(new Error(`bench server exited with ${code}`)) })
})
const client = await OpenCloudNode.create({ dataDir: join(dir, 'client'), config: testConfigFor() })
await client.start()
const target = multiaddr(addr)
const connection: Connection = await client.libp2p.dial(target)

const small = new Uint8Array(64).fill(1)
const smallBody = bodyFromBytes(small)

async function waitDrain (stream: Stream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const done = (): void => { stream.removeEventListener('drain', done); stream.removeEventListener('close', fail); resolve() }
    const fail = (): void => { stream.removeEventListener('drain', done); reject(new Error('stream closed')) }
    stream.addEventListener('drain', done)
    stream.addEventListener('close', fail)
  })
}

async function rawEcho (): Promise<void> {
  const stream = await connection.newStream(ECHO_PROTOCOL, { maxOutboundStreams: 1024 } as any)
  // read before closing: the echo and the remote's close can arrive before
  // an iterator attached later would see them
  const reading = (async () => {
    let got = 0
    for await (const chunk of stream) {
      got += chunk.byteLength
    }
    return got
  })()
  stream.send(small)
  await stream.close()
  const got = await reading
  if (got !== small.byteLength) {
    throw new Error(`echo returned ${got} bytes`)
  }
}

async function openCloudCall (): Promise<void> {
  const r = await client.call(target, { service: 'sha256', method: 'hash', body: smallBody })
  if (r.body.length !== 32) {
    throw new Error('bad answer')
  }
}

interface Rate { callsPerSecond: number, medianMs: number }

async function measure (fn: () => Promise<void>, total: number, inFlight: number): Promise<Rate> {
  const latencies: number[] = []
  let next = 0
  const start = performance.now()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < total) {
      next++
      const t = performance.now()
      await fn()
      latencies.push(performance.now() - t)
    }
  }))
  const seconds = (performance.now() - start) / 1000
  latencies.sort((a, b) => a - b)
  return { callsPerSecond: total / seconds, medianMs: latencies[Math.floor(latencies.length / 2)] }
}

async function rawBulk (bytes: number): Promise<number> {
  const chunk = randomBytes(64 * 1024)
  const stream = await connection.newStream(SINK_PROTOCOL)
  const reply = (async () => { for await (const _ of stream) {} })()
  const start = performance.now()
  let sent = 0
  while (sent < bytes) {
    const piece = chunk.subarray(0, Math.min(chunk.length, bytes - sent))
    sent += piece.length
    if (!stream.send(piece) || stream.writeBufferLength > 2 * 1024 * 1024) {
      await waitDrain(stream)
    }
  }
  await stream.close()
  await reply
  return bytes * 8 / ((performance.now() - start) / 1000) / 1e9
}

function generatedBody (bytes: number): OutgoingBody {
  const chunk = randomBytes(MAX_DATA_FRAME)
  const hash = createHash('sha256')
  for (let n = 0; n < bytes; n += chunk.length) {
    hash.update(chunk.subarray(0, Math.min(chunk.length, bytes - n)))
  }
  return {
    length: bytes,
    sha256: Uint8Array.from(hash.digest()),
    open: async function * () {
      for (let n = 0; n < bytes; n += chunk.length) {
        yield chunk.subarray(0, Math.min(chunk.length, bytes - n))
      }
    }
  }
}

async function openCloudBulk (body: () => Promise<OutgoingBody>): Promise<number> {
  const start = performance.now()
  const b = await body()
  const r = await client.call(target, { service: 'sha256', method: 'hash', body: b })
  await r.body.bytes()
  return b.length * 8 / ((performance.now() - start) / 1000) / 1e9
}

try {
  progress('warming up\n')
  await measure(rawEcho, 300, 16)
  await measure(openCloudCall, 300, 16)

  progress('small calls, 1 in flight\n')
  const rawSeq = await measure(rawEcho, Math.min(CALLS, 1000), 1)
  const ocSeq = await measure(openCloudCall, Math.min(CALLS, 1000), 1)
  progress('small calls, 64 in flight\n')
  const rawPar = await measure(rawEcho, CALLS, 64)
  const ocPar = await measure(openCloudCall, CALLS, 64)

  progress(`bulk, ${BULK / 1048576} MiB\n`)
  await rawBulk(32 * 1024 * 1024)
  const rawGbps = await rawBulk(BULK)
  const known = generatedBody(BULK)
  const ocGbps = await openCloudBulk(async () => known)
  const file = join(dir, 'bulk.bin')
  await writeFile(file, randomBytes(BULK))
  const ocFileGbps = await openCloudBulk(async () => bodyFromFile(file))

  const results = {
    smallSequential: { raw: rawSeq, opencloud: ocSeq, latencyRatio: ocSeq.medianMs / rawSeq.medianMs, target: 'latency ratio <= 1.0' },
    small64InFlight: { raw: rawPar, opencloud: ocPar, throughputRatio: ocPar.callsPerSecond / rawPar.callsPerSecond, target: 'throughput ratio >= 2.0' },
    bulk: { bytes: BULK, rawGbps, opencloudGbps: ocGbps, ratio: ocGbps / rawGbps, opencloudFromFileGbps: ocFileGbps, fileRatio: ocFileGbps / rawGbps, target: 'ratio >= 0.8' }
  }
  if (values.json === true) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n')
  } else {
    const f = (n: number, d = 0): string => n.toFixed(d)
    process.stdout.write(`
bench/rpc: two nodes, separate processes, TCP + noise + yamux on 127.0.0.1; every OpenCloud call signed and verified both ways

                              raw libp2p baseline         OpenCloud               ratio   target
1 in flight, 64 B   calls/s   ${f(rawSeq.callsPerSecond).padStart(8)} (new stream/echo)  ${f(ocSeq.callsPerSecond).padStart(8)}
                    median    ${f(rawSeq.medianMs, 3).padStart(8)} ms                ${f(ocSeq.medianMs, 3).padStart(8)} ms     ${f(results.smallSequential.latencyRatio, 2).padStart(5)}   <= 1.00
64 in flight, 64 B  calls/s   ${f(rawPar.callsPerSecond).padStart(8)} (new stream/echo)  ${f(ocPar.callsPerSecond).padStart(8)}           ${f(results.small64InFlight.throughputRatio, 2).padStart(5)}   >= 2.00
bulk ${BULK / 1048576} MiB        Gbit/s    ${f(rawGbps, 2).padStart(8)} (one stream, sink)  ${f(ocGbps, 2).padStart(8)}           ${f(results.bulk.ratio, 2).padStart(5)}   >= 0.80
  from a file, with its SHA-256 pre-pass              ${f(ocFileGbps, 2).padStart(8)}           ${f(results.bulk.fileRatio, 2).padStart(5)}
`)
  }
} finally {
  await client.stop()
  server.kill('SIGTERM')
  await new Promise(resolve => server.once('exit', resolve))
  await rm(dir, { recursive: true, force: true })
}
