import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { bootstrap } from '@libp2p/bootstrap'
import { kadDHT, passthroughMapper, removePrivateAddressesMapper, removePublicAddressesMapper, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub } from '@libp2p/gossipsub'
import { createPeerScoreParams, createTopicScoreParams } from '@libp2p/gossipsub/score'
import { Market, type MarketInit } from '../market/market.ts'
import { ledgerTopics, OFFERS_TOPIC, REPUTATION_TOPIC } from '../protocols/topics.ts'
import { marketService } from '../services/market/index.ts'
import { Reputation } from '../reputation/reputation.ts'
import { reputationService } from '../services/reputation/index.ts'
import { AccessDeniedError, DialError, ServerError } from '../protocols/rpc/errors.ts'
import { LevelDatastore } from 'datastore-level'
import { Level } from 'level'
import { logger } from '@libp2p/logger'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { RpcClient, type CallRequest, type CallResponse, type RpcConnection } from '../protocols/rpc/rpc-client.ts'
import { streamPair } from '@libp2p/utils'
import { RpcServer, rpcServer } from '../protocols/rpc/rpc-server.ts'
import { CredentialVerifier, bitcoinSigner, openCloudSigner, type CredentialSigner } from '../protocols/rpc/credentials.ts'
import { join, resolve } from 'node:path'
import { mkdir, rm } from 'node:fs/promises'
import { Wallet } from '../payments/wallet/wallet.ts'
import { bitcoinNetwork } from '../protocols/bitcoin-networks.ts'
import { TabBook } from '../payments/tab-book.ts'
import { EsploraClient } from '../payments/chain/esplora.ts'
import { PaymentDesk, HoldingsCheck } from '../services/payments/payment-desk.ts'
import { PaymentAgent, type PaidCallOptions, type PaidCallResult } from '../payments/payment-agent.ts'
import { paymentsService } from '../services/payments/index.ts'
import type { ChainBackend } from '../payments/chain/interface.ts'
import { NonceStore } from '../protocols/rpc/nonce-store.ts'
import { RPC_PROTOCOL } from '../protocols/rpc/constants.ts'
import { Pipeline } from '../services/pipeline.ts'
import { Policies } from '../services/policy/policy.ts'
import { ServiceRegistry } from '../services/registry.ts'
import { infoService, type NodeInfo } from '../services/info/index.ts'
import { knownPeers, peersService, providersOf, type PeerEntry, type PeersServiceComponents } from '../services/peers/index.ts'
import { announceServices } from '../services/peers/discovery.ts'
import { sha256Service } from '../services/sha256/index.ts'
import { StorageHost, storageService, STORAGE_SERVICE } from '../services/storage/index.ts'
import { CloudLedger, loadGenesis } from '../ledger/ledger.ts'
import { ledgerIdOf, type Genesis } from '../ledger/encoding.ts'
import { ledgerService, LEDGER_SERVICE } from '../services/ledger/index.ts'
import { promoPayments } from '../services/ledger/promo-payment.ts'
import { parseSize } from '../utils/size.ts'
import { StorageClient, type HostOffer, type StorageClientInit } from '../storage/client.ts'
import { ConfigError, configPrices, loadConfig, updateConfigFile, type Config } from './config.ts'
import { formatAmount, parseAmount } from '../protocols/units.ts'
import { ensureDataDir, loadOrCreateIdentity, type DataDir } from './data-dir.ts'
import { checkBeforeKeys, recordKeys, tightenModes } from './data-guard.ts'
import { inboundGate } from './inbound-gate.ts'
import { VERSION } from './version.ts'
import type { AbortOptions, PeerId, PrivateKey } from '@libp2p/interface'
import type { Service } from '../services/interface.ts'

const log = logger('opencloud:node')

export interface OpenCloudNodeInit {
  /** The data directory (see data-dir.ts) */
  dataDir: string
  /** Settings to use instead of reading config.json, for tests and embedding */
  config?: Config
  /** Override config.listen (the --listen flag) */
  listen?: string[]
  /** Added to config.bootstrap (the --bootstrap flag) */
  bootstrap?: string[]
  /** Re-announce services in the DHT this often, default 10 minutes */
  announceIntervalMs?: number
  /** Passphrase of an encrypted wallet, default $OPENCLOUD_WALLET_PASSPHRASE */
  walletPassphrase?: string
  /** Market settings (offer validity, index bounds), for tests and embedding */
  market?: MarketInit
  /** Storage client settings (segment size, rent period), for tests and embedding */
  storage?: StorageClientInit
  /**
   * Write settings changed at run time (prices) back to config.json so they
   * survive a restart. Default: true when the config was read from
   * config.json, false when `config` was given.
   */
  persistConfig?: boolean
}

export class PriceRefusedError extends Error {
  override name = 'PriceRefusedError'
}

/** A price this many times the market median needs confirming: likely a unit mistake */
export const PRICE_CONFIRM_FACTOR = 10n

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError'
}

type NodeServices = {
  identify: ReturnType<ReturnType<typeof identify>>
  ping: ReturnType<ReturnType<typeof ping>>
  dht: KadDHT
  pubsub: ReturnType<ReturnType<typeof gossipsub>>
  rpc: RpcServer
}

/**
 * A running OpenCloud peer: a libp2p node (TCP, noise, yamux, identify, ping,
 * kad-dht, gossipsub) with the OpenCloud RPC server and client, the services
 * it runs and the pipeline every request passes through.
 */
export class OpenCloudNode {
  readonly libp2p: Libp2p<NodeServices>
  readonly config: Config
  readonly paths: DataDir
  readonly registry: ServiceRegistry
  readonly pipeline: Pipeline
  readonly client: RpcClient
  readonly signer: CredentialSigner
  readonly nonces: NonceStore
  readonly wallet: Wallet
  readonly tabs: TabBook
  /** undefined when payments.chain is not set */
  readonly chain?: ChainBackend
  readonly payments?: PaymentAgent
  readonly market: Market
  readonly reputation: Reputation
  /** The storage service's host side (shards and contracts on this node) */
  readonly storageHost: StorageHost
  /** This node's files stored on other hosts (store put/get) */
  readonly storage: StorageClient
  /** The Cloud Ledger, when config.json names a genesis (ledger.genesis) */
  readonly cloudLedger?: CloudLedger
  private readonly datastore: LevelDatastore
  private readonly announceIntervalMs: number
  private announceTimer?: ReturnType<typeof setInterval>
  private pruneTimer?: ReturnType<typeof setInterval>
  private announceDebounce?: ReturnType<typeof setTimeout>
  private readonly onPeerConnect: (evt: CustomEvent<PeerId>) => void
  /** when each peer's offers were last pulled (bounded: cleared when large) */
  private readonly offersSyncedAt = new Map<string, number>()
  private readonly persistConfig: boolean
  private startedAt = new Date()

  private constructor (args: {
    libp2p: Libp2p<NodeServices>
    config: Config
    paths: DataDir
    registry: ServiceRegistry
    pipeline: Pipeline
    signer: CredentialSigner
    verifier: CredentialVerifier
    nonces: NonceStore
    datastore: LevelDatastore
    announceIntervalMs: number
    wallet: Wallet
    tabs: TabBook
    chain?: ChainBackend
    market?: MarketInit
    storage?: StorageClientInit
    genesis?: Genesis
    persistConfig: boolean
  }) {
    this.persistConfig = args.persistConfig
    this.libp2p = args.libp2p
    this.config = args.config
    this.paths = args.paths
    this.registry = args.registry
    this.pipeline = args.pipeline
    this.signer = args.signer
    this.nonces = args.nonces
    this.datastore = args.datastore
    this.announceIntervalMs = args.announceIntervalMs
    this.wallet = args.wallet
    this.tabs = args.tabs
    this.chain = args.chain
    this.market = new Market({ peerId: args.libp2p.peerId, pubsub: args.libp2p.services.pubsub, signer: args.signer, prices: args.registry }, {
      // reputation is made just below; offers are only weighed once it runs
      trust: (provider) => this.reputation?.scoreOf(provider) ?? 0,
      ...args.market
    })
    this.reputation = new Reputation({ peerId: args.libp2p.peerId, pubsub: args.libp2p.services.pubsub, signer: args.signer, datastore: args.datastore }, {
      pretrusted: args.config.reputation.pretrusted
    })
    this.storageHost = new StorageHost({
      peerId: args.libp2p.peerId.toString(),
      signer: args.signer,
      datastore: args.datastore,
      prices: () => {
        const price = (method: string): bigint => args.registry.priceOf(STORAGE_SERVICE, method, args.registry.resolve(STORAGE_SERVICE, method).method)
        return { storage: price('rent'), upload: price('put'), download: price('get') }
      },
      takesPayments: args.chain != null,
      recordRenter: (renter, outcome, event) => {
        void this.reputation.record({ peer: renter, role: 'caller', outcome, event, service: STORAGE_SERVICE, method: 'end' }).catch(() => {})
      },
      rateRenter: (renter, event) => {
        void this.reputation.record({ peer: renter, role: 'caller', outcome: 'unsatisfactory', event, service: STORAGE_SERVICE, method: 'rent' }).catch(() => {})
      }
    }, {
      dir: join(args.paths.root, 'storage'),
      capacity: parseSize(args.config.services.storage?.capacity ?? '10 GiB', 'services.storage.capacity')
    })
    this.storage = new StorageClient({
      peerId: args.libp2p.peerId.toString(),
      signer: args.signer,
      datastore: args.datastore,
      storageKey: () => args.wallet.storageKey(),
      hosts: async () => this.storageHosts(),
      trust: (peer) => this.reputation.scoreOf(peer),
      call: async (peer, request, sats) => this.hostCall(peer, request, sats),
      rate: (peer, event, method) => {
        void this.reputation.record({ peer, role: 'server', outcome: 'unsatisfactory', event, service: STORAGE_SERVICE, method }).catch(() => {})
      },
      rateContract: (peer, satisfactory) => {
        void this.reputation.record({ peer, role: 'server', outcome: satisfactory ? 'satisfactory' : 'unsatisfactory', event: 'contract-rated', service: STORAGE_SERVICE, method: 'end' }).catch(() => {})
      }
    }, { auditIntervalMs: args.config.storage.auditIntervalMs, auditGraceMs: args.config.storage.auditGraceMs, rentCheckMs: args.config.storage.checkIntervalMs, ...args.storage })
    const reputation = this.reputation
    args.pipeline.reputation = {
      check: async (ctx, policy) => {
        if (policy.minTrust > 0) {
          const { score } = await reputation.view(ctx.caller)
          if (score < policy.minTrust) {
            throw new AccessDeniedError(`this node serves callers with a trust score of at least ${policy.minTrust}; yours is ${score.toFixed(2)}`)
          }
        }
      }
    }
    if (args.pipeline.payments instanceof PaymentDesk) {
      args.pipeline.payments.useReputation({
        trustScore: async (peer) => (await reputation.view(peer)).score,
        record: async (r) => reputation.record(r)
      })
    }
    this.client = new RpcClient({ dial: async (peer, options) => this.dial(peer, options) }, {
      signer: args.signer,
      verifier: args.verifier,
      timeoutMs: args.config.rpc.timeoutMs
    })
    if (args.chain != null) {
      // through this.call, so paid calls leave reputation records too
      this.payments = new PaymentAgent({ call: async (peer, request) => this.call(peer, request), wallet: args.wallet, chain: args.chain, tabs: args.tabs }, {
        settleIntervalMs: args.config.payments.settleIntervalMs
      })
    }
    if (args.genesis != null) {
      this.cloudLedger = new CloudLedger({
        peerId: args.libp2p.peerId,
        signer: args.signer,
        datastore: args.datastore,
        pubsub: args.libp2p.services.pubsub,
        fetchBlocks: async (peer, from, options) => {
          const response = await this.client.call(parsePeer(peer), { service: LEDGER_SERVICE, method: 'blocks', args: [String(from)], signal: options.signal })
          return response.body.bytes()
        },
        peers: () => [...new Set(this.libp2p.getConnections().map(c => c.remotePeer.toString()))],
        anchor: args.chain == null ? undefined : async (data) => (await args.wallet.anchor(args.chain!, data)).txid,
        bitcoinTx: args.chain == null
          ? undefined
          : async (txid) => {
            const tx = await args.chain!.transaction(txid)
            return { scripts: tx.outputs.map(o => o.scriptPubKey), confirmations: await args.chain!.confirmations(txid) }
          },
        recordEquivocation: (e) => {
          void this.reputation.record({ peer: e.validator, role: 'server', outcome: 'unsatisfactory', event: 'ledger-equivocation', service: LEDGER_SERVICE, method: e.what }).catch(() => {})
        }
      }, { genesis: args.genesis, idleBlockMs: args.config.ledger.idleBlockMs, txRateLimit: args.config.ledger.txRateLimit })
      args.pipeline.promo = promoPayments(this.cloudLedger)
    }
    // a new peer may be the first one in the routing table: announce then,
    // at most once per burst of connections
    this.onPeerConnect = (evt: CustomEvent<PeerId>) => {
      clearTimeout(this.announceDebounce)
      this.announceDebounce = setTimeout(() => { void this.announce().catch(() => {}) }, 2_000)
      this.announceDebounce.unref()
      void this.syncOffers(evt.detail)
    }
  }

  static async create (init: OpenCloudNodeInit): Promise<OpenCloudNode> {
    const paths = await ensureDataDir(init.dataDir)
    const config = init.config ?? await loadConfig(paths.config)
    const listen = init.listen ?? config.listen
    const bootstrapList = [...config.bootstrap, ...(init.bootstrap ?? [])]

    const datastore = await openDatastore(paths)
    // holding the datastore lock, this is the only node on the directory:
    // uploads a crash left half-spooled in tmp/ can go
    await rm(paths.tmp, { recursive: true, force: true })
    await mkdir(paths.tmp, { recursive: true, mode: 0o700 })
    let privateKey: PrivateKey
    let wallet: Wallet
    try {
      await tightenModes(paths)
      // nothing is created before it is clear nothing that was there is gone
      await checkBeforeKeys(paths, datastore)
      privateKey = await loadOrCreateIdentity(paths.identity)
      wallet = await Wallet.open({ path: join(paths.root, 'wallet.json'), network: config.payments.network, passphrase: init.walletPassphrase ?? process.env.OPENCLOUD_WALLET_PASSPHRASE })
      await recordKeys(paths, datastore, peerIdFromPrivateKey(privateKey).toString(), wallet.identityAddress)
    } catch (err) {
      await datastore.close()
      throw err
    }
    const signer = openCloudSigner(privateKey)
    const verifier = new CredentialVerifier({ network: config.payments.network })
    const nonces = new NonceStore()
    const registry = new ServiceRegistry({ prices: configPrices(config) })
    const pipeline = new Pipeline({ registry, verifier, nonces, policies: new Policies(config.policies) }, {
      requireCredential: config.rpc.requireCredential
    })
    const ledger = new TabBook(datastore, { graceMs: config.payments.graceMs })
    const chain = config.payments.chain === '' ? undefined : new EsploraClient({ url: config.payments.chain })
    if (chain != null) {
      // without a chain nothing can be checked, and the pipeline keeps to free calls
      pipeline.payments = new PaymentDesk({ wallet, chain, tabs: ledger }, { network: config.payments.network })
      pipeline.holdings = new HoldingsCheck(chain)
    }

    let genesis: Genesis | undefined
    if (config.ledger.genesis !== '') {
      try {
        genesis = await loadGenesis(resolve(paths.root, config.ledger.genesis))
      } catch (err) {
        await datastore.close()
        throw err
      }
    }

    const peerInfoMapper = { all: passthroughMapper, public: removePrivateAddressesMapper, private: removePublicAddressesMapper }[config.dht.addresses]
    let libp2p: Libp2p<NodeServices>
    try {
      libp2p = await createLibp2p({
        start: false,
        privateKey,
        datastore,
        addresses: { listen },
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
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        peerDiscovery: bootstrapList.length > 0 ? [bootstrap({ list: bootstrapList, timeout: 100 })] : [],
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
          pubsub: gossipsub(gossipOptions(genesis == null ? [] : Object.values(ledgerTopics(ledgerIdOf(genesis))))),
          rpc: rpcServer({ signer, handler: pipeline, maxBodyBytes: config.rpc.maxBodyBytes, idleTimeoutMs: config.rpc.idleTimeoutMs, bodyTimeoutMs: config.rpc.bodyTimeoutMs })
        }
      })
    } catch (err) {
      await datastore.close()
      throw err
    }

    const node = new OpenCloudNode({ libp2p, config, paths, registry, pipeline, signer, verifier, nonces, datastore, announceIntervalMs: init.announceIntervalMs ?? 10 * 60_000, wallet, tabs: ledger, chain, market: init.market, storage: init.storage, genesis, persistConfig: init.persistConfig ?? init.config == null })
    for (const service of node.defaultServices()) {
      registry.register(service)
    }
    try {
      checkServicesConfig(config, registry, pipeline.policies)
    } catch (err) {
      await datastore.close()
      throw err
    }
    return node
  }

  get peerId (): PeerId {
    return this.libp2p.peerId
  }

  private async dial (peer: PeerId | Multiaddr, options?: AbortOptions): Promise<RpcConnection> {
    if (this.isSelf(peer)) {
      return this.selfConnection()
    }
    if ('toMultihash' in peer && this.libp2p.getConnections().length === 0 && ((await this.libp2p.peerStore.get(peer).catch(() => undefined))?.addresses.length ?? 0) === 0) {
      // nobody to ask where it is: fail now rather than wait out the dial timeout
      throw new DialError(`cannot reach ${peer.toString()}: no peer with that id is known, and this node is connected to no peers to ask the DHT; start it with --bootstrap <multiaddr>, or call the peer by its multiaddr`)
    }
    return this.libp2p.dial(peer, options)
  }

  private isSelf (peer: PeerId | Multiaddr): boolean {
    return 'toMultihash' in peer ? peer.equals(this.peerId) : serverOf(peer) === this.peerId.toString()
  }

  /**
   * A connection to this node itself. libp2p cannot dial itself, but a
   * newcomer's first call is often to their own node; its streams are
   * in-memory pairs served by the same RPC server, so the call passes the
   * same frames, signatures, nonces, policies and payments as any other.
   */
  private selfConnection (): RpcConnection {
    return {
      remotePeer: this.peerId,
      newStream: async () => {
        const [outbound, inbound] = await streamPair({ delay: 0 })
        this.libp2p.services.rpc.serveLocal(inbound, this.peerId)
        return outbound
      }
    }
  }

  private peersComponents (): PeersServiceComponents {
    return {
      peerId: this.libp2p.peerId,
      peerStore: this.libp2p.peerStore,
      getConnections: () => this.libp2p.getConnections(),
      contentRouting: this.libp2p.contentRouting
    }
  }

  private defaultServices (): Service[] {
    const services: Service[] = [
      infoService({ nodeInfo: () => this.info() }),
      peersService(this.peersComponents()),
      paymentsService({ wallet: this.wallet, tabs: this.tabs, record: async (r) => this.reputation.record(r) }),
      marketService({ market: this.market }),
      reputationService({ reputation: this.reputation })
    ]
    const sha256 = this.config.services.sha256
    if (sha256?.enabled !== false) {
      services.push(sha256Service())
    }
    const storage = this.config.services.storage
    if (storage?.enabled !== false) {
      services.push(storageService(this.storageHost))
    }
    if (this.cloudLedger != null) {
      services.push(ledgerService(this.cloudLedger))
    }
    return services
  }

  async start (): Promise<void> {
    this.startedAt = new Date()
    await this.registry.start()
    try {
      await this.libp2p.start()
    } catch (err: any) {
      await this.registry.stop()
      await this.datastore.close()
      if (err.code === 'EADDRINUSE' || /EADDRINUSE/.test(String(err.message))) {
        throw new Error(`cannot listen on ${this.config.listen.join(', ')}: the address is in use; pass another --listen`)
      }
      throw err
    }
    await this.market.start()
    await this.reputation.start()
    await this.cloudLedger?.start()
    this.libp2p.addEventListener('peer:connect', this.onPeerConnect)
    this.announceTimer = setInterval(() => { void this.announce().catch(() => {}) }, this.announceIntervalMs)
    this.announceTimer.unref()
    this.pruneTimer = setInterval(() => { this.nonces.prune() }, 60_000)
    this.pruneTimer.unref()
    this.payments?.start()
    this.storage.start()
    if (this.wallet.scanNeeded && this.chain != null) {
      // restored from its mnemonic: find the addresses it used, in the background
      void this.wallet.scan(this.chain).catch(err => { log.error('scanning the restored wallet failed; it is tried again at the next start - %e', err) })
    }
    log('started %p', this.peerId)
  }

  /**
   * Close streams, connections and the datastore. Every step runs even when
   * an earlier one fails, so the datastore is always flushed and closed; the
   * first failure is rethrown at the end.
   */
  async stop (): Promise<void> {
    clearInterval(this.announceTimer)
    clearInterval(this.pruneTimer)
    clearTimeout(this.announceDebounce)
    this.libp2p.removeEventListener('peer:connect', this.onPeerConnect)
    const failures: unknown[] = []
    const step = async (name: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        log.error('stopping %s failed - %e', name, err)
        failures.push(err)
      }
    }
    await step('storage', async () => this.storage.stop())
    await step('payments', async () => this.payments?.stop())
    await step('the market', async () => this.market.stop())
    await step('reputation', async () => this.reputation.stop())
    await step('the ledger', async () => this.cloudLedger?.stop())
    await step('the RPC client', async () => this.client.stop())
    await step('libp2p', async () => this.libp2p.stop())
    await step('services', async () => this.registry.stop())
    await step('the datastore', async () => this.datastore.close())
    log('stopped %p', this.peerId)
    if (failures.length > 0) {
      throw failures[0]
    }
  }

  /**
   * Take in the market offers a newly met peer holds (its `market.prices`
   * answer, each offer checked as if gossiped), at most once per peer per
   * 10 minutes. A node that joins late sees the whole market at once rather
   * than after the next re-announce.
   */
  private async syncOffers (peer: PeerId): Promise<void> {
    const key = peer.toString()
    const last = this.offersSyncedAt.get(key) ?? 0
    if (Date.now() - last < 600_000 || this.libp2p.status !== 'started') {
      return
    }
    if (this.offersSyncedAt.size > 10_000) {
      this.offersSyncedAt.clear()
    }
    this.offersSyncedAt.set(key, Date.now())
    try {
      const response = await this.client.call(peer, { service: 'market', method: 'prices', signal: AbortSignal.timeout(10_000) })
      const list = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
      const added = Array.isArray(list) ? this.market.importOffers(list.map((e: any) => Buffer.from(String(e.signed), 'base64'))) : 0
      log('took %d offers from %p', added, peer)
    } catch (err: any) {
      log('no offers from %p - %s', peer, err.message)
    }
  }

  /** Provide every service this node runs in the DHT */
  async announce (signal?: AbortSignal): Promise<void> {
    if (this.libp2p.status !== 'started') {
      return
    }
    await announceServices({ contentRouting: this.libp2p.contentRouting }, this.registry.names(), { signal: signal ?? AbortSignal.timeout(60_000) })
  }

  info (): NodeInfo {
    return {
      peerId: this.peerId.toString(),
      version: VERSION,
      protocol: RPC_PROTOCOL,
      addresses: this.libp2p.getMultiaddrs().map(a => a.toString()),
      services: this.registry.names(),
      startedAt: this.startedAt.toISOString()
    }
  }

  async peers (): Promise<PeerEntry[]> {
    return knownPeers(this.peersComponents())
  }

  async findProviders (service: string, signal?: AbortSignal): Promise<PeerEntry[]> {
    return providersOf(this.peersComponents(), service, signal)
  }

  /**
   * Set this node's price for a method (satoshis per unit), announce it,
   * and keep it in config.json. Refused when payments are off (no call
   * could pay it) and, unless `confirm`, when it is more than ten times the
   * market median of other providers: that is most often a unit mistake.
   */
  async setPrice (service: string, method: string, sats: bigint, options: { confirm?: boolean } = {}): Promise<{ offer?: ReturnType<Market['index']['latest']>, persisted: boolean }> {
    this.registry.resolve(service, method)
    if (sats > 0n && this.chain == null) {
      throw new PriceRefusedError('payments are off (payments.chain is empty), so no call could pay a price: set payments.chain in config.json to an Esplora API URL first (npm run chain starts a local one)')
    }
    const me = this.peerId.toString()
    const others = this.market.index.query({ service, method }).filter(e => e.offer.provider !== me).map(e => e.offer.price).sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
    const median = others.length === 0 ? 0n : others[Math.floor((others.length - 1) / 2)]
    if (options.confirm !== true && median > 0n && sats > median * PRICE_CONFIRM_FACTOR) {
      throw new PriceRefusedError(`${formatAmount(sats)} per unit is more than ${PRICE_CONFIRM_FACTOR} times the market median of ${formatAmount(median)}; if that is what you mean, confirm it (market price set --yes; in the control API, "confirm": true)`)
    }
    if (this.persistConfig) {
      await updateConfigFile(this.paths.config, raw => {
        raw.services ??= {}
        raw.services[service] ??= {}
        raw.services[service].prices ??= {}
        raw.services[service].prices[method] = `${sats} sat`
      })
    }
    const offer = await this.market.setPrice(service, method, sats)
    return { offer: offer == null ? undefined : this.market.index.latest(offer.provider, offer.service, offer.method), persisted: this.persistConfig }
  }

  /** A signer proving the wallet's identity address, for calls that present a bitcoin credential */
  bitcoinCredential (): CredentialSigner {
    return bitcoinSigner({ privateKey: this.wallet.privateKeyOf(this.wallet.identityAddress), type: 'p2wpkh', network: bitcoinNetwork(this.wallet.network) })
  }

  /** A call that pays as `options.pay` says, with the bidding strategy of PaymentAgent */
  async paidCall (peer: PeerId | Multiaddr | string, request: CallRequest, options: PaidCallOptions): Promise<PaidCallResult> {
    if (this.payments == null) {
      throw new Error('payments are off: set payments.chain in config.json to an Esplora API URL')
    }
    return this.payments.call(typeof peer === 'string' ? parsePeer(peer) : peer, request, options)
  }

  /**
   * The most to pay for a call at market price: the median offer for the
   * method times `factor`, for the units the call uses (MiB of body for
   * MiB-priced methods, else one).
   */
  marketMaxPrice (service: string, method: string, bodyLength: number, factor = 1.5): bigint {
    const [stats] = this.market.index.stats({ service, method })
    if (stats == null) {
      throw new Error(`no market price is known for ${service}.${method} yet: give --max-price as an amount, e.g. --max-price 500sat`)
    }
    const units = stats.unit === 'MiB' ? Math.max(1, Math.ceil(bodyLength / (1024 * 1024))) : 1
    // factor in thousandths keeps the arithmetic in integers
    return stats.median * BigInt(units) * BigInt(Math.round(factor * 1000)) / 1000n
  }

  /**
   * Providers for a method from the market, best first, weighing trust with
   * price: among the offers at most half again as dear as the cheapest, the
   * most trusted first (the cheapest among equals), then the rest by price.
   * A caller tries them in order, so a provider that cannot be reached (a
   * fake identity, a node gone offline) is passed over.
   */
  async selectProviders (service: string, method: string): Promise<string[]> {
    const me = this.peerId.toString()
    const offers = this.market.index.query({ service, method }).filter(e => e.offer.provider !== me)
    if (offers.length === 0) {
      throw new Error(`no provider of ${service}.${method} is known from the market yet`)
    }
    const ceiling = offers[0].offer.price * 3n / 2n
    const near = offers.filter(e => e.offer.price <= ceiling)
    const scores = new Map(await Promise.all(near.map(async e => [e.offer.provider, (await this.reputation.view(e.offer.provider)).score] as const)))
    // stable: equal scores keep their price order
    near.sort((a, b) => (scores.get(b.offer.provider) ?? 0) - (scores.get(a.offer.provider) ?? 0))
    return [...near, ...offers.filter(e => e.offer.price > ceiling)].map(e => e.offer.provider)
  }

  /**
   * Storage hosts the market knows, best first (selectProviders on the rent
   * offer), with their prices per GiB-month, per GiB up and per GiB down. A
   * host that publishes no put or get offer charges nothing for them.
   */
  async storageHosts (): Promise<HostOffer[]> {
    let ranked: string[]
    try {
      ranked = await this.selectProviders(STORAGE_SERVICE, 'rent')
    } catch {
      return []
    }
    const price = (peer: string, method: string): bigint => this.market.index.query({ service: STORAGE_SERVICE, method }).find(e => e.offer.provider === peer)?.offer.price ?? 0n
    // a provider may have more than one offer in the index: each host once
    return [...new Set(ranked)].map(peer => ({ peer, storage: price(peer, 'rent'), upload: price(peer, 'put'), download: price(peer, 'get') }))
  }

  /**
   * A call to a storage host paying `sats` as a deferred payment (the
   * payment agent switches to attached when the host gives no credit);
   * unpaid when `sats` is 0.
   */
  private async hostCall (peer: string, request: CallRequest, sats: bigint): Promise<CallResponse> {
    if (sats === 0n || this.payments == null) {
      return this.call(peer, request)
    }
    return (await this.payments.call(parsePeer(peer), request, { pay: { kind: 'defer', sats }, maxPrice: sats })).response
  }

  /**
   * Make an OpenCloud call; `peer` is a PeerId or a multiaddr (text or
   * parsed). Every call leaves a reputation record of the server: served,
   * or failed (and whether it had been paid). Refusals are not the server
   * failing, and calls that never reached it are not recorded.
   */
  async call (peer: PeerId | Multiaddr | string, request: CallRequest): Promise<CallResponse> {
    // the payment protocol's own calls (an address to pay, settling a tab)
    // are plumbing: rating them would let a provider earn trust by answering
    // "where do I pay you" and then failing the paid call
    if (request.service === 'payments') {
      return this.client.call(typeof peer === 'string' ? parsePeer(peer) : peer, request)
    }
    const started = Date.now()
    const target = typeof peer === 'string' ? parsePeer(peer) : peer
    const promised = request.payment?.type === 'attached' ? `${request.payment.amount} BTC attached` : request.payment?.type === 'defer' ? `${request.payment.amount} BTC deferred` : undefined
    try {
      const response = await this.client.call(target, request)
      if (response.server === this.peerId.toString()) {
        // a node has no opinion of itself
        return response
      }
      const latencyMs = Date.now() - started
      const bytes = (request.body?.length ?? 0) + response.body.length
      void this.reputation.record({
        peer: response.server, role: 'server', outcome: 'satisfactory', event: 'served', service: request.service, method: request.method, promised, latencyMs,
        throughput: bytes > 0 && latencyMs > 0 ? Math.round(bytes / latencyMs * 1000) : undefined
      }).catch(() => {})
      return response
    } catch (err: any) {
      const server = err.response?.server ?? serverOf(target)
      const failed = err instanceof ServerError || err.name === 'StreamEndedError' || err.name === 'ResponseVerificationError' || err.name === 'BodyDigestMismatchError'
      if (failed && server != null) {
        void this.reputation.record({
          peer: server, role: 'server', outcome: 'unsatisfactory', event: promised?.includes('attached') === true ? 'paid-not-served' : 'failed', service: request.service, method: request.method, promised
        }).catch(() => {})
      }
      throw err
    }
  }
}

/** Services a node can run but that config.json may switch off */
const OPTIONAL_SERVICES = ['sha256', 'storage']

/**
 * What config.json says about services, checked against the services that
 * exist: a misspelt service or method name would otherwise be ignored, and
 * a price on a node with payments off could never be paid.
 */
function checkServicesConfig (config: Config, registry: ServiceRegistry, policies: Policies): void {
  const known = new Set([...registry.names(), ...OPTIONAL_SERVICES])
  for (const [name, settings] of Object.entries(config.services)) {
    if (!known.has(name)) {
      throw new ConfigError(`services.${name}: there is no service "${name}"; the services are ${[...known].sort().join(', ')}`)
    }
    if (!registry.names().includes(name)) {
      continue
    }
    for (const [method, price] of Object.entries(settings.prices ?? {})) {
      try {
        registry.resolve(name, method)
      } catch (err: any) {
        throw new ConfigError(`services.${name}.prices.${method}: ${err.message}`)
      }
      if (config.payments.chain === '' && parseAmount(price) > 0n) {
        throw new ConfigError(`services.${name}.prices.${method} is ${formatAmount(parseAmount(price))}, but payments are off (payments.chain is empty), so no call could pay it: set payments.chain to an Esplora API URL (npm run chain starts a local one) or make the method free`)
      }
    }
  }
  const minPayment = policies.minPaymentScope()
  if (config.payments.chain === '' && minPayment != null) {
    throw new ConfigError(`${minPayment} sets a min-payment, but payments are off (payments.chain is empty), so no call could pay it: set payments.chain to an Esplora API URL or remove the min-payment`)
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

/**
 * Open the LevelDB datastore. The database is opened here rather than by
 * LevelDatastore because LevelDatastore flattens the cause into a string, and
 * the cause is what tells "another node has this directory" from corruption.
 */
async function openDatastore (paths: DataDir): Promise<LevelDatastore> {
  const db = new Level<string, Uint8Array>(paths.datastore, { keyEncoding: 'utf8', valueEncoding: 'view' })
  try {
    await db.open({ createIfMissing: true, compression: false })
  } catch (err: any) {
    if (err.cause?.code === 'LEVEL_LOCKED') {
      throw new DataDirLockedError(`another node is running with the data directory ${paths.root}; stop it or choose another --data-dir`)
    }
    throw new Error(`cannot open the datastore in ${paths.datastore}: ${err.cause?.message ?? err.message}`)
  }
  const datastore = new LevelDatastore(db)
  await datastore.open()
  return datastore
}

function serverOf (target: PeerId | Multiaddr): string | undefined {
  if ('toMultihash' in target) {
    return target.toString()
  }
  return /\/p2p\/([^/]+)/.exec(target.toString())?.[1]
}

/** "12D3Koo..." or "/ip4/.../p2p/12D3Koo..." */
export function parsePeer (text: string): PeerId | Multiaddr {
  if (text.startsWith('/')) {
    return multiaddr(text)
  }
  try {
    return peerIdFromString(text)
  } catch {
    throw new TypeError(`"${text}" is neither a PeerId nor a multiaddr`)
  }
}
