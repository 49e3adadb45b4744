import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { logger } from '@libp2p/logger'
import type { ContentRouting, PeerInfo, AbortOptions } from '@libp2p/interface'

const log = logger('opencloud:discovery')

/**
 * "Peers offering service X" through the DHT (PROTOCOL.md, "Service
 * discovery"): every node provides the CID of each service it runs, and a
 * node looking for a service asks the DHT for that CID's providers.
 */
export async function serviceCid (service: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(`opencloud-service:${service}`)))
}

export interface DiscoveryComponents {
  contentRouting: ContentRouting
}

export interface FindOptions extends AbortOptions {
  /** stop after this many providers, default 20 */
  limit?: number
}

export async function announceServices (components: DiscoveryComponents, services: string[], options: AbortOptions = {}): Promise<void> {
  await Promise.all(services.map(async name => {
    await components.contentRouting.provide(await serviceCid(name), options)
    log('announced %s', name)
  }))
}

export async function findServiceProviders (components: DiscoveryComponents, service: string, options: FindOptions = {}): Promise<PeerInfo[]> {
  const limit = options.limit ?? 20
  const found = new Map<string, PeerInfo>()
  try {
    for await (const provider of components.contentRouting.findProviders(await serviceCid(service), options)) {
      found.set(provider.id.toString(), provider)
      if (found.size >= limit) {
        break
      }
    }
  } catch (err: any) {
    // a query that times out still answers with what it found
    if (found.size === 0 && options.signal?.aborted !== true) {
      throw err
    }
  }
  return [...found.values()]
}
