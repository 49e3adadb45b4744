import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startTestNode, testConfig, type TestNode } from '../../helpers/nodes.ts'
import { RawRpc } from '../../helpers/raw-rpc.ts'
import { FrameType } from '../../../src/protocols/rpc/constants.ts'
import { encodeFrame, type FrameReader } from '../../../src/protocols/rpc/frames.ts'
import { decodeResponse } from '../../../src/protocols/rpc/messages.ts'
import { Status } from '../../../src/protocols/rpc/status.ts'
import { bodyFromBytes } from '../../../src/protocols/rpc/body.ts'

const BODY_TIMEOUT_MS = 600
const IDLE_TIMEOUT_MS = 1_500

/** The next frame as a decoded response, failing the test if none comes within `ms` */
async function nextResponse (reader: FrameReader, ms = 5_000): Promise<ReturnType<typeof decodeResponse>> {
  const frame = await reader.next(AbortSignal.timeout(ms))
  assert.ok(frame != null, 'the server closed the stream without answering')
  assert.equal(frame.type, FrameType.RESPONSE)
  return decodeResponse(frame.payload)
}

/** Resolves true when the server ends the stream within `ms` */
async function closedWithin (reader: FrameReader, ms: number): Promise<boolean> {
  try {
    while (true) {
      const frame = await reader.next(AbortSignal.timeout(ms))
      if (frame == null) {
        return true
      }
      // a body frame of the answer: keep reading
    }
  } catch (err: any) {
    if (err?.name === 'TimeoutError') {
      return false
    }
    // a reset is a close too
    return true
  }
}

/**
 * Malformed and stalled bodies written by hand, as an outside implementation
 * might send them (issue 7, item 9): every one is answered or closed
 * promptly, and a pooled client never waits forever.
 */
describe('stalled and overrun request bodies', () => {
  let client: TestNode
  let server: TestNode
  let raw: RawRpc
  let challenge: Uint8Array
  let counter = 1

  before(async () => {
    client = await startTestNode()
    server = await startTestNode({ config: testConfig({ rpc: { bodyTimeoutMs: BODY_TIMEOUT_MS, idleTimeoutMs: IDLE_TIMEOUT_MS } }) })
    raw = new RawRpc(client.node, server.node)
    challenge = await raw.challenge(client.node.signer)
  })

  after(async () => {
    await Promise.all([client?.destroy(), server?.destroy()])
  })

  /** A signed head declaring `declared` bytes, followed by the DATA frames given */
  function call (declared: Uint8Array, data: Uint8Array[]): Uint8Array[] {
    const [head] = RawRpc.request(client.node.signer, { nonce: RawRpc.nonce(challenge, counter++), bodyLength: declared.byteLength, bodySha256: bodyFromBytes(declared).sha256 })
    return [head, ...data.map(d => encodeFrame(FrameType.DATA, d).subarray())]
  }

  for (const [declared, sent] of [[5, 6], [5, 10], [65_536, 65_537]]) {
    it(`answers a body declared as ${declared} bytes and sent as one DATA frame of ${sent} with bad-request, then closes`, async () => {
      const { stream, reader } = await raw.openStream()
      for (const frame of call(new Uint8Array(declared), [new Uint8Array(sent)])) {
        stream.send(frame)
      }
      const { head } = await nextResponse(reader)
      assert.equal(head.status, Status.BAD_REQUEST)
      assert.match(head.message, /longer than the \d+ bytes/)
      assert.equal(await closedWithin(reader, 5_000), true, 'the stream stayed open')
    })
  }

  it('refuses a body that stops arriving once the body timeout passes, and closes the stream', async () => {
    const { stream, reader } = await raw.openStream()
    for (const frame of call(new Uint8Array(5), [new Uint8Array(3)])) {
      stream.send(frame)
    }
    const { head } = await nextResponse(reader, BODY_TIMEOUT_MS * 10)
    assert.equal(head.status, Status.BAD_REQUEST)
    assert.match(head.message, /no body bytes for 0.6 s after 3 of 5/)
    assert.equal(await closedWithin(reader, 5_000), true, 'the stream stayed open')
  })

  it('serves a body that pauses for less than the body timeout', async () => {
    const { stream, reader } = await raw.openStream()
    const [head, first, rest] = call(new Uint8Array(5), [new Uint8Array(3), new Uint8Array(2)])
    stream.send(head)
    stream.send(first)
    await new Promise(resolve => setTimeout(resolve, BODY_TIMEOUT_MS / 3))
    stream.send(rest)
    const { head: answer } = await nextResponse(reader)
    assert.equal(answer.status, Status.OK, answer.message)
    await stream.close()
  })

  it('answers a short body followed by a new request, then closes rather than dropping the second call silently', async () => {
    const { stream, reader } = await raw.openStream()
    const [first, short] = call(new Uint8Array(5), [new Uint8Array(3)])
    const [second] = call(new Uint8Array(0), [])
    stream.send(first)
    stream.send(short)
    stream.send(second)
    const { head } = await nextResponse(reader)
    assert.equal(head.status, Status.BAD_REQUEST)
    assert.match(head.message, /expected a DATA frame inside the body \(3 of 5 bytes received\), got type 1/)
    assert.equal(await closedWithin(reader, 5_000), true, 'the stream stayed open with the second request unanswered')
  })

  it('closes a stream that carries no request for the idle timeout', async () => {
    const { reader } = await raw.openStream()
    assert.equal(await closedWithin(reader, IDLE_TIMEOUT_MS * 5), true, 'the idle stream was never closed')
  })

  it('restarts the idle timeout at each call, and closes the stream once it is idle after the last', async () => {
    const { stream, reader } = await raw.openStream()
    const started = Date.now()
    // calls spaced at 0.6 of the idle timeout, over more than twice the idle timeout
    while (Date.now() - started < IDLE_TIMEOUT_MS * 2.2) {
      for (const frame of call(new Uint8Array(0), [])) {
        stream.send(frame)
      }
      const { head } = await nextResponse(reader)
      assert.equal(head.status, Status.OK, `the stream carried no call ${Date.now() - started} ms after it opened: ${head.message}`)
      // the digest the answer carries
      assert.equal((await reader.next(AbortSignal.timeout(5_000)))?.type, FrameType.DATA)
      await new Promise(resolve => setTimeout(resolve, IDLE_TIMEOUT_MS * 0.6))
    }
    assert.equal(await closedWithin(reader, IDLE_TIMEOUT_MS * 5), true, 'the idle stream was never closed')
  })

  it('sends a call again on a new stream when the server closed the pooled one, and rates nobody', async () => {
    const target = server.node.libp2p.getMultiaddrs()[0]
    const first = await client.node.call(target, { service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode('one')) })
    assert.equal(first.status, Status.OK)
    // the server closes the stream the client pooled
    await new Promise(resolve => setTimeout(resolve, IDLE_TIMEOUT_MS + 500))
    const second = await client.node.call(target, { service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode('two')) })
    assert.equal(second.status, Status.OK)
    const records = await client.node.reputation.store.records(server.node.peerId.toString())
    assert.ok(!records.some(r => r.outcome === 'unsatisfactory'), JSON.stringify(records))
  })

  it('keeps serving well-formed calls on new streams after all of that', async () => {
    const r = await client.node.call(server.node.peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode('fine')) })
    assert.equal(r.status, Status.OK)
  })
})
