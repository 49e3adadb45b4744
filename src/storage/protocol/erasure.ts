/**
 * Systematic Reed-Solomon erasure coding over GF(2^8) (polynomial 0x11d, as
 * in Backblaze's and klauspost's coders): K data shards and N-K parity
 * shards of equal size, any K of which rebuild the rest. The encoding
 * matrix is an N x K Vandermonde matrix times the inverse of its top K x K
 * square, so the top K rows are the identity (data shards are the data
 * itself) and every K x K submatrix stays invertible.
 *
 * Written here rather than taken from npm: the maintained coders are native
 * addons (a build step on every machine) and the pure-JS ones are unmaintained;
 * this is 150 lines, and bench/storage measures it. The products run in
 * WebAssembly SIMD (gf256-simd.ts) where the engine has it, 3-5x the JS
 * loop below in CPU time (bench/storage/kernels.ts), which stays as the
 * fallback and as the reference in tests.
 */

import { EXP, LOG, MUL_TABLE, mul } from './gf256.ts'
import { simdKernel, type SimdKernel } from './gf256-simd.ts'

export class ErasureError extends Error {
  override name = 'ErasureError'
}

function inv (a: number): number {
  if (a === 0) {
    throw new ErasureError('zero has no inverse')
  }
  return EXP[255 - LOG[a]]
}

type Matrix = number[][]

function invert (m: Matrix): Matrix {
  const n = m.length
  const a = m.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => i === j ? 1 : 0)])
  for (let col = 0; col < n; col++) {
    let pivot = col
    while (pivot < n && a[pivot][col] === 0) {
      pivot++
    }
    if (pivot === n) {
      throw new ErasureError('the matrix is singular')
    }
    [a[col], a[pivot]] = [a[pivot], a[col]]
    const scale = inv(a[col][col])
    a[col] = a[col].map(v => mul(v, scale))
    for (let row = 0; row < n; row++) {
      if (row !== col && a[row][col] !== 0) {
        const f = a[row][col]
        a[row] = a[row].map((v, j) => v ^ mul(f, a[col][j]))
      }
    }
  }
  return a.map(row => row.slice(n))
}

function multiply (a: Matrix, b: Matrix): Matrix {
  return a.map(row => b[0].map((_, j) => row.reduce((acc, v, k) => acc ^ mul(v, b[k][j]), 0)))
}

/**
 * Two bytes per lookup: a 64 Ki-entry table per coefficient (128 KiB, made
 * when first used; a code uses at most K x (N-K) coefficients) halves the
 * lookups of the byte table, about 1.7x faster here.
 */
const TABLES16 = new Map<number, Uint16Array>()

function table16 (coef: number): Uint16Array {
  let table = TABLES16.get(coef)
  if (table == null) {
    const row = MUL_TABLE.subarray(coef * 256, coef * 256 + 256)
    table = new Uint16Array(65536)
    for (let v = 0; v < 65536; v++) {
      // little- or big-endian alike: each byte of the word maps on its own
      table[v] = row[v & 255] | (row[v >> 8] << 8)
    }
    TABLES16.set(coef, table)
  }
  return table
}

/** out ^= coef * input, byte by byte; `out` is a fresh, aligned array */
function mulAdd (coef: number, input: Uint8Array, out: Uint8Array): void {
  if (coef === 0) {
    return
  }
  const n = input.length
  if (coef === 1) {
    for (let i = 0; i < n; i++) {
      out[i] ^= input[i]
    }
    return
  }
  const words = n >> 1
  if (input.byteOffset % 2 === 0 && out.byteOffset % 2 === 0 && words > 0) {
    const table = table16(coef)
    const in16 = new Uint16Array(input.buffer, input.byteOffset, words)
    const out16 = new Uint16Array(out.buffer, out.byteOffset, words)
    for (let i = 0; i < words; i++) {
      out16[i] ^= table[in16[i]]
    }
    if (n % 2 === 1) {
      out[n - 1] ^= MUL_TABLE[coef * 256 + input[n - 1]]
    }
    return
  }
  const table = MUL_TABLE.subarray(coef * 256, coef * 256 + 256)
  for (let i = 0; i < n; i++) {
    out[i] ^= table[input[i]]
  }
}

export interface ReedSolomonInit {
  /**
   * Multiply in WebAssembly SIMD where the engine validates the module
   * (default true); false keeps the JS loop, the reference the tests
   * compare the kernel with. The bytes are the same either way.
   */
  simd?: boolean
}

export class ReedSolomon {
  readonly k: number
  readonly n: number
  /** N x K; row i makes shard i from the K data shards */
  private readonly matrix: Matrix
  private readonly kernel: SimdKernel | null

  constructor (k: number, n: number, init: ReedSolomonInit = {}) {
    if (!Number.isInteger(k) || !Number.isInteger(n) || k < 1 || n < k || n > 255) {
      throw new ErasureError(`a K-of-N code needs 1 <= K <= N <= 255, not ${k}-of-${n}`)
    }
    this.k = k
    this.n = n
    const vandermonde: Matrix = Array.from({ length: n }, (_, r) => Array.from({ length: k }, (_, c) => c === 0 ? 1 : r === 0 ? 0 : EXP[(LOG[r] * c) % 255]))
    this.matrix = multiply(vandermonde, invert(vandermonde.slice(0, k)))
    this.kernel = init.simd === false ? null : simdKernel()
  }

  /** The N-K parity shards of K equal-sized data shards */
  encode (data: Uint8Array[]): Uint8Array[] {
    this.checkShards(data, this.k)
    const size = data[0].byteLength
    const parity: Uint8Array[] = []
    if (this.kernel != null) {
      for (let r = this.k; r < this.n; r++) {
        parity.push(new Uint8Array(size))
      }
      this.kernel.mulRows(this.matrix.slice(this.k), data, parity)
      return parity
    }
    for (let r = this.k; r < this.n; r++) {
      const out = new Uint8Array(size)
      for (let c = 0; c < this.k; c++) {
        mulAdd(this.matrix[r][c], data[c], out)
      }
      parity.push(out)
    }
    return parity
  }

  /**
   * Every shard from any K of them: `shards[i]` is shard i or undefined when
   * it is missing. Returns all N shards.
   */
  reconstruct (shards: Array<Uint8Array | undefined>): Uint8Array[] {
    return this.rebuild(shards, this.n)
  }

  /**
   * The K data shards from any K shards: as reconstruct, without making the
   * missing parity (a download needs only the data).
   */
  reconstructData (shards: Array<Uint8Array | undefined>): Uint8Array[] {
    return this.rebuild(shards, this.k)
  }

  /** Shards 0..upTo-1 (the data, or all N) from any K of them */
  private rebuild (shards: Array<Uint8Array | undefined>, upTo: number): Uint8Array[] {
    if (shards.length !== this.n) {
      throw new ErasureError(`expected ${this.n} shard slots, got ${shards.length}`)
    }
    const present = shards.map((s, i) => s == null ? -1 : i).filter(i => i >= 0)
    if (present.length < this.k) {
      throw new ErasureError(`${present.length} shards of a ${this.k}-of-${this.n} code cannot rebuild it: ${this.k} are needed`)
    }
    const use = present.slice(0, this.k)
    const size = shards[use[0]]!.byteLength
    this.checkShards(use.map(i => shards[i]!), this.k)
    if (this.kernel != null) {
      return this.rebuildInOnePass(shards, use, size, upTo, this.kernel)
    }
    const data: Uint8Array[] = []
    if (use.every((i, j) => i === j)) {
      for (let c = 0; c < this.k; c++) {
        data.push(shards[c]!)
      }
    } else {
      const decode = invert(use.map(i => this.matrix[i]))
      for (let c = 0; c < this.k; c++) {
        if (shards[c] != null) {
          data.push(shards[c]!)
          continue
        }
        const out = new Uint8Array(size)
        for (let j = 0; j < this.k; j++) {
          mulAdd(decode[c][j], shards[use[j]]!, out)
        }
        data.push(out)
      }
    }
    const all: Uint8Array[] = [...data]
    for (let r = this.k; r < upTo; r++) {
      if (shards[r] != null) {
        all.push(shards[r]!)
        continue
      }
      const out = new Uint8Array(size)
      for (let c = 0; c < this.k; c++) {
        mulAdd(this.matrix[r][c], data[c], out)
      }
      all.push(out)
    }
    return all
  }

  /**
   * The JS path's two steps (missing data from the K shards in hand, then
   * missing parity from the data) folded into one: a missing parity row is
   * its encoding row times the decoding matrix, so every missing shard is a
   * row over the same K inputs, and the kernel reads them once. Products
   * over GF(2^8) are exact, so the bytes are the JS path's.
   */
  private rebuildInOnePass (shards: Array<Uint8Array | undefined>, use: number[], size: number, upTo: number, kernel: SimdKernel): Uint8Array[] {
    const decode = use.every((i, j) => i === j) ? null : invert(use.map(i => this.matrix[i]))
    const rows: Matrix = []
    const missing: number[] = []
    for (let i = 0; i < upTo; i++) {
      if (shards[i] != null) {
        continue
      }
      missing.push(i)
      // a data shard is missing only when `use` is not the data shards, so decode is set
      rows.push(decode == null ? this.matrix[i] : i < this.k ? decode[i] : multiply([this.matrix[i]], decode)[0])
    }
    const rebuilt = missing.map(() => new Uint8Array(size))
    kernel.mulRows(rows, use.map(i => shards[i]!), rebuilt)
    const all = shards.slice(0, upTo) as Uint8Array[]
    missing.forEach((i, j) => { all[i] = rebuilt[j] })
    return all
  }

  private checkShards (shards: Uint8Array[], count: number): void {
    if (shards.length !== count) {
      throw new ErasureError(`expected ${count} shards, got ${shards.length}`)
    }
    const size = shards[0].byteLength
    if (shards.some(s => s.byteLength !== size)) {
      throw new ErasureError('shards must all be the same size')
    }
  }
}

/** Cut `data` into K shards of equal size, zero-padding the last */
export function split (data: Uint8Array, k: number): Uint8Array[] {
  const size = Math.max(1, Math.ceil(data.byteLength / k))
  const shards: Uint8Array[] = []
  for (let i = 0; i < k; i++) {
    if ((i + 1) * size <= data.byteLength) {
      // a view, not a copy: a segment in flight is held once, not twice
      shards.push(data.subarray(i * size, (i + 1) * size))
    } else {
      const shard = new Uint8Array(size)
      shard.set(data.subarray(i * size, Math.min(data.byteLength, (i + 1) * size)))
      shards.push(shard)
    }
  }
  return shards
}
