import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { startTestNode, testConfig, addrOf, waitFor, type TestNode } from '../helpers/nodes.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { Status } from '../../src/protocols/rpc/status.ts'

describe('a 5-node network joined through one bootstrap node', () => {
  const nodes: TestNode[] = []

  before(async () => {
    nodes.push(await startTestNode({ config: testConfig({ services: { sha256: { enabled: false } } }) }))
    const bootstrap = addrOf(nodes[0].node)
    for (let i = 1; i < 5; i++) {
      // only the last node runs sha256, so finding it needs the DHT
      const config = i === 4 ? testConfig() : testConfig({ services: { sha256: { enabled: false } } })
      nodes.push(await startTestNode({ config, bootstrap: [bootstrap] }))
    }
  })

  after(async () => {
    await Promise.all(nodes.map(n => n.destroy()))
  })

  it('finds the one peer offering a service through DHT provider records, then calls it', async () => {
    const [, , caller, , provider] = nodes.map(n => n.node)
    await waitFor(() => nodes.slice(1).every(n => n.node.libp2p.getConnections().length > 0), 10_000, 'every node to join')
    // kad-dht fills its routing table after identify; announce until a provider record lands
    await waitFor(async () => {
      await provider.announce(AbortSignal.timeout(5_000)).catch(() => {})
      return (await caller.findProviders('sha256', AbortSignal.timeout(5_000))).length > 0
    }, 30_000, 'the provider record to reach the DHT')
    const found = await caller.findProviders('sha256', AbortSignal.timeout(10_000))
    assert.deepEqual(found.map(p => p.id), [provider.peerId.toString()])

    // DHT queries may have connected the two; forget the provider entirely so
    // the call has only its PeerId and must find its address through the DHT
    // (a DHT query under way may dial it again at once: hang up until it stays down)
    await waitFor(async () => {
      await caller.libp2p.hangUp(provider.peerId)
      await caller.libp2p.peerStore.delete(provider.peerId)
      return caller.libp2p.getConnections(provider.peerId).length === 0
    }, 10_000, 'the caller to forget the provider')
    // (the peer store may learn the provider's address again at once, from a
    // DHT query still answering with closer peers: that too is the DHT)

    const response = await caller.call(provider.peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode('found via the DHT')) })
    assert.equal(response.status, Status.OK)
    assert.equal(Buffer.from(await response.body.bytes()).toString('hex'), createHash('sha256').update('found via the DHT').digest('hex'))
  })

  it('answers peers.find over the protocol itself', async () => {
    const [bootstrap, , , caller, provider] = nodes.map(n => n.node)
    const response = await caller.call(bootstrap.peerId, { service: 'peers', method: 'find', args: ['sha256'] })
    const providers = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
    assert.ok(providers.some((p: any) => p.id === provider.peerId.toString()), 'the bootstrap node finds the provider')
  })
})
