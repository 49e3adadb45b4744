import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { addrOf, startTestNode, testConfig, tempDir, waitFor, type TestNode } from '../helpers/nodes.ts'
import { DEFAULT_CONFIG } from '../../src/node/config.ts'
import { RawRpc } from '../helpers/raw-rpc.ts'
import { bodyFromBytes, bodyFromFile } from '../../src/protocols/rpc/body.ts'
import { openCloudSigner, CredentialVerifier } from '../../src/protocols/rpc/credentials.ts'
import { RpcClient } from '../../src/protocols/rpc/rpc-client.ts'
import { multiaddr } from '@multiformats/multiaddr'
import { Status } from '../../src/protocols/rpc/status.ts'
import { FrameType, MAX_DATA_FRAME, RPC_PROTOCOL } from '../../src/protocols/rpc/constants.ts'
import { encodeFrame, WRITE_HIGH_WATER_MARK } from '../../src/protocols/rpc/frames.ts'
import type { Stream } from '@libp2p/interface'
import { Units } from '../../src/protocols/units.ts'
import {
  AccessDeniedError, BodyTooLargeError, MethodUnsupportedError, PaymentTooLowError,
  RateLimitedError, ServiceUnsupportedError, NoDeferError
} from '../../src/protocols/rpc/errors.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'

const sha256hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')
const text = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('OpenCloud RPC between two nodes over TCP', () => {
  let client: TestNode
  let server: TestNode
  let other: TestNode

  before(async () => {
    client = await startTestNode()
    other = await startTestNode()
    server = await startTestNode({
      config: testConfig({
        rpc: { maxBodyBytes: 1024 * 1024 },
        // prices need payments on; no call here pays on chain, so no chain answers at this URL
        payments: { ...DEFAULT_CONFIG.payments, chain: 'http://127.0.0.1:9' },
        services: { sha256: { prices: { hash: 0 } }, peers: { prices: { list: 25 } } },
        policies: {
          method: { 'sha256.info': { 'rate-limit': '2/m' }, 'peers.find': { 'min-payment': '300 sat' } },
          credential: { [`oc:${other.node.peerId.toString()}`]: { deny: true } }
        }
      })
    })
  })

  after(async () => {
    await Promise.all([client?.destroy(), server?.destroy(), other?.destroy()])
  })

  it('hashes a body with sha256.hash and signs the answer', async () => {
    const response = await client.node.call(server.node.libp2p.getMultiaddrs()[0], {
      service: 'sha256', method: 'hash', body: bodyFromBytes(text('hello'))
    })
    assert.equal(response.status, Status.OK)
    assert.equal(response.server, server.node.peerId.toString())
    assert.equal(Buffer.from(await response.body.bytes()).toString('hex'), sha256hex(text('hello')))
    // the proof is a signed response head that verifies on its own
    const { decodeResponse } = await import('../../src/protocols/rpc/messages.ts')
    const proof = decodeResponse(response.proof)
    new CredentialVerifier().verifyAll(proof.head.credentials, proof.head.signatures, proof.signing)
  })

  it('answers the template methods info, methods and quote from the prices it enforces', async () => {
    const info = JSON.parse(new TextDecoder().decode(await (await client.node.call(server.node.peerId, { service: 'sha256', method: 'info' })).body.bytes()))
    assert.equal(info.name, 'sha256')
    const methods = JSON.parse(new TextDecoder().decode(await (await client.node.call(server.node.peerId, { service: 'peers', method: 'methods' })).body.bytes()))
    assert.deepEqual(methods.map((m: any) => m.name), ['info', 'methods', 'quote', 'list', 'find'])
    assert.equal(methods.find((m: any) => m.name === 'list').price, '0.00000025 BTC')
    const quote = JSON.parse(new TextDecoder().decode(await (await client.node.call(server.node.peerId, { service: 'peers', method: 'quote', args: ['list', '4'] })).body.bytes()))
    assert.equal(quote.total, '0.000001 BTC')
    // a min-payment policy raises the quote to what the payment check enforces
    const raised = JSON.parse(new TextDecoder().decode(await (await client.node.call(server.node.peerId, { service: 'peers', method: 'quote', args: ['find'] })).body.bytes()))
    assert.equal(raised.total, '0.000003 BTC')
    await assert.rejects(client.node.call(server.node.peerId, { service: 'peers', method: 'find', args: ['sha256'] }), (err: any) => {
      assert.deepEqual(err.acceptablePayment, { type: 'attached', currency: 'BTC', amount: '0.000003' })
      return true
    })
    // the priced method is refused with a payment the caller can make: 25 sat
    // is under the 294-sat dust limit, so no attached payment of it can exist
    await assert.rejects(client.node.call(server.node.peerId, { service: 'peers', method: 'list' }), (err: any) => {
      assert.ok(err instanceof PaymentTooLowError)
      assert.match(err.message, /costs 0.00000025 BTC/)
      assert.deepEqual(err.acceptablePayment, { type: 'attached', currency: 'BTC', amount: '0.00000294' })
      return true
    })
    await assert.rejects(client.node.call(server.node.peerId, {
      service: 'peers', method: 'list', payment: { type: 'defer', currency: 'BTC', amount: '0.00000025', id: 'tab-1', threshold: '' }
    }), NoDeferError)
  })

  it('keeps many calls in flight between the same two peers', async () => {
    const bodies = Array.from({ length: 100 }, (_, i) => text(`call ${i}`))
    const answers = await Promise.all(bodies.map(async b => {
      const r = await client.node.call(server.node.peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(b) })
      return Buffer.from(await r.body.bytes()).toString('hex')
    }))
    assert.deepEqual(answers, bodies.map(sha256hex))
  })

  it('streams a body larger than one frame from a file', async () => {
    const dir = await tempDir()
    try {
      const data = Buffer.alloc(700 * 1024 + 7, 0x5a)
      const path = join(dir.path, 'body.bin')
      await writeFile(path, data)
      const r = await client.node.call(server.node.peerId, { service: 'sha256', method: 'hash', body: await bodyFromFile(path) })
      assert.equal(Buffer.from(await r.body.bytes()).toString('hex'), sha256hex(data))
    } finally {
      await dir.cleanup()
    }
  })

  it('refuses an unknown service and an unknown method', async () => {
    await assert.rejects(client.node.call(server.node.peerId, { service: 'compute', method: 'run' }), (err: any) => {
      assert.ok(err instanceof ServiceUnsupportedError)
      assert.match(err.message, /does not run a "compute" service/)
      return true
    })
    await assert.rejects(client.node.call(server.node.peerId, { service: 'sha256', method: 'sign' }), MethodUnsupportedError)
  })

  it('refuses a caller its policy denies', async () => {
    await assert.rejects(other.node.call(server.node.libp2p.getMultiaddrs()[0], { service: 'sha256', method: 'hash' }), (err: any) => {
      assert.ok(err instanceof AccessDeniedError)
      assert.match(err.message, /credential oc:/)
      return true
    })
  })

  it('rate-limits one caller without slowing another', async () => {
    const call = async (from: TestNode): Promise<unknown> => from.node.call(server.node.libp2p.getMultiaddrs()[0], { service: 'sha256', method: 'info' })
    const [first, second] = await Promise.all([startTestNode(), startTestNode()])
    try {
      await call(first)
      await call(first)
      await assert.rejects(call(first), (err: any) => {
        assert.ok(err instanceof RateLimitedError)
        assert.match(err.message, /2\/m; retry in/)
        return true
      })
      await call(second)
      await call(second)
    } finally {
      await Promise.all([first.destroy(), second.destroy()])
    }
  })

  it('refuses a body over the limit with body-too-large and keeps serving the stream', async () => {
    const big = bodyFromBytes(new Uint8Array(2 * 1024 * 1024))
    await assert.rejects(client.node.call(server.node.peerId, { service: 'sha256', method: 'hash', body: big }), (err: any) => {
      assert.ok(err instanceof BodyTooLargeError)
      assert.match(err.message, /at most 1048576/)
      return true
    })
    const r = await client.node.call(server.node.peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(text('after')) })
    assert.equal(r.status, Status.OK)
  })

  it('refuses a forged signature and an impersonated credential', async () => {
    const raw = new RawRpc(client.node, server.node)
    const forged = RawRpc.request(client.node.signer, { service: 'sha256', method: 'hash' }, signing => {
      const sig = Buffer.from(client.node.signer.sign(signing))
      sig[10] ^= 0xff
      return [sig]
    })
    const { response } = await raw.exchange(forged)
    assert.equal(response.head.status, Status.INVALID_SIGNATURE)
    assert.match(response.head.message, /does not verify/)

    // another node's credential signed with a key that is not its own
    const mallory = openCloudSigner(await generateKeyPair('Ed25519'))
    const impersonation = RawRpc.request(mallory, { credentials: [server.node.signer.credential] })
    const answer = await raw.exchange(impersonation)
    assert.equal(answer.response.head.status, Status.INVALID_SIGNATURE)
  })

  it('asks for a fresh nonce, then refuses the same request replayed', async () => {
    const raw = new RawRpc(client.node, server.node)
    const signer = openCloudSigner(await generateKeyPair('Ed25519'))
    const challenge = await raw.challenge(signer)
    const request = RawRpc.request(signer, { nonce: RawRpc.nonce(challenge, 5), body: text('once') })
    const first = await raw.exchange(request)
    assert.equal(first.response.head.status, Status.OK)
    assert.equal(Buffer.from(first.body).toString('hex'), sha256hex(text('once')))
    const replay = await raw.exchange(request)
    assert.equal(replay.response.head.status, Status.REFRESH_NONCE)
    assert.match(replay.response.head.message, /replay/)
    assert.equal(replay.body.byteLength, 24, 'a refresh-nonce answer carries a new challenge')
    // a nonce issued to one caller is no good to another
    const stolen = RawRpc.request(client.node.signer, { nonce: RawRpc.nonce(challenge, 6) })
    const refused = await raw.exchange(stolen)
    assert.equal(refused.response.head.status, Status.REFRESH_NONCE)
    assert.match(refused.response.head.message, /another caller/)
  })

  it('answers malformed frames with bad-request and stays up', async () => {
    const raw = new RawRpc(client.node, server.node)
    const unknownType = await raw.exchange([Uint8Array.from([0x03, 0x09, 0x01, 0x02])])
    assert.equal(unknownType.response.head.status, Status.BAD_REQUEST)
    assert.match(unknownType.response.head.message, /unknown frame type 9/)

    const truncated = await raw.exchange([encodeFrame(FrameType.REQUEST, Uint8Array.from([0x01, 0x40, 0x01])).subarray()])
    assert.equal(truncated.response.head.status, Status.BAD_REQUEST)

    const huge = await raw.exchange([Uint8Array.from([0xff, 0xff, 0xff, 0x7f, 0x01])])
    assert.equal(huge.response.head.status, Status.BAD_REQUEST)
    assert.match(huge.response.head.message, /over the limit/)

    const challenge = await raw.challenge(client.node.signer)
    const mismatched = RawRpc.request(client.node.signer, { nonce: RawRpc.nonce(challenge, 1), body: text('real'), bodySha256: createHash('sha256').update('other').digest() })
    const answer = await raw.exchange(mismatched)
    assert.equal(answer.response.head.status, Status.BAD_REQUEST, answer.response.head.message)
    assert.match(answer.response.head.message, /does not match/)

    const r = await client.node.call(server.node.peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(text('still up')) })
    assert.equal(r.status, Status.OK)
  })

  it('says clearly when a peer cannot be reached', async () => {
    const stranger = await startTestNode()
    const unknown = stranger.node.peerId
    await stranger.destroy()
    await assert.rejects(client.node.client.call(unknown, { service: 'info', method: 'info', signal: AbortSignal.timeout(30_000) }), (err: any) => {
      assert.equal(err.name, 'DialError')
      assert.match(err.message, /cannot reach 12D3KooW\S+: no peer with that id was found in the DHT/)
      return true
    })
    // the address of one peer with the id of another
    const wrongId = addrOf(server.node).replace(/\/p2p\/.*$/, `/p2p/${unknown.toString()}`)
    await assert.rejects(client.node.call(wrongId, { service: 'info', method: 'info' }), /the peer at that address has another id \(12D3KooW\S+, not 12D3KooW\S+\): check the \/p2p\/ part/)
    await assert.rejects(client.node.call(`/ip4/127.0.0.1/tcp/1/p2p/${unknown.toString()}`, { service: 'info', method: 'info' }), /nothing is listening at 127.0.0.1:1 \(connection refused\)/)
  })

  it('queues 1,000 concurrent calls to one peer instead of failing them, and rates nobody for its own limits', async () => {
    const target = addrOf(server.node)
    const results = await Promise.allSettled(Array.from({ length: 1000 }, async (_, i) =>
      client.node.call(target, { service: 'sha256', method: 'hash', body: bodyFromBytes(text(`call ${i}`)) })))
    const failed = results.filter(r => r.status === 'rejected')
    assert.equal(failed.length, 0, String((failed[0] as PromiseRejectedResult | undefined)?.reason))
    const records = await client.node.reputation.store.records(server.node.peerId.toString())
    assert.ok(!records.some(r => r.outcome === 'unsatisfactory'), 'no false ratings of a healthy server')

    // past its queue, a client says so itself
    const small = new RpcClient({ dial: async (peer, options) => client.node.libp2p.dial(peer, options) }, { signer: client.node.signer, verifier: new CredentialVerifier(), maxStreamsPerPeer: 2, maxQueuedPerPeer: 3 })
    try {
      const burst = await Promise.allSettled(Array.from({ length: 10 }, async () => small.call(multiaddr(target), { service: 'info', method: 'node' })))
      assert.equal(burst.filter(r => r.status === 'fulfilled').length, 5)
      for (const r of burst.filter(r => r.status === 'rejected')) {
        assert.equal((r as PromiseRejectedResult).reason.name, 'CallQueueFullError')
        assert.match((r as PromiseRejectedResult).reason.message, /3 calls to .* already wait for one of the 2 in flight to end/)
      }
    } finally {
      await small.stop()
    }
  })

  it('keeps status messages within 1,024 bytes when they quote a long argument, and rates nobody for it', async () => {
    const long = 'é'.repeat(1500)
    await assert.rejects(client.node.call(addrOf(server.node), { service: 'market', method: 'prices', args: [long] }), (err: any) => {
      assert.equal(err.name, 'BadRequestError')
      assert.ok(Buffer.byteLength(err.message) <= 1024, `${Buffer.byteLength(err.message)} bytes`)
      assert.match(err.message, /^"éé.*…$/)
      return true
    })
    const records = await client.node.reputation.store.records(server.node.peerId.toString())
    assert.ok(!records.some(r => r.outcome === 'unsatisfactory'), 'the server was not rated down')
  })

  it('serves calls to the node itself through the same pipeline', async () => {
    const own = await server.node.call(server.node.peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(text('to myself')) })
    assert.equal(own.server, server.node.peerId.toString())
    assert.equal(Buffer.from(await own.body.bytes()).toString('hex'), sha256hex(text('to myself')))
    // policies and prices apply as to anyone: peers.list is priced
    await assert.rejects(server.node.call(server.node.peerId.toString(), { service: 'peers', method: 'list' }), PaymentTooLowError)
    assert.equal((await server.node.reputation.store.records(server.node.peerId.toString())).length, 0, 'a node keeps no opinion of itself')
  })

  it('fails at once, saying why, when a lone node is asked for an unknown PeerId', async () => {
    const lone = await startTestNode()
    // it knows at once that nobody can tell it where the peer is: it asks
    // neither libp2p to dial (which would wait out a peer-routing lookup
    // with no one to ask) nor the DHT
    const dial = lone.node.libp2p.dial
    const dials: unknown[] = []
    lone.node.libp2p.dial = async (...args: Parameters<typeof dial>) => { dials.push(args[0]); return dial.apply(lone.node.libp2p, args) }
    try {
      await assert.rejects(lone.node.call(client.node.peerId, { service: 'info', method: 'node' }), { name: 'DialError', message: /no peer with that id is known, and this node is connected to no peers to ask the DHT; start it with --bootstrap <multiaddr>, or call the peer by its multiaddr/ })
      assert.deepEqual(dials, [], 'it dialled')
    } finally {
      await lone.destroy()
    }
  })

  it('refuses requests without an OpenCloud ID credential by default', async () => {
    const raw = new RawRpc(client.node, server.node)
    const anonymous = RawRpc.request(client.node.signer, { credentials: [] }, () => [])
    const { response } = await raw.exchange(anonymous)
    assert.equal(response.head.status, Status.BAD_REQUEST)
    assert.match(response.head.message, /requires an OpenCloud ID/)
  })
})

describe('a 32 MiB body to a service that stops reading after its first piece', () => {
  it('holds the sender back, its write buffer under the high-water mark, and arrives whole', async () => {
    const client = await startTestNode()
    const server = await startTestNode()
    const size = 32 * 1024 * 1024
    let produced = 0
    /** the client's RPC streams to the server */
    const rpcStreams = (): Stream[] => client.node.libp2p.getConnections(server.node.peerId).flatMap(c => c.streams).filter(s => s.protocol === RPC_PROTOCOL)
    let heldBackAt: number | undefined
    server.node.registry.register({
      name: 'late',
      version: '1.0.0',
      description: 'hashes its body, pausing after the first piece until the caller has to wait',
      methods: {
        hash: {
          description: 'SHA-256 of the body',
          unit: Units.MIB,
          handle: async ctx => {
            const h = createHash('sha256')
            for await (const part of ctx.body) {
              if (heldBackAt == null) {
                // the first piece (asking for it sent CONTINUE): read no more
                // until the client's writer is held back (its stream needs a
                // drain, and it has produced nothing since the last look) or
                // has produced the whole body. A server that took the body in
                // whole, unasked, or a writer that does not wait, never is
                let last = -1
                await waitFor(() => {
                  const waiting = produced === last && rpcStreams().some(s => s.writableNeedsDrain)
                  last = produced
                  return waiting || produced === size
                }, 10_000, 'the writer to be held back or done')
                heldBackAt = produced
              }
              h.update(part)
            }
            return { body: Uint8Array.from(h.digest()) }
          }
        }
      }
    })
    try {
      const block = Buffer.alloc(MAX_DATA_FRAME, 0x42)
      const hash = createHash('sha256')
      for (let n = 0; n < size; n += block.length) {
        hash.update(block.subarray(0, Math.min(block.length, size - n)))
      }
      // what the client's RPC stream has queued each time its writer takes
      // the next piece of the body: a writer that waits for the transport
      // has less than the high-water mark queued then (the @libp2p/utils
      // onDrain bug let gigabytes queue). A figure for memory is
      // bench/rpc/memory's
      const queued: number[] = []
      const body = {
        length: size,
        sha256: Uint8Array.from(hash.digest()),
        open: async function * () {
          for (let n = 0; n < size; n += block.length) {
            queued.push(Math.max(0, ...rpcStreams().map(s => s.writeBufferLength)))
            const piece = block.subarray(0, Math.min(block.length, size - n))
            produced += piece.byteLength
            yield piece
          }
        }
      }
      const r = await client.node.call(server.node.libp2p.getMultiaddrs()[0], { service: 'late', method: 'hash', body })
      assert.equal(Buffer.from(await r.body.bytes()).toString('hex'), Buffer.from(body.sha256).toString('hex'))
      assert.equal(queued.length, Math.ceil(size / block.length))
      const most = Math.max(...queued)
      assert.ok(most < WRITE_HIGH_WATER_MARK, `${most} bytes were queued on the stream when the writer took more (the high-water mark is ${WRITE_HIGH_WATER_MARK})`)
      assert.ok(heldBackAt != null && heldBackAt < size, `the writer was held back after ${heldBackAt} of ${size} bytes`)
    } finally {
      await Promise.all([client.destroy(), server.destroy()])
    }
  })
})
