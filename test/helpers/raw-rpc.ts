import { FrameType, REQUEST_DOMAIN, RPC_PROTOCOL } from '../../src/protocols/rpc/constants.ts'
import { FrameReader, encodeFrame } from '../../src/protocols/rpc/frames.ts'
import { decodeResponse, encodeHead, encodeRequestSigned, signingBytes, type DecodedResponse, type UnsignedRequest } from '../../src/protocols/rpc/messages.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { decodeChallenge, makeNonce } from '../../src/protocols/rpc/nonce-store.ts'
import { Status } from '../../src/protocols/rpc/status.ts'
import type { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import type { CredentialSigner } from '../../src/protocols/rpc/credentials.ts'
import type { Stream } from '@libp2p/interface'

/**
 * Speak the wire protocol by hand, so tests can send what the real client
 * never would: forged signatures, replayed bytes, malformed frames.
 */
export class RawRpc {
  private readonly from: OpenCloudNode
  private readonly to: OpenCloudNode

  constructor (from: OpenCloudNode, to: OpenCloudNode) {
    this.from = from
    this.to = to
  }

  async openStream (): Promise<{ stream: Stream, reader: FrameReader }> {
    const connection = await this.from.libp2p.dial(this.to.libp2p.getMultiaddrs()[0])
    const stream = await connection.newStream(RPC_PROTOCOL)
    return { stream, reader: new FrameReader(stream) }
  }

  /** Send raw bytes on a fresh stream and read back one response (head and body) */
  async exchange (bytes: Uint8Array[]): Promise<{ response: DecodedResponse, body: Uint8Array }> {
    const { stream, reader } = await this.openStream()
    return exchangeOn(stream, bytes, reader)
  }

  /** A signed request head frame (and its body frames) as bytes */
  static request (signer: CredentialSigner, fields: Partial<UnsignedRequest> & { body?: Uint8Array }, sign?: (signing: Uint8Array) => Uint8Array[]): Uint8Array[] {
    const body = bodyFromBytes(fields.body ?? new Uint8Array(0))
    const unsigned: UnsignedRequest = {
      credentials: fields.credentials ?? [signer.credential],
      nonce: fields.nonce ?? new Uint8Array(0),
      service: fields.service ?? 'sha256',
      method: fields.method ?? 'hash',
      args: fields.args ?? [],
      payment: fields.payment ?? { type: 'none' },
      bodyLength: fields.bodyLength ?? body.length,
      bodySha256: fields.bodySha256 ?? body.sha256
    }
    const signed = encodeRequestSigned(unsigned)
    const signing = signingBytes(REQUEST_DOMAIN, signed)
    const signatures = sign?.(signing) ?? [signer.sign(signing)]
    const frames = [encodeFrame(FrameType.REQUEST, encodeHead(signatures, signed)).subarray()]
    if (fields.body != null && fields.body.byteLength > 0) {
      frames.push(encodeFrame(FrameType.DATA, fields.body).subarray())
    }
    return frames
  }

  /** Ask for a nonce challenge the way a fresh client does: an empty nonce */
  async challenge (signer: CredentialSigner): Promise<Uint8Array> {
    const { response, body } = await this.exchange(RawRpc.request(signer, { service: 'info', method: 'info' }))
    if (response.head.status !== Status.REFRESH_NONCE) {
      throw new Error(`expected refresh-nonce, got ${response.head.status}`)
    }
    return decodeChallenge(body).challenge
  }

  static nonce (challenge: Uint8Array, counter: number): Uint8Array {
    return makeNonce(challenge, BigInt(counter))
  }
}

/**
 * Send raw bytes on `stream` and read back one response (head and body),
 * then close it: any stream to an RPC server, a dialled one or one end of an
 * in-memory pair served with `RpcServer.serveLocal` (`reader`: the stream's
 * reader, when it has one already)
 */
export async function exchangeOn (stream: Stream, bytes: Uint8Array[], reader = new FrameReader(stream)): Promise<{ response: DecodedResponse, body: Uint8Array }> {
  for (const b of bytes) {
    stream.send(b)
  }
  const frame = await reader.next(AbortSignal.timeout(10_000))
  if (frame == null) {
    throw new Error('no response')
  }
  if (frame.type !== FrameType.RESPONSE) {
    throw new Error(`expected a response frame, got ${frame.type}`)
  }
  const response = decodeResponse(frame.payload)
  const parts: Uint8Array[] = []
  let received = 0
  while (received < response.head.bodyLength) {
    const data = await reader.next(AbortSignal.timeout(10_000))
    if (data == null) {
      break
    }
    parts.push(data.payload)
    received += data.payload.byteLength
  }
  await stream.close().catch(() => {})
  return { response, body: Uint8Array.from(Buffer.concat(parts)) }
}
