import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { startTestNode, testConfig, addrOf, type TestNode } from '../helpers/nodes.ts'
import { RawRpc } from '../helpers/raw-rpc.ts'
import { FrameType } from '../../src/protocols/rpc/constants.ts'
import { encodeFrame } from '../../src/protocols/rpc/frames.ts'
import { decodeResponse } from '../../src/protocols/rpc/messages.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { Status } from '../../src/protocols/rpc/status.ts'

/**
 * A few bad peers cannot shut out the rest (issue 8, items 6 and 7): idle
 * sockets that never finish a handshake, and bodies dripped a byte at a
 * time, against a node while a good peer connects and calls. Loopback only:
 * the attacker speaks from 127.0.0.2, the good peer from 127.0.0.1.
 */
describe('a node under idle-socket and drip attacks', () => {
  let server: TestNode
  let good: TestNode
  const sockets: Socket[] = []

  before(async () => {
    server = await startTestNode({ config: testConfig({ rpc: { bodyTimeoutMs: 1000 } }) })
  })

  after(async () => {
    for (const s of sockets) s.destroy()
    await good?.destroy()
    await server?.destroy()
  })

  it('lets a new peer connect and call while 12 idle sockets from one host sit in their handshake', async () => {
    const port = Number(/\/tcp\/(\d+)/.exec(addrOf(server.node))?.[1])
    // four a second: under libp2p's per-host rate limit of five, so every
    // one of them is accepted and waits in its handshake
    for (let i = 0; i < 12; i++) {
      const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' })
      socket.on('error', () => {})
      sockets.push(socket)
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    assert.ok(sockets.filter(s => !s.destroyed).length >= 8, 'the idle sockets are held open')
    good = await startTestNode()
    const started = Date.now()
    const answer = await good.node.call(addrOf(server.node), { service: 'info', method: 'node', signal: AbortSignal.timeout(8_000) })
    assert.equal(answer.status, Status.OK)
    assert.ok(Date.now() - started < 8_000)
  })

  it('refuses a body dripped a byte at a time once it falls behind the minimum rate, and closes its stream', async () => {
    const raw = new RawRpc(good.node, server.node)
    const challenge = await raw.challenge(good.node.signer)
    const declared = new Uint8Array(100)
    const [head] = RawRpc.request(good.node.signer, { nonce: RawRpc.nonce(challenge, 1), bodyLength: declared.byteLength, bodySha256: bodyFromBytes(declared).sha256 })
    const { stream, reader } = await raw.openStream()
    stream.send(head)
    const drip = setInterval(() => {
      try { stream.send(encodeFrame(FrameType.DATA, new Uint8Array(1)).subarray()) } catch {}
    }, 300)
    try {
      const started = Date.now()
      const frame = await reader.next(AbortSignal.timeout(10_000))
      assert.ok(frame != null && frame.type === FrameType.RESPONSE)
      const { head: answer } = decodeResponse(frame.payload)
      assert.equal(answer.status, Status.BAD_REQUEST)
      assert.match(answer.message, /the body arrives slower than 1024 bytes\/s/)
      // 1 s of body timeout plus 1 s for 100 bytes at 1 KiB/s
      assert.ok(Date.now() - started < 4_000, `${Date.now() - started} ms`)
    } finally {
      clearInterval(drip)
    }
  })
})
