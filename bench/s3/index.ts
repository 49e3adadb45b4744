/**
 * bench/s3: PutObject and GetObject through the node's S3 gateway, with the
 * AWS SDK for JavaScript v3, against the same bytes stored and fetched the
 * way `store put` / `store get` do it (the storage client directly),
 * measured in the same run on one machine.
 *
 *   npm run bench:s3 [-- --mib 256 --hosts 8 --rounds 2 --no-multipart --json]
 *
 * As bench/storage: each host runs in a process of its own
 * (bench/storage/hosts.ts, with its byte sink as the bootstrap node), the
 * client node and its gateway in this one, and the SDK's S3Client in a
 * process of its own (bench/s3/tool.ts), as aws or rclone is beside a node
 * (and as `store put` has the node read the file, not the CLI), over
 * loopback HTTP. --hosts is N, the shards per segment: a put through
 * the gateway takes no redundancy, so the client's default has to be
 * K-of-N, and the bench starts N plus the spare hosts that default keeps
 * (defaultRedundancy: 10 hosts for 4-of-8); the store baseline takes the
 * default too, so both store alike. One file of random bytes is written
 * once; every put stores it under a name of its own (S3 key bench/s3-put-R
 * is the storage name bench/bench/s3-put-R; the baseline is
 * bench/store-R), every get writes a file whose SHA-256 must be the
 * file's, or the bench fails (exit 1). A small warm-up put and get on each
 * path first forms the hosts' contracts and opens the HTTP connection.
 *
 * Measured: PutObject (one request, a Readable of the file with its
 * ContentLength, the SDK's default checksum: aws-chunked with a CRC32
 * trailer), GetObject (the Body streamed to a file), and a multipart
 * upload (lib-storage's Upload, 16 MiB parts; the gateway spools the parts
 * to disk and stores the object at Complete), each beside `store put` /
 * `store get` of the same bytes. Rounds alternate the order (store first,
 * then S3 first); the figures are the medians over the rounds. Target:
 * each S3 figure >= 0.90 of its store figure (the gateway's HTTP, SigV4
 * and checksums cost at most a tenth of the storage client's throughput).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, rmSync } from 'node:fs'
import { mkdtemp, rm, open, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { DEFAULT_CONFIG, validateConfig } from '../../src/node/config.ts'
import { defaultK, defaultRedundancy, defaultRepairAfterLost } from '../../src/storage/client/health.ts'
import type { S3Gateway } from '../../src/gateway/s3/s3-gateway.ts'
import { hostSpawner } from '../storage/host-process.ts'

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    hosts: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    'no-multipart': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false }
  }
})
const MIB = 1024 * 1024
const SIZE = Number(values.mib) * MIB
const N = Number(values.hosts)
const ROUNDS = Number(values.rounds)
const MULTIPART = values['no-multipart'] !== true
const PART_SIZE = 16 * MIB
const TARGET = 0.9
const BUCKET = 'bench'
const progress = (s: string): void => { if (values.json !== true) process.stderr.write(s) }

if (!(SIZE > 0) || !(N >= 2) || !(ROUNDS >= 1)) {
  process.stderr.write('usage: npm run bench:s3 [-- --mib 256 --hosts 8 --rounds 2 --no-multipart --json]\n')
  process.exit(2)
}
// the hosts the client's default redundancy needs to be K-of-N (the gateway's puts take no K or N)
const K = defaultK(N)
const HOST_COUNT = N + defaultRepairAfterLost(K, N)
{
  const d = defaultRedundancy(HOST_COUNT)
  if (d.k !== K || d.n !== N) {
    process.stderr.write(`bench:s3: ${HOST_COUNT} hosts give ${d.k}-of-${d.n} by default, not ${K}-of-${N}: choose another --hosts\n`)
    process.exit(2)
  }
}

const dir = await mkdtemp(join(tmpdir(), 'oc-bench-s3-'))
const processes: ChildProcess[] = []
// Ctrl-C: the hosts and the temp dir go too
process.once('SIGINT', () => {
  for (const child of processes) {
    child.kill('SIGTERM')
  }
  rmSync(dir, { recursive: true, force: true })
  process.exit(130)
})
const spawnHost = hostSpawner(dir, processes)

const sha256Of = async (path: string): Promise<string> => {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk)
  }
  return hash.digest('hex')
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** One measured transfer */
/** cpu: cores busy (1 = one) in the hosts' processes, this one (the client node and its gateway) and the SDK's; loopP99Ms: this process's event-loop delay, 99th percentile */
interface Run { round: number, MBps: number, ms: number, cpu: { hosts: number, client: number, sdk: number }, loopP99Ms: number, identical: boolean }
type Kind = 'storePut' | 'storeGet' | 's3Put' | 's3Get' | 's3Multipart'
const runs: Record<Kind, Run[]> = { storePut: [], storeGet: [], s3Put: [], s3Get: [], s3Multipart: [] }
let failed = false

let client: OpenCloudNode | undefined
let tool: ChildProcess | undefined
try {
  // the sink first (the hosts bootstrap from it; it stores nothing), then the storage hosts, one process each
  const sink = await spawnHost('sink', '--sink')
  const hosts = await Promise.all(Array.from({ length: HOST_COUNT }, async (_, i) => spawnHost(`host${i}`, sink.addr)))
  const config = validateConfig({ ...structuredClone(DEFAULT_CONFIG), listen: ['/ip4/127.0.0.1/tcp/0'], dht: { addresses: 'private', protocol: DEFAULT_CONFIG.dht.protocol }, services: { storage: { enabled: false } } })
  const node = client = await OpenCloudNode.create({ dataDir: join(dir, 'client'), config, bootstrap: [sink.addr], modules: { s3: { listen: '127.0.0.1:0' } } })
  await node.start()
  await node.libp2p.dial(multiaddr(sink.addr))
  for (const h of hosts) {
    await node.libp2p.dial(multiaddr(h.addr))
  }
  progress(`waiting for the storage offers of ${HOST_COUNT} hosts\n`)
  const deadline = Date.now() + 60_000
  while ((await node.storageHosts()).length < HOST_COUNT && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  const offers = (await node.storageHosts()).length
  if (offers < HOST_COUNT) {
    throw new Error(`only ${offers} of ${HOST_COUNT} hosts offered storage within 60 s`)
  }

  const gw = node.engine<S3Gateway>('s3')
  if (gw?.url == null) {
    throw new Error('the S3 gateway is not listening (modules.s3.listen)')
  }
  const key = await gw.keys.create()
  // the SDK in a process of its own (bench/s3/tool.ts), as aws or rclone is beside the node
  const child = tool = spawn(process.execPath, [fileURLToPath(new URL('./tool.ts', import.meta.url)), gw.url, key.id, key.secret, BUCKET], { stdio: ['pipe', 'pipe', 'inherit'] })
  const answers = createInterface({ input: child.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]()
  const ask = async (command: Record<string, unknown>): Promise<void> => {
    child.stdin?.write(JSON.stringify(command) + '\n')
    const answer = await answers.next()
    if (answer.done === true) {
      throw new Error('the SDK process ended')
    }
    const parsed = JSON.parse(answer.value)
    if (parsed.error != null) {
      throw new Error(`the SDK: ${String(parsed.error)}`)
    }
  }
  await ask({ op: 'bucket' })
  const storage = node.storage

  // the file, once: random bytes, hashed as they are written
  progress(`writing ${SIZE / MIB} MiB of random bytes\n`)
  const file = join(dir, 'file.bin')
  const fileHash = createHash('sha256')
  {
    const handle = await open(file, 'w')
    for (let written = 0; written < SIZE; written += MIB) {
      const chunk = randomBytes(Math.min(MIB, SIZE - written))
      fileHash.update(chunk)
      await handle.write(chunk)
    }
    await handle.close()
  }
  const fileSha = fileHash.digest('hex')

  const cpuOf = async (pids: number[]): Promise<number> => {
    let ms = 0
    for (const pid of pids) {
      const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')
      ms += (Number(fields[11]) + Number(fields[12])) * 10
    }
    return ms
  }
  const hostsCpu = async (): Promise<number> => cpuOf(hosts.map(h => h.process.pid as number))
  const sdkCpu = async (): Promise<number> => cpuOf([child.pid as number])
  /** fn's duration, and the CPU the hosts and this process (client node, gateway and SDK) spent per ms of it (1 = one core) */
  const timed = async (fn: () => Promise<void>): Promise<Omit<Run, 'round' | 'identical'>> => {
    const hostsBefore = await hostsCpu()
    const sdkBefore = await sdkCpu()
    const clientBefore = process.cpuUsage()
    const loop = monitorEventLoopDelay({ resolution: 10 })
    loop.enable()
    const started = performance.now()
    await fn()
    const ms = performance.now() - started
    loop.disable()
    const used = process.cpuUsage(clientBefore)
    return { MBps: SIZE / 1e6 / (ms / 1000), ms, cpu: { hosts: (await hostsCpu() - hostsBefore) / ms, client: (used.user + used.system) / 1000 / ms, sdk: (await sdkCpu() - sdkBefore) / ms }, loopP99Ms: loop.percentile(99) / 1e6 }
  }
  /** a stored object: K-of-N, and the file's size and SHA-256 */
  const checkObject = async (name: string): Promise<boolean> => {
    const object = await storage.find(name)
    if (object.k !== K || object.n !== N) {
      throw new Error(`${name} was stored ${object.k}-of-${object.n}, not ${K}-of-${N}`)
    }
    return object.sha256 === fileSha && object.size === SIZE
  }
  /** a fetched copy: its SHA-256 against the file's, then removed */
  const checkCopy = async (out: string, sha = fileSha): Promise<boolean> => {
    const same = await sha256Of(out) === sha
    await rm(out, { force: true })
    return same
  }

  // the transfers, as `store put` / `store get` and as an S3 client
  const storePut = async (name: string, path = file): Promise<void> => {
    await storage.put(path, { name })
  }
  const storeGet = async (name: string, out: string): Promise<void> => {
    await storage.get(name, out)
  }
  const s3Put = async (objectKey: string, path = file, size = SIZE): Promise<void> => {
    await ask({ op: 'put', key: objectKey, path, size })
  }
  const s3Get = async (objectKey: string, out: string): Promise<void> => {
    await ask({ op: 'get', key: objectKey, path: out })
  }
  const s3Multipart = async (objectKey: string): Promise<void> => {
    await ask({ op: 'multipart', key: objectKey, path: file, partSize: PART_SIZE })
  }

  // warm-up: contracts formed with the hosts, the SDK's connection open
  progress('warm-up: 1 MiB by store and by S3\n')
  {
    const small = join(dir, 'warmup.bin')
    const bytes = randomBytes(MIB)
    const want = createHash('sha256').update(bytes).digest('hex')
    await writeFile(small, bytes)
    await storePut('bench/warmup-store', small)
    await storeGet('bench/warmup-store', join(dir, 'warmup-store.out'))
    await s3Put('warmup-s3', small, MIB)
    await s3Get('warmup-s3', join(dir, 'warmup-s3.out'))
    for (const out of ['warmup-store.out', 'warmup-s3.out']) {
      if (!await checkCopy(join(dir, out), want)) {
        throw new Error(`the warm-up copy ${out} differs from what was stored`)
      }
    }
    await rm(small)
  }

  const measure = async (kind: Kind, round: number, fn: () => Promise<void>, check: () => Promise<boolean>): Promise<void> => {
    const run = await timed(fn)
    const identical = await check()
    runs[kind].push({ round, ...run, identical })
    failed ||= !identical
    progress(`  ${kind.padEnd(12)} ${run.MBps.toFixed(1).padStart(7)} MB/s  ${(run.ms / 1000).toFixed(1).padStart(6)} s  cpu: hosts ${(run.cpu.hosts * 100).toFixed(0)}%, client ${(run.cpu.client * 100).toFixed(0)}%, sdk ${(run.cpu.sdk * 100).toFixed(0)}%, event-loop delay p99 ${run.loopP99Ms.toFixed(0)} ms${identical ? '' : '  DIFFERENT BYTES'}\n`)
  }
  for (let round = 1; round <= ROUNDS; round++) {
    const storeFirst = round % 2 === 1
    progress(`round ${round} of ${ROUNDS}: ${storeFirst ? 'store, then S3' : 'S3, then store'}\n`)
    const storeSide = async (): Promise<void> => {
      const name = `bench/store-${round}`
      const out = join(dir, `store-${round}.out`)
      await measure('storePut', round, async () => storePut(name), async () => checkObject(name))
      await measure('storeGet', round, async () => storeGet(name, out), async () => checkCopy(out))
    }
    const s3Side = async (): Promise<void> => {
      const objectKey = `bench/s3-put-${round}`
      const out = join(dir, `s3-${round}.out`)
      await measure('s3Put', round, async () => s3Put(objectKey), async () => checkObject(`${BUCKET}/${objectKey}`))
      await measure('s3Get', round, async () => s3Get(objectKey, out), async () => checkCopy(out))
      if (MULTIPART) {
        const multipartKey = `bench/s3-multipart-${round}`
        await measure('s3Multipart', round, async () => s3Multipart(multipartKey), async () => checkObject(`${BUCKET}/${multipartKey}`))
      }
    }
    for (const side of storeFirst ? [storeSide, s3Side] : [s3Side, storeSide]) {
      await side()
    }
  }

  const med = (kind: Kind): number => median(runs[kind].map(r => r.MBps))
  const ratios = {
    put: med('s3Put') / med('storePut'),
    get: med('s3Get') / med('storeGet'),
    ...(MULTIPART ? { multipart: med('s3Multipart') / med('storePut') } : {})
  }
  const results = {
    bytes: SIZE,
    redundancy: `${K}-of-${N}`,
    hosts: HOST_COUNT,
    rounds: ROUNDS,
    storePutMBps: med('storePut'),
    s3PutMBps: med('s3Put'),
    putRatio: ratios.put,
    storeGetMBps: med('storeGet'),
    s3GetMBps: med('s3Get'),
    getRatio: ratios.get,
    ...(MULTIPART ? { s3MultipartMBps: med('s3Multipart'), multipartRatio: ratios.multipart } : {}),
    target: TARGET,
    identical: !failed,
    runs
  }
  const met = (ok: boolean): string => ok ? 'met' : 'NOT MET'
  if (values.json === true) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n')
  } else {
    const f = (x: number): string => x.toFixed(1).padStart(8)
    const r = (x: number): string => x.toFixed(2).padStart(6)
    const each = (kind: Kind): string => runs[kind].map(x => `r${x.round} ${x.MBps.toFixed(1)}`).join(', ')
    const cpu = (kind: Kind): string => `cpu: hosts ${(median(runs[kind].map(x => x.cpu.hosts)) * 100).toFixed(0)}%, client ${(median(runs[kind].map(x => x.cpu.client)) * 100).toFixed(0)}%, sdk ${(median(runs[kind].map(x => x.cpu.sdk)) * 100).toFixed(0)}%`
    const same = (kind: Kind): string => runs[kind].every(x => x.identical) ? 'identical' : 'DIFFERENT BYTES'
    const line = (label: string, kind: Kind, ratio?: number, of?: string): string =>
      `${label.padEnd(21)}${f(med(kind))}     ${ratio == null ? '                      ' : `${r(ratio)} of ${of!.padEnd(5)} >= ${TARGET.toFixed(2)}  ${met(ratio >= TARGET).padEnd(7)}`}   ${same(kind)}   (${each(kind)})   ${cpu(kind)}\n`
    process.stdout.write(`bench:s3  ${SIZE / MIB} MiB, ${K}-of-${N} on ${N} of ${HOST_COUNT} hosts, one machine (each host its own process; client node and gateway in this one, the SDK in its own), median of ${ROUNDS} rounds, order alternating
                         MB/s     ratio          target           bytes       (each round, MB/s)
${line('store put', 'storePut')}${line('S3 PutObject', 's3Put', ratios.put, 'put')}${MULTIPART ? line('S3 multipart 16 MiB', 's3Multipart', ratios.multipart, 'put') : ''}${line('store get', 'storeGet')}${line('S3 GetObject', 's3Get', ratios.get, 'get')}`)
  }
  if (failed) {
    process.stderr.write('bench:s3: a fetched or stored copy is not the file (SHA-256): FAILED\n')
  }
} catch (err) {
  failed = true
  process.stderr.write(`bench:s3: ${(err as Error)?.stack ?? String(err)}\n`)
} finally {
  tool?.stdin?.end()
  tool?.kill('SIGTERM')
  await client?.stop().catch(() => {})
  for (const child of processes) {
    child.kill('SIGCONT')
    child.kill('SIGTERM')
  }
  await Promise.all(processes.map(async child => child.exitCode != null ? undefined : new Promise(resolve => child.once('exit', resolve))))
  await rm(dir, { recursive: true, force: true })
}
process.exitCode = failed ? 1 : 0
