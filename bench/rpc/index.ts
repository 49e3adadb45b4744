/**
 * bench/rpc: OpenCloud calls against a bare libp2p baseline, measured in the
 * same run between two nodes in separate processes over TCP on 127.0.0.1.
 *
 *   npm run bench:rpc [-- --calls 3000 --bulk-mib 256 --json]
 *
 *   npm run bench:rpc -- --only bulk,file --rounds 5 --profile /tmp/prof
 *
 * Every OpenCloud call is signed by the client and the server and verified by
 * both. Baselines: a new stream per call with a 64-byte echo (small calls),
 * one stream into a byte sink (bulk). Targets (issue 22): small calls at 64
 * in flight >= 3x the new-stream baseline; latency at 1 in flight <= one
 * new-stream echo; large bodies >= 90% of raw single-stream throughput, and
 * >= 85% from a file, its SHA-256 pass included. `--profile DIR` writes the
 * server's .cpuprofile there; bench/rpc/profile-summary.ts reads it.
 *
 * On a shared machine the throughput ratios swing with other load; the CPU
 * each process spends per small call (printed beside them) moves much less,
 * and the ratio of the baseline's to OpenCloud's is what throughput would be
 * if both were CPU-bound.
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
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
    json: { type: 'boolean', default: false },
    /** which parts to run: small, bulk, file (comma-separated), default all */
    only: { type: 'string', default: 'small,bulk,file' },
    /** bulk runs of each kind, alternated so both see the same machine; medians are printed */
    rounds: { type: 'string', default: '3' },
    /** write a .cpuprofile of the server process here (run the client under `node --cpu-prof` for its own) */
    profile: { type: 'string' },
    /** --no-baseline: skip the raw runs, so a profile shows the OpenCloud path alone (ratios are then meaningless) */
    baseline: { type: 'boolean', default: true }
  },
  allowNegative: true
})
const ONLY = new Set(values.only.split(','))
const ROUNDS = Math.max(1, Number(values.rounds))
const CALLS = Number(values.calls)
const BULK = Number(values['bulk-mib']) * 1024 * 1024
const progress = (s: string): void => { if (values.json !== true) process.stderr.write(s) }

const dir = await mkdtemp(join(tmpdir(), 'oc-bench-'))
const profileArgs = values.profile == null ? [] : ['--cpu-prof', '--cpu-prof-dir', values.profile, '--cpu-prof-name', 'server.cpuprofile']
const serverProcess = spawn(process.execPath, [...profileArgs, fileURLToPath(new URL('./server.ts', import.meta.url)), join(dir, 'server')], { stdio: ['ignore', 'pipe', 'inherit'] })
const { addr } = await new Promise<any>((resolve, reject) => {
  createInterface({ input: serverProcess.stdout as NodeJS.ReadableStream }).once('line', line => { resolve(JSON.parse(line)) })
  serverProcess.once('exit', code => { reject(new Error(`bench server exited with ${code}`)) })
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

/** CPU time (user + system) used by each process, in µs: a figure the other load on the machine moves less than time */
function cpuMicros (): { client: number, server: number } {
  const own = process.cpuUsage()
  // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second on Linux)
  let server = NaN
  try {
    const fields = readFileSync(`/proc/${serverProcess.pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
    server = (Number(fields[11]) + Number(fields[12])) * 10_000
  } catch {}
  return { client: own.user + own.system, server }
}

interface Rate { callsPerSecond: number, medianMs: number, maxMs: number, clientCpuUs: number, serverCpuUs: number }

async function measure (fn: () => Promise<void>, total: number, inFlight: number): Promise<Rate> {
  const latencies: number[] = []
  let next = 0
  const cpu = cpuMicros()
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
  const used = cpuMicros()
  latencies.sort((a, b) => a - b)
  return { callsPerSecond: total / seconds, medianMs: latencies[Math.floor(latencies.length / 2)], maxMs: latencies[latencies.length - 1], clientCpuUs: (used.client - cpu.client) / total, serverCpuUs: (used.server - cpu.server) / total }
}

async function rawBulk (bytes: number): Promise<number> {
  const chunk = randomBytes(64 * 1024)
  const stream = await connection.newStream(SINK_PROTOCOL)
  const start = performance.now()
  // the sink's ready byte first (bench/rpc/server.ts says why), then its count at the end
  const ready = Promise.withResolvers<void>()
  const reply = (async () => {
    for await (const _ of stream) {
      ready.resolve()
    }
    ready.reject(new Error('the sink closed before it was ready'))
  })()
  reply.catch(() => {})
  await ready.promise
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

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/**
 * `rounds` alternating runs of a baseline and what is measured against it:
 * the machine's load drifts, so each ratio compares neighbours, and the
 * median of the ratios is what is printed
 */
async function alternate (rounds: number, baseline: () => Promise<number>, measured: Array<() => Promise<number>>): Promise<{ baseline: number, measured: number[], ratios: number[] }> {
  const b: number[] = []
  const m: number[][] = measured.map(() => [])
  const r: number[][] = measured.map(() => [])
  for (let i = 0; i < rounds; i++) {
    const base = values.baseline ? await baseline() : NaN
    b.push(base)
    for (let j = 0; j < measured.length; j++) {
      const v = await measured[j]()
      m[j].push(v)
      r[j].push(v / base)
    }
  }
  return { baseline: median(b), measured: m.map(median), ratios: r.map(median) }
}

const TARGETS = { latency: 1.0, small64: 3.0, bulk: 0.90, file: 0.85 }

try {
  const results: Record<string, unknown> = {}
  const f = (n: number, d = 0): string => n.toFixed(d)
  const met = (ok: boolean): string => ok ? 'met' : 'NOT met'
  const rows: string[] = []

  if (ONLY.has('small')) {
    progress('warming up\n')
    if (values.baseline) await measure(rawEcho, 300, 16)
    await measure(openCloudCall, 300, 16)

    progress('small calls, 1 in flight\n')
    const rawSeq = values.baseline ? await measure(rawEcho, Math.min(CALLS, 1000), 1) : { callsPerSecond: NaN, medianMs: NaN, maxMs: NaN, clientCpuUs: NaN, serverCpuUs: NaN }
    const ocSeq = await measure(openCloudCall, Math.min(CALLS, 1000), 1)
    const latencyRatio = ocSeq.medianMs / rawSeq.medianMs
    progress(`small calls, 64 in flight, ${ROUNDS} rounds\n`)
    let rawPar: Rate | undefined
    let ocPar: Rate | undefined
    const par = await alternate(ROUNDS,
      async () => { rawPar = await measure(rawEcho, CALLS, 64); return rawPar.callsPerSecond },
      [async () => { ocPar = await measure(openCloudCall, CALLS, 64); return ocPar.callsPerSecond }])
    results.smallSequential = { raw: rawSeq, opencloud: ocSeq, latencyRatio, target: `latency ratio <= ${TARGETS.latency}` }
    results.small64InFlight = { rawCallsPerSecond: par.baseline, opencloudCallsPerSecond: par.measured[0], throughputRatio: par.ratios[0], lastRaw: rawPar, lastOpencloud: ocPar, target: `throughput ratio >= ${TARGETS.small64}` }
    rows.push(
      `1 in flight, 64 B   calls/s   ${f(rawSeq.callsPerSecond).padStart(8)} (new stream/echo)  ${f(ocSeq.callsPerSecond).padStart(8)}`,
      `                    median    ${f(rawSeq.medianMs, 3).padStart(8)} ms                ${f(ocSeq.medianMs, 3).padStart(8)} ms     ${f(latencyRatio, 2).padStart(5)}   <= ${f(TARGETS.latency, 2)}  ${met(latencyRatio <= TARGETS.latency)}`,
      `64 in flight, 64 B  calls/s   ${f(par.baseline).padStart(8)} (new stream/echo)  ${f(par.measured[0]).padStart(8)}           ${f(par.ratios[0], 2).padStart(5)}   >= ${f(TARGETS.small64, 2)}  ${met(par.ratios[0] >= TARGETS.small64)}`,
      `  CPU per call, µs    client ${f(rawPar?.clientCpuUs ?? NaN).padStart(5)} server ${f(rawPar?.serverCpuUs ?? NaN).padStart(5)}   client ${f(ocPar?.clientCpuUs ?? NaN).padStart(5)} server ${f(ocPar?.serverCpuUs ?? NaN).padStart(5)}   (last round)`,
      `  slowest call, ms    ${f(rawPar?.maxMs ?? NaN).padStart(8)}                    ${f(ocPar?.maxMs ?? NaN).padStart(8)}                    (last round)`
    )
  }

  if (ONLY.has('bulk') || ONLY.has('file')) {
    progress(`bulk, ${BULK / 1048576} MiB, ${ROUNDS} rounds\n`)
    if (values.baseline) await rawBulk(32 * 1024 * 1024)
    const known = generatedBody(BULK)
    const file = join(dir, 'bulk.bin')
    const measured: Array<() => Promise<number>> = []
    if (ONLY.has('bulk')) {
      measured.push(async () => openCloudBulk(async () => known))
    }
    if (ONLY.has('file')) {
      await writeFile(file, randomBytes(BULK))
      measured.push(async () => openCloudBulk(async () => bodyFromFile(file)))
    }
    const bulk = await alternate(ROUNDS, async () => rawBulk(BULK), measured)
    const ocGbps = ONLY.has('bulk') ? bulk.measured[0] : NaN
    const ratio = ONLY.has('bulk') ? bulk.ratios[0] : NaN
    const ocFileGbps = ONLY.has('file') ? bulk.measured[measured.length - 1] : NaN
    const fileRatio = ONLY.has('file') ? bulk.ratios[measured.length - 1] : NaN
    results.bulk = { bytes: BULK, rounds: ROUNDS, rawGbps: bulk.baseline, opencloudGbps: ocGbps, ratio, opencloudFromFileGbps: ocFileGbps, fileRatio, target: `ratio >= ${TARGETS.bulk}, from a file >= ${TARGETS.file}` }
    rows.push(
      `bulk ${BULK / 1048576} MiB        Gbit/s    ${f(bulk.baseline, 2).padStart(8)} (one stream, sink)  ${f(ocGbps, 2).padStart(8)}           ${f(ratio, 2).padStart(5)}   >= ${f(TARGETS.bulk, 2)}  ${met(ratio >= TARGETS.bulk)}`,
      `  from a file, its SHA-256 pass included              ${f(ocFileGbps, 2).padStart(8)}           ${f(fileRatio, 2).padStart(5)}   >= ${f(TARGETS.file, 2)}  ${met(fileRatio >= TARGETS.file)}`
    )
  }

  if (values.json === true) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n')
  } else {
    process.stdout.write(`
bench/rpc: two nodes, separate processes, TCP + noise + yamux on 127.0.0.1; every OpenCloud call signed and verified both ways
(ratios: the median over ${ROUNDS} rounds of each run against the baseline run just before it)

                              raw libp2p baseline         OpenCloud               ratio   target
${rows.join('\n')}
`)
  }
} finally {
  await client.stop()
  serverProcess.kill('SIGTERM')
  await new Promise(resolve => serverProcess.once('exit', resolve))
  await rm(dir, { recursive: true, force: true })
}
