import { createHash } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { EAGER_BODY_LIMIT, DEFAULT_MAX_BODY_BYTES, FrameType, Limits, RESPONSE_DOMAIN, RPC_PROTOCOL } from './constants.ts'
import { DecodeError } from '../codec.ts'
import { BodyDigestMismatchError, BodyStalledError, BodyTooLargeError, MalformedMessageError, RpcError, StreamEndedError } from './errors.ts'
import { FrameReader, headWithBody, writeData, writeFrame, writeFrames, type Frame } from './frames.ts'
import { decodeRequest, encodeHead, encodeResponseSigned, signingBytes, type AcceptablePayment, type RequestHead } from './messages.ts'
import { EMPTY_BODY, type OutgoingBody } from './body.ts'
import { Status, statusName, type StatusCode } from './status.ts'
import type { CredentialSigner } from './credentials.ts'
import type { CallObserver } from './observation.ts'
import type { PeerId, Startable, Stream } from '@libp2p/interface'
import type { Registrar } from '@libp2p/interface-internal'

const log = logger('opencloud:rpc:server')

/** A request body as the service sees it: bytes in order, checked against the signed digest at the end */
export interface IncomingBody extends AsyncIterable<Uint8Array> {
  readonly length: number
  readonly sha256: Uint8Array
}

/**
 * A small body whole, refused before a byte is read when its head declares
 * more than `max` (a service's own limit: a ledger transaction, a funding
 * transaction)
 */
export async function bodyBytes (body: IncomingBody, max: number, what = 'the body'): Promise<Uint8Array> {
  if (body.length > max) {
    throw new BodyTooLargeError(`${what} is at most ${max} bytes`)
  }
  const chunks: Uint8Array[] = []
  for await (const chunk of body) {
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

export interface IncomingRequest {
  head: RequestHead
  /** The exact bytes the request's signatures sign */
  signing: Uint8Array
  /** SHA-256 of `signing`: what the response is bound to */
  digest: Uint8Array
  remotePeer: PeerId
  body: IncomingBody
  /** Aborted when the stream closes under the call */
  signal: AbortSignal
}

export interface Reply {
  status: StatusCode
  message?: string
  acceptablePayment?: AcceptablePayment
  body?: OutgoingBody
}

/** Decides what to answer; the services pipeline implements it */
export interface RequestHandler {
  handle (request: IncomingRequest): Promise<Reply>
}

export interface RpcServerComponents {
  registrar: Registrar
}

export interface RpcServerInit {
  signer: CredentialSigner
  handler: RequestHandler
  /** Largest request body accepted, default 1 GiB */
  maxBodyBytes?: number
  /** Concurrent inbound streams per connection, default 256 (a client keeps one per call in flight) */
  maxInboundStreams?: number
  /** How long a stream may sit between requests before it is closed, default 120 s */
  idleTimeoutMs?: number
  /**
   * How long a request body may go without a DATA frame before the call is
   * refused and the stream closed, default 30 s. Without it a client that
   * declares a body and stops sending holds the stream forever.
   */
  bodyTimeoutMs?: number
  /**
   * The slowest average a body may arrive at, in bytes per second, after
   * the body timeout's allowance, default 1 KiB/s: a body dripped a byte at a
   * time under the body timeout would otherwise hold its stream for hours
   */
  minBodyRate?: number
  /** RPC streams open at once from all peers, default 4,096: a memory budget under attack */
  maxStreamsTotal?: number
  /** RPC streams open at once from one peer, over all its connections, default 256 */
  maxStreamsPerPeer?: number
  /** told of every call answered (the node's metrics), default none */
  onCall?: CallObserver
}

const ZERO_DIGEST = new Uint8Array(32)

class RequestBodyReader implements IncomingBody {
  readonly length: number
  readonly sha256: Uint8Array
  received = 0
  continued: boolean
  /**
   * Set when the body broke the framing (overrun, a frame of another type,
   * a stall, the stream ending): the stream is then out of step and is
   * closed after the answer, whoever was reading the body when it broke.
   */
  failure?: RpcError
  private started = false
  private readonly reader: FrameReader
  private readonly stream: Stream
  private readonly signal: AbortSignal
  private readonly timeoutMs: number
  private readonly minRate: number
  /** set when the body starts: the latest it may finish */
  private deadline = Infinity

  constructor (head: RequestHead, reader: FrameReader, stream: Stream, signal: AbortSignal, timeoutMs: number, minRate: number) {
    this.length = head.bodyLength
    this.sha256 = head.bodySha256
    this.reader = reader
    this.stream = stream
    this.signal = signal
    this.timeoutMs = timeoutMs
    this.minRate = minRate
    // small bodies follow the head without waiting for CONTINUE
    this.continued = head.bodyLength <= EAGER_BODY_LIMIT
  }

  get complete (): boolean {
    return this.received === this.length
  }

  async * [Symbol.asyncIterator] (): AsyncGenerator<Uint8Array> {
    if (this.started) {
      throw new Error('a request body can be read once')
    }
    this.started = true
    if (!this.continued) {
      this.continued = true
      await writeFrame(this.stream, FrameType.CONTINUE, new Uint8Array(0), this.signal)
    }
    const hash = createHash('sha256')
    while (this.received < this.length) {
      for (const part of await this.nextChunk()) {
        hash.update(part)
        yield part
      }
    }
    if (!Buffer.from(this.sha256).equals(hash.digest())) {
      throw new BodyDigestMismatchError()
    }
  }

  async nextChunk (): Promise<Uint8Array[]> {
    if (this.failure != null) {
      throw this.failure
    }
    try {
      return await this.readChunk()
    } catch (err: any) {
      if (err instanceof RpcError) {
        this.failure = err
      } else if (this.signal.aborted) {
        // the stream itself closed: nothing more can be answered on it
        this.failure = new MalformedMessageError(`the stream closed after ${this.received} of ${this.length} body bytes`)
      } else {
        this.failure = new MalformedMessageError(err.message)
      }
      throw this.failure
    }
  }

  private async readChunk (): Promise<Uint8Array[]> {
    if (this.deadline === Infinity) {
      this.deadline = Date.now() + this.timeoutMs + Math.ceil(this.length / this.minRate) * 1000
    }
    if (Date.now() > this.deadline) {
      throw new BodyStalledError(`the body arrives slower than ${this.minRate} bytes/s (${this.received} of ${this.length} bytes); the call is refused and the stream closed`)
    }
    let frame = this.reader.poll()
    if (frame != null) {
      return this.accept(frame)
    }
    const timeout = AbortSignal.timeout(Math.min(this.timeoutMs, Math.max(1, this.deadline - Date.now())))
    try {
      frame = await this.reader.next(AbortSignal.any([this.signal, timeout])) ?? undefined
    } catch (err) {
      if (timeout.aborted && !this.signal.aborted) {
        throw Date.now() >= this.deadline - 5
          ? new BodyStalledError(`the body arrives slower than ${this.minRate} bytes/s (${this.received} of ${this.length} bytes); the call is refused and the stream closed`)
          : new BodyStalledError(`no body bytes for ${this.timeoutMs / 1000} s after ${this.received} of ${this.length}; the call is refused and the stream closed`)
      }
      throw err
    }
    if (frame == null) {
      throw new MalformedMessageError(`the stream ended after ${this.received} of ${this.length} body bytes`)
    }
    return this.accept(frame)
  }

  /** Check a body frame and count it */
  private accept (frame: Frame): Uint8Array[] {
    if (frame.type !== FrameType.DATA) {
      throw new MalformedMessageError(`expected a DATA frame inside the body (${this.received} of ${this.length} bytes received), got type ${frame.type}`)
    }
    if (frame.length === 0) {
      throw new MalformedMessageError('empty DATA frame')
    }
    if (this.received + frame.length > this.length) {
      throw new MalformedMessageError(`the body is longer than the ${this.length} bytes its head declares`)
    }
    this.received += frame.length
    return frame.parts
  }

  /** Read and drop what is left of a small body so the stream can carry the next call */
  async drain (): Promise<void> {
    while (this.received < this.length) {
      await this.nextChunk()
    }
  }
}

/**
 * The server side of `/opencloud/rpc/1.0.0`: reads requests off streams,
 * hands them to the handler, and writes signed responses. It knows bytes and
 * frames; what to answer is the handler's business.
 */
export class RpcServer implements Startable {
  private readonly components: RpcServerComponents
  private readonly signer: CredentialSigner
  private readonly handler: RequestHandler
  private readonly maxBodyBytes: number
  private readonly maxInboundStreams: number
  private readonly idleTimeoutMs: number
  private readonly bodyTimeoutMs: number
  private readonly minBodyRate: number
  private readonly maxStreamsTotal: number
  private readonly maxStreamsPerPeer: number
  private readonly onCall?: CallObserver
  private readonly streams = new Set<Stream>()
  private readonly perPeer = new Map<string, number>()

  constructor (components: RpcServerComponents, init: RpcServerInit) {
    this.components = components
    this.signer = init.signer
    this.handler = init.handler
    this.maxBodyBytes = init.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
    this.maxInboundStreams = init.maxInboundStreams ?? 256
    this.idleTimeoutMs = init.idleTimeoutMs ?? 120_000
    this.bodyTimeoutMs = init.bodyTimeoutMs ?? 30_000
    this.minBodyRate = init.minBodyRate ?? 1024
    this.maxStreamsTotal = init.maxStreamsTotal ?? 4096
    this.maxStreamsPerPeer = init.maxStreamsPerPeer ?? 256
    this.onCall = init.onCall
  }

  async start (): Promise<void> {
    await this.components.registrar.handle(RPC_PROTOCOL, (stream, connection) => {
      this.serve(stream, connection.remotePeer).catch(err => {
        log.error('stream from %p failed - %e', connection.remotePeer, err)
        stream.abort(err)
      })
    }, {
      maxInboundStreams: this.maxInboundStreams,
      maxOutboundStreams: this.maxInboundStreams
    })
  }

  async stop (): Promise<void> {
    await this.components.registrar.unhandle(RPC_PROTOCOL)
    await Promise.all([...this.streams].map(async s => s.close().catch(() => s.abort(new Error('server stopping')))))
    this.streams.clear()
  }

  /**
   * Serve a stream that did not come through libp2p: the node's calls to
   * itself, which pass the same frames, checks and pipeline as any other.
   */
  serveLocal (stream: Stream, remotePeer: PeerId): void {
    this.serve(stream, remotePeer).catch(err => {
      log.error('a local stream failed - %e', err)
      stream.abort(err)
    })
  }

  private async serve (stream: Stream, remotePeer: PeerId): Promise<void> {
    const peer = remotePeer.toString()
    const fromPeer = this.perPeer.get(peer) ?? 0
    if (this.streams.size >= this.maxStreamsTotal || fromPeer >= this.maxStreamsPerPeer) {
      // a budget, so that many idle streams cannot take the node's memory
      log('refusing a stream from %p: %d open in all, %d from it', remotePeer, this.streams.size, fromPeer)
      stream.abort(new Error('the server has too many streams open; try again later'))
      return
    }
    this.perPeer.set(peer, fromPeer + 1)
    this.streams.add(stream)
    const reader = new FrameReader(stream)
    const controller = new AbortController()
    stream.addEventListener('close', () => controller.abort(new StreamEndedError('the stream closed')), { once: true })
    // the idle close is kept here rather than by the stream's
    // inactivityTimeout, which libp2p 3 does not enforce on a stream that
    // has a 'message' listener. One timer per stream, restarted whenever the
    // stream waits for a request: a timer and a signal per call cost a small
    // call more than its nonce check
    const idle = new AbortController()
    let waiting = false
    const idleTimer = setTimeout(() => {
      // it fires while a call is served too: that is no idleness, and the next wait restarts it
      if (waiting) idle.abort(new StreamEndedError('the stream was idle'))
    }, this.idleTimeoutMs)
    idleTimer.unref()
    const betweenCalls = AbortSignal.any([controller.signal, idle.signal])
    try {
      while (stream.status === 'open') {
        let frame
        try {
          waiting = true
          idleTimer.refresh()
          frame = await reader.next(betweenCalls)
        } catch (err: any) {
          if (err instanceof MalformedMessageError) {
            await this.refuse(stream, err)
          } else if (idle.signal.aborted && !controller.signal.aborted) {
            log.trace('closing a stream from %p idle for %d ms', remotePeer, this.idleTimeoutMs)
            await closeOrAbort(stream)
          }
          return
        } finally {
          waiting = false
        }
        if (frame == null) {
          // the client closed its side between calls: the normal end of a pooled stream
          await stream.close().catch(() => {})
          return
        }
        const keepOpen = await this.exchange(stream, remotePeer, reader, frame, controller.signal)
        if (!keepOpen) {
          await stream.close().catch(() => {})
          return
        }
      }
    } finally {
      clearTimeout(idleTimer)
      reader.release()
      this.streams.delete(stream)
      const left = (this.perPeer.get(peer) ?? 1) - 1
      if (left <= 0) {
        this.perPeer.delete(peer)
      } else {
        this.perPeer.set(peer, left)
      }
    }
  }

  /** Answer a frame that cannot be parsed, then give up on the stream */
  private async refuse (stream: Stream, err: RpcError): Promise<void> {
    try {
      await this.writeReply(stream, ZERO_DIGEST, new Uint8Array(0), { status: err.code, message: err.message })
      await stream.close()
    } catch (e) {
      stream.abort(e as Error)
    }
  }

  /** One call; returns whether the stream is still in step and can carry another */
  private async exchange (stream: Stream, remotePeer: PeerId, reader: FrameReader, frame: { type: number, payload: Uint8Array }, signal: AbortSignal): Promise<boolean> {
    if (frame.type !== FrameType.REQUEST) {
      await this.refuse(stream, new MalformedMessageError(`expected a REQUEST frame, got type ${frame.type}`))
      return false
    }
    let decoded
    try {
      decoded = decodeRequest(frame.payload)
    } catch (err: any) {
      await this.refuse(stream, err instanceof RpcError ? err : new MalformedMessageError(String(err.message)))
      return false
    }
    const { head, signing } = decoded
    const digest = Uint8Array.from(createHash('sha256').update(signing).digest())
    const body = new RequestBodyReader(head, reader, stream, signal, this.bodyTimeoutMs, this.minBodyRate)
    const started = performance.now()
    let reply: Reply
    if (head.bodyLength > this.maxBodyBytes) {
      reply = { status: Status.BODY_TOO_LARGE, message: `the body is ${head.bodyLength} bytes; this node accepts at most ${this.maxBodyBytes}` }
    } else {
      reply = await this.dispatch({ head, signing, digest, remotePeer, body, signal })
    }
    // keep the stream in step: a small body the client already sent is read
    // and dropped; a large one the server asked for and did not finish, or a
    // body that broke the framing, means the stream can carry no further call
    let inStep = true
    if (body.failure != null) {
      reply = { status: body.failure.code, message: body.failure.message }
      inStep = false
    } else if (!body.complete) {
      if (body.length <= EAGER_BODY_LIMIT) {
        try {
          await body.drain()
        } catch (err: any) {
          if (!(err instanceof RpcError)) {
            return false
          }
          reply = { status: err.code, message: err.message }
          inStep = false
        }
      } else if (body.continued) {
        inStep = false
      }
    }
    await this.writeReply(stream, digest, head.nonce, reply, signal)
    this.onCall?.({
      service: head.service,
      method: head.method,
      status: statusName(reply.status),
      seconds: (performance.now() - started) / 1000,
      requestBytes: head.bodyLength,
      responseBytes: reply.body?.length ?? 0
    })
    return inStep
  }

  private async dispatch (request: IncomingRequest): Promise<Reply> {
    try {
      return await this.handler.handle(request)
    } catch (err: any) {
      if (err instanceof RpcError) {
        return { status: err.code, message: err.message, acceptablePayment: err.acceptablePayment }
      }
      if (err instanceof DecodeError) {
        // bytes in the request (args, body) that a service could not decode
        return { status: Status.BAD_REQUEST, message: err.message }
      }
      if (request.signal.aborted) {
        throw err
      }
      log.error('%s.%s from %p failed - %e', request.head.service, request.head.method, request.remotePeer, err)
      return { status: Status.SERVER_ERROR, message: 'the service failed while handling the request; the node operator can find the cause in its log' }
    }
  }

  private async writeReply (stream: Stream, requestDigest: Uint8Array, nonce: Uint8Array, reply: Reply, signal?: AbortSignal): Promise<void> {
    const body = reply.body ?? EMPTY_BODY
    const signed = encodeResponseSigned({
      credentials: [this.signer.credential],
      requestDigest,
      nonce,
      status: reply.status,
      message: fitMessage(reply.message ?? statusName(reply.status)),
      acceptablePayment: reply.acceptablePayment,
      bodyLength: body.length,
      bodySha256: body.sha256
    })
    const signature = this.signer.sign(signingFor(signed))
    const head = encodeHead([signature], signed)
    if (body.length <= EAGER_BODY_LIMIT) {
      // a small answer goes with its head in one write
      await writeFrames(stream, await headWithBody(FrameType.RESPONSE, head, body.open(signal), body.length), signal)
      return
    }
    await writeFrame(stream, FrameType.RESPONSE, head, signal)
    let sent = 0
    for await (const chunk of body.open(signal)) {
      sent += chunk.byteLength
      await writeData(stream, chunk, signal)
    }
    if (sent !== body.length) {
      throw new Error(`a reply body declared ${body.length} bytes and produced ${sent}`)
    }
  }
}

/**
 * A status message within the protocol's 1,024 bytes: messages often quote
 * what the caller sent (an argument, an id), which may be longer. Cut at a
 * character boundary, with an ellipsis, here at the source, so that no
 * client refuses the whole answer for it.
 */
export function fitMessage (message: string): string {
  const bytes = Buffer.from(message, 'utf8')
  if (bytes.byteLength <= Limits.messageBytes) {
    return message
  }
  let cut = Limits.messageBytes - 3
  // back off to the start of a UTF-8 character
  while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) {
    cut--
  }
  return bytes.subarray(0, cut).toString('utf8') + '…'
}

async function closeOrAbort (stream: Stream): Promise<void> {
  try {
    await stream.close({ signal: AbortSignal.timeout(5_000) })
  } catch (err: any) {
    stream.abort(err)
  }
}

function signingFor (signed: Uint8Array): Uint8Array {
  return signingBytes(RESPONSE_DOMAIN, signed)
}

export function rpcServer (init: RpcServerInit): (components: RpcServerComponents) => RpcServer {
  return (components) => new RpcServer(components, init)
}
