/**
 * Arithmetic in GF(2^8) with the polynomial 0x11d (as in Backblaze's and
 * klauspost's Reed-Solomon coders): addition is XOR, multiplication goes
 * through logarithm tables. Shared by the coder (erasure.ts) and its SIMD
 * kernel (gf256-simd.ts), which both need the same products.
 */

export const EXP = new Uint8Array(512)
export const LOG = new Uint8Array(256)
{
  let x = 1
  for (let i = 0; i < 255; i++) {
    EXP[i] = x
    LOG[x] = i
    x <<= 1
    if (x & 0x100) {
      x ^= 0x11d
    }
  }
  for (let i = 255; i < 512; i++) {
    EXP[i] = EXP[i - 255]
  }
}

export function mul (a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]
}

/** MUL_TABLE[a * 256 + b] = a * b: one lookup per byte in the JS hot loop */
export const MUL_TABLE = new Uint8Array(256 * 256)
for (let a = 0; a < 256; a++) {
  for (let b = 0; b < 256; b++) {
    MUL_TABLE[a * 256 + b] = mul(a, b)
  }
}
