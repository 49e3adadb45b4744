import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { startTestNode, testConfig, addrOf, type TestNode } from '../helpers/nodes.ts'
import { ApiServer } from '../../src/node/api/api-server.ts'
import { DEFAULT_CONFIG } from '../../src/node/config.ts'
import { encodeOffer } from '../../src/market/offer.ts'
import { openCloudSigner } from '../../src/protocols/rpc/credentials.ts'

/**
 * `call auto` never settles on a provider it cannot reach (issue 8, item
 * 11): a fake identity's offer, cheapest of all, is passed over for the next
 * provider, which answers.
 */
describe('call auto against an unreachable cheapest provider', () => {
  let client: TestNode
  let provider: TestNode
  let api: ApiServer

  before(async () => {
    // prices need payments on; no call here pays, so no chain answers at this URL
    const payments = { ...DEFAULT_CONFIG.payments, chain: 'http://127.0.0.1:9' }
    provider = await startTestNode({ config: testConfig({ payments, services: { sha256: { prices: { hash: '1000 sat' } } } }) })
    client = await startTestNode({ config: testConfig({ payments }) })
    await client.node.libp2p.dial(multiaddr(addrOf(provider.node)))
    await client.node.market.index.waitFor(e => e.offer.provider === provider.node.peerId.toString(), AbortSignal.timeout(15_000))
    api = new ApiServer(client.node, { host: '127.0.0.1', port: 0, token: 'test-token' })
    await api.start()
  })

  after(async () => {
    await api?.stop()
    await Promise.all([client?.destroy(), provider?.destroy()])
  })

  it('passes over a fake provider that offers less but cannot be reached', async () => {
    const fake = await generateKeyPair('Ed25519')
    const fakeId = peerIdFromPrivateKey(fake)
    const now = Date.now()
    const offer = { provider: fakeId.toString(), service: 'sha256', method: 'hash', unit: 'MiB', price: 1n, currency: 'BTC', capacity: 0n, issuedAt: now, validUntil: now + 600_000 }
    client.node.market.index.put(offer, encodeOffer(offer, openCloudSigner(fake)))
    // where it claims to be, nothing listens
    await client.node.libp2p.peerStore.merge(fakeId, { multiaddrs: [multiaddr('/ip4/127.0.0.1/tcp/1')] })
    assert.equal((await client.node.selectProviders('sha256', 'hash'))[0], fakeId.toString(), 'the fake ranks first')

    const res = await fetch(`${api.url}/v1/call?peer=auto&service=sha256&method=hash`, { method: 'POST', headers: { authorization: 'Bearer test-token' }, body: 'x' })
    const answer = await res.json() as any
    // the honest provider answered (it wants to be paid): the fake was passed over
    assert.equal(res.status, 402)
    assert.equal(answer.error.server, provider.node.peerId.toString())
    assert.equal(answer.error.status, 'request-declined/payment-declined/too-low')
    const records = await client.node.reputation.store.records(fakeId.toString())
    assert.equal(records.length, 0, 'a provider that could not be reached is not rated')
  })
})
