import { Uint8ArrayList } from 'uint8arraylist'
import { FrameType, MAX_DATA_FRAME, MAX_HEAD_FRAME } from './constants.ts'
import { MalformedMessageError, StreamEndedError } from './errors.ts'
import { varintLength, writeVarint } from '../codec.ts'
import type { Stream } from '@libp2p/interface'

/**
 * Frames on an OpenCloud stream (PROTOCOL.md, "Frames"):
 * varint(length) || type (1 byte) || payload, where length counts the type
 * byte and the payload.
 *
 * The reader keeps its own buffer instead of the stream's async iterator
 * because that iterator queues without limit: a slow consumer would let a
 * fast sender fill memory. Here the stream is paused above a high-water mark,
 * which stops yamux window updates and so stops the sender.
 */

export interface Frame {
  type: number
  /** the payload in one piece (copied together on first use if it arrived in several) */
  readonly payload: Uint8Array
  /** the payload as it arrived, without copying: what body readers use */
  readonly parts: Uint8Array[]
  readonly length: number
}

class ReceivedFrame implements Frame {
  readonly type: number
  readonly parts: Uint8Array[]
  readonly length: number
  private joined?: Uint8Array

  constructor (type: number, parts: Uint8Array[], length: number) {
    this.type = type
    this.parts = parts
    this.length = length
  }

  get payload (): Uint8Array {
    if (this.joined == null) {
      this.joined = this.parts.length === 1 ? this.parts[0] : Uint8Array.from(Buffer.concat(this.parts))
    }
    return this.joined
  }
}

export interface FrameReaderInit {
  /** Pause the stream when this many bytes are buffered, default 1 MiB */
  highWaterMark?: number
}

const DEFAULT_HIGH_WATER_MARK = 1024 * 1024

/**
 * After a pause the remote may still send what its yamux window allows (up to
 * 16 MiB by default), so the stream's own read limit must sit above that or
 * the stream is reset mid-body.
 */
const STREAM_READ_BUFFER_LIMIT = 32 * 1024 * 1024

export function maxPayloadFor (type: number): number {
  return type === FrameType.DATA ? MAX_DATA_FRAME : MAX_HEAD_FRAME
}

export class FrameReader {
  private readonly stream: Stream
  private readonly buffer = new Uint8ArrayList()
  private readonly highWaterMark: number
  private ended = false
  private error?: Error
  private wake?: () => void
  private paused = false
  private readonly onMessage: (evt: any) => void
  private readonly onEnd: () => void
  private readonly onClose: (evt: any) => void

  constructor (stream: Stream, init: FrameReaderInit = {}) {
    this.stream = stream
    this.highWaterMark = init.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, STREAM_READ_BUFFER_LIMIT)
    this.onMessage = (evt) => {
      this.buffer.append(evt.data)
      if (!this.paused && this.buffer.byteLength > this.highWaterMark && stream.status === 'open') {
        this.paused = true
        stream.pause()
      }
      this.notify()
    }
    this.onEnd = () => {
      this.ended = true
      this.notify()
    }
    this.onClose = (evt) => {
      this.ended = true
      if (evt.error != null) {
        this.error = evt.error
      }
      this.notify()
    }
    stream.addEventListener('message', this.onMessage)
    stream.addEventListener('remoteCloseWrite', this.onEnd)
    stream.addEventListener('close', this.onClose)
    // the remote may have closed its side before this reader existed; its
    // queued data is still delivered to the listener added above
    if (stream.status !== 'open' || stream.readableEnded || stream.remoteWriteStatus !== 'writable') {
      this.ended = true
    }
  }

  /** Stop listening; the stream itself is left as it is */
  release (): void {
    this.stream.removeEventListener('message', this.onMessage)
    this.stream.removeEventListener('remoteCloseWrite', this.onEnd)
    this.stream.removeEventListener('close', this.onClose)
  }

  /** True when nothing is buffered: used to tell a clean end between calls */
  get idle (): boolean {
    return this.buffer.byteLength === 0
  }

  private notify (): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  private async waitForData (signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) {
      throw signal.reason
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.wake = undefined
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.wake = () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
    })
  }

  private maybeResume (): void {
    if (this.paused && this.buffer.byteLength < this.highWaterMark / 2 && this.stream.status === 'open') {
      this.paused = false
      try {
        this.stream.resume()
      } catch {
        // the stream closed while paused; the next read reports it
      }
    }
  }

  /**
   * The next frame if it has arrived whole, without waiting: a small body
   * arrives with its head, and a reader that polls first needs no timer or
   * abort signal for it
   */
  poll (): Frame | undefined {
    const frame = this.tryParse()
    if (frame == null) {
      return undefined
    }
    this.maybeResume()
    return frame
  }

  /**
   * The next frame, or null when the remote closed its side cleanly between
   * frames. A stream that ends inside a frame is an error.
   */
  async next (signal?: AbortSignal): Promise<Frame | null> {
    while (true) {
      const frame = this.tryParse()
      if (frame != null) {
        this.maybeResume()
        return frame
      }
      if (this.ended) {
        if (this.buffer.byteLength === 0 && this.error == null) {
          return null
        }
        throw this.error ?? new StreamEndedError('the stream ended inside a frame')
      }
      this.maybeResume()
      await this.waitForData(signal)
    }
  }

  private tryParse (): Frame | null {
    const buffered = this.buffer.byteLength
    if (buffered === 0) {
      return null
    }
    let length = 0
    let scale = 1
    let i = 0
    for (; ; i++) {
      if (i >= buffered) {
        return null
      }
      if (i >= 4) {
        throw new MalformedMessageError('frame length prefix is longer than 4 bytes')
      }
      const byte = this.buffer.get(i)
      if (i > 0 && byte === 0) {
        throw new MalformedMessageError('frame length is not in its shortest form')
      }
      length += (byte & 0x7f) * scale
      scale *= 128
      if ((byte & 0x80) === 0) {
        break
      }
    }
    const prefix = i + 1
    if (length === 0) {
      throw new MalformedMessageError('empty frame: a frame has at least its type byte')
    }
    if (length - 1 > MAX_HEAD_FRAME) {
      throw new MalformedMessageError(`frame of ${length} bytes is over the limit of ${MAX_HEAD_FRAME}`)
    }
    if (buffered < prefix + 1) {
      return null
    }
    const type = this.buffer.get(prefix)
    if (type < FrameType.REQUEST || type > FrameType.DATA) {
      throw new MalformedMessageError(`unknown frame type ${type}`)
    }
    if (length - 1 > maxPayloadFor(type)) {
      throw new MalformedMessageError(`frame of type ${type} has ${length - 1} payload bytes, over the limit of ${maxPayloadFor(type)}`)
    }
    if (buffered < prefix + length) {
      return null
    }
    // views of the received chunks: a body frame is never copied here
    const parts = [...this.buffer.sublist(prefix + 1, prefix + length)]
    this.buffer.consume(prefix + length)
    return new ReceivedFrame(type, parts, length - 1)
  }
}

export function encodeFrame (type: number, payload: Uint8Array): Uint8ArrayList {
  const prefix = new Uint8Array(varintLength(payload.byteLength + 1) + 1)
  const offset = writeVarint(payload.byteLength + 1, prefix, 0)
  prefix[offset] = type
  return new Uint8ArrayList(prefix, payload)
}

/** Append `chunk` to `out` as DATA frames, split at the frame limit; the bytes are not copied */
export function appendData (out: Uint8ArrayList, chunk: Uint8Array): void {
  for (let offset = 0; offset < chunk.byteLength; offset += MAX_DATA_FRAME) {
    const payload = chunk.subarray(offset, offset + MAX_DATA_FRAME)
    const prefix = new Uint8Array(varintLength(payload.byteLength + 1) + 1)
    prefix[writeVarint(payload.byteLength + 1, prefix, 0)] = FrameType.DATA
    out.append(prefix, payload)
  }
}

/**
 * Send body bytes as DATA frames: chunks larger than a frame are split, so
 * any source can be sent whatever size it yields. The frames of one chunk go
 * in one send.
 */
export async function writeData (stream: Stream, chunk: Uint8Array, signal?: AbortSignal): Promise<void> {
  const frames = new Uint8ArrayList()
  appendData(frames, chunk)
  await writeFrames(stream, frames, signal)
}

/**
 * A head and, after it, a small body's DATA frames, collected to go out in
 * one send: one yamux frame and one noise message instead of one per frame,
 * and one window update in return. bench/rpc measures what that is worth
 * to small calls.
 */
export async function headWithBody (type: number, head: Uint8Array, body: AsyncIterable<Uint8Array>, length: number): Promise<Uint8ArrayList> {
  const frames = encodeFrame(type, head)
  let collected = 0
  for await (const chunk of body) {
    collected += chunk.byteLength
    if (collected > length) {
      throw new Error(`the body produced more than the ${length} bytes it declared`)
    }
    appendData(frames, chunk)
  }
  if (collected !== length) {
    throw new Error(`the body produced ${collected} of the ${length} bytes it declared`)
  }
  return frames
}

/** Send frames already encoded, as writeFrame does */
export async function writeFrames (stream: Stream, frames: Uint8ArrayList, signal?: AbortSignal): Promise<void> {
  if (stream.status !== 'open' || stream.writeStatus !== 'writable') {
    throw new StreamEndedError(`cannot write to a stream that is ${stream.status}`)
  }
  await sendBounded(stream, frames, signal)
}

/** Above this many queued bytes a writer waits for the transport to drain */
export const WRITE_HIGH_WATER_MARK = 2 * 1024 * 1024

/**
 * Send a frame, waiting while the stream's write buffer is full. This waits
 * on the 'drain' event itself: `stream.onDrain()` in @libp2p/utils 7.4 keeps
 * resolving at once after its first drain, which lets the buffer grow without
 * bound.
 */
export async function writeFrame (stream: Stream, type: number, payload: Uint8Array, signal?: AbortSignal): Promise<void> {
  if (stream.status !== 'open' || stream.writeStatus !== 'writable') {
    throw new StreamEndedError(`cannot write to a stream that is ${stream.status}`)
  }
  await sendBounded(stream, encodeFrame(type, payload), signal)
}

/**
 * Send bytes, then wait while the stream's write buffer is above the high
 * water mark (also the raw baseline of the benches, so both write the same way)
 */
export async function sendBounded (stream: Stream, bytes: Uint8Array | Uint8ArrayList, signal?: AbortSignal): Promise<void> {
  const ok = stream.send(bytes)
  if (ok && stream.writeBufferLength < WRITE_HIGH_WATER_MARK) {
    return
  }
  while (stream.writableNeedsDrain || stream.writeBufferLength >= WRITE_HIGH_WATER_MARK) {
    if (stream.status !== 'open') {
      throw new StreamEndedError(`the stream was ${stream.status} while sending`)
    }
    await waitForDrain(stream, signal)
  }
}

async function waitForDrain (stream: Stream, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('idle', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => {
      cleanup()
      // the stream sends its queue in a microtask after 'drain'
      queueMicrotask(resolve)
    }
    const onClose = (evt: any): void => {
      cleanup()
      reject(evt.error ?? new StreamEndedError('the stream closed while sending'))
    }
    const onAbort = (): void => {
      cleanup()
      reject(signal?.reason)
    }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('idle', onDrain)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}
