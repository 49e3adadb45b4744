/**
 * Bytes that do not decode: a length over its limit, a truncated message,
 * a varint not in its shortest form, invalid UTF-8, bytes left over. Every
 * decoder of the project throws it; the RPC server answers it as
 * bad-request (PROTOCOL.md section 6), the control API as 400.
 */
export class DecodeError extends Error {
  override name = 'DecodeError'
}

/**
 * The primitives of the OpenCloud wire format (PROTOCOL.md, "Encoding"):
 * unsigned LEB128 varints in their shortest form, single bytes, and
 * length-prefixed byte strings. Every message is these in a fixed order, so
 * one value has exactly one encoding and the signed bytes need no separate
 * canonical form.
 */

const MAX_SAFE_VARINT_BYTES = 8 // 2^56 > Number.MAX_SAFE_INTEGER

export function varintLength (value: number): number {
  let n = 1
  while (value >= 0x80) {
    value = Math.floor(value / 128)
    n++
  }
  return n
}

export function writeVarint (value: number, out: Uint8Array, offset: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`varint out of range: ${value}`)
  }
  while (value >= 0x80) {
    out[offset++] = (value % 128) | 0x80
    value = Math.floor(value / 128)
  }
  out[offset++] = value
  return offset
}

export class Writer {
  private readonly parts: Uint8Array[] = []
  private length = 0

  u8 (value: number): this {
    return this.raw(Uint8Array.of(value & 0xff))
  }

  varint (value: number): this {
    const buf = new Uint8Array(varintLength(value))
    writeVarint(value, buf, 0)
    return this.raw(buf)
  }

  raw (bytes: Uint8Array): this {
    this.parts.push(bytes)
    this.length += bytes.byteLength
    return this
  }

  /** A length-prefixed byte string */
  bytes (bytes: Uint8Array): this {
    return this.varint(bytes.byteLength).raw(bytes)
  }

  string (value: string): this {
    return this.bytes(new TextEncoder().encode(value))
  }

  finish (): Uint8Array {
    const out = new Uint8Array(this.length)
    let offset = 0
    for (const part of this.parts) {
      out.set(part, offset)
      offset += part.byteLength
    }
    return out
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

export class Reader {
  private readonly buf: Uint8Array
  offset = 0

  constructor (buf: Uint8Array) {
    this.buf = buf
  }

  get remaining (): number {
    return this.buf.byteLength - this.offset
  }

  u8 (what: string): number {
    if (this.remaining < 1) {
      throw new DecodeError(`message ends before ${what}`)
    }
    return this.buf[this.offset++]
  }

  varint (what: string): number {
    let value = 0
    let scale = 1
    for (let i = 0; i < MAX_SAFE_VARINT_BYTES; i++) {
      if (this.remaining < 1) {
        throw new DecodeError(`message ends inside ${what}`)
      }
      const byte = this.buf[this.offset++]
      // a trailing zero byte would give a second encoding of the same number
      if (i > 0 && byte === 0) {
        throw new DecodeError(`${what} is not in its shortest form`)
      }
      value += (byte & 0x7f) * scale
      if ((byte & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) {
          throw new DecodeError(`${what} is too large`)
        }
        return value
      }
      scale *= 128
    }
    throw new DecodeError(`${what} is too large`)
  }

  raw (length: number, what: string): Uint8Array {
    if (this.remaining < length) {
      throw new DecodeError(`message ends inside ${what}`)
    }
    const out = this.buf.subarray(this.offset, this.offset + length)
    this.offset += length
    return out
  }

  bytes (maxLength: number, what: string): Uint8Array {
    const length = this.varint(`the length of ${what}`)
    if (length > maxLength) {
      throw new DecodeError(`${what} is ${length} bytes, over the limit of ${maxLength}`)
    }
    return this.raw(length, what)
  }

  string (maxLength: number, what: string): string {
    const bytes = this.bytes(maxLength, what)
    try {
      return utf8.decode(bytes)
    } catch {
      throw new DecodeError(`${what} is not valid UTF-8`)
    }
  }

  /** A message's leading version byte, refused unless it is `expected` */
  version (expected: number, what: string): void {
    const version = this.u8(`the ${what} version`)
    if (version !== expected) {
      throw new DecodeError(`unsupported ${what} version ${version}`)
    }
  }

  /** Items of a counted list, refusing counts over the limit before reading them */
  count (max: number, what: string): number {
    const n = this.varint(`the count of ${what}`)
    if (n > max) {
      throw new DecodeError(`${n} ${what}, over the limit of ${max}`)
    }
    return n
  }

  end (what: string): void {
    if (this.remaining !== 0) {
      throw new DecodeError(`${this.remaining} unexpected bytes after ${what}`)
    }
  }
}
