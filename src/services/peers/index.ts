import { BadRequestError } from '../../protocols/rpc/errors.ts'
import { Units } from '../../protocols/units.ts'
import { findServiceProviders, type DiscoveryComponents } from './discovery.ts'
import type { Service } from '../interface.ts'
import type { PeerId, PeerStore, Connection } from '@libp2p/interface'

export const PEERS_SERVICE = 'peers'

export interface PeersServiceComponents extends DiscoveryComponents {
  peerId: PeerId
  peerStore: PeerStore
  getConnections: () => Connection[]
}

export interface PeerEntry {
  id: string
  addrs: string[]
  connected: boolean
}

/**
 * Each address once: the peer store can hold one address twice for a while
 * (`peers` printed each of a peer's addresses twice on a testnet after one
 * of its nodes was restarted)
 */
function distinct (addrs: Array<{ toString: () => string }>): string[] {
  return [...new Set(addrs.map(a => a.toString()))]
}

/** The peers this node knows: the peer store, marked with who is connected now */
export async function knownPeers (components: PeersServiceComponents, limit = 1000): Promise<PeerEntry[]> {
  const connected = new Set(components.getConnections().map(c => c.remotePeer.toString()))
  const peers = await components.peerStore.all({ limit })
  return peers
    .filter(p => !p.id.equals(components.peerId))
    .map(p => ({
      id: p.id.toString(),
      addrs: distinct(p.addresses.map(a => a.multiaddr)),
      connected: connected.has(p.id.toString())
    }))
    .sort((a, b) => Number(b.connected) - Number(a.connected) || a.id.localeCompare(b.id))
}

export async function providersOf (components: PeersServiceComponents, service: string, signal?: AbortSignal): Promise<PeerEntry[]> {
  const connected = new Set(components.getConnections().map(c => c.remotePeer.toString()))
  if (connected.size === 0) {
    // nobody to ask: a DHT query would only wait out its timeout
    return []
  }
  const providers = await findServiceProviders(components, service, { signal: signal ?? AbortSignal.timeout(15_000) })
  // a node finds its own record too, but cannot call itself
  return providers.filter(p => !p.id.equals(components.peerId)).map(p => ({
    id: p.id.toString(),
    addrs: distinct(p.multiaddrs),
    connected: connected.has(p.id.toString())
  }))
}

/** Core service: share what this node knows about peers (seed: "Core services") */
export function peersService (components: PeersServiceComponents): Service {
  return {
    name: PEERS_SERVICE,
    version: '1.0.0',
    description: 'peers this node knows, and peers that offer a service',
    methods: {
      list: {
        description: 'peers this node knows, connected ones first',
        unit: Units.CALL,
        handle: async () => ({ json: await knownPeers(components, 200) })
      },
      find: {
        description: 'peers that announce a service in the DHT',
        args: '<service>',
        unit: Units.CALL,
        handle: async ({ args, signal }) => {
          const [service] = args
          if (service == null || !/^[a-z][a-z0-9-]*$/.test(service)) {
            throw new BadRequestError('find takes the name of a service, e.g. "sha256"')
          }
          return { json: await providersOf(components, service, AbortSignal.any([signal, AbortSignal.timeout(15_000)])) }
        }
      }
    }
  }
}
