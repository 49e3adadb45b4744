import { createHash, type Hash } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { MAX_CHUNK_LINE } from './constants.ts'
import { BadDigestError, IncompleteBodyError, InvalidArgumentError, InvalidDigestError, InvalidRequestError, MissingContentLengthError, SignatureDoesNotMatchError, XAmzContentSHA256MismatchError } from './errors.ts'
import { header, sameSignature, type Authorized } from './auth.ts'
import type { IncomingHttpHeaders } from 'node:http'

/**
 * A request body as the object's bytes, checked as they pass: its length
 * against what the request declared, its SHA-256 against the signed one,
 * Content-MD5, an x-amz-checksum-* (in a header or an aws-chunked
 * trailer), and each aws-chunked chunk's signature. A check that fails
 * throws from the stream, before its end, so the put it feeds stores
 * nothing (a put commits only after its source has ended cleanly). The
 * MD5 is the object's ETag, as S3's for a single PUT.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
 */

const EMPTY_SHA256 = createHash('sha256').digest('hex')
/** a trailer carries a checksum and its signature: a few headers, never many */
const MAX_TRAILERS = 16

/** A request body, decoded */
export interface ObjectBody {
  /** the object's bytes, as many as `size` */
  size: number
  stream: AsyncIterable<Uint8Array>
  /** the MD5 of what was read, hex: read it once the stream has ended */
  md5: () => string
}

/** A running checksum of one of the algorithms S3 names, base64 as its headers carry it */
interface Checksum {
  update: (bytes: Uint8Array) => void
  digest: () => string
}

function checksumOf (algorithm: string): Checksum | undefined {
  switch (algorithm) {
    case 'crc32': {
      let value = 0
      return {
        update: (bytes) => { value = crc32(bytes, value) },
        digest: () => { const b = Buffer.alloc(4); b.writeUInt32BE(value >>> 0); return b.toString('base64') }
      }
    }
    case 'sha1':
    case 'sha256': {
      const hash = createHash(algorithm)
      return { update: (bytes) => { hash.update(bytes) }, digest: () => hash.digest('base64') }
    }
    default:
      // crc32c and crc64nvme have no implementation in Node's library: taken unchecked (the encryption's tags and the SHA-256 still guard the bytes once stored)
      return undefined
  }
}

/** Bytes of a source, read as lines and lengths (the aws-chunked framing) */
class Reader {
  private readonly source: AsyncIterator<Uint8Array>
  private buffer: Buffer = Buffer.alloc(0)
  private ended = false

  constructor (source: AsyncIterable<Uint8Array>) {
    this.source = source[Symbol.asyncIterator]()
  }

  private async more (): Promise<boolean> {
    if (this.ended) {
      return false
    }
    const next = await this.source.next()
    if (next.done === true) {
      this.ended = true
      return false
    }
    // a view of the bytes as they came (Buffer.from of an array would copy them)
    this.buffer = this.buffer.length === 0 ? Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength) : Buffer.concat([this.buffer, next.value])
    return true
  }

  /** A line without its CRLF; undefined at the end of the body */
  async line (): Promise<string | undefined> {
    for (;;) {
      const at = this.buffer.indexOf('\r\n')
      if (at >= 0) {
        const line = this.buffer.subarray(0, at).toString('latin1')
        this.buffer = this.buffer.subarray(at + 2)
        return line
      }
      if (this.buffer.length > MAX_CHUNK_LINE) {
        throw new InvalidRequestError('an aws-chunked line is longer than 4 KiB: the body is not aws-chunked')
      }
      if (!await this.more()) {
        if (this.buffer.length === 0) {
          return undefined
        }
        throw new IncompleteBodyError('the aws-chunked body ended inside a line')
      }
    }
  }

  /** `n` bytes, in pieces as they come */
  async * bytes (n: number): AsyncGenerator<Buffer> {
    let left = n
    while (left > 0) {
      if (this.buffer.length === 0 && !await this.more()) {
        throw new IncompleteBodyError(`the body ended ${left} bytes short of its chunk`)
      }
      const piece = this.buffer.subarray(0, left)
      this.buffer = this.buffer.subarray(piece.length)
      left -= piece.length
      yield piece
    }
  }
}

/** The object's bytes out of an aws-chunked body, each signed chunk checked, and its trailer's headers */
async function * dechunk (source: AsyncIterable<Uint8Array>, auth: Authorized, trailers: Map<string, string>): AsyncGenerator<Uint8Array> {
  const reader = new Reader(source)
  const signed = auth.payload.kind === 'chunked' && auth.payload.signed
  let previous = auth.seed
  for (;;) {
    const line = await reader.line()
    if (line == null) {
      throw new IncompleteBodyError('the aws-chunked body ended before its last (empty) chunk')
    }
    const [sizeText, ...extensions] = line.split(';')
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText.trim())) {
      throw new InvalidRequestError(`"${line.slice(0, 80)}" is not an aws-chunked chunk header`)
    }
    const size = parseInt(sizeText, 16)
    const signature = extensions.map(e => /^chunk-signature=([0-9a-f]{64})$/.exec(e.trim())?.[1]).find(s => s != null)
    if (signed && signature == null) {
      throw new SignatureDoesNotMatchError('a chunk of a signed aws-chunked body has no chunk-signature')
    }
    const hash = signed ? createHash('sha256') : undefined
    for await (const piece of reader.bytes(size)) {
      hash?.update(piece)
      yield piece
    }
    if (hash != null) {
      const expected = await auth.chunkSignature(previous, `${EMPTY_SHA256}\n${hash.digest('hex')}`, 'PAYLOAD')
      if (!sameSignature(expected, signature ?? '')) {
        throw new SignatureDoesNotMatchError('a chunk\'s signature does not match its bytes: the body was changed on the way, or signed with another key')
      }
      previous = expected
    }
    if (size > 0) {
      if (await reader.line() !== '') {
        throw new InvalidRequestError('an aws-chunked chunk is not followed by CRLF')
      }
      continue
    }
    // the last chunk: then the trailer's headers (if any), up to an empty line
    const lines: string[] = []
    for (;;) {
      const next = await reader.line()
      if (next == null || next === '') {
        break
      }
      if (lines.length >= MAX_TRAILERS) {
        throw new InvalidRequestError(`an aws-chunked trailer has more than ${MAX_TRAILERS} headers`)
      }
      lines.push(next)
    }
    let trailerSignature: string | undefined
    const signedLines: string[] = []
    for (const l of lines) {
      const colon = l.indexOf(':')
      if (colon <= 0) {
        throw new InvalidRequestError(`"${l.slice(0, 80)}" is not a trailer header`)
      }
      const name = l.slice(0, colon).trim().toLowerCase()
      const value = l.slice(colon + 1).trim()
      if (name === 'x-amz-trailer-signature') {
        trailerSignature = value
      } else {
        trailers.set(name, value)
        signedLines.push(`${name}:${value}\n`)
      }
    }
    if (signed && auth.payload.kind === 'chunked' && auth.payload.trailer && lines.length > 0) {
      const expected = await auth.chunkSignature(previous, createHash('sha256').update(signedLines.join('')).digest('hex'), 'TRAILER')
      if (!sameSignature(expected, trailerSignature ?? '')) {
        throw new SignatureDoesNotMatchError('the trailer\'s signature does not match its headers')
      }
    }
    return
  }
}

/**
 * The object's bytes of a PUT (an object or a part): `limit` is the
 * largest size taken (EntityTooLarge above it, before a byte is read)
 */
export function objectBody (body: AsyncIterable<Uint8Array>, headers: IncomingHttpHeaders, auth: Authorized, limit: number, tooLarge: (size: number) => Error): ObjectBody {
  const encoding = header(headers, 'content-encoding') ?? ''
  const chunked = auth.payload.kind === 'chunked' || encoding.split(',').map(e => e.trim()).includes('aws-chunked')
  const lengthText = chunked ? header(headers, 'x-amz-decoded-content-length') : header(headers, 'content-length')
  if (lengthText == null) {
    throw new MissingContentLengthError(chunked ? 'an aws-chunked body needs x-amz-decoded-content-length: the object\'s size is needed before its first byte' : 'the request needs a Content-Length: the object\'s size is needed before its first byte (its hosts\' contracts are signed for it)')
  }
  if (!/^\d{1,16}$/.test(lengthText.trim())) {
    throw new InvalidArgumentError(`the length "${lengthText}" is not a number of bytes`)
  }
  const size = Number(lengthText)
  if (size > limit) {
    throw tooLarge(size)
  }
  if (chunked && auth.payload.kind !== 'chunked') {
    throw new InvalidRequestError('an aws-chunked body needs x-amz-content-sha256 to name a STREAMING- payload form')
  }
  const contentMd5 = header(headers, 'content-md5')
  if (contentMd5 != null && !/^[A-Za-z0-9+/]{22}==$/.test(contentMd5)) {
    throw new InvalidDigestError(`Content-MD5 "${contentMd5}" is not the base64 of 16 bytes`)
  }
  // a checksum in a header, or named by x-amz-trailer for the trailer
  const headerSums: Array<[string, string]> = Object.keys(headers).filter(h => h.startsWith('x-amz-checksum-') && h !== 'x-amz-checksum-algorithm' && h !== 'x-amz-checksum-type').map(h => [h.slice('x-amz-checksum-'.length), header(headers, h) as string])
  const trailerName = header(headers, 'x-amz-trailer')?.trim().toLowerCase()
  const trailerAlgorithm = trailerName?.startsWith('x-amz-checksum-') === true ? trailerName.slice('x-amz-checksum-'.length) : undefined
  const md5 = createHash('md5')
  const sha = auth.payload.kind === 'sha256' ? createHash('sha256') : undefined
  const sums = new Map<string, Checksum>()
  for (const algorithm of [...headerSums.map(([a]) => a), ...(trailerAlgorithm != null ? [trailerAlgorithm] : [])]) {
    const sum = checksumOf(algorithm)
    if (sum != null) {
      sums.set(algorithm, sum)
    }
  }
  let md5Hex: string | undefined
  async function * checked (): AsyncGenerator<Uint8Array> {
    const trailers = new Map<string, string>()
    const source = chunked ? dechunk(body, auth, trailers) : body
    let read = 0
    const hashes: Hash[] = [md5, ...(sha != null ? [sha] : [])]
    for await (const piece of source) {
      read += piece.byteLength
      if (read > size) {
        throw new IncompleteBodyError(`the body is longer than the ${size} bytes it declared`)
      }
      for (const h of hashes) {
        h.update(piece)
      }
      for (const s of sums.values()) {
        s.update(piece)
      }
      yield piece
    }
    if (read < size) {
      throw new IncompleteBodyError(`the body ended after ${read} of the ${size} bytes it declared`)
    }
    md5Hex = md5.digest('hex')
    if (sha != null && auth.payload.kind === 'sha256' && sha.digest('hex') !== auth.payload.hash) {
      throw new XAmzContentSHA256MismatchError('the body\'s SHA-256 is not the x-amz-content-sha256 that was signed')
    }
    if (contentMd5 != null && Buffer.from(md5Hex, 'hex').toString('base64') !== contentMd5) {
      throw new BadDigestError('the Content-MD5 you specified did not match what was received')
    }
    const expected = [...headerSums, ...(trailerAlgorithm != null ? [[trailerAlgorithm, trailers.get(`x-amz-checksum-${trailerAlgorithm}`)] as [string, string | undefined]] : [])]
    for (const [algorithm, value] of expected) {
      if (value == null) {
        throw new InvalidRequestError(`the trailer x-amz-checksum-${algorithm} was announced but not sent`)
      }
      const sum = sums.get(algorithm)
      if (sum != null && sum.digest() !== value) {
        throw new BadDigestError(`the ${algorithm.toUpperCase()} you specified did not match the calculated checksum`)
      }
    }
  }
  return {
    size,
    stream: checked(),
    md5: () => {
      if (md5Hex == null) {
        throw new Error('the body has not been read to its end')
      }
      return md5Hex
    }
  }
}

/** A small body (an XML document) read whole, at most `limit` bytes, checked against its signed SHA-256 */
export async function smallBody (body: AsyncIterable<Uint8Array>, headers: IncomingHttpHeaders, auth: Authorized, limit: number): Promise<Buffer> {
  const parsed = objectBody(body, headers, auth, limit, (size) => new InvalidRequestError(`the request's document is ${size} bytes: at most ${limit} are taken`))
  const pieces: Uint8Array[] = []
  for await (const piece of parsed.stream) {
    pieces.push(piece)
  }
  return Buffer.concat(pieces)
}
