import { streamPair } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { DialError, ServerError } from '../protocols/rpc/errors.ts'
import { formatAmount } from '../protocols/units.ts'
import type { CallObserver } from '../protocols/rpc/observation.ts'
import { RpcClient, type CallRequest, type CallResponse, type RpcConnection } from '../protocols/rpc/rpc-client.ts'
import type { CredentialSigner, CredentialVerifier } from '../protocols/rpc/credentials.ts'
import type { RpcServer } from '../protocols/rpc/rpc-server.ts'
import type { ExpectedPayee, PaidCallOptions, PaidCallResult, PaymentAgent } from '../payments/payment-agent.ts'
import type { Reputation } from '../reputation/reputation.ts'
import type { Caller, PeerRef } from '../services/module.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Libp2p } from 'libp2p'

export class PaymentsOffError extends Error {
  override name = 'PaymentsOffError'
  constructor (message = 'payments are off: set payments.chain in config.json to an Esplora API URL (npm run chain starts a local one)') {
    super(message)
  }
}

export interface NodeCallerComponents {
  libp2p: Libp2p<{ rpc: RpcServer }>
  signer: CredentialSigner
  verifier: CredentialVerifier
  reputation: Reputation
}

export interface NodeCallerInit {
  /** an outgoing call without a body gives up after this long, default the RPC client's (rpc.timeoutMs) */
  timeoutMs?: number
  /** told of every call made (NodeMetrics.onMade), default none */
  onCall?: CallObserver
}

/**
 * The node's ways of calling a peer (services/module.ts, Caller): one RPC
 * client with its stream pools, the node's own calls to itself through the
 * same pipeline, a reputation record for every rated call, and paid calls
 * through the payment agent once payments are on.
 */
export class NodeCaller implements Caller {
  readonly client: RpcClient
  private readonly components: NodeCallerComponents
  private payments?: PaymentAgent

  constructor (components: NodeCallerComponents, init: NodeCallerInit = {}) {
    this.components = components
    this.client = new RpcClient({ dial: async (peer, options) => this.dial(peer, options) }, {
      signer: components.signer,
      verifier: components.verifier,
      timeoutMs: init.timeoutMs,
      onCall: init.onCall
    })
  }

  /** The payment agent calls through this caller, so it comes after it */
  usePayments (payments: PaymentAgent): void {
    this.payments = payments
  }

  async stop (): Promise<void> {
    await this.client.stop()
  }

  private get peerId (): PeerId {
    return this.components.libp2p.peerId
  }

  private async dial (peer: PeerId | Multiaddr, options?: AbortOptions): Promise<RpcConnection> {
    const { libp2p } = this.components
    if (this.isSelf(peer)) {
      return this.selfConnection()
    }
    if ('toMultihash' in peer && libp2p.getConnections().length === 0 && ((await libp2p.peerStore.get(peer).catch(() => undefined))?.addresses.length ?? 0) === 0) {
      // nobody to ask where it is: fail now rather than wait out the dial timeout
      throw new DialError(`cannot reach ${peer.toString()}: no peer with that id is known, and this node is connected to no peers to ask the DHT; start it with --bootstrap <multiaddr>, or call the peer by its multiaddr`)
    }
    return libp2p.dial(peer, options)
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
        this.components.libp2p.services.rpc.serveLocal(inbound, this.peerId)
        return outbound
      }
    }
  }

  async plainCall (peer: PeerRef, request: CallRequest): Promise<CallResponse> {
    return this.client.call(typeof peer === 'string' ? parsePeer(peer) : peer, request)
  }

  /**
   * A call that leaves a reputation record of the server: served, or failed
   * (and whether it had been paid). Refusals are not the server failing,
   * and calls that never reached it are not recorded. The payment
   * protocol's own calls (an address to pay, settling a tab) are plumbing
   * and not rated: a provider would earn trust by answering "where do I pay
   * you" and then failing the paid call.
   */
  async ratedCall (peer: PeerRef, request: CallRequest): Promise<CallResponse> {
    if (request.service === 'payments') {
      return this.plainCall(peer, request)
    }
    const { reputation } = this.components
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
      void reputation.record({
        peer: response.server, role: 'server', outcome: 'satisfactory', event: 'served', service: request.service, method: request.method, promised, latencyMs,
        throughput: bytes > 0 && latencyMs > 0 ? Math.round(bytes / latencyMs * 1000) : undefined
      }).catch(() => {})
      return response
    } catch (err: any) {
      const server = err.response?.server ?? serverOf(target)
      const failed = err instanceof ServerError || err.name === 'StreamEndedError' || err.name === 'ResponseVerificationError' || err.name === 'BodyDigestMismatchError'
      if (failed && server != null) {
        void reputation.record({
          peer: server, role: 'server', outcome: 'unsatisfactory', event: promised?.includes('attached') === true ? 'paid-not-served' : 'failed', service: request.service, method: request.method, promised
        }).catch(() => {})
      }
      throw err
    }
  }

  /** A call that pays as `options.pay` says, with the bidding strategy of PaymentAgent */
  async paidCall (peer: PeerRef, request: CallRequest, options: PaidCallOptions): Promise<PaidCallResult> {
    if (this.payments == null) {
      throw new PaymentsOffError()
    }
    return this.payments.call(typeof peer === 'string' ? parsePeer(peer) : peer, request, options)
  }

  /**
   * A call paying `sats` through this node's channel with the server, or
   * as a deferred payment within the credit the server gives; where it
   * gives none the agent settles the tab first when that makes room
   * (PROTOCOL.md 8a), else the call fails with the reason (BiddingError).
   * Unpaid when `sats` is 0; a PaymentsOffError when payments are off.
   */
  async payingCall (peer: string, request: CallRequest, sats: bigint): Promise<CallResponse> {
    if (sats === 0n) {
      return this.ratedCall(peer, request)
    }
    if (this.payments == null) {
      // said here rather than sent unpaid: the host's refusal named what it
      // costs, not why this node could not pay (a newcomer joined a priced
      // network from a node with payments off, as the lone node's hint said)
      throw new PaymentsOffError(`${request.service}.${request.method} costs ${formatAmount(sats)} on ${peer}, and this node's payments are off: set payments.chain in config.json to an Esplora API URL (npm run chain starts a local one) and restart the node`)
    }
    return this.payments.payTo(peerIdFromString(peer), request, sats)
  }

  /** Open channels to payees this node expects to pay, where the payment strategy says so (PaymentAgent.prepay); nothing when payments are off */
  async prepay (payees: ExpectedPayee[], signal?: AbortSignal): Promise<void> {
    await this.payments?.prepay(payees, signal)
  }
}

/** The PeerId text a multiaddr or PeerId names, if it names one */
export function serverOf (target: PeerId | Multiaddr): string | undefined {
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
