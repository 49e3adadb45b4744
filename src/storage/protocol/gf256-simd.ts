import { MUL_TABLE } from './gf256.ts'

/**
 * The Reed-Solomon coder's inner loop in WebAssembly SIMD: outputs that are
 * sums of products, out_j = XOR over c of coef[j][c] * in_c over GF(2^8),
 * 16 bytes per instruction, as the fast native coders do it (ISA-L,
 * klauspost/reedsolomon). A product by a fixed c is linear, so c * v =
 * c * (v & 0x0f) ^ c * (v & 0xf0): two 16-entry tables, one per nibble, and
 * a byte shuffle (i8x16.swizzle, pshufb on x86) looks up 16 bytes at once
 * in each. Up to four outputs are summed in registers while the inputs pass
 * once: each input's nibbles are split once for all of them, and an output
 * is stored once, not loaded and stored again per input (1.4x the loop
 * that made one product per pass, itself 4x the JS loop).
 *
 * No compiler and no opaque blob: the module's bytes are written below from
 * named opcodes at load, and this is its text (WAT) for a reader, for R =
 * 1..4 outputs (mulRows1..mulRows4); "each j", "each q" mark what the
 * emitter repeats for j < R and q < 2 (two 16-byte positions per turn):
 *
 *   (module
 *     (memory (export "memory") 1)
 *     ;; at $tabs: for each input c, for each output j, 32 bytes: coef[j][c] * (0..15) and
 *     ;; coef[j][c] * (0..15 << 4); at $ins..$insEnd the inputs' addresses, an i32 each;
 *     ;; output j at $out + j * $stride; $len a positive multiple of 32, one input at least
 *     (func (export "mulRows<R>") (param $tabs i32) (param $ins i32) (param $insEnd i32)
 *         (param $out i32) (param $stride i32) (param $len i32)
 *       (local $i i32) (local $ip i32) (local $tp i32) (local $p i32) (local $out_j i32) ;; each j
 *       (local $mask v128) (local $t v128) (local $lo_q v128) (local $hi_q v128)        ;; each q
 *       (local $acc_jq v128)                                                            ;; each j, q
 *       (local.set $mask (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15))
 *       (local.set $out_j (i32.add (local.get $out) (i32.mul (local.get $stride) (i32.const j)))) ;; each j
 *       (loop $position
 *         (local.set $acc_jq (v128.const i64x2 0 0))                                    ;; each j, q
 *         (local.set $ip (local.get $ins))
 *         (local.set $tp (local.get $tabs))
 *         (loop $input
 *           (local.set $p (i32.add (i32.load (local.get $ip)) (local.get $i)))
 *           ;; each q: the nibbles of the 16 input bytes at $p + 16q
 *           (local.set $hi_q (i8x16.shr_u (local.tee $lo_q (v128.load offset=16q (local.get $p))) (i32.const 4)))
 *           (local.set $lo_q (v128.and (local.get $lo_q) (local.get $mask)))
 *           ;; each j: the low nibbles' table, then the high nibbles', into both positions
 *           (local.set $t (v128.load offset=32j (local.get $tp)))
 *           (local.set $acc_jq (v128.xor (local.get $acc_jq) (i8x16.swizzle (local.get $t) (local.get $lo_q)))) ;; each q
 *           (local.set $t (v128.load offset=32j+16 (local.get $tp)))
 *           (local.set $acc_jq (v128.xor (local.get $acc_jq) (i8x16.swizzle (local.get $t) (local.get $hi_q)))) ;; each q
 *           (local.set $tp (i32.add (local.get $tp) (i32.const 32R)))
 *           (br_if $input (i32.lt_u (local.tee $ip (i32.add (local.get $ip) (i32.const 4))) (local.get $insEnd))))
 *         (local.set $p (i32.add (local.get $out_j) (local.get $i)))                     ;; each j, then
 *         (v128.store offset=16q (local.get $p) (local.get $acc_jq))                     ;; each q
 *         (br_if $position (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 32))) (local.get $len))))))
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
  i32Load: 0x28,
  i32Const: 0x41,
  i32LtU: 0x49,
  i32Add: 0x6a,
  i32Mul: 0x6c,
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
/** The block type of a loop that leaves nothing on the stack */
const BLOCK_EMPTY = 0x40
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

/** Outputs summed in registers by one call: 2 x 4 accumulators, 2 x 2 nibbles, a mask and a table fill x86's 16 */
const MAX_ROWS = 4
/** Input bytes per position turn (two v128); the caller pads every length to this */
const TURN = 32

/** The body of mulRows<rows> */
function mulRowsBody (rows: number, relaxed: boolean): number[] {
  const [tabs, ins, insEnd, out, stride, len] = [0, 1, 2, 3, 4, 5]
  let next = 6
  const alloc = (count: number): number[] => Array.from({ length: count }, () => next++)
  const [i, ip, tp, p] = alloc(4)
  const outs = alloc(rows)
  const i32Locals = next - 6
  const firstV128 = next
  const [mask, t] = alloc(2)
  const lo = alloc(2)
  const hi = alloc(2)
  const acc = Array.from({ length: rows }, () => alloc(2))
  const v128Locals = next - firstV128
  const swizzle = simd(relaxed ? SIMD.i8x16RelaxedSwizzle : SIMD.i8x16Swizzle)
  const v128Const = (byte: number): number[] => [...simd(SIMD.v128Const), ...new Array<number>(16).fill(byte)]
  const code: number[] = [...v128Const(0x0f), ...set(mask)]
  for (let j = 0; j < rows; j++) {
    code.push(...get(out), ...get(stride), ...i32(j), OP.i32Mul, OP.i32Add, ...set(outs[j]))
  }
  code.push(OP.loop, BLOCK_EMPTY) // $position
  for (let j = 0; j < rows; j++) {
    for (const a of acc[j]) {
      code.push(...v128Const(0), ...set(a))
    }
  }
  code.push(...get(ins), ...set(ip), ...get(tabs), ...set(tp))
  code.push(OP.loop, BLOCK_EMPTY) // $input
  code.push(...get(ip), OP.i32Load, 2, 0, ...get(i), OP.i32Add, ...set(p)) // memarg: 4-byte aligned, offset 0
  for (let q = 0; q < 2; q++) {
    code.push(...get(p), ...load(16 * q), ...tee(lo[q]), ...i32(4), ...simd(SIMD.i8x16ShrU), ...set(hi[q]))
    code.push(...get(lo[q]), ...get(mask), ...simd(SIMD.v128And), ...set(lo[q]))
  }
  for (let j = 0; j < rows; j++) {
    for (const [offset, nibbles] of [[0, lo], [16, hi]] as const) {
      code.push(...get(tp), ...load(32 * j + offset), ...set(t))
      for (let q = 0; q < 2; q++) {
        code.push(...get(acc[j][q]), ...get(t), ...get(nibbles[q]), ...swizzle, ...simd(SIMD.v128Xor), ...set(acc[j][q]))
      }
    }
  }
  code.push(...get(tp), ...i32(32 * rows), OP.i32Add, ...set(tp))
  code.push(...get(ip), ...i32(4), OP.i32Add, ...tee(ip), ...get(insEnd), OP.i32LtU, OP.brIf, 0, OP.end) // $input
  for (let j = 0; j < rows; j++) {
    code.push(...get(outs[j]), ...get(i), OP.i32Add, ...set(p))
    for (let q = 0; q < 2; q++) {
      code.push(...get(p), ...get(acc[j][q]), ...store(16 * q))
    }
  }
  code.push(...get(i), ...i32(TURN), OP.i32Add, ...tee(i), ...get(len), OP.i32LtU, OP.brIf, 0, OP.end) // $position
  code.push(OP.end) // the function
  const locals = vec([[...uleb(i32Locals), TYPE.i32], [...uleb(v128Locals), TYPE.v128]])
  const body = [...locals, ...code]
  return [...uleb(body.length), ...body]
}

/** The whole module, with the relaxed or the plain swizzle */
export function simdModuleBytes (relaxed: boolean): Uint8Array {
  const sixI32 = [TYPE.func, ...vec(new Array(6).fill([TYPE.i32])), ...vec([])]
  const counts = Array.from({ length: MAX_ROWS }, (_, r) => r + 1)
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(SECTION.type, vec([sixI32])),
    ...section(SECTION.function, vec(counts.map(() => uleb(0)))),
    ...section(SECTION.memory, vec([[0x00, ...uleb(1)]])), // no maximum, 1 page to start
    ...section(SECTION.export, vec([
      [...name('memory'), EXPORT.memory, 0],
      ...counts.map(r => [...name(`mulRows${r}`), EXPORT.func, r - 1])
    ])),
    ...section(SECTION.code, vec(counts.map(r => mulRowsBody(r, relaxed))))
  ])
}

type MulRowsFn = (tabs: number, ins: number, insEnd: number, out: number, stride: number, len: number) => void

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
 * together: small enough that a step's inputs and outputs stay in the
 * core's L2 cache (512 KiB here), large enough that the JS-to-wasm calls
 * (one per group of MAX_ROWS outputs per step) cost nothing.
 */
const STAGE_BYTES = 256 * 1024

/**
 * The SIMD kernel over one WebAssembly instance; shard bytes are copied in
 * and out a step at a time, so the caller's arrays can be anything and the
 * wasm memory stays small. The copies cost about what the products do
 * (16 MiB at 4-of-8, CPU time: 2.5 ms of products, 2.7 of copies), and
 * both less than the caller's fresh output pages (~6 ms to fault in).
 */
export class SimdKernel {
  private readonly memory: WasmMemory
  /** mulRows[r - 1] sums r outputs */
  private readonly mulRowsOf: MulRowsFn[]
  private bytes: Uint8Array

  /** Use createSimdKernel(), which checks that the engine takes the module */
  constructor (api: WasmApi, module: WasmModule) {
    const instance = new api.Instance(module)
    this.memory = instance.exports.memory as WasmMemory
    this.mulRowsOf = Array.from({ length: MAX_ROWS }, (_, r) => instance.exports[`mulRows${r + 1}`] as MulRowsFn)
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
    // wasm memory: the tables (room for MAX_ROWS per input in each group of
    // rows), the inputs' addresses, then one step of each input and output
    const step = Math.max(TURN, Math.min(roundUp(size, TURN), Math.floor(STAGE_BYTES / (k + rows.length) / TURN) * TURN))
    const groups = Math.ceil(rows.length / MAX_ROWS)
    const groupTables = k * MAX_ROWS * 32
    const insAt = roundUp(groups * groupTables, 64)
    const inBase = roundUp(insAt + 4 * k, 64)
    const outBase = inBase + k * step
    this.reserve(outBase + rows.length * step)
    const mem = this.bytes
    for (let g = 0; g < groups; g++) {
      const first = g * MAX_ROWS
      const count = Math.min(MAX_ROWS, rows.length - first)
      for (let c = 0; c < k; c++) {
        for (let j = 0; j < count; j++) {
          const coef = rows[first + j][c]
          const at = g * groupTables + (c * count + j) * 32
          for (let x = 0; x < 16; x++) {
            mem[at + x] = MUL_TABLE[coef * 256 + x]
            mem[at + 16 + x] = MUL_TABLE[coef * 256 + (x << 4)]
          }
        }
      }
    }
    const addresses = new DataView(this.memory.buffer)
    for (let c = 0; c < k; c++) {
      addresses.setUint32(insAt + 4 * c, inBase + c * step, true) // wasm is little-endian
    }
    for (let offset = 0; offset < size; offset += step) {
      const len = Math.min(step, size - offset)
      // bytes past len in the last step are stale; they only reach the
      // outputs' bytes past len, which are never copied out
      const padded = roundUp(len, TURN)
      for (let c = 0; c < k; c++) {
        mem.set(inputs[c].subarray(offset, offset + len), inBase + c * step)
      }
      for (let g = 0; g < groups; g++) {
        const first = g * MAX_ROWS
        const count = Math.min(MAX_ROWS, rows.length - first)
        this.mulRowsOf[count - 1](g * groupTables, insAt, insAt + 4 * k, outBase + first * step, step, padded)
      }
      for (let j = 0; j < rows.length; j++) {
        const out = outBase + j * step
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
