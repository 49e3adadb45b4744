import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { formatAmount, formatBtc, parseAmount, parseBtc } from '../market/units.ts'
import type { PayMode } from './pay-options.ts'
import { NoDeferError, PaymentDeclinedError, PaymentTooLowError } from '../protocols/rpc/errors.ts'
import { parseThreshold, type DeferredPromise, type Ledger, type PendingSettlement } from './ledger.ts'
import { DUST } from './wallet/tx-builder.ts'
import type { ChainBackend } from './chain/interface.ts'
import type { Wallet } from './wallet/wallet.ts'
import { replayable, type CallRequest, type CallResponse } from '../protocols/rpc/client.ts'
import type { Payment } from '../protocols/rpc/messages.ts'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

const log = logger('opencloud:payments:agent')

export type { PayMode } from './pay-options.ts'

export class BiddingError extends Error {
  override name = 'BiddingError'
  readonly decisions: string[]
  /** what the server asked, when the bidding stopped at the caller's maximum */
  readonly asked?: bigint
  constructor (message: string, decisions: string[], asked?: bigint) {
    super(message)
    this.decisions = decisions
    this.asked = asked
  }
}

export interface PaidCallOptions {
  pay: PayMode
  /** the most to pay, satoshis; default: the amount in `pay` (auto: 0) */
  maxPrice?: bigint
  /** threshold of deferred payments, default the ledger's default */
  threshold?: string
}

export interface PaidCallResult {
  response: CallResponse
  /** what was paid or promised */
  payment?: { type: 'attached' | 'defer', sats: bigint, txid?: string, id?: string }
  /** what the bidding strategy did and why, in order */
  decisions: string[]
}

export interface PaymentAgentComponents {
  call: (peer: PeerId | Multiaddr, request: CallRequest) => Promise<CallResponse>
  wallet: Wallet
  chain: ChainBackend
  ledger: Ledger
}

export interface PaymentAgentInit {
  /** How often deferred payments are checked and the due ones paid, default 5 s */
  settleIntervalMs?: number
}

/**
 * The client's side of payments (seed: "Bidding strategy", "Defered payment
 * fulfillment"). A paid call starts with the payment the caller chose; on
 * too-low it raises to what the server asks, up to the caller's maximum; on
 * no-defer it switches to an attached payment. Deferred promises are kept in
 * the ledger, and a task pays those that fall due with one attached payment
 * per server.
 */
export class PaymentAgent {
  private readonly components: PaymentAgentComponents
  private readonly settleIntervalMs: number
  private timer?: ReturnType<typeof setInterval>
  private settling?: Promise<void>

  constructor (components: PaymentAgentComponents, init: PaymentAgentInit = {}) {
    this.components = components
    this.settleIntervalMs = init.settleIntervalMs ?? 5_000
  }

  start (): void {
    this.timer = setInterval(() => { void this.settleDue().catch(err => { log.error('settling deferred payments failed - %e', err) }) }, this.settleIntervalMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    await this.settling
  }

  /** A payment that pays `sats` to the server: an address from it, then a signed transaction */
  private async attach (peer: PeerId | Multiaddr, sats: bigint): Promise<{ payment: Payment, txid: string }> {
    const address = await this.addressOf(peer)
    const tx = await this.components.wallet.createPayment(this.components.chain, [{ address, value: sats }])
    return { payment: { type: 'attached', currency: 'BTC', amount: formatBtc(sats), txn: Uint8Array.from(Buffer.from(tx.hex, 'hex')) }, txid: tx.txid }
  }

  async call (peer: PeerId | Multiaddr, request: CallRequest, options: PaidCallOptions): Promise<PaidCallResult> {
    const mode = options.pay
    const max = options.maxPrice ?? (mode.kind === 'attached' || mode.kind === 'defer' ? mode.sats : 0n)
    const threshold = options.threshold ?? ''
    parseThreshold(threshold)
    let plan: { type: 'none' | 'attached' | 'defer', sats: bigint } = mode.kind === 'attached' || mode.kind === 'defer' ? { type: mode.kind, sats: mode.sats } : { type: 'none', sats: 0n }
    if (plan.sats > max) {
      throw new BiddingError(`the payment of ${formatBtc(plan.sats)} BTC is over --max-price ${formatBtc(max)} BTC`, [])
    }
    const decisions: string[] = []
    // every offer sends a small body again: read a one-shot body once
    request = { ...request, body: request.body == null ? undefined : await replayable(request.body, request.signal) }
    for (let round = 0; round < 4; round++) {
      let payment: Payment = { type: 'none' }
      let txid: string | undefined
      let id: string | undefined
      if (plan.type === 'attached') {
        ({ payment, txid } = await this.attach(peer, plan.sats))
      } else if (plan.type === 'defer') {
        id = randomBytes(8).toString('hex')
        payment = { type: 'defer', currency: 'BTC', amount: formatBtc(plan.sats), id, threshold }
      }
      try {
        const response = await this.components.call(peer, { ...request, payment })
        if (plan.type === 'defer') {
          await this.components.ledger.addPromise({ role: 'payable', peer: response.server, id: id as string, sats: plan.sats, threshold, service: request.service, method: request.method })
          decisions.push(`promised ${formatBtc(plan.sats)} BTC as deferred payment ${id}`)
          return { response, payment: { type: 'defer', sats: plan.sats, id }, decisions }
        }
        if (plan.type === 'attached') {
          await this.components.ledger.recordPayment({ direction: 'sent', peer: response.server, txid: txid as string, sats: plan.sats, settles: [], service: request.service, method: request.method })
          decisions.push(`paid ${formatBtc(plan.sats)} BTC attached in ${txid}`)
          return { response, payment: { type: 'attached', sats: plan.sats, txid }, decisions }
        }
        return { response, decisions }
      } catch (err: any) {
        const asked = err.acceptablePayment?.amount == null ? undefined : parseBtc(err.acceptablePayment.amount)
        if (err instanceof PaymentTooLowError && asked != null) {
          if (mode.kind === 'none') {
            throw err
          }
          if (asked > max) {
            decisions.push(`too-low: the server asks ${formatBtc(asked)} BTC, over the maximum of ${formatBtc(max)} BTC: giving up`)
            throw new BiddingError(`the server asks ${formatBtc(asked)} BTC for ${request.service}.${request.method}, more than --max-price ${formatBtc(max)} BTC`, decisions, asked)
          }
          // auto follows the kind of payment the server says it accepts
          const type = plan.type === 'none'
            ? (mode.kind === 'auto' ? (err.acceptablePayment?.type === 'attached' ? 'attached' : 'defer') : 'attached')
            : plan.type
          decisions.push(`too-low: the server asks ${formatBtc(asked)} BTC; offering ${formatBtc(asked)} BTC ${type} (maximum ${formatBtc(max)} BTC)`)
          plan = { type, sats: asked }
          continue
        }
        if (err instanceof NoDeferError && plan.type === 'defer') {
          if (mode.kind === 'defer') {
            decisions.push('no-defer: the server gives no credit and --pay defer allows nothing else: giving up')
            throw new BiddingError(`the server refuses deferred payment: ${err.message}`, decisions)
          }
          const sats = asked != null && asked > plan.sats ? asked : plan.sats
          if (sats > max) {
            throw new BiddingError(`the server wants ${formatBtc(sats)} BTC attached, more than --max-price ${formatBtc(max)} BTC`, decisions, sats)
          }
          decisions.push(`no-defer: ${err.message}; switching to an attached payment of ${formatBtc(sats)} BTC`)
          plan = { type: 'attached', sats }
          continue
        }
        if (decisions.length > 0) {
          err.decisions = decisions
        }
        throw err
      }
    }
    throw new BiddingError('the server kept asking for more; giving up after 4 offers', decisions)
  }

  /**
   * Pay every unpaid promise to each server with at least one due promise,
   * or with a settlement still in flight. One server's failure does not
   * hold up the others; it is tried again at the next round.
   */
  async settleDue (): Promise<Array<{ peer: string, ids: string[], txid: string }>> {
    if (this.settling != null) {
      await this.settling
    }
    const done: Array<{ peer: string, ids: string[], txid: string }> = []
    const run = (async () => {
      const { ledger } = this.components
      const byPeer = new Map<string, DeferredPromise[]>()
      for (const p of await ledger.promises('payable')) {
        if (p.paidAt == null) {
          const list = byPeer.get(p.peer) ?? []
          list.push(p)
          byPeer.set(p.peer, list)
        }
      }
      for (const [peer, unpaid] of byPeer) {
        const outstanding = unpaid.reduce((s, p) => s + p.sats, 0n)
        const pending = await ledger.pendingSettlement(peer)
        if (pending == null && !unpaid.some(p => ledger.isDue(p, outstanding))) {
          continue
        }
        try {
          done.push(await this.settleWith(peer, outstanding, pending))
        } catch (err: any) {
          log.error('settling with %s failed, to be tried again - %s', peer, err.message)
        }
      }
    })()
    this.settling = run.finally(() => { this.settling = undefined })
    await this.settling
    return done
  }

  /**
   * Settle with one server by cursor: one transaction pays the oldest unpaid
   * promises, however many (`payments.settle` without ids). The transaction
   * is kept in the ledger before it is sent; after a failure the same one is
   * sent again, and the server, which knows it, answers what it settled
   * instead of taking a second payment. A new one is built only when the old
   * one is known never to have reached the chain.
   */
  private async settleWith (peer: string, outstanding: bigint, pending?: PendingSettlement): Promise<{ peer: string, ids: string[], txid: string }> {
    const { ledger, wallet, chain } = this.components
    const target = peerIdFromString(peer)
    if (pending == null) {
      // a debt below the dust limit cannot be paid on chain as it is: round
      // it up rather than let it go overdue (the server keeps the difference)
      const sats = outstanding < DUST ? DUST : outstanding
      const address = await this.addressOf(target)
      const tx = await wallet.createPayment(chain, [{ address, value: sats }])
      pending = { peer, txid: tx.txid, hex: tx.hex, sats, at: Date.now() }
      await ledger.setPendingSettlement(pending)
    }
    const payment: Payment = { type: 'attached', currency: 'BTC', amount: formatBtc(pending.sats), txn: Uint8Array.from(Buffer.from(pending.hex, 'hex')) }
    let answer: { settled: string[], repeated?: boolean, tab?: { outstanding?: string } }
    try {
      const response = await this.components.call(target, { service: 'payments', method: 'settle', payment })
      answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
    } catch (err) {
      if (err instanceof PaymentDeclinedError && !(await this.onChain(pending.txid))) {
        // refused and never broadcast (it pays off nothing there, or its
        // coins went to another payment meanwhile): safe to build anew
        await ledger.clearPendingSettlement(peer)
        if (/pays off none of your unpaid/.test(err.message)) {
          await this.reconcile(target, peer)
        }
      }
      throw err
    }
    const settled = Array.isArray(answer.settled) ? answer.settled.filter((id): id is string => typeof id === 'string') : []
    await ledger.markPaid('payable', peer, settled, pending.txid)
    await ledger.recordPayment({ direction: 'sent', peer, txid: pending.txid, sats: pending.sats, settles: settled, service: 'payments', method: 'settle' })
    await ledger.clearPendingSettlement(peer)
    log('settled %d deferred payments with %s in %s%s', settled.length, peer, pending.txid, answer.repeated === true ? ' (sent again after a lost answer)' : '')
    const theirs = answer.tab?.outstanding
    const ours = (await ledger.tab('payable', peer)).outstanding
    if (theirs != null && parseAmount(theirs) !== ours) {
      log.error('after settling, %s says %s is still owed and this node counts %s', peer, theirs, formatAmount(ours))
    }
    return { peer, ids: settled, txid: pending.txid }
  }

  /**
   * The server says a settlement pays off nothing: compare tabs. Promises it
   * has no record of are owed to nobody; they are closed as waived, so they
   * do not go overdue and are not paid for nothing at every round.
   */
  private async reconcile (target: PeerId, peer: string): Promise<void> {
    const response = await this.components.call(target, { service: 'payments', method: 'tab' })
    const tab = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
    if (parseAmount(tab.outstanding) === 0n) {
      const { ledger } = this.components
      const unpaid = (await ledger.promises('payable', peer)).filter(p => p.paidAt == null).map(p => p.id)
      await ledger.markPaid('payable', peer, unpaid, WAIVED)
      log.error('%s has no record of %d promise(s) this node made it: closed as waived', peer, unpaid.length)
    }
  }

  private async addressOf (peer: PeerId | Multiaddr): Promise<string> {
    const res = await this.components.call(peer, { service: 'payments', method: 'address' })
    return JSON.parse(new TextDecoder().decode(await res.body.bytes())).address
  }

  /** Whether the chain knows a transaction (in its mempool or a block) */
  private async onChain (txid: string): Promise<boolean> {
    try {
      await this.components.chain.transaction(txid)
      return true
    } catch (err: any) {
      if (err.name === 'TransactionNotFoundError') {
        return false
      }
      // the chain did not answer: assume the worst, and send it again later
      return true
    }
  }
}

/** The txid recorded on promises the server had no record of (reconcile) */
export const WAIVED = 'waived:unknown-to-the-server'
