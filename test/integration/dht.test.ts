import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { startTestNode, testConfig, addrOf, waitFor, type TestNode } from '../helpers/nodes.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { Status } from '../../src/protocols/rpc/status.ts'
import type { OpenCloudNode } from '../../src/node/opencloud-node.ts'

/** The addresses `of` has for `peer` in its peer store */
async function addressesOf (of: OpenCloudNode, peer: OpenCloudNode): Promise<string[]> {
  const entry = await of.libp2p.peerStore.get(peer.peerId).catch(() => undefined)
  return entry?.addresses.map(a => a.multiaddr.toString()) ?? []
}

/**
 * Record the answers of `node`'s DHT peer lookups (kad-dht's findPeer, which
 * libp2p's peer routing asks when a dial has no address): for each peer
 * found, who answered (the node itself when it came from its own peer store)
 * and the addresses given
 */
function tapPeerLookups (node: OpenCloudNode): { found: Array<{ target: string, from: string, addresses: string[] }>, restore: () => void } {
  const dht = node.libp2p.services.dht
  const original = dht.findPeer
  const found: Array<{ target: string, from: string, addresses: string[] }> = []
  dht.findPeer = async function * (id, options) {
    for await (const event of original.call(dht, id, options)) {
      if (event.name === 'FINAL_PEER') {
        found.push({ target: id.toString(), from: event.from.toString(), addresses: event.peer.multiaddrs.map(a => a.toString()) })
      }
      yield event
    }
  }
  return { found, restore: () => { dht.findPeer = original } }
}

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

  it('finds the one peer offering a service through DHT provider records, then calls it by PeerId, its address found by a DHT peer lookup', async () => {
    const [, , caller, , provider] = nodes.map(n => n.node)
    await waitFor(() => nodes.slice(1).every(n => n.node.libp2p.getConnections().length > 0), 10_000, 'every node to join')
    // kad-dht fills its routing table after identify; announce until a provider record lands
    await waitFor(async () => {
      await provider.announce(AbortSignal.timeout(5_000)).catch(() => {})
      return (await caller.findProviders('sha256', AbortSignal.timeout(5_000))).length > 0
    }, 30_000, 'the provider record to reach the DHT')
    const found = await caller.findProviders('sha256', AbortSignal.timeout(10_000))
    assert.deepEqual(found.map(p => p.id), [provider.peerId.toString()])

    // the address must come from a DHT peer lookup that another peer
    // answered: a node without the DHT's peer routing fails the dial, and
    // one that had the address already does not look it up. The caller's own
    // DHT queries (a routing table refresh) can learn the provider's address
    // as a closer peer between the forgetting and the dial: then the call
    // needs no lookup in any build, and is tried again (at most three times;
    // a build without peer routing fails its dial on the first that has no
    // address)
    let answers: Array<{ target: string, from: string, addresses: string[] }> = []
    for (let attempt = 1; answers.length === 0; attempt++) {
      // DHT queries may have connected the two; forget the provider entirely
      // so the call has only its PeerId (a DHT query under way may dial it
      // again at once: hang up until it stays down)
      await waitFor(async () => {
        await caller.libp2p.hangUp(provider.peerId)
        await caller.libp2p.peerStore.delete(provider.peerId)
        return caller.libp2p.getConnections(provider.peerId).length === 0
      }, 10_000, 'the caller to forget the provider')
      assert.deepEqual(await addressesOf(caller, provider), [], 'the caller knows no address of the provider before the call')
      const lookups = tapPeerLookups(caller)
      let response
      try {
        response = await caller.call(provider.peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode('found via the DHT')), signal: AbortSignal.timeout(20_000) })
      } finally {
        lookups.restore()
      }
      assert.equal(response.status, Status.OK)
      assert.equal(Buffer.from(await response.body.bytes()).toString('hex'), createHash('sha256').update('found via the DHT').digest('hex'))
      answers = lookups.found.filter(f => f.target === provider.peerId.toString())
      assert.ok(answers.length > 0 || attempt < 3, 'the dial looked the provider up through the DHT\'s peer routing')
    }
    const address = addrOf(provider).replace(/\/p2p\/.*$/, '')
    assert.ok(answers.some(f => f.from !== caller.peerId.toString() && f.addresses.includes(address)),
      `a DHT peer answered the lookup with the provider's address ${address} (answers: ${JSON.stringify(answers)})`)
  })

  it('answers peers.find over the protocol itself', async () => {
    const [bootstrap, , , caller, provider] = nodes.map(n => n.node)
    const response = await caller.call(bootstrap.peerId, { service: 'peers', method: 'find', args: ['sha256'] })
    const providers = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
    assert.ok(providers.some((p: any) => p.id === provider.peerId.toString()), 'the bootstrap node finds the provider')
  })
})
