import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startTestNode, testConfig, addrOf, waitFor, type TestNode } from '../helpers/nodes.ts'
import { OFFERS_TOPIC, parseTopic, topicName } from '../../src/market/topic.ts'
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
    // a fourth provider pushes out the offer that expires soonest
    assert.ok(index.put(offer('d', 'hash', 40n, now, now + 5000), new Uint8Array()))
    assert.equal(index.size, 3)
    now += 1000
    assert.deepEqual(index.query().map(e => e.offer.provider), ['d'])
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
    assert.deepEqual(JSON.parse(new TextDecoder().decode(await stats.body.bytes())).map((s: any) => [s.service, s.method, s.count, s.median]), [['sha256', 'hash', 1, '0.000005 BTC']])
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
