import { DecodeError } from '../codec.ts'
import { createHash } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { EAGER_BODY_LIMIT, FrameType, REQUEST_DOMAIN, RPC_PROTOCOL } from './constants.ts'
import { BodyDigestMismatchError, DialError, MalformedMessageError, ResponseVerificationError, RpcError, StreamEndedError, errorForStatus } from './errors.ts'
import { FrameReader, headWithBody, writeData, writeFrame, writeFrames } from './frames.ts'
import { CredentialType, decodeResponse, encodeHead, encodeRequestSigned, signingBytes, type AcceptablePayment, type Payment, type ResponseHead } from './messages.ts'
import { EMPTY_BODY, inMemory, isInMemory, type OutgoingBody } from './body.ts'
import type { CallObserver } from './observation.ts'
import { Status, normalizeStatus, statusName, type StatusCode } from './status.ts'
import { credentialText, type CredentialSigner, type CredentialVerifier } from './credentials.ts'
import { decodeChallenge, makeNonce } from './nonce-store.ts'
import type { Connection, PeerId, Stream, AbortOptions } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

const log = logger('opencloud:rpc:client')

/** What the client needs of a connection: whom it reaches, and new streams on it */
export type RpcConnection = Pick<Connection, 'remotePeer' | 'newStream'>

export interface RpcClientComponents {
  /** Open or reuse a connection, as `libp2p.dial` does */
  dial: (peer: PeerId | Multiaddr, options?: AbortOptions) => Promise<RpcConnection>
}

export interface RpcClientInit {
  /** Signs every request; its credential is the caller's OpenCloud ID */
  signer: CredentialSigner
  verifier: CredentialVerifier
  /** Time allowed for a call without a body, default 30 s; bodies add a second per MiB */
  timeoutMs?: number
  /** Time allowed to find and connect to a peer, default 10 s */
  dialTimeoutMs?: number
  /** Idle pooled streams kept per peer, default 64 */
  maxIdlePerPeer?: number
  /** How long an idle pooled stream is kept, default 30 s (servers close them at 120 s) */
  idleTimeoutMs?: number
  /** How many times a call is re-sent after refresh-nonce, default 2 */
  nonceRetries?: number
  /**
   * Calls in flight to one peer at once, default 128: below a server's 256
   * inbound streams per connection, so the client queues its own calls
   * instead of having streams refused
   */
  maxStreamsPerPeer?: number
  /** Calls waiting for a stream to one peer before new ones are refused, default 10,000 */
  maxQueuedPerPeer?: number
  /** told of every call made, answered or not (the node's metrics), default none */
  onCall?: CallObserver
}

/** Too many calls already wait for one peer: the caller's own limit, not the server's doing */
export class CallQueueFullError extends Error {
  override name = 'CallQueueFullError'
}

/** Calls in flight per peer, and the calls waiting for one of them to end */
class PeerSlots {
  active = 0
  readonly waiting: Array<() => void> = []
}

export interface CallRequest {
  service: string
  method: string
  args?: string[]
  body?: OutgoingBody
  payment?: Payment
  /** Signers for extra credentials (bitcoin addresses) presented with this call */
  extraSigners?: CredentialSigner[]
  signal?: AbortSignal
}

export interface ResponseBody extends AsyncIterable<Uint8Array> {
  readonly length: number
  readonly sha256: Uint8Array
  /** The whole body, for bodies known to be small */
  bytes: () => Promise<Uint8Array>
}

export interface CallResponse {
  status: StatusCode
  statusName: string
  message: string
  acceptablePayment?: AcceptablePayment
  /** PeerId of the server that signed the response */
  server: string
  head: ResponseHead
  /** The signed response head as received: proof of what the server answered */
  proof: Uint8Array
  body: ResponseBody
}

/** A non-ok answer, with the signed response that carried it */
export type CallError = RpcError & { response?: CallResponse }

interface PooledStream {
  stream: Stream
  reader: FrameReader
  remotePeer: string
  idleTimer?: ReturnType<typeof setTimeout>
  /** true when it carried a call before: the server may have closed it since */
  reused?: boolean
}

interface NonceState {
  challenge?: Uint8Array
  expiresAt: number
  counter: bigint
  /** set while one call fetches a challenge; the others wait for it */
  fetching?: { promise: Promise<void>, resolve: () => void }
}

/** a challenge this close to expiry is treated as gone */
const NONCE_EXPIRY_MARGIN_MS = 10_000

function sha256 (data: Uint8Array): Uint8Array {
  return Uint8Array.from(createHash('sha256').update(data).digest())
}

function targetKey (peer: PeerId | Multiaddr): string {
  return peer.toString()
}

/**
 * The client side of `/opencloud/rpc/1.0.0`. Streams are pooled per peer: a
 * call takes an idle stream or opens one, and gives it back when its response
 * has been read. Opening a stream costs a multistream-select round trip, so
 * reuse roughly doubles small-call throughput (bench/rpc measures it).
 */
export class RpcClient {
  private readonly components: RpcClientComponents
  private readonly signer: CredentialSigner
  private readonly verifier: CredentialVerifier
  private readonly timeoutMs: number
  private readonly maxIdlePerPeer: number
  private readonly idleTimeoutMs: number
  private readonly nonceRetries: number
  private readonly dialTimeoutMs: number
  private readonly maxStreamsPerPeer: number
  private readonly maxQueuedPerPeer: number
  private readonly onCall?: CallObserver
  private readonly slots = new Map<string, PeerSlots>()
  private readonly idle = new Map<string, PooledStream[]>()
  private readonly nonces = new Map<string, NonceState>()
  private stopped = false

  constructor (components: RpcClientComponents, init: RpcClientInit) {
    this.components = components
    this.signer = init.signer
    this.verifier = init.verifier
    this.timeoutMs = init.timeoutMs ?? 30_000
    this.maxIdlePerPeer = init.maxIdlePerPeer ?? 64
    this.idleTimeoutMs = init.idleTimeoutMs ?? 30_000
    this.nonceRetries = init.nonceRetries ?? 2
    this.dialTimeoutMs = init.dialTimeoutMs ?? 10_000
    this.maxStreamsPerPeer = init.maxStreamsPerPeer ?? 128
    this.maxQueuedPerPeer = init.maxQueuedPerPeer ?? 10_000
    this.onCall = init.onCall
  }

  /** Wait for a slot for one more call to a peer; the returned function gives it back, once */
  private async slot (peer: PeerId | Multiaddr, signal: AbortSignal): Promise<() => void> {
    const key = targetKey(peer)
    let slots = this.slots.get(key)
    if (slots == null) {
      slots = new PeerSlots()
      this.slots.set(key, slots)
    }
    const s = slots
    if (s.active >= this.maxStreamsPerPeer) {
      if (s.waiting.length >= this.maxQueuedPerPeer) {
        throw new CallQueueFullError(`${s.waiting.length} calls to ${key} already wait for one of the ${this.maxStreamsPerPeer} in flight to end; this node refuses more until they do`)
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          const i = s.waiting.indexOf(go)
          if (i !== -1) s.waiting.splice(i, 1)
          reject(signal.reason)
        }
        const go = (): void => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        }
        s.waiting.push(go)
        signal.addEventListener('abort', onAbort, { once: true })
      })
    } else {
      s.active++
    }
    let released = false
    return () => {
      if (released) return
      released = true
      const next = s.waiting.shift()
      if (next != null) {
        // the slot passes straight to the next call waiting
        next()
      } else {
        s.active--
        if (s.active === 0) this.slots.delete(key)
      }
    }
  }

  /** Close every pooled stream */
  async stop (): Promise<void> {
    this.stopped = true
    const all = [...this.idle.values()].flat()
    this.idle.clear()
    await Promise.all(all.map(async p => this.closePooled(p)))
  }

  /**
   * Make one OpenCloud call. Resolves with the verified response when the
   * status is ok; rejects with the RpcError subclass of the status otherwise
   * (its `response` holds the signed answer). refresh-nonce is handled here.
   */
  async call (peer: PeerId | Multiaddr, request: CallRequest): Promise<CallResponse> {
    const onCall = this.onCall
    if (onCall == null) {
      return this.callOnce(peer, request)
    }
    const started = performance.now()
    const seen = (status: string, response?: CallResponse): void => {
      onCall({
        service: request.service,
        method: request.method,
        status,
        seconds: (performance.now() - started) / 1000,
        requestBytes: request.body?.length ?? 0,
        responseBytes: response?.head.bodyLength ?? 0
      })
    }
    try {
      const response = await this.callOnce(peer, request)
      seen(response.statusName, response)
      return response
    } catch (err: any) {
      const response: CallResponse | undefined = err.response
      seen(response?.statusName ?? 'unanswered', response)
      throw err
    }
  }

  private async callOnce (peer: PeerId | Multiaddr, request: CallRequest): Promise<CallResponse> {
    const body = await replayable(request.body ?? EMPTY_BODY, request.signal)
    const timeout = AbortSignal.timeout(this.timeoutMs + Math.ceil(body.length / 1024))
    const signal = request.signal == null ? timeout : AbortSignal.any([request.signal, timeout])
    for (let attempt = 0; ; attempt++) {
      const response = await this.attempt(peer, request, body, signal)
      if (response.status === Status.OK) {
        return response
      }
      if (response.status === Status.REFRESH_NONCE && attempt < this.nonceRetries) {
        continue
      }
      const err: CallError = errorForStatus(response.status, response.message)
      err.response = response
      err.acceptablePayment = response.acceptablePayment
      throw err
    }
  }

  private async attempt (peer: PeerId | Multiaddr, request: CallRequest, body: OutgoingBody, signal: AbortSignal): Promise<CallResponse> {
    const { pooled, freeSlot } = await this.streamFor(peer, signal, false)
    try {
      return await this.exchange(peer, pooled, request, body, signal, freeSlot)
    } catch (err: any) {
      // a pooled stream the server had closed before this call reached it
      // (an idle close, or after refusing the call before): the server never
      // saw the request, so it goes again once on a fresh stream
      if (pooled.reused === true && err instanceof UnansweredError) {
        log('a pooled stream to %s was closed under the call; sending it on a new stream', pooled.remotePeer)
        const again = await this.streamFor(peer, signal, true)
        return this.exchange(peer, again.pooled, request, body, signal, again.freeSlot)
      }
      throw err
    }
  }

  /** A slot for one more call to the peer, and a stream to make it on (pooled unless `fresh`) */
  private async streamFor (peer: PeerId | Multiaddr, signal: AbortSignal, fresh: boolean): Promise<{ pooled: PooledStream, freeSlot: () => void }> {
    const freeSlot = await this.slot(peer, signal)
    try {
      return { pooled: await this.acquire(peer, signal, fresh), freeSlot }
    } catch (err) {
      freeSlot()
      throw err
    }
  }

  private async exchange (peer: PeerId | Multiaddr, pooled: PooledStream, request: CallRequest, body: OutgoingBody, signal: AbortSignal, freeSlot: () => void): Promise<CallResponse> {
    let released = false
    const discard = (err?: Error): void => {
      if (!released) {
        released = true
        this.discard(pooled, err)
        freeSlot()
      }
    }
    const release = (): void => {
      if (!released) {
        released = true
        this.release(peer, pooled)
        freeSlot()
      }
    }
    let nonceState: NonceState | undefined
    let fetcher = false
    try {
      ({ state: nonceState, fetcher } = await this.nonceFor(pooled.remotePeer, signal))
      const nonce = nonceState.challenge == null ? new Uint8Array(0) : makeNonce(nonceState.challenge, nonceState.counter++)
      const signers = [this.signer, ...(request.extraSigners ?? [])]
      const signed = encodeRequestSigned({
        credentials: signers.map(s => s.credential),
        nonce,
        service: request.service,
        method: request.method,
        args: request.args ?? [],
        payment: request.payment ?? { type: 'none' },
        bodyLength: body.length,
        bodySha256: body.sha256
      })
      const signing = signingBytes(REQUEST_DOMAIN, signed)
      const digest = sha256(signing)
      const requestHead = encodeHead(signers.map(s => s.sign(signing)), signed)

      let frame
      let upload: Promise<void> | undefined
      if (body.length <= EAGER_BODY_LIMIT) {
        // a small body goes with its head in one write
        await writeFrames(pooled.stream, await headWithBody(FrameType.REQUEST, requestHead, body.open(signal), body.length), signal)
        frame = await pooled.reader.next(signal)
      } else {
        await writeFrame(pooled.stream, FrameType.REQUEST, requestHead, signal)
        frame = await pooled.reader.next(signal)
        if (frame?.type === FrameType.CONTINUE) {
          const uploadController = new AbortController()
          const uploadSignal = AbortSignal.any([signal, uploadController.signal])
          upload = this.sendBody(pooled.stream, body, uploadSignal)
          // the server may answer before the upload ends (a bad digest, a failing service)
          upload.catch(() => {})
          frame = await pooled.reader.next(signal)
          if (frame != null && !(await settledWithin(upload))) {
            uploadController.abort(new StreamEndedError('the server answered before the body was sent'))
          }
        }
      }
      if (frame == null) {
        throw new UnansweredError('the server closed the stream without answering')
      }
      if (frame.type !== FrameType.RESPONSE) {
        throw new MalformedMessageError(`expected a RESPONSE frame, got type ${frame.type}`)
      }
      const { head, signing: responseSigning } = decodeResponse(frame.payload)
      this.verifyResponse(head, responseSigning, pooled.remotePeer, digest, nonce)
      const status = normalizeStatus(head.status)
      const uploadFinished = upload == null || (await settledWithin(upload, true))
      const responseBody = this.responseBody(head, pooled, signal, () => {
        if (uploadFinished) {
          release()
        } else {
          discard()
        }
      }, discard)
      if (head.bodyLength <= EAGER_BODY_LIMIT) {
        // small bodies are read at once so the stream goes back to the pool
        await responseBody.bytes()
      }
      const response: CallResponse = {
        status,
        statusName: statusName(status),
        message: head.message,
        acceptablePayment: head.acceptablePayment,
        server: pooled.remotePeer,
        head,
        proof: frame.payload,
        body: responseBody
      }
      if (status === Status.REFRESH_NONCE) {
        this.installChallenge(pooled.remotePeer, nonceState, nonce, await responseBody.bytes())
      }
      return response
    } catch (err: any) {
      discard(err)
      if (err instanceof MalformedMessageError || err instanceof DecodeError) {
        throw new ResponseVerificationError(`the server sent a malformed answer: ${err.message}`)
      }
      throw err
    } finally {
      if (fetcher && nonceState?.fetching != null) {
        // waiters go on, and one of them fetches again if this call got no challenge
        const { resolve } = nonceState.fetching
        nonceState.fetching = undefined
        resolve()
      }
    }
  }

  private verifyResponse (head: ResponseHead, signing: Uint8Array, remotePeer: string, digest: Uint8Array, nonce: Uint8Array): void {
    const first = head.credentials[0]
    if (first?.type !== CredentialType.OPENCLOUD || credentialText(first) !== `oc:${remotePeer}`) {
      throw new ResponseVerificationError(`the response is not signed by ${remotePeer}, the peer on this connection`)
    }
    try {
      this.verifier.verifyAll(head.credentials, head.signatures, signing)
    } catch (err: any) {
      throw new ResponseVerificationError(`the response signature does not verify: ${err.message}`)
    }
    // an all-zero digest answers a request the server could not parse
    if (!Buffer.from(head.requestDigest).equals(Buffer.from(digest)) && head.requestDigest.some(b => b !== 0)) {
      throw new ResponseVerificationError('the response answers a different request')
    }
    if (!Buffer.from(head.nonce).equals(Buffer.from(nonce)) && head.nonce.byteLength > 0) {
      throw new ResponseVerificationError('the response carries a different nonce')
    }
  }

  private responseBody (head: ResponseHead, pooled: PooledStream, signal: AbortSignal, done: () => void, fail: (err: Error) => void): ResponseBody {
    let read: Promise<Uint8Array> | undefined
    let started = false
    const iterate = async function * (): AsyncGenerator<Uint8Array> {
      if (started) {
        throw new Error('a response body can be read once')
      }
      started = true
      const hash = createHash('sha256')
      let received = 0
      try {
        while (received < head.bodyLength) {
          const frame = await pooled.reader.next(signal)
          if (frame == null) {
            throw new StreamEndedError(`the stream ended after ${received} of ${head.bodyLength} response bytes`)
          }
          if (frame.type !== FrameType.DATA || received + frame.length > head.bodyLength || frame.length === 0) {
            throw new ResponseVerificationError('the response body is not the length its head declares')
          }
          received += frame.length
          for (const part of frame.parts) {
            hash.update(part)
            yield part
          }
        }
        if (!Buffer.from(head.bodySha256).equals(hash.digest())) {
          throw new BodyDigestMismatchError('the response body does not match the digest the server signed')
        }
      } catch (err: any) {
        fail(err)
        throw err
      }
      done()
    }
    const body: ResponseBody = {
      length: head.bodyLength,
      sha256: head.bodySha256,
      [Symbol.asyncIterator]: () => {
        if (read != null) {
          // already collected by bytes(): replay it
          return (async function * () { yield await read })()
        }
        return iterate()
      },
      bytes: async () => {
        if (read == null) {
          read = (async () => {
            const parts: Uint8Array[] = []
            for await (const chunk of iterate()) {
              parts.push(chunk)
            }
            return Uint8Array.from(Buffer.concat(parts))
          })()
        }
        return read
      }
    }
    return body
  }

  private async sendBody (stream: Stream, body: OutgoingBody, signal: AbortSignal): Promise<void> {
    let sent = 0
    for await (const chunk of body.open(signal)) {
      sent += chunk.byteLength
      if (sent > body.length) {
        throw new Error(`the body produced more than the ${body.length} bytes it declared`)
      }
      await writeData(stream, chunk, signal)
    }
    if (sent !== body.length) {
      throw new Error(`the body produced ${sent} of the ${body.length} bytes it declared`)
    }
  }

  /**
   * The nonce state for a server. Without a live challenge the first call
   * goes out with an empty nonce to fetch one (the server answers
   * refresh-nonce), and calls that arrive meanwhile wait for it rather than
   * each asking for their own.
   */
  private async nonceFor (server: string, signal: AbortSignal): Promise<{ state: NonceState, fetcher: boolean }> {
    let state = this.nonces.get(server)
    if (state == null) {
      state = { expiresAt: 0, counter: 0n }
      this.nonces.set(server, state)
    }
    while (state.fetching != null) {
      await raceAbort(state.fetching.promise, signal)
    }
    if (state.challenge != null && state.expiresAt - NONCE_EXPIRY_MARGIN_MS > Date.now()) {
      return { state, fetcher: false }
    }
    state.challenge = undefined
    const fetching = Promise.withResolvers<void>()
    state.fetching = { promise: fetching.promise, resolve: fetching.resolve }
    return { state, fetcher: true }
  }

  private installChallenge (server: string, state: NonceState, usedNonce: Uint8Array, body: Uint8Array): void {
    const issued = decodeChallenge(body)
    const current = state.challenge
    // a call that raced with another refresh may carry an older challenge: keep the newer one
    const stale = current != null && usedNonce.byteLength > 0 && !Buffer.from(usedNonce.subarray(0, 16)).equals(Buffer.from(current))
    if (!stale && (current == null || !Buffer.from(issued.challenge).equals(Buffer.from(current)))) {
      state.challenge = issued.challenge
      state.expiresAt = issued.expiresAt
      state.counter = 0n
      log.trace('new nonce challenge from %s', server)
    }
  }

  private async acquire (peer: PeerId | Multiaddr, signal: AbortSignal, fresh = false): Promise<PooledStream> {
    if (this.stopped) {
      throw new Error('the RPC client is stopped')
    }
    const list = fresh ? undefined : this.idle.get(targetKey(peer))
    while (list != null && list.length > 0) {
      const pooled = list.pop() as PooledStream
      if (pooled.stream.status === 'open' && pooled.stream.writeStatus === 'writable' && pooled.stream.readStatus !== 'closed' && pooled.stream.remoteWriteStatus === 'writable' && pooled.reader.idle) {
        pooled.reused = true
        return pooled
      }
      clearTimeout(pooled.idleTimer)
      pooled.reader.release()
      if (pooled.stream.status === 'open') {
        pooled.stream.abort(new Error('the server closed its side'))
      }
    }
    let connection: RpcConnection
    try {
      connection = await this.components.dial(peer, { signal: AbortSignal.any([signal, AbortSignal.timeout(this.dialTimeoutMs)]) })
    } catch (err: any) {
      signal.throwIfAborted()
      throw err instanceof DialError ? err : new DialError(`cannot reach ${peer.toString()}: ${dialFailure(peer, err, this.dialTimeoutMs)}`)
    }
    const stream = await connection.newStream(RPC_PROTOCOL, { signal })
    // the client decides when a pooled stream is stale
    stream.inactivityTimeout = 0
    return { stream, reader: new FrameReader(stream), remotePeer: connection.remotePeer.toString() }
  }

  private release (peer: PeerId | Multiaddr, pooled: PooledStream): void {
    const key = targetKey(peer)
    const list = this.idle.get(key) ?? []
    if (this.stopped || list.length >= this.maxIdlePerPeer || pooled.stream.status !== 'open') {
      void this.closePooled(pooled)
      return
    }
    list.push(pooled)
    this.idle.set(key, list)
    if (pooled.idleTimer != null) {
      // one timer per stream, restarted at each release: a new one per call costs a small call more than it should
      pooled.idleTimer.refresh()
      return
    }
    pooled.idleTimer = setTimeout(() => {
      // it fires while the stream carries a call too: then it is not in the idle list, and its next release restarts it
      const idle = this.idle.get(key)
      const i = idle?.indexOf(pooled) ?? -1
      if (idle != null && i !== -1) {
        idle.splice(i, 1)
        void this.closePooled(pooled)
      }
    }, this.idleTimeoutMs)
    pooled.idleTimer.unref()
  }

  private discard (pooled: PooledStream, err?: Error): void {
    clearTimeout(pooled.idleTimer)
    pooled.reader.release()
    if (pooled.stream.status === 'open') {
      pooled.stream.abort(err ?? new Error('call abandoned'))
    }
  }

  private async closePooled (pooled: PooledStream): Promise<void> {
    clearTimeout(pooled.idleTimer)
    pooled.reader.release()
    try {
      await pooled.stream.close({ signal: AbortSignal.timeout(5_000) })
    } catch (err: any) {
      pooled.stream.abort(err)
    }
  }
}

/**
 * What went wrong in a dial, as one sentence a person can act on instead of
 * the transport's own words.
 */
function dialFailure (peer: PeerId | Multiaddr, err: any, timeoutMs: number): string {
  const message = String(err?.message ?? err)
  const mismatch = /Payload identity key (\S+) does not match expected remote identity key (\S+)/.exec(message)
  if (mismatch != null) {
    return `the peer at that address has another id (${mismatch[1]}, not ${mismatch[2]}): check the /p2p/ part of the address`
  }
  const refused = /ECONNREFUSED (\S+)/.exec(message)
  if (refused != null) {
    return `nothing is listening at ${refused[1]} (connection refused): is the peer running, and is the address right?`
  }
  const isPeerId = !('getComponents' in peer)
  if (err?.name === 'NoValidAddressesError' || err?.name === 'NotFoundError' || (isPeerId && err?.name === 'TimeoutError')) {
    return `no peer with that id was found in the DHT within ${timeoutMs / 1000} s: check the id, or give its multiaddr (/ip4/.../tcp/.../p2p/<PeerId>)`
  }
  if (err?.name === 'TimeoutError') {
    return `no answer within ${timeoutMs / 1000} s: is the peer running, and is the address reachable from here?`
  }
  return message
}

/** The server ended the stream cleanly without answering: it never read the request */
class UnansweredError extends StreamEndedError {}

/**
 * A small body is sent before the server has checked the nonce or the
 * payment, so a refresh-nonce retry, and a paid call's next offer after
 * too-low, send it again: keep its bytes. A large body is only opened after
 * CONTINUE, which comes after every check, so it is opened once and may be a
 * one-shot stream (an HTTP request body, stdin).
 */
export async function replayable (body: OutgoingBody, signal?: AbortSignal): Promise<OutgoingBody> {
  if (body.length === 0 || body.length > EAGER_BODY_LIMIT || isInMemory(body)) {
    return body
  }
  const chunks: Uint8Array[] = []
  for await (const chunk of body.open(signal)) {
    chunks.push(chunk)
  }
  // marked, so a caller that retries does not collect it again
  return inMemory({ length: body.length, sha256: body.sha256, open: async function * () { yield * chunks } })
}

/** Whether a promise settles (either way) within one macrotask turn, or at all when `wait` is set */
async function settledWithin (p: Promise<unknown>, wait = false): Promise<boolean> {
  if (wait) {
    try {
      await p
      return true
    } catch {
      return false
    }
  }
  let settled = false
  p.then(() => { settled = true }, () => { settled = true })
  await new Promise(resolve => setImmediate(resolve))
  return settled
}

async function raceAbort (p: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, reject)
  })
}
