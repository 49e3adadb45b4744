/**
 * bench/storage/kernels: the per-byte kernels of a segment alone (the
 * Reed-Solomon coder, the Merkle root, the cipher), each new kernel against
 * the code it replaced, measured in the same run on one 16 MiB segment.
 *
 *   node bench/storage/kernels.ts [--redundancy 4-of-8 --reps 7 --json]
 *
 * The old Reed-Solomon path is the same class with `simd: false` (the JS
 * loop kept as the fallback); the old Merkle root and the old one-call
 * seal and open are copied below as they were. Each figure is the median of --reps timings, the two contenders
 * interleaved so the machine's noise falls on both alike; MB/s of this
 * process's CPU time (what the kernel costs, whatever else shares the
 * cores) and of wall time (what bench:storage's rows measure).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { ReedSolomon, split } from '../../src/storage/protocol/erasure.ts'
import { merkleRoot } from '../../src/storage/protocol/merkle.ts'
import { objectKey, openSegment, sealSegment } from '../../src/storage/protocol/crypto.ts'
import { parseRedundancy } from '../../src/storage/put-options.ts'

const { values } = parseArgs({
  options: {
    redundancy: { type: 'string', default: '4-of-8' },
    reps: { type: 'string', default: '7' },
    json: { type: 'boolean', default: false }
  }
})
const { k, n } = parseRedundancy(values.redundancy)
const reps = Number(values.reps)
const MIB = 1024 * 1024
const segment = randomBytes(16 * MIB)

interface Speed { cpu: number, wall: number }

/** MB/s of segment bytes, the median of `reps` runs of each function, interleaved */
function race (fns: Record<string, () => void>): Record<string, Speed> {
  const times: Record<string, { cpu: number[], wall: number[] }> = {}
  for (const name of Object.keys(fns)) {
    fns[name]() // warm up: tables, JIT, wasm memory
    times[name] = { cpu: [], wall: [] }
  }
  for (let i = 0; i < reps; i++) {
    for (const [name, fn] of Object.entries(fns)) {
      const cpu = process.cpuUsage()
      const t = performance.now()
      fn()
      times[name].wall.push(performance.now() - t)
      const used = process.cpuUsage(cpu)
      times[name].cpu.push((used.user + used.system) / 1000)
    }
  }
  const median = (list: number[]): number => list.sort((a, b) => a - b)[Math.floor(list.length / 2)]
  const out: Record<string, Speed> = {}
  for (const [name, { cpu, wall }] of Object.entries(times)) {
    out[name] = { cpu: segment.byteLength / (median(cpu) / 1000) / 1e6, wall: segment.byteLength / (median(wall) / 1000) / 1e6 }
  }
  return out
}

/** The Merkle root as merkle.ts computed it before: createHash per leaf and per node */
function oldMerkleRoot (data: Uint8Array): Uint8Array {
  const leaf = (bytes: Uint8Array): Uint8Array => Uint8Array.from(createHash('sha256').update(Uint8Array.of(0)).update(bytes).digest())
  const node = (l: Uint8Array, r: Uint8Array): Uint8Array => Uint8Array.from(createHash('sha256').update(Uint8Array.of(1)).update(l).update(r).digest())
  let level: Uint8Array[] = []
  for (let i = 0; i < data.byteLength; i += 4096) {
    level.push(leaf(data.subarray(i, i + 4096)))
  }
  while (level.length > 1) {
    const next: Uint8Array[] = []
    for (let i = 0; i + 1 < level.length; i += 2) {
      next.push(node(level[i], level[i + 1]))
    }
    if (level.length % 2 === 1) {
      next.push(level[level.length - 1])
    }
    level = next
  }
  return level[0]
}

/** AES-256-GCM as crypto.ts sealed before: one cipher.update over the whole segment, then a copy */
function oldSeal (key: Uint8Array, plain: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', key, new Uint8Array(12))
  cipher.setAAD(new Uint8Array(24))
  const out = new Uint8Array(plain.byteLength + 16)
  const body = cipher.update(plain)
  out.set(body, 0)
  const final = cipher.final()
  out.set(final, body.byteLength)
  out.set(cipher.getAuthTag(), body.byteLength + final.byteLength)
  return out
}

function oldOpen (key: Uint8Array, sealed: Uint8Array): Uint8Array {
  const decipher = createDecipheriv('aes-256-gcm', key, new Uint8Array(12))
  decipher.setAAD(new Uint8Array(24))
  decipher.setAuthTag(sealed.subarray(sealed.byteLength - 16))
  const body = decipher.update(sealed.subarray(0, sealed.byteLength - 16))
  const final = decipher.final()
  return final.byteLength === 0 ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : Buffer.concat([body, final])
}

const js = new ReedSolomon(k, n, { simd: false })
const simd = new ReedSolomon(k, n)
const data = split(segment, k)
const shards = [...data, ...js.encode(data)]
const missing = shards.map((s, i) => i < n - k ? undefined : s)
const encode = race({ js: () => { js.encode(data) }, simd: () => { simd.encode(data) } })
const rebuild = race({ js: () => { js.reconstruct(missing) }, simd: () => { simd.reconstruct(missing) } })
const merkle = race({ old: () => { oldMerkleRoot(segment) }, now: () => { merkleRoot(segment) } })
const key = objectKey(randomBytes(32), randomBytes(16))
const sealed = sealSegment(key, new Uint8Array(16), 0, segment)
const seal = race({ old: () => { oldSeal(key, segment) }, now: () => { sealSegment(key, new Uint8Array(16), 0, segment) } })
const open = race({ old: () => { oldOpen(key, sealed) }, now: () => { openSegment(key, new Uint8Array(16), 0, sealed) } })
// segment 0 of an all-zero object id: the nonce and the additional data the old copies use
if (!Buffer.from(oldSeal(key, segment)).equals(sealed) || !Buffer.from(oldOpen(key, sealed)).equals(segment)) {
  throw new Error('the old and the new cipher disagree')
}

const results = {
  redundancy: `${k}-of-${n}`,
  encodeMBps: encode,
  rebuildMBps: rebuild,
  merkleMBps: merkle,
  sealMBps: seal,
  openMBps: open
}
if (values.json === true) {
  process.stdout.write(JSON.stringify(results, null, 2) + '\n')
} else {
  const f = (x: number): string => x.toFixed(0).padStart(7)
  const row = (label: string, before: Speed | undefined, now: Speed, note = ''): string => before == null
    ? `${label.padEnd(21)}${''.padStart(7)}  ${f(now.cpu)}           ${''.padStart(7)}  ${f(now.wall)}  ${note}\n`
    : `${label.padEnd(21)}${f(before.cpu)}  ${f(now.cpu)}  ${(now.cpu / before.cpu).toFixed(2).padStart(6)}x  ${f(before.wall)}  ${f(now.wall)}  ${(now.wall / before.wall).toFixed(2).padStart(6)}x  ${note}\n`
  process.stdout.write(`bench:storage:kernels  one 16 MiB segment, ${k}-of-${n}, median of ${reps}, MB/s
                     of CPU time                of wall time
                      before      now   ratio    before      now   ratio
` + row('Reed-Solomon encode', encode.js, encode.simd, '(JS loop -> WebAssembly SIMD)') +
    row('Reed-Solomon rebuild', rebuild.js, rebuild.simd, `(${n - k} data shards missing)`) +
    row('Merkle root', merkle.old, merkle.now, '(createHash -> one-shot, flat)') +
    row('AES-256-GCM seal', seal.old, seal.now, '(one update -> 128 KiB steps)') +
    row('AES-256-GCM open', open.old, open.now))
}

