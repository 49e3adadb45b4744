import { createLibp2p, type Libp2p } from 'libp2p'
import { logger } from '@libp2p/logger'
import { Market, type MarketInit } from '../market/market.ts'
import { marketMaxPrice, selectProviders } from '../market/provider-choice.ts'
import { Reputation } from '../reputation/reputation.ts'
import { TabBook } from '../payments/tab-book.ts'
import { EsploraClient } from '../payments/chain/esplora.ts'
import { PaymentAgent, type PaidCallOptions, type PaidCallResult } from '../payments/payment-agent.ts'
import { ServerError } from '../protocols/rpc/errors.ts'
import { CredentialVerifier, bitcoinSigner, openCloudSigner, type CredentialSigner } from '../protocols/rpc/credentials.ts'
import { NonceStore } from '../protocols/rpc/nonce-store.ts'
import { RPC_PROTOCOL } from '../protocols/rpc/constants.ts'
import { bitcoinNetwork } from '../protocols/bitcoin-networks.ts'
import { parseAmount, formatAmount } from '../protocols/units.ts'
import { Pipeline } from '../services/pipeline.ts'
import { Policies } from '../services/policy/policy.ts'
import { ServiceRegistry } from '../services/registry.ts'
import { ConfigError, updateConfigFile, configPrices, type Config } from './config.ts'
import { boot, type BootInit } from './boot.ts'
import { libp2pOptions, type NodeServices } from './libp2p-options.ts'
import { NodeCaller } from './caller.ts'
import { NodeMetrics } from './metrics.ts'
import { MODULES } from './modules.ts'
import { VERSION } from './version.ts'
import type { DataDir } from './data-dir.ts'
import type { LevelDatastore } from 'datastore-level'
import type { ChainBackend } from '../payments/chain/interface.ts'
import type { Channels } from '../payments/channels/channels.ts'
import type { CallRequest, CallResponse, RpcClient } from '../protocols/rpc/rpc-client.ts'
import type { IncomingRequest, Reply, RequestHandler } from '../protocols/rpc/rpc-server.ts'
import type { ConfigSection } from '../services/config-section.ts'
import type { HoldingsHook, PaymentHook, PaymentKind, ReputationHook } from '../services/interface.ts'
import type { ErrorStatus, ModuleComponents, NodeInfo, PeerRef, RouteTable, ServiceModule, ServiceModuleDefinition, Warning } from '../services/module.ts'
import type { PeerDirectory } from '../services/peers/index.ts'
import type { PriceDesk } from '../services/market/index.ts'
import { storageHosts, type StorageEngines } from '../services/storage/index.ts'
import type { CloudLedger } from '../ledger/cloud-ledger.ts'
import type { StorageClient, StorageClientInit, HostOffer } from '../storage/client/storage-client.ts'
import type { StorageHost } from '../storage/host/storage-host.ts'
import type { PeerEntry } from '../services/peers/index.ts'
import type { PeerId } from '@libp2p/interface'

export { parsePeer, serverOf } from './caller.ts'
export { DataDirLockedError } from './boot.ts'
export { PriceRefusedError, PRICE_CONFIRM_FACTOR } from '../services/market/index.ts'

const log = logger('opencloud:node')

export interface OpenCloudNodeInit extends BootInit {
  /** override config.listen (the --listen flag) */
  listen?: string[]
  /** added to config.bootstrap (the --bootstrap flag) */
  bootstrap?: string[]
  /** market settings (offer validity, index bounds), for tests and embedding */
  market?: MarketInit
  /**
   * settings given to modules in code, by module name, for tests and
   * embedding: `storage` (StorageClientInit: segment size, rent period, ...),
   * `peers` ({ announceIntervalMs })
   */
  modules?: Record<string, unknown>
  /** the storage module's settings in code: modules.storage under its old name */
  storage?: StorageClientInit
  /**
   * the modules this node assembles, default node/modules.ts's MODULES: for
   * embedding and for tests of a module of their own (test/node/modules.test.ts).
   * Give `sections` (BootInit) their config sections too, or a config
   */
  serviceModules?: ServiceModuleDefinition[]
  /**
   * Write settings changed at run time (prices) back to config.json so they
   * survive a restart. Default: true when the config was read from
   * config.json, false when `config` was given.
   */
  persistConfig?: boolean
}

/** What the assembly hands the node */
interface NodeParts {
  libp2p: Libp2p<NodeServices>
  config: Config
  paths: DataDir
  registry: ServiceRegistry
  signer: CredentialSigner
  nonces: NonceStore
  wallet: ModuleComponents['wallet']
  tabs: TabBook
  chain?: ChainBackend
  payments?: PaymentAgent
  market: Market
  reputation: Reputation
  caller: NodeCaller
  pipeline: Pipeline
  modules: Map<string, ServiceModule>
  routes: RouteTable
  errorStatuses: ErrorStatus[]
  payWith: NonNullable<ServiceModule['payWith']>
  datastore: LevelDatastore
  metrics: NodeMetrics
  pages: RouteTable
}

/**
 * The RPC server is made with libp2p, before the modules whose services it
 * serves; it hands each request to the pipeline the node makes from them.
 * No request arrives before libp2p starts, which is after both.
 */
class PipelineSlot implements RequestHandler {
  pipeline?: Pipeline

  async handle (request: IncomingRequest): Promise<Reply> {
    if (this.pipeline == null) {
      throw new ServerError('this node is still starting')
    }
    return this.pipeline.handle(request)
  }
}

/**
 * A running OpenCloud peer. Its assembly, in order: the data directory (its
 * config, datastore and keys: boot.ts), libp2p with the RPC server
 * (libp2p-options.ts), the components every module may use (market,
 * reputation, tab book, chain, the caller and its payment agent), the
 * modules of node/modules.ts (services, routes, payment hooks, checks,
 * errors), and the pipeline made from what the modules gave.
 */
export class OpenCloudNode {
  readonly libp2p: Libp2p<NodeServices>
  readonly config: Config
  readonly paths: DataDir
  readonly registry: ServiceRegistry
  readonly signer: CredentialSigner
  readonly nonces: NonceStore
  readonly wallet: ModuleComponents['wallet']
  readonly tabs: TabBook
  /** undefined when payments.chain is not set */
  readonly chain?: ChainBackend
  readonly payments?: PaymentAgent
  readonly market: Market
  readonly reputation: Reputation
  readonly caller: NodeCaller
  readonly pipeline: Pipeline
  /** its Prometheus registry and RPC meters (GET /metrics) */
  readonly metrics: NodeMetrics
  /** the modules by name, as they gave themselves to the node */
  readonly modules: Map<string, ServiceModule>
  /** the control API's routes, every module's together */
  readonly routes: RouteTable
  /** the routes served without the token (ServiceModule.pages): the dashboard's files and login */
  readonly pages: RouteTable
  /** the HTTP status of every module's errors, for the control API */
  readonly errorStatuses: ErrorStatus[]
  /** the kinds of payment the modules can make (`--pay promo:<code>`) */
  readonly payWith: NonNullable<ServiceModule['payWith']>
  private readonly datastore: LevelDatastore
  private startedAt = new Date()

  private constructor (parts: NodeParts) {
    this.libp2p = parts.libp2p
    this.config = parts.config
    this.paths = parts.paths
    this.registry = parts.registry
    this.signer = parts.signer
    this.nonces = parts.nonces
    this.wallet = parts.wallet
    this.tabs = parts.tabs
    this.chain = parts.chain
    this.payments = parts.payments
    this.market = parts.market
    this.reputation = parts.reputation
    this.caller = parts.caller
    this.pipeline = parts.pipeline
    this.metrics = parts.metrics
    this.modules = parts.modules
    this.routes = parts.routes
    this.pages = parts.pages
    this.errorStatuses = parts.errorStatuses
    this.payWith = parts.payWith
    this.datastore = parts.datastore
  }

  /**
   * What the modules find wrong now, critical first. A module whose check
   * fails says so as a warning of its own rather than hiding the others.
   */
  async warnings (): Promise<Warning[]> {
    const found = await Promise.all([...this.modules].map(async ([module, { warnings }]) => {
      try {
        return await warnings?.() ?? []
      } catch (err: any) {
        return [{ module, severity: 'warning' as const, text: `its health check failed: ${String(err.message)}` }]
      }
    }))
    return found.flat().sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'critical' ? -1 : 1))
  }

  static async create (init: OpenCloudNodeInit): Promise<OpenCloudNode> {
    const booted = await boot(init)
    try {
      return await OpenCloudNode.assemble(booted, init)
    } catch (err) {
      await booted.datastore.close()
      throw err
    }
  }

  private static async assemble ({ paths, config, datastore, privateKey, wallet }: Awaited<ReturnType<typeof boot>>, init: OpenCloudNodeInit): Promise<OpenCloudNode> {
    const section = <T>(s: ConfigSection<T>): T => {
      const [top, name] = s.key.split('.')
      return (top === 'services' ? config.services[name] : config[top]) as T
    }
    const signer = openCloudSigner(privateKey)
    const verifier = new CredentialVerifier({ network: config.payments.network })
    const nonces = new NonceStore()
    const registry = new ServiceRegistry({ prices: configPrices(config) })
    const handler = new PipelineSlot()
    const metrics = new NodeMetrics()
    const definitions = init.serviceModules ?? MODULES
    const topics = (await Promise.all(definitions.map(async m => await m.topics?.(section, paths.root) ?? []))).flat()
    const libp2p = await createLibp2p(libp2pOptions({
      privateKey, datastore, config, signer, handler, topics,
      metrics: metrics.libp2p(paths.root),
      onServed: metrics.onServed,
      listen: init.listen ?? config.listen,
      bootstrap: [...config.bootstrap, ...(init.bootstrap ?? [])]
    }))
    const pubsub = libp2p.services.pubsub
    let reputation: Reputation | undefined
    // reputation is made just below; offers are only weighed once it runs
    const market = new Market({ peerId: libp2p.peerId, pubsub, signer, prices: registry }, { trust: (provider) => reputation?.scoreOf(provider) ?? 0, ...init.market })
    reputation = new Reputation({ peerId: libp2p.peerId, pubsub, signer, datastore }, { pretrusted: config.reputation.pretrusted })
    const tabs = new TabBook(datastore, { graceMs: config.payments.graceMs })
    const chain = config.payments.chain === '' ? undefined : new EsploraClient({ url: config.payments.chain })
    const caller = new NodeCaller({ libp2p, signer, verifier, reputation }, { timeoutMs: config.rpc.timeoutMs, onCall: metrics.onMade })
    // through the caller's rated call, so paid calls leave reputation records too
    const payments = chain == null ? undefined : new PaymentAgent({ call: async (peer, request) => caller.ratedCall(peer, request), wallet, chain, tabs }, { settleIntervalMs: config.payments.settleIntervalMs })
    if (payments != null) {
      caller.usePayments(payments)
    }
    const persist = init.persistConfig ?? init.config == null
    let node: OpenCloudNode | undefined
    const components: ModuleComponents = {
      peerId: libp2p.peerId,
      signer,
      datastore,
      dataDir: paths.root,
      libp2p,
      pubsub,
      registry,
      market,
      reputation,
      wallet,
      network: config.payments.network,
      tabs,
      chain,
      payments,
      caller,
      metrics: metrics.registry,
      config,
      section,
      saveConfig: async (change) => {
        if (!persist) {
          return false
        }
        await updateConfigFile(paths.config, change)
        return true
      },
      nodeInfo: () => (node as OpenCloudNode).info(),
      engine: <T>(name: string) => modules.get(name)?.engine as T | undefined,
      options: { storage: init.storage, ...init.modules }
    }

    // the modules, then what they gave, gathered in one place each
    const modules = new Map<string, ServiceModule>()
    const routes: RouteTable = {}
    const pages: RouteTable = {}
    const errorStatuses: ErrorStatus[] = []
    const hooks: Partial<Record<PaymentKind, PaymentHook>> = {}
    const payWith: NonNullable<ServiceModule['payWith']> = {}
    let reputationCheck: ReputationHook | undefined
    let holdings: HoldingsHook | undefined
    for (const definition of definitions) {
      const module = await definition.create(components)
      modules.set(definition.name, module)
      for (const service of module.services ?? []) {
        registry.register(service)
      }
      for (const [table, own] of [[routes, module.routes], [pages, module.pages]] as const) {
        for (const [route, routeHandler] of Object.entries(own ?? {})) {
          if (routes[route] != null || pages[route] != null) {
            throw new Error(`the route ${route} is claimed by two modules (${definition.name} is the second)`)
          }
          table[route] = routeHandler
        }
      }
      for (const [kind, hook] of Object.entries(module.payments ?? {}) as Array<[PaymentKind, PaymentHook]>) {
        if (hooks[kind] != null) {
          throw new Error(`${kind} payments are claimed by two modules (${definition.name} is the second)`)
        }
        hooks[kind] = hook
      }
      Object.assign(payWith, module.payWith)
      errorStatuses.push(...(module.errors ?? []))
      reputationCheck ??= module.checks?.reputation
      holdings ??= module.checks?.holdings
    }
    const policies = new Policies(config.policies)
    checkServicesConfig(config, registry, policies, definitions.flatMap(m => m.config ?? []))
    const pipeline = new Pipeline({ registry, verifier, nonces, policies }, { requireCredential: config.rpc.requireCredential, reputation: reputationCheck, payments: hooks, holdings })
    handler.pipeline = pipeline
    node = new OpenCloudNode({ libp2p, config, paths, registry, signer, nonces, wallet, tabs, chain, payments, market, reputation, caller, pipeline, modules, routes, pages, errorStatuses, payWith, datastore, metrics })
    return node
  }

  get peerId (): PeerId {
    return this.libp2p.peerId
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
    for (const module of this.modules.values()) {
      await module.start?.()
    }
    log('started %p', this.peerId)
  }

  /**
   * Close streams, connections and the datastore. Every step runs even when
   * an earlier one fails, so the datastore is always flushed and closed; the
   * first failure is rethrown at the end.
   */
  async stop (): Promise<void> {
    const failures: unknown[] = []
    const step = async (name: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        log.error('stopping %s failed - %e', name, err)
        failures.push(err)
      }
    }
    for (const [name, module] of [...this.modules].reverse()) {
      await step(`the ${name} module`, async () => module.stop?.())
    }
    await step('the market', async () => this.market.stop())
    await step('reputation', async () => this.reputation.stop())
    await step('the RPC client', async () => this.caller.stop())
    await step('libp2p', async () => this.libp2p.stop())
    await step('services', async () => this.registry.stop())
    await step('the datastore', async () => this.datastore.close())
    log('stopped %p', this.peerId)
    if (failures.length > 0) {
      throw failures[0]
    }
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

  // ---- accessors for the CLI's daemon, tests and benches: each a module's engine or a component ----

  /** The engine a module runs (its ServiceModule.engine) */
  engine<T> (module: string): T | undefined {
    return this.modules.get(module)?.engine as T | undefined
  }

  get client (): RpcClient {
    return this.caller.client
  }

  /** This node's files stored on other hosts (store put/get) */
  get storage (): StorageClient {
    return (this.engine<StorageEngines>('storage') as StorageEngines).client
  }

  /** The storage service's host side (shards and contracts on this node) */
  get storageHost (): StorageHost {
    return (this.engine<StorageEngines>('storage') as StorageEngines).host
  }

  /** Payment channels, both sides; undefined when payments are off */
  get channels (): Channels | undefined {
    return this.engine<Channels>('payments')
  }

  /** The Cloud Ledger, when config.json names a genesis (ledger.genesis) */
  get cloudLedger (): CloudLedger | undefined {
    return this.engine<CloudLedger>('ledger')
  }

  /** A call that rates the server (node/caller.ts) */
  async call (peer: PeerRef, request: CallRequest): Promise<CallResponse> {
    return this.caller.ratedCall(peer, request)
  }

  /** A call that pays as `options.pay` says, with the bidding strategy of PaymentAgent */
  async paidCall (peer: PeerRef, request: CallRequest, options: PaidCallOptions): Promise<PaidCallResult> {
    return this.caller.paidCall(peer, request, options)
  }

  /** Provide every service this node runs in the DHT */
  async announce (signal?: AbortSignal): Promise<void> {
    await this.engine<PeerDirectory>('peers')?.announce(signal)
  }

  async peers (): Promise<PeerEntry[]> {
    return await this.engine<PeerDirectory>('peers')?.peers() ?? []
  }

  async findProviders (service: string, signal?: AbortSignal): Promise<PeerEntry[]> {
    return await this.engine<PeerDirectory>('peers')?.findProviders(service, signal) ?? []
  }

  /** Set this node's price for a method (the market module's PriceDesk) */
  async setPrice (service: string, method: string, sats: bigint, options: { confirm?: boolean } = {}): ReturnType<PriceDesk['setPrice']> {
    return (this.engine<PriceDesk>('market') as PriceDesk).setPrice(service, method, sats, options)
  }

  /** Providers of a method from the market, best first (market/provider-choice.ts) */
  async selectProviders (service: string, method: string): Promise<string[]> {
    return selectProviders(this.market.index, async peer => (await this.reputation.view(peer)).score, { service, method, me: this.peerId.toString() })
  }

  /** The most to pay for a call at market price (market/provider-choice.ts) */
  marketMaxPrice (service: string, method: string, bodyLength: number, factor = 1.5): bigint {
    return marketMaxPrice(this.market.index, { service, method, bodyLength, factor })
  }

  /** Storage hosts the market knows, best first, with their prices */
  async storageHosts (): Promise<HostOffer[]> {
    return storageHosts({ market: this.market, reputation: this.reputation, peerId: this.peerId })
  }

  /** A signer proving the wallet's identity address, for calls that present a bitcoin credential */
  bitcoinCredential (): CredentialSigner {
    return bitcoinSigner({ privateKey: this.wallet.privateKeyOf(this.wallet.identityAddress), type: 'p2wpkh', network: bitcoinNetwork(this.wallet.network) })
  }
}

/**
 * What config.json says about services, checked against the services that
 * exist: a misspelt service or method name would otherwise be ignored, and
 * a price on a node with payments off could never be paid. A service a
 * module describes but that is switched off is known too.
 */
function checkServicesConfig (config: Config, registry: ServiceRegistry, policies: Policies, sections: ConfigSection[]): void {
  const known = new Set([...registry.names(), ...sections.filter(s => s.key.startsWith('services.')).map(s => s.key.slice('services.'.length))])
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
