import { logger } from '@libp2p/logger'
import { formatBtc } from '../protocols/units.ts'
import { AccessDeniedError, BadRequestError, NoDeferError, PaymentDeclinedError, RateLimitedError } from '../protocols/rpc/errors.ts'
import { credentialText, firstOpenCloudId, type CredentialVerifier } from '../protocols/rpc/credentials.ts'
import { bodyFromBytes } from '../protocols/rpc/body.ts'
import { encodeChallenge, type NonceStore } from '../protocols/rpc/nonce-store.ts'
import { Status } from '../protocols/rpc/status.ts'
import { RateLimiter } from '../utils/rate-limiter.ts'
import type { PaymentPolicy, Policies } from './policy/policy.ts'
import type { ServiceRegistry } from './registry.ts'
import type { Credit, HoldingsHook, MethodResult, PaymentHook, PaymentKind, ReputationHook, ServiceContext } from './interface.ts'
import type { IncomingRequest, Reply, RequestHandler } from '../protocols/rpc/rpc-server.ts'

const log = logger('opencloud:pipeline')

/** Until reputation lands every caller is served */
export const noReputation: ReputationHook = { check: async () => {} }

/**
 * A node with payments off (no chain to check a payment against) serves
 * free calls only. A priced call is refused with no acceptable payment,
 * because nothing the caller could send would be accepted: offering one
 * (an attached payment of 1 sat, say) would send the caller to pay in vain.
 * Config refuses prices and min-payments when payments are off and the
 * storage host signs no priced terms, so this is met only under a contract
 * signed while payments were on.
 */
export const freeCallsOnly: PaymentHook = {
  check: async ({ required, ctx }) => {
    const what = `${ctx.service}.${ctx.method}`
    if (required > 0n) {
      throw new PaymentDeclinedError(`${what} costs ${formatBtc(required)} BTC here, but this node takes no payments (its payments.chain is empty), so it serves only free calls: ask another provider`)
    }
    if (ctx.payment.type === 'defer') {
      throw new NoDeferError(`${what} is free here and this node takes no payments (its payments.chain is empty): send the call without a payment`)
    }
    if (ctx.payment.type !== 'none') {
      throw new PaymentDeclinedError(`${what} is free here and this node takes no payments (its payments.chain is empty): send the call without a payment`)
    }
  }
}

export interface PipelineComponents {
  registry: ServiceRegistry
  verifier: CredentialVerifier
  nonces: NonceStore
  policies: Policies
}

export interface PipelineInit {
  /** Refuse requests without an OpenCloud ID credential, default true (seed: servers require id, sig and nonce) */
  requireCredential?: boolean
  /** the trust check (min-trust), default: every caller is served */
  reputation?: ReputationHook
  /**
   * One hook per kind of payment a request carries (PROTOCOL.md section 4).
   * A kind without a hook: `none`, `attached` and `defer` are answered as a
   * node with payments off answers them (freeCallsOnly); others (`promo` on
   * a node that is no member cloud) are declined, saying so.
   */
  payments?: Partial<Record<PaymentKind, PaymentHook>>
  /** the bitcoin holdings check (min-balance); without it a min-balance policy denies */
  holdings?: HoldingsHook
  rateLimiter?: RateLimiter
}

/** What a request paying in a kind no module accepts is told */
const UNACCEPTED: Partial<Record<PaymentKind, string>> = {
  promo: 'this node accepts no promo codes: it is not a member cloud of a Cloud Ledger'
}

/**
 * Every incoming request passes here, in the order of the seed's "Request
 * processing": is it valid (signatures, nonce, service, method), access
 * control by policy, reputation, the method's agreement check (its
 * `cost`), payment, and only then the service. Its hooks are fixed when it
 * is made: the node collects them from its modules first.
 */
export class Pipeline implements RequestHandler {
  private readonly components: PipelineComponents
  readonly policies: Policies
  private readonly requireCredential: boolean
  private readonly rateLimiter: RateLimiter
  private readonly reputation: ReputationHook
  private readonly payments: Partial<Record<PaymentKind, PaymentHook>>
  private readonly holdings?: HoldingsHook

  constructor (components: PipelineComponents, init: PipelineInit = {}) {
    this.components = components
    this.policies = components.policies
    this.requireCredential = init.requireCredential ?? true
    this.reputation = init.reputation ?? noReputation
    this.payments = { none: freeCallsOnly, attached: freeCallsOnly, defer: freeCallsOnly, channel: freeCallsOnly, ...init.payments }
    this.holdings = init.holdings
    this.rateLimiter = init.rateLimiter ?? new RateLimiter()
  }

  async handle (request: IncomingRequest): Promise<Reply> {
    const { registry, verifier, nonces, policies } = this.components
    const { head } = request

    // 1. is the request valid?
    verifier.verifyAll(head.credentials, head.signatures, request.signing)
    const openCloudId = firstOpenCloudId(head.credentials)
    if (openCloudId == null && this.requireCredential) {
      throw new BadRequestError('this node requires an OpenCloud ID credential (oc:<PeerId>) on every request')
    }
    const caller = openCloudId ?? request.remotePeer.toString()
    const nonce = nonces.consume(caller, head.nonce)
    if (!nonce.ok) {
      return {
        status: Status.REFRESH_NONCE,
        message: `${nonce.reason}; use the nonce in this response`,
        body: bodyFromBytes(encodeChallenge(nonces.issue(caller, nonce.code)))
      }
    }
    const { method } = registry.resolve(head.service, head.method)

    const ctx: ServiceContext = {
      caller,
      credentials: head.credentials.map(credentialText),
      remotePeer: request.remotePeer,
      service: head.service,
      method: head.method,
      args: head.args,
      payment: head.payment,
      body: request.body,
      signal: request.signal
    }

    // 2. access control
    const decision = policies.decide(ctx)
    if (decision.access === 'deny') {
      throw new AccessDeniedError(`${head.service}.${head.method} is denied to ${caller} by the ${decision.accessScope} policy`)
    }
    for (const { scope, limit } of decision.rateLimits) {
      const waitMs = this.rateLimiter.take(`${scope}|${caller}`, limit)
      if (waitMs > 0) {
        throw new RateLimitedError(`over the ${scope} rate limit of ${limit.text}; retry in ${(waitMs / 1000).toFixed(1)} s`)
      }
    }
    if (decision.payment.minBalance > 0n) {
      if (this.holdings == null) {
        throw new AccessDeniedError('this node requires a bitcoin balance but has no chain backend to check it; its operator must set payments.chain')
      }
      await this.holdings.check(ctx, decision.payment)
    }

    // 3. reputation
    await this.reputation.check(ctx, decision.payment)

    // 4. the method's agreement check, then payment: a call its agreement
    // refuses (an unknown contract, another renter, malformed args) is never
    // asked to pay first
    const agreed = method.cost?.({ args: head.args, bodyLength: head.bodyLength, caller })
    ctx.priceOf = (name, units) => {
      const { method: spec } = registry.resolve(head.service, name)
      const total = registry.priceOf(head.service, name, spec) * BigInt(units)
      // the decision for this call's own method is at hand; others (quote) are decided here
      const min = name === head.method ? decision.minPayment : policies.decide({ service: head.service, method: name, credentials: ctx.credentials }).minPayment
      return total > min ? total : min
    }
    // deferred payments' hook knows what credit it gives (payments.tab answers it)
    const credit = this.payments.defer?.credit?.bind(this.payments.defer)
    if (credit != null) {
      ctx.creditFor = async (service, name) => credit(caller, policies.decide({ service, method: name, credentials: ctx.credentials }).payment)
    }
    const units = registry.quote(head.service, head.method, { args: head.args, bodyLength: head.bodyLength }).units
    const required = agreed == null ? ctx.priceOf(head.method, units) : (agreed > decision.minPayment ? agreed : decision.minPayment)
    const hook = this.payments[ctx.payment.type]
    if (hook == null) {
      throw new PaymentDeclinedError(UNACCEPTED[ctx.payment.type] ?? `this node accepts no ${ctx.payment.type} payments`)
    }
    await hook.check({ required, ctx, policy: decision.payment })

    // 5. the service; a deferred promise binds only once it has served
    log.trace('%s.%s for %s', head.service, head.method, caller)
    let result: MethodResult
    try {
      result = await method.handle(ctx)
      await ctx.pending?.commit()
    } catch (err) {
      ctx.pending?.release()
      throw err
    }
    return { status: Status.OK, message: result.message, body: toBody(result) }
  }
}

function toBody (result: MethodResult): Reply['body'] {
  if (result.json !== undefined) {
    return bodyFromBytes(new TextEncoder().encode(JSON.stringify(result.json)))
  }
  if (result.body instanceof Uint8Array) {
    return bodyFromBytes(result.body)
  }
  return result.body
}
