import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { knownPeers, providersOf, type PeersServiceComponents } from '../../src/services/peers/index.ts'

const newPeerId = async (): Promise<ReturnType<typeof peerIdFromPrivateKey>> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))

describe('the peers service', () => {
  it('lists each address of a peer once, though the peer store or the DHT hold it twice', async () => {
    const self = await newPeerId()
    const other = await newPeerId()
    const a = multiaddr('/ip4/127.0.0.1/tcp/36859')
    const b = multiaddr('/ip4/192.0.2.2/tcp/36859')
    const components = {
      peerId: self,
      getConnections: () => [{ remotePeer: other }],
      // as a testnet's peer store held it after one of its nodes restarted
      peerStore: { all: async () => [{ id: other, addresses: [{ multiaddr: a, isCertified: true }, { multiaddr: a, isCertified: false }, { multiaddr: b, isCertified: true }] }] },
      contentRouting: { findProviders: async function * () { yield { id: other, multiaddrs: [a, b, a] } } }
    } as unknown as PeersServiceComponents
    assert.deepEqual(await knownPeers(components), [{ id: other.toString(), addrs: [a.toString(), b.toString()], connected: true }])
    assert.deepEqual(await providersOf(components, 'sha256'), [{ id: other.toString(), addrs: [a.toString(), b.toString()], connected: true }])
  })
})
