import { MUL_TABLE } from './gf256.ts'

/**
 * The Reed-Solomon coder's inner loop in WebAssembly SIMD: `out = c * in`
 * and `out ^= c * in` over GF(2^8), 16 bytes per instruction, as the fast
 * native coders do it (ISA-L, klauspost/reedsolomon). A product by a fixed
 * c is linear, so c * v = c * (v & 0x0f) ^ c * (v & 0xf0): two 16-entry
 * tables, one per nibble, and a byte shuffle (i8x16.swizzle, pshufb on x86)
 * looks up 16 bytes at once in each.
 *
 * No compiler and no opaque blob: the module's bytes are written below from
 * named opcodes at load, and this is its text (WAT) for a reader:
 *
 *   (module
 *     (memory (export "memory") 1)
 *     ;; out[i] = c * in[i] for i < len; len a positive multiple of 64; the
 *     ;; 32 bytes at $t are c * (0..15) and c * (0..15 << 4)
 *     (func (export "mulSet") (param $t i32) (param $in i32) (param $out i32) (param $len i32)
 *       (local $lo v128) (local $hi v128) (local $mask v128) (local $v v128) (local $end i32)
 *       (local.set $lo (v128.load offset=0 (local.get $t)))
 *       (local.set $hi (v128.load offset=16 (local.get $t)))
 *       (local.set $mask (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15))
 *       (local.set $end (i32.add (local.get $in) (local.get $len)))
 *       (loop $next
 *         ;; four times, for offset = 0, 16, 32, 48 (unrolled: fewer branches)
 *         (v128.store offset=<offset> (local.get $out)
 *           (v128.xor
 *             (i8x16.swizzle (local.get $lo)
 *               (v128.and (local.tee $v (v128.load offset=<offset> (local.get $in))) (local.get $mask)))
 *             (i8x16.swizzle (local.get $hi) (i8x16.shr_u (local.get $v) (i32.const 4)))))
 *         (local.set $in (i32.add (local.get $in) (i32.const 64)))
 *         (local.set $out (i32.add (local.get $out) (i32.const 64)))
 *         (br_if $next (i32.lt_u (local.get $in) (local.get $end)))))
 *     ;; out[i] ^= c * in[i]: the same, XORed into what out holds
 *     (func (export "mulXor") (param $t i32) (param $in i32) (param $out i32) (param $len i32)
 *       ... as mulSet, with the stored value (v128.xor (v128.load offset=<offset> (local.get $out)) <product>)))
 *
 * The swizzle is i8x16.relaxed_swizzle where the engine has relaxed SIMD:
 * both give the same bytes for indices below 16 (all a nibble can be), and
 * the relaxed one is a bare pshufb, without the clamp for larger indices.
 */

/** Opcodes by name (WebAssembly core spec 1.0, SIMD and relaxed SIMD proposals) */
const OP = {
  loop: 0x03,
  end: 0x0b,
  brIf: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Const: 0x41,
  i32LtU: 0x49,
  i32Add: 0x6a,
  simd: 0xfd
} as const

/** The SIMD opcodes, each written after OP.simd as an unsigned LEB128 */
const SIMD = {
  v128Load: 0x00,
  v128Store: 0x0b,
  v128Const: 0x0c,
  i8x16Swizzle: 0x0e,
  v128And: 0x4e,
  v128Xor: 0x51,
  i8x16ShrU: 0x6d,
  i8x16RelaxedSwizzle: 0x100
} as const

const TYPE = { i32: 0x7f, v128: 0x7b, func: 0x60 } as const
const SECTION = { type: 1, function: 3, memory: 5, export: 7, code: 10 } as const
const EXPORT = { func: 0, memory: 2 } as const

function uleb (n: number): number[] {
  const out: number[] = []
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) {
      byte |= 0x80
    }
    out.push(byte)
  } while (n !== 0)
  return out
}

/** i32.const takes a signed LEB128; the constants here are small and positive */
function sleb (n: number): number[] {
  const out: number[] = []
  for (;;) {
    const byte = n & 0x7f
    n >>= 7
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte)
      return out
    }
    out.push(byte | 0x80)
  }
}

function vec (items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()]
}

function section (id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body]
}

function name (text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)]
  return [...uleb(bytes.length), ...bytes]
}

const simd = (op: number): number[] => [OP.simd, ...uleb(op)]
/** memarg: log2 of the alignment (16 bytes for v128), then the offset */
const load = (offset: number): number[] => [...simd(SIMD.v128Load), 4, ...uleb(offset)]
const store = (offset: number): number[] => [...simd(SIMD.v128Store), 4, ...uleb(offset)]
const get = (local: number): number[] => [OP.localGet, ...uleb(local)]
const set = (local: number): number[] => [OP.localSet, ...uleb(local)]
const tee = (local: number): number[] => [OP.localTee, ...uleb(local)]
const i32 = (n: number): number[] => [OP.i32Const, ...sleb(n)]

/** Bytes handled per loop turn: the caller pads every length to this */
export const SIMD_STEP = 64

/** The body of mulSet (xor = false) or mulXor (xor = true) */
function mulBody (xor: boolean, relaxed: boolean): number[] {
  // params 0..3: t, in, out, len; locals 4..7 v128: lo, hi, mask, v; local 8 i32: end
  const [t, input, out, len, lo, hi, mask, v, end] = [0, 1, 2, 3, 4, 5, 6, 7, 8]
  const swizzle = simd(relaxed ? SIMD.i8x16RelaxedSwizzle : SIMD.i8x16Swizzle)
  const code: number[] = [
    ...get(t), ...load(0), ...set(lo),
    ...get(t), ...load(16), ...set(hi),
    ...simd(SIMD.v128Const), ...new Array<number>(16).fill(0x0f), ...set(mask),
    ...get(input), ...get(len), OP.i32Add, ...set(end),
    OP.loop, 0x40 // a loop with no result
  ]
  for (let offset = 0; offset < SIMD_STEP; offset += 16) {
    code.push(...get(out))
    if (xor) {
      code.push(...get(out), ...load(offset))
    }
    code.push(
      ...get(lo), ...get(input), ...load(offset), ...tee(v), ...get(mask), ...simd(SIMD.v128And), ...swizzle,
      ...get(hi), ...get(v), ...i32(4), ...simd(SIMD.i8x16ShrU), ...swizzle,
      ...simd(SIMD.v128Xor)
    )
    if (xor) {
      code.push(...simd(SIMD.v128Xor))
    }
    code.push(...store(offset))
  }
  code.push(
    ...get(input), ...i32(SIMD_STEP), OP.i32Add, ...set(input),
    ...get(out), ...i32(SIMD_STEP), OP.i32Add, ...set(out),
    ...get(input), ...get(end), OP.i32LtU, OP.brIf, 0,
    OP.end, // loop
    OP.end // function
  )
  const locals = vec([[...uleb(4), TYPE.v128], [...uleb(1), TYPE.i32]])
  const body = [...locals, ...code]
  return [...uleb(body.length), ...body]
}

/** The whole module; exported for the test that checks its shape */
export function simdModuleBytes (relaxed: boolean): Uint8Array {
  const fourI32 = [TYPE.func, ...vec([[TYPE.i32], [TYPE.i32], [TYPE.i32], [TYPE.i32]]), ...vec([])]
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(SECTION.type, vec([fourI32])),
    ...section(SECTION.function, vec([uleb(0), uleb(0)])),
    ...section(SECTION.memory, vec([[0x00, ...uleb(1)]])), // no maximum, 1 page to start
    ...section(SECTION.export, vec([
      [...name('memory'), EXPORT.memory, 0],
      [...name('mulSet'), EXPORT.func, 0],
      [...name('mulXor'), EXPORT.func, 1]
    ])),
    ...section(SECTION.code, vec([mulBody(false, relaxed), mulBody(true, relaxed)]))
  ])
}

type MulFn = (t: number, input: number, out: number, len: number) => void

/**
 * The part of the WebAssembly JS API used here, typed locally: the project's
 * libs (ES2024 and @types/node) do not declare it, and an engine without it
 * is one the coder must still run on (in JS).
 */
interface WasmMemory { readonly buffer: ArrayBuffer, grow: (pages: number) => number }
interface WasmModule { readonly kind?: never }
interface WasmApi {
  validate: (bytes: Uint8Array) => boolean
  Module: new (bytes: Uint8Array) => WasmModule
  Instance: new (module: WasmModule) => { readonly exports: Record<string, unknown> }
}
const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly

const PAGE = 65536
/**
 * Bytes of shard data staged in wasm memory per step, inputs and outputs
 * together: small enough that a step's inputs and its output stay in the
 * core's L2 cache while every coefficient passes over them, large enough
 * that the JS-to-wasm calls (one per coefficient per step) cost nothing.
 */
const STAGE_BYTES = 256 * 1024

/**
 * The SIMD kernel over one WebAssembly instance; shard bytes are copied in
 * and out a step at a time (a copy runs at memory speed, ~10x the coder), so
 * the caller's arrays can be anything and the wasm memory stays small.
 */
export class SimdKernel {
  private readonly memory: WasmMemory
  private readonly mulSet: MulFn
  private readonly mulXor: MulFn
  private bytes: Uint8Array

  /** Use createSimdKernel(), which checks that the engine takes the module */
  constructor (api: WasmApi, module: WasmModule) {
    const instance = new api.Instance(module)
    this.memory = instance.exports.memory as WasmMemory
    this.mulSet = instance.exports.mulSet as MulFn
    this.mulXor = instance.exports.mulXor as MulFn
    this.bytes = new Uint8Array(this.memory.buffer)
  }

  /**
   * outputs[j] = sum over c of rows[j][c] * inputs[c], byte by byte, for
   * equal-sized inputs and outputs (the outputs are overwritten).
   */
  mulRows (rows: number[][], inputs: Uint8Array[], outputs: Uint8Array[]): void {
    const k = inputs.length
    const size = inputs[0].byteLength
    if (size === 0 || rows.length === 0) {
      return
    }
    const step = Math.max(SIMD_STEP, Math.min(roundUp(size, SIMD_STEP), Math.floor(STAGE_BYTES / (k + rows.length) / SIMD_STEP) * SIMD_STEP))
    const tables = 0
    const inBase = roundUp(rows.length * k * 32, SIMD_STEP)
    const outBase = inBase + k * step
    this.reserve(outBase + rows.length * step)
    const mem = this.bytes
    for (let j = 0; j < rows.length; j++) {
      for (let c = 0; c < k; c++) {
        const coef = rows[j][c]
        const at = tables + (j * k + c) * 32
        for (let x = 0; x < 16; x++) {
          mem[at + x] = MUL_TABLE[coef * 256 + x]
          mem[at + 16 + x] = MUL_TABLE[coef * 256 + (x << 4)]
        }
      }
    }
    for (let offset = 0; offset < size; offset += step) {
      const len = Math.min(step, size - offset)
      // bytes past len in the last step are stale; they only reach the
      // outputs' bytes past len, which are never copied out
      const padded = roundUp(len, SIMD_STEP)
      for (let c = 0; c < k; c++) {
        mem.set(inputs[c].subarray(offset, offset + len), inBase + c * step)
      }
      for (let j = 0; j < rows.length; j++) {
        const out = outBase + j * step
        let first = true
        for (let c = 0; c < k; c++) {
          if (rows[j][c] === 0 && !first) {
            continue
          }
          (first ? this.mulSet : this.mulXor)(tables + (j * k + c) * 32, inBase + c * step, out, padded)
          first = false
        }
        outputs[j].set(mem.subarray(out, out + len), offset)
      }
    }
  }

  private reserve (bytes: number): void {
    if (this.memory.buffer.byteLength < bytes) {
      this.memory.grow(Math.ceil((bytes - this.memory.buffer.byteLength) / PAGE))
      // growing detaches the old ArrayBuffer
      this.bytes = new Uint8Array(this.memory.buffer)
    }
  }
}

function roundUp (n: number, to: number): number {
  return Math.ceil(n / to) * to
}

/**
 * A kernel over the module with the relaxed or the plain swizzle, or null
 * where the engine does not validate it (no WebAssembly, or no SIMD).
 */
export function createSimdKernel (relaxed: boolean): SimdKernel | null {
  const bytes = simdModuleBytes(relaxed)
  return wasm?.validate(bytes) === true ? new SimdKernel(wasm, new wasm.Module(bytes)) : null
}

let kernel: SimdKernel | null | undefined

/**
 * The process's SIMD kernel, or null where the engine lacks WebAssembly
 * SIMD (the coder then keeps its JS loop). Made on first use: one
 * instance per thread, never used by two callers at once since a call
 * runs to the end without yielding.
 */
export function simdKernel (): SimdKernel | null {
  if (kernel === undefined) {
    kernel = createSimdKernel(true) ?? createSimdKernel(false)
  }
  return kernel
}
