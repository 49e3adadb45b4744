import type { DeferredPromise } from '../payments/tab-book.ts'
import type { IncomingBody } from '../protocols/rpc/rpc-server.ts'
import type { OutgoingBody } from '../protocols/rpc/body.ts'
import type { Payment } from '../protocols/rpc/messages.ts'
import type { PricingUnit } from '../protocols/units.ts'
import type { PaymentPolicy } from './policy/policy.ts'
import type { PeerId } from '@libp2p/interface'

/**
 * The service template (seed: "Services", "Template"). A service is a folder
 * under src/services with a factory returning this shape; the registry adds
 * the template methods `info`, `methods` and `quote` to every service.
 */

/** What a method sees of the call, after the pipeline has accepted it */
export interface ServiceContext {
  /** PeerId text of the caller's OpenCloud ID (or of the connection's peer when it sent none) */
  caller: string
  /** verified credentials in text form: oc:<PeerId>, btc:<address> */
  credentials: string[]
  remotePeer: PeerId
  service: string
  method: string
  args: string[]
  payment: Payment
  /**
   * What this caller pays for `units` of a method of this service: the
   * quote, raised to the min-payment policy that applies. The payment check
   * enforces the same figure.
   */
  priceOf?: (method: string, units: number) => bigint
  /**
   * The credit this node gives the caller for deferred payments of a method
   * of any service, under the policies that apply to that call (for
   * payments.tab): its max-tab, and whether deferral is refused outright
   * whatever the tab. Unset where the payment check gives no credit.
   */
  creditFor?: (service: string, method: string) => Promise<Credit>
  /**
   * Set by the payment check when an attached payment was accepted;
   * `repeated` when it is a settlement this node accepted before (the same
   * transaction sent again after a lost answer), which is not paid again;
   * `settles`, for payments.settle, the unpaid promises it pays off
   */
  paid?: { txid: string, sats: bigint, repeated?: boolean, settles?: DeferredPromise[] }
  /**
   * Set by the payment check for what binds only once the call is served (a
   * deferred promise): the pipeline calls `commit` after the service answered
   * ok, and `release` when it did not, so a failed or aborted call leaves no
   * debt behind.
   */
  pending?: { commit: () => Promise<void>, release: () => void }
  body: IncomingBody
  signal: AbortSignal
}

/** What credit a caller gets for a method (PaymentHook.credit, payments.tab) */
export interface Credit {
  /** satoshis: the most the caller may owe in deferred payments (its max-tab); 0: none */
  maxTab: bigint
  /** deferred payment is refused to this caller outright, whatever its tab (no-defer, or defer-min-trust over its score) */
  refused: boolean
}

export interface MethodResult {
  /** JSON answer; encoded as UTF-8 JSON */
  json?: unknown
  /** Raw answer */
  body?: Uint8Array | OutgoingBody
  message?: string
}

export interface UnitsQuery {
  args: string[]
  bodyLength: number
}

export interface CostQuery extends UnitsQuery {
  /** PeerId text of the caller, as ServiceContext.caller */
  caller: string
}

export interface MethodSpec {
  description: string
  /** usage of the args, for `methods` */
  args?: string
  /** the unit this method is priced in */
  unit: PricingUnit
  /** units of service a call uses, default 1 */
  units?: (query: UnitsQuery) => number
  /**
   * The method's agreement check and price, asked by the pipeline before
   * payment (PROTOCOL.md section 8, step 5). It throws the RpcError the
   * caller should see when the call cannot be served under its agreement
   * whatever it pays (an unknown contract, another renter, malformed
   * args), so nobody is asked to pay for a refusal; otherwise it answers
   * what the call costs when the agreement fixes it (a storage contract's
   * upload price, say), or undefined for the list price x units.
   */
  cost?: (query: CostQuery) => bigint | undefined
  /** offer this method on the market even when it is free (clients find providers through the offer), default false */
  advertise?: boolean
  /** default price in satoshis per unit, default 0 (free); config overrides it */
  price?: bigint
  handle: (ctx: ServiceContext) => Promise<MethodResult>
}

export interface Service {
  name: string
  version: string
  description: string
  methods: Record<string, MethodSpec>
  start?: () => Promise<void>
  stop?: () => Promise<void>
}

/** Names the template reserves on every service */
export const TEMPLATE_METHODS = ['info', 'methods', 'quote'] as const

// ---- the pipeline's hooks: what a module may plug into request processing ----

/** What the reputation hook sees; it throws an RpcError to refuse */
export interface ReputationHook {
  check: (ctx: ServiceContext, policy: PaymentPolicy) => Promise<void>
}

export interface PaymentCheck {
  /** satoshis the call costs: max(quote, min-payment policy) */
  required: bigint
  ctx: ServiceContext
  /** the payment commands of the policies that apply */
  policy: PaymentPolicy
}

/** Checks what bitcoin credentials prove (min-balance, min-holding-age); throws AccessDeniedError */
export interface HoldingsHook {
  check: (ctx: ServiceContext, policy: PaymentPolicy) => Promise<void>
}

/** Accepts or refuses the payment a call carries; throws a payment error to refuse */
export interface PaymentHook {
  check: (check: PaymentCheck) => Promise<void>
  /** the credit it would give `caller` under `policy` (ServiceContext.creditFor); absent: it gives none it can tell */
  credit?: (caller: string, policy: PaymentPolicy) => Promise<Credit>
}

/** The kinds of payment a request can carry (PROTOCOL.md section 4), each answered by one hook */
export type PaymentKind = Payment['type']
