import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startTestNode, testConfig, addrOf, waitFor, type TestNode } from '../helpers/nodes.ts'
import { OFFERS_TOPIC, parseTopic, topicName } from '../../src/protocols/topics.ts'
import { decodeOffer, encodeOffer, verifyOffer } from '../../src/market/offer.ts'
import { PriceIndex } from '../../src/market/price-index.ts'
import { DEFAULT_CONFIG } from '../../src/node/config.ts'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'

/** What the gossipsub implementation offers beyond its interface type */
interface ScoredPubSub {
  getScore: (peerId: string) => number
  getMeshPeers: (topic: string) => string[]
}
const scored = (node: OpenCloudNode): ScoredPubSub => node.libp2p.services.pubsub as unknown as ScoredPubSub

describe('market topics and offers', () => {
  it('builds and parses topic names as a matched pair', () => {
    assert.equal(topicName('offers'), '/opencloud/offers/1')
    assert.deepEqual(parseTopic('/opencloud/reputation/1'), { kind: 'reputation', version: 1 })
    assert.equal(parseTopic('/opencloud/offers/0'), undefined)
    assert.equal(parseTopic('/other/offers/1'), undefined)
    assert.deepEqual(parseTopic('/opencloud/ledger-tx/1/0123456789abcdef'), { kind: 'ledger-tx', version: 1, ledger: '0123456789abcdef' })
    assert.equal(parseTopic('/opencloud/ledger/1'), undefined, 'a ledger topic names its ledger')
    assert.equal(parseTopic('/opencloud/offers/1/0123456789abcdef'), undefined, 'an offers topic names none')
    assert.equal(topicName('ledger', 1, 'fedcba9876543210'), '/opencloud/ledger/1/fedcba9876543210')
  })

  it('keeps the newest offer per provider and method, drops expired ones, and answers stats', () => {
    let now = 1_000_000
    const index = new PriceIndex({ now: () => now, maxPerProvider: 2, maxOffers: 3 })
    const offer = (provider: string, method: string, price: bigint, issuedAt = now, validUntil = now + 1000) =>
      ({ provider, service: 'sha256', method, unit: 'MiB', price, currency: 'BTC', capacity: 0n, issuedAt, validUntil })
    assert.ok(index.put(offer('a', 'hash', 10n), new Uint8Array()))
    assert.equal(index.put(offer('a', 'hash', 5n, now - 1), new Uint8Array()), false, 'an older offer does not replace a newer one')
    assert.ok(index.put(offer('b', 'hash', 30n), new Uint8Array()))
    assert.ok(index.put(offer('c', 'hash', 20n), new Uint8Array()))
    assert.deepEqual(index.stats().map(s => [s.count, s.min, s.median, s.p90]), [[3, 10n, 20n, 30n]])
    // a fourth provider pushes out an offer of the least trusted (here: all equal)
    assert.ok(index.put(offer('d', 'hash', 40n, now, now + 5000), new Uint8Array()))
    assert.equal(index.size, 3)
    now += 1000
    assert.deepEqual(index.query().map(e => e.offer.provider), ['d'])
  })
})

describe('the market under a Sybil flood', () => {
  const now = 1_000_000
  const offer = (provider: string, method: string, price: bigint, validUntil = now + 600_000) =>
    ({ provider, service: 'sha256', method, unit: 'MiB', price, currency: 'BTC', capacity: 0n, issuedAt: now, validUntil })

  it('keeps honest and own offers when fresh identities fill the index, and weighs the median by trust', () => {
    const trusted = new Map([['honest-1', 2], ['honest-2', 1.5], ['honest-3', 1]])
    const index = new PriceIndex({ now: () => now, maxOffers: 1000, maxPerProvider: 100, self: 'me', trust: p => trusted.get(p) ?? 0 })
    assert.ok(index.put(offer('me', 'hash', 120n), new Uint8Array()))
    for (const [provider] of trusted) {
      assert.ok(index.put(offer(provider, 'hash', 100n), new Uint8Array()))
    }
    // 120 fresh identities x 100 offers of a day each at 1 sat, the attack seen
    for (let f = 0; f < 120; f++) {
      for (let m = 0; m < 100; m++) {
        index.put(offer(`fake-${f}`, m === 0 ? 'hash' : `m${m}`, 1n, now + 24 * 3600_000), new Uint8Array())
      }
    }
    assert.equal(index.size, 1000)
    assert.ok(index.latest('me', 'sha256', 'hash') != null, 'its own offer is never evicted')
    for (const [provider] of trusted) {
      assert.ok(index.latest(provider, 'sha256', 'hash') != null, `${provider} kept`)
    }
    // and 50 more fresh identities offering only sha256.hash at 1 sat
    for (let f = 0; f < 50; f++) {
      assert.ok(index.put(offer(`cheap-${f}`, 'hash', 1n), new Uint8Array()))
    }
    const [hash] = index.stats({ service: 'sha256', method: 'hash' })
    assert.ok(hash.count >= 54, `${hash.count} offers for sha256.hash`)
    assert.equal(hash.min, 1n)
    assert.equal(hash.median, 100n, 'the trusted providers decide the median')
    // a fresh honest provider, trusted no more than the fakes, still gets in
    assert.ok(index.put(offer('newcomer', 'hash', 90n), new Uint8Array()))
  })

  it('ignores offers past one originator\'s rate, before checking them, and leaves others alone', async () => {
    const { Market } = await import('../../src/market/market.ts')
    const { generateKeyPair } = await import('@libp2p/crypto/keys')
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
    const { openCloudSigner } = await import('../../src/protocols/rpc/credentials.ts')
    const { ServiceRegistry } = await import('../../src/services/registry.ts')
    const { TopicValidatorResult } = await import('@libp2p/gossipsub')
    const me = await generateKeyPair('Ed25519')
    // gossipsub is not what is tested here: the validator is called directly
    const market = new Market({ peerId: peerIdFromPrivateKey(me), pubsub: {} as any, signer: openCloudSigner(me), prices: new ServiceRegistry() }, { offerRateLimit: '10/m burst 10' })
    const flooder = await generateKeyPair('Ed25519')
    const honest = await generateKeyPair('Ed25519')
    const message = (key: typeof me, i: number): any => {
      const provider = peerIdFromPrivateKey(key)
      const t = Date.now()
      return { type: 'signed', from: provider, topic: OFFERS_TOPIC, data: encodeOffer({ ...offer(provider.toString(), `m${i}`, 5n), issuedAt: t, validUntil: t + 600_000 }, openCloudSigner(key)) }
    }
    const results = Array.from({ length: 50 }, (_, i) => market.validate(peerIdFromPrivateKey(flooder), message(flooder, i)))
    assert.equal(results.filter(r => r === TopicValidatorResult.Accept).length, 10)
    assert.equal(results.filter(r => r === TopicValidatorResult.Ignore).length, 40)
    assert.equal(market.throttled, 40)
    assert.equal(market.validate(peerIdFromPrivateKey(honest), message(honest, 0)), TopicValidatorResult.Accept)
  })
})

describe('market prices over gossipsub between real nodes', () => {
  const nodes: TestNode[] = []
  let hub: OpenCloudNode

  before(async () => {
    nodes.push(await startTestNode())
    hub = nodes[0].node
    for (let i = 0; i < 3; i++) {
      nodes.push(await startTestNode({ bootstrap: [addrOf(hub)] }))
    }
    // every node in the hub's mesh for the offers topic
    await waitFor(() => scored(hub).getMeshPeers(OFFERS_TOPIC).length >= 3, 15_000, 'the offers mesh')
  })

  after(async () => {
    await Promise.all(nodes.map(n => n.destroy()))
  })

  it('spreads a price set on one node to every other node', async () => {
    const seller = nodes[1].node
    await seller.market.setPrice('sha256', 'hash', 500n)
    for (const { node } of nodes) {
      await waitFor(() => node.market.index.latest(seller.peerId.toString(), 'sha256', 'hash')?.offer.price === 500n, 10_000, `the offer at ${node.peerId.toString()}`)
    }
    const answer = await nodes[3].node.call(addrOf(hub), { service: 'market', method: 'prices', args: ['sha256'] })
    const prices = JSON.parse(new TextDecoder().decode(await answer.body.bytes()))
    assert.deepEqual(prices.map((p: any) => [p.provider, p.price, p.unit]), [[seller.peerId.toString(), '0.000005 BTC', 'MiB']])
    // the signed offer travels with it and verifies on its own
    verifyOffer(decodeOffer(Buffer.from(prices[0].signed, 'base64')))
    const stats = await nodes[2].node.call(addrOf(hub), { service: 'market', method: 'stats' })
    // storage rent is advertised even when free (hosts must be found); sha256 is not
    assert.deepEqual(JSON.parse(new TextDecoder().decode(await stats.body.bytes())).map((s: any) => [s.service, s.method, s.count, s.median]), [['sha256', 'hash', 1, '0.000005 BTC'], ['storage', 'rent', nodes.length, '0 BTC']])
  })

  it('forgets an offer once it expires', async () => {
    const brief = await OpenCloudNode.create({ dataDir: `${nodes[0].dataDir}-brief`, config: testConfig({ payments: { ...DEFAULT_CONFIG.payments, chain: 'http://127.0.0.1:9' }, services: { sha256: { prices: { hash: 7 } } } }), bootstrap: [addrOf(hub)], market: { validityMs: 3000 } })
    await brief.start()
    try {
      await waitFor(() => hub.market.index.latest(brief.peerId.toString(), 'sha256', 'hash') != null, 15_000, 'the brief offer')
    } finally {
      // stopped, it cannot re-announce
      await brief.stop()
    }
    await waitFor(() => hub.market.index.query({ service: 'sha256' }).every(e => e.offer.provider !== brief.peerId.toString()), 10_000, 'the offer to expire')
  })

  it('rejects forged, malformed and replayed offers, and the sender\'s score drops', async () => {
    const mallory = nodes[2].node
    const honest = nodes[1].node
    const pubsub = mallory.libp2p.services.pubsub
    const before = hub.market.rejections.get(mallory.peerId.toString()) ?? 0

    await pubsub.publish(OFFERS_TOPIC, Uint8Array.from([1, 2, 3, 4]))
    const now = Date.now()
    const stolen = encodeOffer({ provider: honest.peerId.toString(), service: 'sha256', method: 'hash', unit: 'MiB', price: 1n, currency: 'BTC', capacity: 0n, issuedAt: now, validUntil: now + 60_000 }, honest.signer)
    await pubsub.publish(OFFERS_TOPIC, stolen)
    const own = encodeOffer({ provider: mallory.peerId.toString(), service: 'sha256', method: 'hash', unit: 'MiB', price: 1n, currency: 'BTC', capacity: 0n, issuedAt: now, validUntil: now + 60_000 }, mallory.signer)
    const forged = Uint8Array.from(own)
    forged[forged.length - 1] ^= 1
    await pubsub.publish(OFFERS_TOPIC, forged)
    const future = encodeOffer({ provider: mallory.peerId.toString(), service: 'sha256', method: 'hash', unit: 'MiB', price: 1n, currency: 'BTC', capacity: 0n, issuedAt: now + 3600_000, validUntil: now + 7200_000 }, mallory.signer)
    await pubsub.publish(OFFERS_TOPIC, future)

    await waitFor(() => (hub.market.rejections.get(mallory.peerId.toString()) ?? 0) >= before + 4, 10_000, 'four rejections')
    assert.equal(hub.market.index.latest(honest.peerId.toString(), 'sha256', 'hash')?.offer.price, 500n, 'the forged price did not replace the real one')
    // scores are refreshed on gossipsub's heartbeat
    await waitFor(() => scored(hub).getScore(mallory.peerId.toString()) < 0, 10_000, 'mallory\'s score to fall below zero')
    await waitFor(() => !scored(hub).getMeshPeers(OFFERS_TOPIC).includes(mallory.peerId.toString()), 10_000, 'mallory to lose its mesh place')

    // an honest node re-sending an offer older than the one held: a replay
    const old = hub.market.index.latest(honest.peerId.toString(), 'sha256', 'hash')?.bytes as Uint8Array
    await honest.market.setPrice('sha256', 'hash', 600n)
    await waitFor(() => hub.market.index.latest(honest.peerId.toString(), 'sha256', 'hash')?.offer.price === 600n, 10_000, 'the new price')
    const rejectedBefore = hub.market.rejections.get(honest.peerId.toString()) ?? 0
    await honest.libp2p.services.pubsub.publish(OFFERS_TOPIC, old)
    await waitFor(() => (hub.market.rejections.get(honest.peerId.toString()) ?? 0) > rejectedBefore, 10_000, 'the replay to be rejected')
    assert.equal(hub.market.index.latest(honest.peerId.toString(), 'sha256', 'hash')?.offer.price, 600n)

    // made free, the method's old price does not linger
    await honest.market.setPrice('sha256', 'hash', 0n)
    await waitFor(() => hub.market.index.latest(honest.peerId.toString(), 'sha256', 'hash')?.offer.price === 0n, 10_000, 'the free price')
  })
})
