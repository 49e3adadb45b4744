import { BadRequestError } from '../../protocols/rpc/errors.ts'
import { Units } from '../../protocols/units.ts'
import { logger } from '@libp2p/logger'
import { HttpError, positiveInteger } from '../../utils/http-body.ts'
import { announceServices, findServiceProviders, type DiscoveryComponents } from './discovery.ts'
import type { Service } from '../interface.ts'
import type { ServiceModuleDefinition } from '../module.ts'
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

const log = logger('opencloud:peers')

/** How often this node provides its services in the DHT again, default 10 minutes (provider records expire) */
export const ANNOUNCE_INTERVAL_MS = 10 * 60_000

/** What the peers module runs: the DHT announcements of this node's services, and lookups */
export interface PeerDirectory {
  /** provide every service this node runs in the DHT */
  announce: (signal?: AbortSignal) => Promise<void>
  peers: () => Promise<PeerEntry[]>
  findProviders: (service: string, signal?: AbortSignal) => Promise<PeerEntry[]>
}

/**
 * The peers module: the `peers` service, the control API's peer routes, and
 * announcing this node's services in the DHT at start, every
 * ANNOUNCE_INTERVAL_MS, and when a new peer connects (it may be the first in
 * the routing table), at most once per burst of connections.
 */
export const peersModule: ServiceModuleDefinition = {
  name: PEERS_SERVICE,
  create: ({ libp2p, registry, options }) => {
    const components: PeersServiceComponents = { peerId: libp2p.peerId, peerStore: libp2p.peerStore, getConnections: () => libp2p.getConnections(), contentRouting: libp2p.contentRouting }
    const intervalMs = (options.peers as { announceIntervalMs?: number } | undefined)?.announceIntervalMs ?? ANNOUNCE_INTERVAL_MS
    let timer: ReturnType<typeof setInterval> | undefined
    let debounce: ReturnType<typeof setTimeout> | undefined
    const directory: PeerDirectory = {
      announce: async (signal) => {
        if (libp2p.status !== 'started') {
          return
        }
        await announceServices(components, registry.names(), { signal: signal ?? AbortSignal.timeout(60_000) })
      },
      peers: async () => knownPeers(components),
      findProviders: async (service, signal) => providersOf(components, service, signal)
    }
    const onConnect = (): void => {
      clearTimeout(debounce)
      debounce = setTimeout(() => { void directory.announce().catch(err => { log('announcing failed - %s', err.message) }) }, 2_000)
      debounce.unref()
    }
    return {
      services: [peersService(components)],
      engine: directory,
      routes: {
        'GET /v1/peers': async ({ json }) => { json(200, await directory.peers()) },
        'GET /v1/peers/find': async ({ url, json }) => {
          const service = url.searchParams.get('service')
          if (service == null || !/^[a-z][a-z0-9-]*$/.test(service)) {
            throw new HttpError(400, 'name a service: /v1/peers/find?service=sha256')
          }
          json(200, await directory.findProviders(service, AbortSignal.timeout(positiveInteger(url, 'timeout', 15_000))))
        }
      },
      start: async () => {
        libp2p.addEventListener('peer:connect', onConnect)
        timer = setInterval(() => { void directory.announce().catch(err => { log('announcing failed - %s', err.message) }) }, intervalMs)
        timer.unref()
      },
      stop: async () => {
        libp2p.removeEventListener('peer:connect', onConnect)
        clearInterval(timer)
        clearTimeout(debounce)
      }
    }
  }
}
