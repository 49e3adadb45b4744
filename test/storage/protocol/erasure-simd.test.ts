import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { ReedSolomon } from '../../../src/storage/protocol/erasure.ts'
import { createSimdKernel, simdKernel } from '../../../src/storage/protocol/gf256-simd.ts'
import { MUL_TABLE } from '../../../src/storage/protocol/gf256.ts'

/** A small deterministic generator, so a failure names a shape that can be replayed */
function prng (seed: number): (below: number) => number {
  let s = seed >>> 0
  return (below: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return Math.floor((s / 2 ** 32) * below)
  }
}

/** `size` random bytes at an odd offset inside a larger buffer: neither aligned nor its own ArrayBuffer */
function unaligned (size: number, shift: number): Uint8Array {
  const backing = randomBytes(size + 2 * shift + 1)
  return new Uint8Array(backing.buffer, backing.byteOffset + 2 * shift + 1, size)
}

const SIZES = [1, 15, 16, 17, 63, 64, 65, 4097]

describe('Reed-Solomon in WebAssembly SIMD', () => {
  it('runs here: Node validates the module, so the comparisons below are not JS against JS', () => {
    assert.ok(simdKernel() != null)
    assert.ok(createSimdKernel(false) != null, 'the plain-swizzle module validates too')
  })

  it('encodes every shape to the bytes of the JS coder', () => {
    const next = prng(22)
    for (let round = 0; round < 120; round++) {
      const k = 1 + next(16)
      const n = k + next(33 - k)
      const size = round < SIZES.length ? SIZES[round] : round % 10 === 0 ? 300_001 : SIZES[next(SIZES.length)] + next(200)
      const data = Array.from({ length: k }, (_, i) => unaligned(size, i + round))
      const expected = new ReedSolomon(k, n, { simd: false }).encode(data)
      const actual = new ReedSolomon(k, n).encode(data)
      assert.equal(actual.length, n - k)
      for (let r = 0; r < n - k; r++) {
        assert.ok(Buffer.from(actual[r]).equals(Buffer.from(expected[r])), `parity ${r} of ${k}-of-${n} at ${size} bytes differs`)
      }
    }
  })

  it('rebuilds any missing set (all shards, or the data only) to the bytes of the JS coder and of the original shards', () => {
    const next = prng(6962)
    for (let round = 0; round < 120; round++) {
      const k = 1 + next(16)
      const n = k + next(33 - k)
      const size = round % 10 === 0 ? 300_001 : SIZES[next(SIZES.length)] + next(3)
      const data = Array.from({ length: k }, (_, i) => unaligned(size, i))
      const shards = [...data, ...new ReedSolomon(k, n, { simd: false }).encode(data)]
      // drop up to N-K shards, chosen at random: data, parity or both
      const held: Array<Uint8Array | undefined> = shards.slice()
      const drop = next(n - k + 1)
      for (let d = 0; d < drop; d++) {
        const present = held.map((s, i) => s == null ? -1 : i).filter(i => i >= 0)
        held[present[next(present.length)]] = undefined
      }
      const expected = new ReedSolomon(k, n, { simd: false }).reconstruct(held)
      const actual = new ReedSolomon(k, n).reconstruct(held)
      const dataOnly = [new ReedSolomon(k, n).reconstructData(held), new ReedSolomon(k, n, { simd: false }).reconstructData(held)]
      assert.equal(actual.length, n)
      assert.ok(dataOnly.every(d => d.length === k))
      for (let i = 0; i < n; i++) {
        const what = `shard ${i} of ${k}-of-${n} at ${size} bytes, ${held.filter(s => s == null).length} missing`
        assert.ok(Buffer.from(actual[i]).equals(Buffer.from(expected[i])), `${what}: differs from the JS coder`)
        assert.ok(Buffer.from(actual[i]).equals(Buffer.from(shards[i])), `${what}: differs from the original`)
        if (i < k) {
          assert.ok(dataOnly.every(d => Buffer.from(d[i]).equals(Buffer.from(shards[i]))), `${what}: reconstructData differs`)
        }
      }
    }
  })

  it('multiplies by every coefficient, with the relaxed and the plain swizzle alike', () => {
    for (const relaxed of [true, false]) {
      const kernel = createSimdKernel(relaxed)!
      const input = Uint8Array.from({ length: 256 }, (_, i) => i)
      const rows = Array.from({ length: 256 }, (_, c) => [c])
      const outputs = rows.map(() => new Uint8Array(256))
      kernel.mulRows(rows, [input], outputs)
      for (let c = 0; c < 256; c++) {
        assert.ok(Buffer.from(outputs[c]).equals(Buffer.from(MUL_TABLE.subarray(c * 256, c * 256 + 256))), `${relaxed ? 'relaxed' : 'plain'} swizzle: ${c} times every byte`)
      }
    }
  })
})
