import { Transaction, address as btcAddress } from 'bitcoinjs-lib'
import { logger } from '@libp2p/logger'
import { formatAmount, formatBtc, parseBtc } from '../../protocols/units.ts'
import { AccessDeniedError, BadRequestError, NoDeferError, PaymentDeclinedError, PaymentTooLowError } from '../../protocols/rpc/errors.ts'
import { TransactionRejectedError } from '../../payments/chain/errors.ts'
import { DUST } from '../../payments/wallet/tx-builder.ts'
import { parseThreshold, type TabBook } from '../../payments/tab-book.ts'
import { bitcoinNetwork, type BitcoinNetworkName } from '../../protocols/bitcoin-networks.ts'
import type { ChainBackend } from '../../payments/chain/interface.ts'
import type { Wallet } from '../../payments/wallet/wallet.ts'
import type { Credit, HoldingsHook, PaymentCheck, PaymentHook, ServiceContext } from '../interface.ts'
import type { PaymentPolicy } from '../policy/policy.ts'

const log = logger('opencloud:payments:desk')

export interface PaymentDeskComponents {
  wallet: Wallet
  chain: ChainBackend
  tabs: TabBook
  /** the caller's trust score (1 = average), for defer-min-trust */
  trustScore?: (peer: string) => Promise<number>
  /** records what callers did, for reputation */
  record?: (record: { peer: string, role: 'caller', outcome: 'satisfactory' | 'unsatisfactory', event: string, promised?: string }) => Promise<void>
}

export interface PaymentDeskInit {
  network: BitcoinNetworkName
}

/**
 * An acceptable payment the caller can make: an attached payment is never
 * offered below the dust limit, because no wallet can build it (the node
 * keeps the difference). Deferred payments below it wait for more and are
 * never overdue (TabBook.tab), so no tab is ever paid above what it owes.
 */
function acceptable (sats: bigint, type: 'attached' | 'defer' = 'attached'): { type: 'attached' | 'defer', currency: string, amount: string } {
  return { type, currency: 'BTC', amount: formatBtc(type === 'attached' && sats < DUST ? DUST : sats) }
}

function withAcceptable<E extends Error & { acceptablePayment?: any }> (err: E, sats: bigint, type: 'attached' | 'defer' = 'attached'): E {
  err.acceptablePayment = acceptable(sats, type)
  return err
}

/**
 * The server's side of payments (seed: "Deferred payment tracking", "Bid
 * acceptance strategy"). Attached payments are checked, broadcast and
 * recorded; deferred payments are accepted within the caller's credit and
 * recorded as promises. Every refusal says what would be accepted instead.
 */
export class PaymentDesk implements PaymentHook {
  private readonly components: PaymentDeskComponents
  private readonly network: BitcoinNetworkName
  /** transactions being checked right now, so two requests cannot spend one */
  private readonly inFlight = new Set<string>()
  /** deferred promises of calls being served, by "caller id": not yet on the tab */
  private readonly reserved = new Map<string, { caller: string, sats: bigint }>()

  constructor (components: PaymentDeskComponents, init: PaymentDeskInit) {
    this.components = components
    this.network = init.network
  }
  /** Confirmations an attached payment needs: the policy, else 0 on regtest and 1 elsewhere */
  confirmationsFor (policy: PaymentPolicy): number {
    return policy.confirmations ?? (this.network === 'regtest' ? 0 : 1)
  }

  async check ({ required, ctx, policy }: PaymentCheck): Promise<void> {
    const payment = ctx.payment
    const what = `${ctx.service}.${ctx.method}`
    if (payment.type === 'none') {
      if (required > 0n) {
        const type = await this.wouldGiveCredit(ctx, policy, required) ? 'defer' : 'attached'
        throw withAcceptable(new PaymentTooLowError(`${what} costs ${formatBtc(required)} BTC and the request carries no payment`), required, type)
      }
      return
    }
    if (payment.type === 'promo') {
      throw withAcceptable(new PaymentDeclinedError('promo codes are redeemed by a Cloud Ledger member cloud, not by the bitcoin payment desk'), required)
    }
    if (payment.currency !== 'BTC') {
      throw withAcceptable(new PaymentDeclinedError(`this node is paid in BTC, not ${payment.currency}`), required)
    }
    const sats = parseBtc(payment.amount)
    if (payment.type === 'defer') {
      await this.defer(ctx, policy, required, sats, payment.id, payment.threshold)
      return
    }
    if (sats < required) {
      throw withAcceptable(new PaymentTooLowError(`${what} costs ${formatBtc(required)} BTC; the payment offers ${formatBtc(sats)}`), required)
    }
    ctx.paid = await this.accept(ctx, policy, sats, payment.txn)
  }

  /**
   * Whether a deferred payment of `sats` would be accepted from this caller
   * now, so an unpaid call is offered the payment it can really make: credit
   * where the policy gives it, else an attached payment.
   */
  private async wouldGiveCredit (ctx: ServiceContext, policy: PaymentPolicy, sats: bigint): Promise<boolean> {
    if (policy.maxTab === 0n || await this.refusal(ctx.caller, policy) != null) {
      return false
    }
    const tab = await this.components.tabs.tab('receivable', ctx.caller)
    return tab.overdue === 0n && tab.outstanding + sats <= policy.maxTab
  }

  /**
   * The credit `caller` gets under `policy`, whatever its tab
   * (payments.tab answers it, so a client refused credit can tell whether
   * settling its tab would make room: PROTOCOL.md 8a)
   */
  async credit (caller: string, policy: PaymentPolicy): Promise<Credit> {
    return { maxTab: policy.maxTab, refused: await this.refusal(caller, policy) != null }
  }

  /** Why `caller` gets no credit at all under `policy` (a no-defer policy, or a trust score under defer-min-trust); none when it may */
  private async refusal (caller: string, policy: PaymentPolicy, what = 'this call'): Promise<string | undefined> {
    if (policy.noDefer) {
      return `this node does not accept deferred payment for ${what}`
    }
    if (policy.deferMinTrust > 0 && this.components.trustScore != null) {
      const score = await this.components.trustScore(caller)
      if (score < policy.deferMinTrust) {
        return `this node gives credit to callers with a trust score of at least ${policy.deferMinTrust}; yours is ${score.toFixed(2)}: attach the payment`
      }
    }
    return undefined
  }

  private async defer (ctx: ServiceContext, policy: PaymentPolicy, required: bigint, sats: bigint, id: string, thresholdText: string): Promise<void> {
    const { tabs } = this.components
    const refusal = await this.refusal(ctx.caller, policy, `${ctx.service}.${ctx.method}`)
    if (refusal != null) {
      throw withAcceptable(new NoDeferError(refusal), required)
    }
    if (sats < required) {
      throw withAcceptable(new PaymentTooLowError(`${ctx.service}.${ctx.method} costs ${formatBtc(required)} BTC; the promise offers ${formatBtc(sats)}`), required, 'defer')
    }
    try {
      parseThreshold(thresholdText)
    } catch (err: any) {
      throw new BadRequestError(err.message)
    }
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
      throw new BadRequestError('a deferred payment id is 1 to 64 letters, digits, dots, dashes or underscores')
    }
    if (await tabs.hasPromise('receivable', ctx.caller, id)) {
      throw new BadRequestError(`deferred payment id "${id}" was used before; choose a new one`)
    }
    const tab = await tabs.tab('receivable', ctx.caller)
    if (tab.overdue > 0n) {
      await this.components.record?.({ peer: ctx.caller, role: 'caller', outcome: 'unsatisfactory', event: 'overdue', promised: `${formatBtc(tab.overdue)} BTC deferred` })
      throw withAcceptable(new NoDeferError(`you owe this node ${formatBtc(tab.overdue)} BTC in overdue deferred payments; settle them before asking for credit`), required)
    }
    // calls in flight count against the tab too, so concurrent calls cannot
    // together run past max-tab before any of them is served
    const reservedKey = `${ctx.caller} ${id}`
    const inFlight = this.reservedFor(ctx.caller)
    if (this.reserved.has(reservedKey)) {
      throw new BadRequestError(`deferred payment id "${id}" is in use by a call in flight; choose a new one`)
    }
    if (tab.outstanding + inFlight + sats > policy.maxTab) {
      throw withAcceptable(new NoDeferError(policy.maxTab === 0n
        ? 'this node gives no credit (max-tab 0): attach the payment'
        : `your tab would reach ${formatBtc(tab.outstanding + inFlight + sats)} BTC, over this node's max-tab of ${formatBtc(policy.maxTab)} BTC`), required)
    }
    // the promise binds once the call is served: its signed ok response is the
    // receipt. An aborted upload, a failing service or a crash before then
    // leaves no debt that only this node knows about
    this.reserved.set(reservedKey, { caller: ctx.caller, sats })
    ctx.pending = {
      commit: async () => {
        try {
          await tabs.addPromise({ role: 'receivable', peer: ctx.caller, id, sats, threshold: thresholdText, service: ctx.service, method: ctx.method })
          log('%s promised %s (%s) for %s.%s', ctx.caller, formatAmount(sats), id, ctx.service, ctx.method)
        } finally {
          this.reserved.delete(reservedKey)
        }
      },
      release: () => { this.reserved.delete(reservedKey) }
    }
  }

  private reservedFor (caller: string): bigint {
    let sum = 0n
    for (const r of this.reserved.values()) {
      if (r.caller === caller) {
        sum += r.sats
      }
    }
    return sum
  }

  private async accept (ctx: ServiceContext, policy: PaymentPolicy, sats: bigint, txn: Uint8Array): Promise<NonNullable<ServiceContext['paid']>> {
    const { wallet, chain, tabs } = this.components
    let tx: Transaction
    try {
      tx = Transaction.fromBuffer(txn)
    } catch (err: any) {
      throw new PaymentDeclinedError(`the attached payment is not a bitcoin transaction: ${err.message}`)
    }
    const network = bitcoinNetwork(this.network)
    let toUs = 0n
    const paidTo: string[] = []
    for (const out of tx.outs) {
      try {
        const to = btcAddress.fromOutputScript(out.script, network)
        if (wallet.owns(to)) {
          toUs += out.value
          paidTo.push(to)
        }
      } catch {}
    }
    if (toUs < sats) {
      throw new PaymentDeclinedError(`the transaction pays ${formatBtc(toUs)} BTC to this node's addresses, less than the ${formatBtc(sats)} BTC it claims; ask payments.address for where to pay`)
    }
    const txid = tx.getId()
    const settling = ctx.service === 'payments' && ctx.method === 'settle'
    if (this.inFlight.has(txid)) {
      throw new PaymentDeclinedError(`transaction ${txid} is being checked for another call: a payment is used once`)
    }
    if (await tabs.isUsed(txid)) {
      // a settlement sent again after its answer was lost: answer what it
      // settled then, and do not count it twice
      const before = settling ? await tabs.settlement(txid) : undefined
      if (before != null && before.caller === ctx.caller) {
        return { txid, sats: toUs, repeated: true }
      }
      throw new PaymentDeclinedError(`transaction ${txid} has already paid for a call: a payment is used once`)
    }
    // what a settlement pays off, found once here and handed to payments.settle
    const settles = settling ? await tabs.coverage(ctx.caller, toUs, ctx.args) : undefined
    if (settles?.length === 0) {
      // nothing to pay off: keeping it would be taking money for nothing
      throw new PaymentDeclinedError(`this payment of ${formatBtc(toUs)} BTC pays off none of your unpaid deferred payments (ask payments.tab); it was not broadcast`)
    }
    this.inFlight.add(txid)
    try {
      try {
        await chain.broadcast(Buffer.from(txn).toString('hex'))
      } catch (err: any) {
        if (!(err instanceof TransactionRejectedError) || !/already (known|in)/i.test(err.message)) {
          throw new PaymentDeclinedError(`the chain refused the payment: ${err.message}`)
        }
      }
      const needed = this.confirmationsFor(policy)
      if (needed > 0) {
        const have = await chain.confirmations(txid)
        if (have < needed) {
          throw new PaymentDeclinedError(`this node serves after ${needed} confirmation(s); ${txid} has ${have}: send the call again once it confirms`)
        }
      }
      await tabs.markUsed(txid)
      await wallet.markPaid(paidTo)
      await tabs.recordPayment({ direction: 'received', peer: ctx.caller, txid, sats: toUs, settles: [], service: ctx.service, method: ctx.method })
      log('received %s from %s in %s', formatAmount(toUs), ctx.caller, txid)
      return { txid, sats: toUs, settles }
    } finally {
      this.inFlight.delete(txid)
    }
  }
}

/**
 * "I will only deal with nodes who can prove ownership of at least one
 * bitcoin" (seed): the balance of the bitcoin credentials a call presents,
 * counting only outputs confirmed at least min-holding-age blocks ago.
 */
export class HoldingsCheck implements HoldingsHook {
  private readonly chain: ChainBackend

  constructor (chain: ChainBackend) {
    this.chain = chain
  }

  async check (ctx: ServiceContext, policy: PaymentPolicy): Promise<void> {
    const addresses = ctx.credentials.filter(c => c.startsWith('btc:')).map(c => c.slice(4))
    const need = `at least ${formatBtc(policy.minBalance)} BTC${policy.minHoldingAge > 0 ? ` held for ${policy.minHoldingAge} blocks` : ''}`
    if (addresses.length === 0) {
      throw new AccessDeniedError(`this node deals only with callers who prove ${need} with a bitcoin credential (btc:<address>)`)
    }
    const tip = await this.chain.tipHeight()
    let held = 0n
    for (const address of addresses) {
      for (const utxo of await this.chain.utxos(address)) {
        const age = utxo.status.confirmed ? tip - (utxo.status.blockHeight as number) + 1 : 0
        if (age >= Math.max(1, policy.minHoldingAge)) {
          held += utxo.value
        }
      }
    }
    if (held < policy.minBalance) {
      throw new AccessDeniedError(`this node deals only with callers who prove ${need}; your bitcoin credentials hold ${formatBtc(held)} BTC that qualifies`)
    }
  }
}
