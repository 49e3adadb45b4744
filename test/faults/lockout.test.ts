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

/** Idle TCP sockets from one loopback address that never start a handshake */
interface IdleSockets {
  host: string
  sockets: Socket[]
  /** how many the server has closed so far */
  closed: () => number
}

/** Open `count` sockets from `host` to `port` at once; resolves when all are connected */
async function openIdleSockets (host: string, port: number, count: number): Promise<IdleSockets> {
  const sockets: Socket[] = []
  let closed = 0
  await Promise.all(Array.from({ length: count }, async () => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: host })
    socket.on('error', () => {})
    socket.once('close', () => { closed++ })
    sockets.push(socket)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('close', () => { reject(new Error(`a socket from ${host} closed before it connected`)) })
    })
  }))
  return { host, sockets, closed: () => closed }
}

/**
 * A few bad peers cannot shut out the rest (issue 8, items 6 and 7): idle
 * sockets that never finish a handshake, and bodies dripped a byte at a
 * time, against a node while a good peer connects and calls. Loopback only:
 * the attackers speak from 127.0.0.2 to 127.0.0.4, the good peer from
 * 127.0.0.1.
 */
describe('a node under idle-socket and drip attacks', () => {
  let server: TestNode
  let good: TestNode
  const attacks: IdleSockets[] = []

  before(async () => {
    server = await startTestNode({ config: testConfig({ rpc: { bodyTimeoutMs: 1000 } }) })
    good = await startTestNode()
  })

  after(async () => {
    for (const s of attacks.flatMap(a => a.sockets)) s.destroy()
    await good?.destroy()
    await server?.destroy()
  })

  it('holds at most 8 handshakes from one host, and lets a new peer connect and call while three hosts hold 24', async () => {
    const port = Number(/\/tcp\/(\d+)/.exec(addrOf(server.node))?.[1])
    // 12 sockets from each of three hosts: each host's 9th to 12th are over
    // the inbound gate's 8 per host; the 24 it holds are over libp2p's own
    // default of 10 pending handshakes in all, which locked every new peer
    // out until the idle ones timed out (the node allows 64)
    for (const host of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      attacks.push(await openIdleSockets(host, port, 12))
    }
    // the server accepts connections in the order they arrive, so the good
    // peer's comes after every idle socket: the gate has counted them all
    // and holds 24 handshakes open while it is upgraded
    const answer = await good.node.call(addrOf(server.node), { service: 'info', method: 'node', signal: AbortSignal.timeout(8_000) })
    // before the idle sockets' 5 s handshake allowance runs out, the only
    // sockets the server has closed are those the gate refused
    const held = attacks.map(a => ({ host: a.host, held: a.sockets.length - a.closed(), refused: a.closed() }))
    assert.equal(answer.status, Status.OK)
    assert.deepEqual(held, attacks.map(a => ({ host: a.host, held: 8, refused: 4 })))
  })

  it('refuses a body dripped a byte at a time once it falls behind the minimum rate, and closes its stream', async () => {
    const raw = new RawRpc(good.node, server.node)
    const challenge = await raw.challenge(good.node.signer)
    const declared = new Uint8Array(100)
    const [head] = RawRpc.request(good.node.signer, { nonce: RawRpc.nonce(challenge, 1), bodyLength: declared.byteLength, bodySha256: bodyFromBytes(declared).sha256 })
    const { stream, reader } = await raw.openStream()
    stream.send(head)
    // a byte every 300 ms never leaves the body idle for the 1 s body
    // timeout, so only the rate (1 KiB/s after that allowance) can stop it;
    // dripped to the end, the 100 bytes would take 30 s
    const drip = setInterval(() => {
      try { stream.send(encodeFrame(FrameType.DATA, new Uint8Array(1)).subarray()) } catch {}
    }, 300)
    try {
      const frame = await reader.next(AbortSignal.timeout(10_000))
      assert.ok(frame != null && frame.type === FrameType.RESPONSE)
      const { head: answer } = decodeResponse(frame.payload)
      assert.equal(answer.status, Status.BAD_REQUEST)
      const received = /the body arrives slower than 1024 bytes\/s \((\d+) of 100 bytes\); the call is refused and the stream closed/.exec(answer.message)
      assert.ok(received != null, answer.message)
      assert.ok(Number(received[1]) < 100, 'refused before the body was complete')
      // the server closes its side after the answer: no further frame comes
      assert.equal(await reader.next(AbortSignal.timeout(10_000)), null)
    } finally {
      clearInterval(drip)
    }
  })
})
