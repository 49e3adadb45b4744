import type { Config, ConfigSection } from './config-section.ts'
import type { HoldingsHook, PaymentHook, PaymentKind, ReputationHook, Service } from './interface.ts'
import type { ServiceRegistry } from './registry.ts'
import type { CallRequest, CallResponse } from '../protocols/rpc/rpc-client.ts'
import type { CredentialSigner } from '../protocols/rpc/credentials.ts'
import type { BitcoinNetworkName } from '../protocols/bitcoin-networks.ts'
import type { Market } from '../market/market.ts'
import type { Reputation } from '../reputation/reputation.ts'
import type { Wallet } from '../payments/wallet/wallet.ts'
import type { TabBook } from '../payments/tab-book.ts'
import type { ChainBackend } from '../payments/chain/interface.ts'
import type { ExpectedPayee, PaidCallOptions, PaidCallResult, PaymentAgent } from '../payments/payment-agent.ts'
import type { PayMode } from '../payments/pay-options.ts'
import type { Payment } from '../protocols/rpc/wire-types.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Datastore } from 'interface-datastore'
import type { Libp2p } from 'libp2p'
import type { GossipSub } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Registry } from 'prom-client'

/**
 * The module contract (DESIGN.md): what a service module gives the node,
 * and what the node gives it. A module is a folder under src/services whose
 * index.ts exports a ServiceModuleDefinition; the node assembles its
 * modules from the one list in src/node/modules.ts (js-libp2p's
 * `createLibp2p({ services })`, applied to this project's own layer).
 */

/** A call to a peer, named by PeerId, multiaddr or either as text */
export type PeerRef = PeerId | Multiaddr | string

/** The node's ways of calling another peer */
export interface Caller {
  /** a call whose outcome rates the server in reputation: served, failed, paid and not served */
  ratedCall: (peer: PeerRef, request: CallRequest) => Promise<CallResponse>
  /** a call paid as `options.pay` says, by the bidding strategy (PaymentAgent); payments off: refused */
  paidCall: (peer: PeerRef, request: CallRequest, options: PaidCallOptions) => Promise<PaidCallResult>
  /** a rated call paying `sats` (0: unpaid), deferred where the server gives credit: storage's calls under a contract */
  payingCall: (peer: string, request: CallRequest, sats: bigint) => Promise<CallResponse>
  /** open payment channels to payees this node expects to pay, in one funding transaction, where its strategy says a channel is worth it */
  prepay: (payees: ExpectedPayee[], signal?: AbortSignal) => Promise<void>
  /** a call that rates nobody: the payment protocol's own plumbing, a ledger's sync */
  plainCall: (peer: PeerRef, request: CallRequest) => Promise<CallResponse>
}

/** What the node has built before its modules, for them to use (js-libp2p's components object) */
export interface ModuleComponents {
  peerId: PeerId
  signer: CredentialSigner
  datastore: Datastore
  /** the data directory; a module keeps its files in a folder of its own under it */
  dataDir: string
  /** libp2p itself: the peer store, connections, the DHT's content routing, events */
  libp2p: Libp2p
  pubsub: GossipSub
  registry: ServiceRegistry
  market: Market
  reputation: Reputation
  wallet: Wallet
  /** the bitcoin network the node runs on */
  network: BitcoinNetworkName
  /** deferred payments owed to and by this node */
  tabs: TabBook
  /** the chain backend; undefined when payments are off (payments.chain empty) */
  chain?: ChainBackend
  /** the paying side of payments (bidding, settling); undefined when payments are off */
  payments?: PaymentAgent
  caller: Caller
  /**
   * the node's Prometheus registry (GET /metrics): a module adds the
   * figures of its engine, read at scrape time (a gauge's collect)
   */
  metrics: Registry
  /** config.json as the node runs on it, checked: the node's fields, and every module's section */
  config: Config
  /** a module's own config section, checked (ConfigSection.validate) */
  section: <T>(section: ConfigSection<T>) => T
  /**
   * Change config.json in place and keep it (a price set at run time);
   * resolves with whether it was written (false: the node runs on a config
   * it was given, not on a file)
   */
  saveConfig: (change: (raw: Record<string, any>) => void) => Promise<boolean>
  /** what info.node and GET /v1/id answer */
  nodeInfo: () => NodeInfo
  /**
   * the engine of a module made before this one (its ServiceModule.engine),
   * for a module in front of another's: the S3 gateway's storage client
   */
  engine: <T>(module: string) => T | undefined
  /** settings an embedder or a test gives a module in code, by module name (OpenCloudNodeInit.modules) */
  options: Record<string, unknown>
}

/** What info.node answers (PROTOCOL.md section 10) */
export interface NodeInfo {
  peerId: string
  version: string
  protocol: string
  addresses: string[]
  services: string[]
  startedAt: string
}

/** One request to the control API, for a route's handler */
export interface RouteContext {
  req: IncomingMessage
  res: ServerResponse
  url: URL
  /** answer JSON with this HTTP status */
  json: (status: number, value: unknown) => void
  /** aborted when the API client goes away */
  signal: AbortSignal
  /** the HTTP status the control API gives an error (its error table), for an answer that reports it in its body */
  statusOf: (err: unknown) => number
}

/** "GET /v1/store" -> its handler; a handler answers through ctx.res or ctx.json, or throws (HttpError, or an error the error table maps) */
export type RouteTable = Record<string, (ctx: RouteContext) => Promise<void>>

/** Something an operator should look at (GET /v1/warnings, the dashboard's overview) */
export interface Warning {
  /** the module that raised it */
  module: string
  /** critical: data or money at risk now (an object lost, rent the wallet cannot pay); warning: worth a look */
  severity: 'warning' | 'critical'
  /** a sentence that says what is wrong and what to do */
  text: string
}

/** An error class and the HTTP status the control API answers it with */
export type ErrorStatus = [abstract new (...args: any[]) => Error, number]

/** What a module gives the node (DESIGN.md, "The module contract") */
export interface ServiceModule {
  /** RPC services; the registry adds info, methods and quote to each */
  services?: Service[]
  /** control-API routes */
  routes?: RouteTable
  /**
   * control-API routes served without the token, for a browser that has
   * none yet: the dashboard's static files and its one-time login. They
   * still pass the API's Host and Origin checks, and must answer nothing
   * of the node's state.
   */
  pages?: RouteTable
  /** what this module finds wrong now (GET /v1/warnings); each call looks afresh */
  warnings?: () => Promise<Warning[]>
  /** payment kinds this module accepts, each with its hook ("promo" on a member cloud) */
  payments?: Partial<Record<PaymentKind, PaymentHook>>
  /**
   * kinds of payment this node can make with this module, by `--pay` kind
   * (promo: a code of a Cloud Ledger): the payment a call to `server` carries
   */
  payWith?: Partial<Record<PayMode['kind'], (mode: PayMode, server: string) => Payment | undefined>>
  /** checks of the pipeline's steps 3 and 4 this module answers */
  checks?: { reputation?: ReputationHook, holdings?: HoldingsHook }
  /** the HTTP status of this module's errors in the control API */
  errors?: ErrorStatus[]
  /** the engine this module runs, for the node's accessors and tests (node.storage) */
  engine?: unknown
  start?: () => Promise<void>
  stop?: () => Promise<void>
}

/** A module of the node: its name, its config sections and its factory */
export interface ServiceModuleDefinition {
  name: string
  /** the sections of config.json it reads; the loader checks them and writes their defaults */
  config?: ConfigSection[]
  /**
   * gossip topics this module will use, known from config before libp2p is
   * made (gossipsub scores a topic only when it is named at construction)
   */
  topics?: (section: ModuleComponents['section'], dataDir: string) => Promise<string[]>
  create: (components: ModuleComponents) => ServiceModule | Promise<ServiceModule>
}
