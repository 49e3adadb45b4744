import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { bootstrap } from '@libp2p/bootstrap'
import { kadDHT, passthroughMapper, removePrivateAddressesMapper, removePublicAddressesMapper, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub } from '@libp2p/gossipsub'
import { createPeerScoreParams, createTopicScoreParams } from '@libp2p/gossipsub/score'
import { OFFERS_TOPIC, REPUTATION_TOPIC } from '../protocols/topics.ts'
import { rpcServer, type RequestHandler, type RpcServer } from '../protocols/rpc/rpc-server.ts'
import { inboundGate } from './inbound-gate.ts'
import type { CredentialSigner } from '../protocols/rpc/credentials.ts'
import type { CallObserver } from '../protocols/rpc/observation.ts'
import type { Config } from './config.ts'
import type { Libp2pOptions } from 'libp2p'
import type { Datastore } from 'interface-datastore'
import type { PrivateKey } from '@libp2p/interface'

export type NodeServices = {
  identify: ReturnType<ReturnType<typeof identify>>
  ping: ReturnType<ReturnType<typeof ping>>
  dht: KadDHT
  pubsub: ReturnType<ReturnType<typeof gossipsub>>
  rpc: RpcServer
}

export interface Libp2pParts {
  privateKey: PrivateKey
  datastore: Datastore
  config: Config
  /** addresses to listen on (config.listen, or --listen) */
  listen: string[]
  /** peers to join through (config.bootstrap and --bootstrap) */
  bootstrap: string[]
  signer: CredentialSigner
  /** where the RPC server hands each request: the pipeline */
  handler: RequestHandler
  /** gossip topics the modules use besides offers and reputation (a ledger's), scored like them */
  topics: string[]
  /** libp2p's metrics (NodeMetrics.libp2p); none: libp2p counts nothing */
  metrics?: Libp2pOptions['metrics']
  /** told of every RPC call answered (NodeMetrics.onServed) */
  onServed?: CallObserver
}

/**
 * libp2p for an OpenCloud node: TCP, noise, yamux, identify, ping, kad-dht
 * in server mode under the project's own protocol id, gossipsub with peer
 * scoring, and the OpenCloud RPC server
 */
export function libp2pOptions (parts: Libp2pParts): Libp2pOptions<NodeServices> {
  const { config } = parts
  const peerInfoMapper = { all: passthroughMapper, public: removePrivateAddressesMapper, private: removePublicAddressesMapper }[config.dht.addresses]
  return {
    start: false,
    privateKey: parts.privateKey,
    datastore: parts.datastore,
    addresses: { listen: parts.listen },
    // a slow ping on a loaded node must not abort a connection that is
    // carrying a large body; dead connections still fail their streams
    connectionMonitor: { abortConnectionOnPingFailure: false },
    // idle sockets that never finish a handshake must not lock peers out:
    // a handshake gets 5 s (a noise handshake takes a few round trips),
    // one host at most 8 at once, and all hosts together 64. libp2p also
    // refuses a host's 6th connection in a second; every node of a local
    // testnet is the same host, and nodes starting together were cut off
    // (their one bootstrap dial reset), so one host may open 50 a second
    connectionManager: { maxIncomingPendingConnections: 64, inboundUpgradeTimeout: 5_000, inboundConnectionThreshold: 50 },
    connectionGater: inboundGate(),
    metrics: parts.metrics,
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: parts.bootstrap.length > 0 ? [bootstrap({ list: parts.bootstrap, timeout: 100 })] : [],
    services: {
      identify: identify(),
      // kad-dht looks the ping service up by this key. The connection
      // monitor pings every 10 s; on a busy node a ping can outlast the
      // interval, and the default limit of one outbound ping stream then
      // fails the next one
      ping: ping({ maxOutboundStreams: 4, maxInboundStreams: 8 }),
      dht: kadDHT({
        protocol: config.dht.protocol,
        // loopback and LAN nodes never see a public address, and kad-dht
        // would otherwise stay a client and serve nobody
        clientMode: false,
        peerInfoMapper
      }),
      pubsub: gossipsub(gossipOptions(parts.topics)),
      rpc: rpcServer({ signer: parts.signer, handler: parts.handler, maxBodyBytes: config.rpc.maxBodyBytes, idleTimeoutMs: config.rpc.idleTimeoutMs, bodyTimeoutMs: config.rpc.bodyTimeoutMs, onCall: parts.onServed })
    }
  }
}

/**
 * Gossipsub with peer scoring for the OpenCloud topics: an invalid message
 * costs its sender 20 points per topic weight (squared for repeats), and a
 * peer whose score falls below zero leaves the mesh at the next heartbeat.
 * Mesh delivery quotas are off: price and reputation topics are quiet, and
 * honest peers would be charged for the silence. Loopback addresses are
 * exempt from the IP colocation penalty, which would otherwise score a local
 * testnet of 30 nodes on 127.0.0.1 far below the graylist threshold.
 */
function gossipOptions (extraTopics: string[] = []): Parameters<typeof gossipsub>[0] {
  const topic = createTopicScoreParams({
    topicWeight: 1,
    timeInMeshWeight: 0.01,
    timeInMeshQuantum: 1000,
    timeInMeshCap: 100,
    firstMessageDeliveriesWeight: 1,
    firstMessageDeliveriesDecay: 0.9,
    firstMessageDeliveriesCap: 10,
    meshMessageDeliveriesWeight: 0,
    meshFailurePenaltyWeight: 0,
    invalidMessageDeliveriesWeight: -20,
    invalidMessageDeliveriesDecay: 0.9
  })
  return {
    allowPublishToZeroTopicPeers: true,
    scoreParams: createPeerScoreParams({
      topics: Object.fromEntries([OFFERS_TOPIC, REPUTATION_TOPIC, ...extraTopics].map(t => [t, topic])),
      IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1'])
    }),
    scoreThresholds: { gossipThreshold: -10, publishThreshold: -50, graylistThreshold: -80 }
  }
}
