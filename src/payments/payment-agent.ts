import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { formatAmount, formatBtc, parseAmount, parseBtc } from '../protocols/units.ts'
import type { PayMode } from './pay-options.ts'
import { NoDeferError, PaymentDeclinedError, PaymentTooLowError } from '../protocols/rpc/errors.ts'
import { parseThreshold, type TabBook, type PendingSettlement, type TabSummary } from './tab-book.ts'
import { DUST, FeeTooHighError, InsufficientFundsError, paymentFee } from './wallet/tx-builder.ts'
import type { ChainBackend } from './chain/interface.ts'
import type { Wallet } from './wallet/wallet.ts'
import { KeyedLock } from '../utils/keyed-lock.ts'
import { replayable, type CallRequest, type CallResponse } from '../protocols/rpc/rpc-client.ts'
import type { Payment } from '../protocols/rpc/messages.ts'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { channelIsCheaper, NoChannelError, type Channels } from './channels/channels.ts'
import { usable } from './channels/channel-script.ts'

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
  /** threshold of deferred payments, default `amount:` the tab worth a settlement (worthSettling) */
  threshold?: string
}

export interface PaidCallResult {
  response: CallResponse
  /** what was paid or promised; `id` a deferred payment's id, or the channel paid through */
  payment?: { type: 'attached' | 'defer' | 'channel', sats: bigint, txid?: string, id?: string }
  /** the fee of an attached payment, satoshis: the one the chain needed (the decisions say it too) */
  fee?: bigint
  /** what the bidding strategy did and why, in order */
  decisions: string[]
}

export interface PaymentAgentComponents {
  call: (peer: PeerId | Multiaddr, request: CallRequest) => Promise<CallResponse>
  wallet: Wallet
  chain: ChainBackend
  tabs: TabBook
}

/**
 * When this node pays through a channel (config `channels.use`): auto where
 * a channel costs less on chain than the other kinds of payment for what it
 * expects to pay (channelIsCheaper), always where the payee takes channels,
 * never
 */
export type ChannelUse = 'auto' | 'always' | 'never'

/** A payee this node expects to pay (a storage put's hosts): about `sats` in `calls` paid calls over a channel's life */
export interface ExpectedPayee {
  peer: string
  sats: bigint
  calls: number
  /** the method whose credit the payee's payments.tab is asked about, <service>.<method> */
  method: string
}

export interface PaymentAgentInit {
  /** How often deferred payments are checked and the due ones paid, default 5 s */
  settleIntervalMs?: number
  /** How long the chain's fee estimate is used before it is asked again, default 60 s */
  feeRateTtlMs?: number
}

/**
 * The share of a settlement its fee may be for the node to settle as soon
 * as something is due: a quarter, as Storj skips payouts whose fee is more
 * than a quarter of them. Past it the node waits, for more to be owed or
 * until the debt must be paid.
 */
export const FEE_SHARE = 4n

/**
 * The smallest tab worth a settlement at `feeRate` sat/vB: at least the
 * dust limit, and at least four times the fee of one payment (141 vB), so
 * the fee is at most a quarter of it. A deferred payment made without a
 * threshold falls due at this amount (`amount:<it>`).
 */
export function worthSettling (feeRate: number): bigint {
  const worth = paymentFee(feeRate) * FEE_SHARE
  return worth > DUST ? worth : DUST
}

/**
 * Why the node's tab with a server is not being paid now, shown by
 * `payments tabs` (GET /v1/payments/tabs) and `store status`.
 */
export interface SettlementState {
  peer: string
  /** waiting: on purpose, until more is owed or it must be paid; failing: settling was tried and did not work */
  state: 'waiting' | 'failing'
  /** the kind of reason, which stays while the figures in `reason` change; the log says each new one once */
  code: 'below-dust' | 'fee-out-of-proportion' | 'unconfirmed' | 'insufficient-funds' | 'fee-over-amount' | 'refused' | 'error'
  reason: string
  /** what to do about it: a sentence, and the CLI command (without the program name) that does it */
  hint?: { text: string, command?: string[] }
  /** since when (ms since the epoch) the tab has been in this state */
  since: number
  /** when the debt falls overdue at the server unless it is paid (taking its grace period as this node's) */
  overdueAt?: number
}

const FUND_HINT = { text: 'send bitcoin to the address this prints', command: ['wallet', 'address'] }

interface SettleResult { peer: string, ids: string[], txid: string }

/**
 * The client's side of payments (seed: "Bidding strategy", "Defered payment
 * fulfillment"). A paid call starts with the payment the caller chose; on
 * too-low it raises to what the server asks, up to the caller's maximum; on
 * no-defer it settles what it owes that server and asks again when the
 * refusal is about that tab, else switches to an attached payment. Deferred
 * promises are kept in the tab book, and a task pays them with one attached
 * payment per server when that is worth its fee, or when they must be paid
 * (README, "Payments").
 */
export class PaymentAgent {
  private readonly components: PaymentAgentComponents
  private readonly settleIntervalMs: number
  private readonly feeRateTtlMs: number
  private timer?: ReturnType<typeof setInterval>
  private settling?: Promise<void>
  /** settlements with one server run one at a time: two would build two transactions */
  private readonly peerLocks = new KeyedLock()
  private readonly states = new Map<string, SettlementState>()
  private feeRateCache?: { rate: number, at: number }
  private channels?: Channels
  private channelUse: ChannelUse = 'auto'

  constructor (components: PaymentAgentComponents, init: PaymentAgentInit = {}) {
    this.components = components
    this.settleIntervalMs = init.settleIntervalMs ?? 5_000
    this.feeRateTtlMs = init.feeRateTtlMs ?? 60_000
  }

  /** The payments module's channels: the agent pays through them where its strategy says (they call through the agent's caller) */
  useChannels (channels: Channels, use: ChannelUse): void {
    this.channels = channels
    this.channelUse = use
  }

  start (): void {
    this.timer = setInterval(() => { void this.settleDue().catch(err => { log.error('settling deferred payments failed - %e', err) }) }, this.settleIntervalMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    await this.settling
  }

  /** The tabs with servers that are not being paid now, and why */
  settlementStates (): SettlementState[] {
    return [...this.states.values()].sort((a, b) => a.peer.localeCompare(b.peer))
  }

  /** The chain's fee rate for 6 blocks, asked at most once a minute; 1 sat/vB while the chain does not answer */
  private async feeRate (): Promise<number> {
    const cached = this.feeRateCache
    if (cached != null && Date.now() - cached.at < this.feeRateTtlMs) {
      return cached.rate
    }
    try {
      const rate = await this.components.chain.feeRate(6)
      this.feeRateCache = { rate, at: Date.now() }
      return rate
    } catch (err: any) {
      log('no fee estimate from the chain, taking %d sat/vB - %s', cached?.rate ?? 1, err.message)
      return cached?.rate ?? 1
    }
  }

  /** The threshold of a deferred payment made without one: due once the tab is worth a settlement */
  async defaultThreshold (): Promise<string> {
    return `amount:${formatBtc(worthSettling(await this.feeRate()))}`
  }

  /** A payment that pays `sats` to the server: an address from it, then a signed transaction */
  private async attach (peer: PeerId | Multiaddr, sats: bigint): Promise<{ payment: Payment, txid: string, fee: bigint }> {
    const address = await this.addressOf(peer)
    const tx = await this.components.wallet.createPayment(this.components.chain, [{ address, value: sats }])
    return { payment: { type: 'attached', currency: 'BTC', amount: formatBtc(sats), txn: Uint8Array.from(Buffer.from(tx.hex, 'hex')) }, txid: tx.txid, fee: tx.fee }
  }

  async call (peer: PeerId | Multiaddr, request: CallRequest, options: PaidCallOptions): Promise<PaidCallResult> {
    const mode = options.pay
    const max = options.maxPrice ?? (mode.kind === 'attached' || mode.kind === 'defer' || mode.kind === 'channel' ? mode.sats : 0n)
    if (options.threshold != null) {
      parseThreshold(options.threshold)
    }
    let threshold = options.threshold
    let plan: { type: 'none' | 'attached' | 'defer' | 'channel', sats: bigint } = mode.kind === 'attached' || mode.kind === 'defer' || mode.kind === 'channel' ? { type: mode.kind, sats: mode.sats } : { type: 'none', sats: 0n }
    if (plan.sats > max) {
      throw new BiddingError(`the payment of ${formatBtc(plan.sats)} BTC is over --max-price ${formatBtc(max)} BTC`, [])
    }
    const decisions: string[] = []
    let settledForCredit = false
    // every offer sends a small body again: read a one-shot body once
    request = { ...request, body: request.body == null ? undefined : await replayable(request.body, request.signal) }
    for (let round = 0; round < 5; round++) {
      let payment: Payment = { type: 'none' }
      let attached: { txid: string, fee: bigint } | undefined
      let id: string | undefined
      if (plan.type === 'attached') {
        let txid: string, fee: bigint
        ({ payment, txid, fee } = await this.attach(peer, plan.sats))
        attached = { txid, fee }
      } else if (plan.type === 'defer') {
        id = randomBytes(8).toString('hex')
        threshold ??= await this.defaultThreshold()
        payment = { type: 'defer', currency: 'BTC', amount: formatBtc(plan.sats), id, threshold }
      }
      try {
        if (plan.type === 'channel') {
          return await this.viaChannel(peer, request, plan.sats, decisions)
        }
        const response = await this.components.call(peer, { ...request, payment })
        if (plan.type === 'defer') {
          await this.components.tabs.addPromise({ role: 'payable', peer: response.server, id: id as string, sats: plan.sats, threshold: threshold as string, service: request.service, method: request.method })
          decisions.push(`promised ${formatBtc(plan.sats)} BTC as deferred payment ${id}`)
          return { response, payment: { type: 'defer', sats: plan.sats, id }, decisions }
        }
        if (attached != null) {
          await this.components.tabs.recordPayment({ direction: 'sent', peer: response.server, txid: attached.txid, sats: plan.sats, fee: attached.fee, settles: [], service: request.service, method: request.method })
          decisions.push(`paid ${formatBtc(plan.sats)} BTC attached in ${attached.txid}, with a fee of ${formatAmount(attached.fee)}`)
          return { response, payment: { type: 'attached', sats: plan.sats, txid: attached.txid }, fee: attached.fee, decisions }
        }
        return { response, decisions }
      } catch (err: any) {
        const server: string | undefined = err.response?.server ?? peerText(peer)
        if (attached != null && server != null && await this.chainKnows(attached.txid) === true) {
          // the server broadcast it and then refused or failed the call: the
          // money left all the same, and the summaries say so
          await this.components.tabs.recordPayment({ direction: 'sent', peer: server, txid: attached.txid, sats: plan.sats, fee: attached.fee, settles: [], service: request.service, method: request.method })
        }
        const asked = err.acceptablePayment?.amount == null ? undefined : parseBtc(err.acceptablePayment.amount)
        if (err instanceof PaymentTooLowError && asked != null) {
          if (mode.kind === 'none') {
            throw err
          }
          if (asked > max) {
            decisions.push(`too-low: the server asks ${formatBtc(asked)} BTC, over the maximum of ${formatBtc(max)} BTC: giving up`)
            throw new BiddingError(`the server asks ${formatBtc(asked)} BTC for ${request.service}.${request.method}, more than --max-price ${formatBtc(max)} BTC`, decisions, asked)
          }
          const type = plan.type !== 'none' ? plan.type : mode.kind === 'auto' ? this.autoType(server, asked, err.acceptablePayment?.type) : 'attached'
          decisions.push(`too-low: the server asks ${formatBtc(asked)} BTC; offering ${formatBtc(asked)} BTC ${type} (maximum ${formatBtc(max)} BTC)`)
          plan = { type, sats: asked }
          continue
        }
        if (err instanceof NoDeferError && plan.type === 'defer') {
          // a server that gives this node credit but wants its tab paid first
          // (something overdue, or max-tab reached): pay it, once, and ask again
          let why: string | undefined
          if (!settledForCredit && server != null) {
            settledForCredit = true
            const outcome = await this.settleForCredit(server, request, plan.sats)
            if (outcome.settled != null) {
              decisions.push(`no-defer: ${err.message}; settled ${formatBtc(outcome.settled.sats)} BTC owed in ${outcome.settled.txid} and asking again`)
              continue
            }
            why = outcome.why
          }
          if (why == null && server != null && this.states.get(server)?.state === 'failing') {
            why = `the tab with it cannot be settled: ${this.states.get(server)?.reason}`
          }
          const refusal = `${err.message}${why == null ? '' : `; ${why}`}`
          if (mode.kind === 'defer') {
            decisions.push(`no-defer: ${refusal}; --pay defer allows nothing else: giving up`)
            throw new BiddingError(`the server refuses deferred payment: ${refusal}`, decisions)
          }
          const sats = asked != null && asked > plan.sats ? asked : plan.sats
          if (sats > max) {
            throw new BiddingError(`the server wants ${formatBtc(sats)} BTC attached, more than --max-price ${formatBtc(max)} BTC`, decisions, sats)
          }
          decisions.push(`no-defer: ${refusal}; switching to an attached payment of ${formatBtc(sats)} BTC`)
          plan = { type: 'attached', sats }
          continue
        }
        if (decisions.length > 0) {
          err.decisions = decisions
        }
        throw err
      }
    }
    throw new BiddingError('the server kept asking for more; giving up after 5 offers', decisions)
  }

  /**
   * What auto pays an unpaid call's price with: through an open channel
   * with room, else the kind the server says it accepts (a channel it names
   * and this node has none with room for: attached)
   */
  private autoType (server: string | undefined, sats: bigint, accepted?: string): 'channel' | 'attached' | 'defer' {
    if (server != null && this.channelUse !== 'never' && this.channels?.usableWith(server, sats) != null) {
      return 'channel'
    }
    return accepted === 'attached' || accepted === 'channel' ? 'attached' : 'defer'
  }

  /**
   * Pay a call through this node's channel with the server: one with room,
   * or a new one opened for it (`--pay channel:<amount>`); an older one that
   * ran out is closed by its payee, which is paid what it holds.
   */
  private async viaChannel (peer: PeerId | Multiaddr, request: CallRequest, sats: bigint, decisions: string[]): Promise<PaidCallResult> {
    const channels = this.channels
    if (channels == null) {
      throw new BiddingError('this node pays through no channels (payments are off)', decisions)
    }
    const server = peerText(peer)
    if (server == null) {
      throw new BiddingError('a channel is opened to a PeerId: call the server by its PeerId, or by a multiaddr ending in /p2p/<PeerId>', decisions)
    }
    for (let attempt = 0; ; attempt++) {
      await this.ensureChannel(channels, peer, server, sats, decisions, request.signal)
      try {
        const { result, channel } = await channels.pay(server, sats, async (payment) => this.components.call(peer, { ...request, payment }), { signal: request.signal })
        decisions.push(`paid ${formatBtc(sats)} BTC through channel ${channel.id} (${formatAmount(usable(channel) - channel.total)} left in it)`)
        await this.components.tabs.recordPayment({ direction: 'sent', peer: server, txid: `channel:${channel.id}:${channel.total}`, sats, settles: [], service: request.service, method: request.method })
        return { response: result, payment: { type: 'channel', sats, id: channel.id }, decisions }
      } catch (err: any) {
        if (!(err instanceof NoChannelError) || attempt > 0) {
          throw err
        }
        // the payee closed it meanwhile, or it ran out under concurrent calls: a new one, once
        decisions.push(`${err.message}: opening another`)
      }
    }
  }

  /** A channel with room for `sats` to `server`, opened now when there is none */
  private async ensureChannel (channels: Channels, peer: PeerId | Multiaddr, server: string, sats: bigint, decisions: string[], signal?: AbortSignal): Promise<void> {
    if (channels.usableWith(server, sats) == null) {
      const older = channels.openWith(server)
      const opened = await channels.open([{ peer: server, target: peer, capacity: sats }], { signal })
      const ch = opened.opened[0]
      if (ch == null) {
        throw new BiddingError(`could not open a channel to ${server}: ${opened.refused[0]?.reason ?? 'no reason given'}`, decisions)
      }
      decisions.push(`opened channel ${ch.id} to the server: ${formatAmount(ch.capacity)} until block ${ch.expiry}, funding fee ${formatAmount(opened.fee ?? 0n)}`)
      for (const old of older) {
        // out of room or near its expiry: its payee closes it and is paid
        void channels.requestClose(old.id).catch(err => { log('channel %s: its payee did not close it (%s); it is refunded after block %d', old.id, err.message, old.expiry) })
      }
    }
  }

  /**
   * A call paying `sats` to a server under an agreement (storage): through
   * this node's channel with it when one has room, else deferred within the
   * credit it gives (PaymentAgent.call with `defer`). A channel payment the
   * payee refuses (its funding unconfirmed, near its expiry) falls back to
   * deferred.
   */
  async payTo (peer: PeerId, request: CallRequest, sats: bigint): Promise<CallResponse> {
    const server = peer.toString()
    if (this.channels != null && this.channelUse !== 'never' && this.channels.usableWith(server, sats) != null) {
      try {
        return (await this.call(peer, request, { pay: { kind: 'channel', sats }, maxPrice: sats })).response
      } catch (err: any) {
        // the channel ended, or the payee refused the state (not its amount)
        const refused = err instanceof PaymentDeclinedError && !(err instanceof PaymentTooLowError)
        if (!(err instanceof NoChannelError) && !refused) {
          throw err
        }
        log('paying %s through a channel failed, deferring instead - %s', server, err.message)
      }
    }
    return (await this.call(peer, request, { pay: { kind: 'defer', sats }, maxPrice: sats })).response
  }

  /**
   * Open channels to the payees this node expects to pay (a storage put's
   * hosts), all in one funding transaction: those without a channel with
   * room where the strategy says a channel is worth it (channels.use: auto
   * asks whether it costs less on chain than settling the other way,
   * always opens one wherever the payee takes channels). A failure leaves
   * the other kinds of payment; it is logged, not thrown.
   */
  async prepay (payees: ExpectedPayee[], signal?: AbortSignal): Promise<void> {
    const channels = this.channels
    if (channels == null || this.channelUse === 'never' || payees.length === 0) {
      return
    }
    try {
      const feeRate = await this.feeRate()
      const wanted: Array<{ peer: string, capacity: bigint }> = []
      for (const p of payees) {
        if (channels.usableWith(p.peer, p.sats) != null) {
          continue
        }
        if (this.channelUse === 'auto') {
          const credit = await this.creditAt(p.peer, p.method, signal)
          const given = credit != null && !credit.refused && credit.maxTab > 0n
          const choice = channelIsCheaper({ expected: p.sats, calls: p.calls, feeRate, credit: given, outputs: payees.length })
          if (!choice.cheaper) {
            log('no channel to %s: about %s in %d calls costs %s on chain %s, a channel %s', p.peer, formatAmount(p.sats), p.calls, formatAmount(choice.otherFee), given ? 'settled deferred' : 'attached', formatAmount(choice.channelFee))
            continue
          }
        }
        wanted.push({ peer: p.peer, capacity: p.sats * 2n })
      }
      if (wanted.length === 0) {
        return
      }
      const result = await channels.open(wanted, { signal })
      for (const r of result.refused) {
        log('%s opened no channel: %s', r.peer, r.reason)
      }
    } catch (err: any) {
      signal?.throwIfAborted()
      log.error('opening channels failed; payments go deferred - %e', err)
    }
  }

  /**
   * Settle with each server this node owes, where it is time to (decide),
   * and send again a settlement still in flight. One server's failure does
   * not hold up the others; it is tried again at the next round, and its
   * tab says why (settlementStates).
   */
  async settleDue (): Promise<SettleResult[]> {
    if (this.settling != null) {
      await this.settling
    }
    const done: SettleResult[] = []
    const run = (async () => {
      const { tabs } = this.components
      const peers = new Set((await tabs.promises('payable')).filter(p => p.paidAt == null).map(p => p.peer))
      for (const peer of [...this.states.keys()]) {
        if (!peers.has(peer)) {
          // paid meanwhile (a settlement for credit), or waived
          this.states.delete(peer)
        }
      }
      for (const peer of peers) {
        try {
          const settled = await this.peerLocks.run(peer, async () => {
            const pending = await tabs.pendingSettlement(peer)
            if (pending != null) {
              return this.settleWith(peer, pending)
            }
            const tab = await tabs.tab('payable', peer)
            const decision = await this.decide(tab)
            if (decision.settle == null) {
              this.setState(peer, decision.wait)
              return undefined
            }
            return this.settleWith(peer, await this.build(peer, tab.outstanding, decision.settle))
          })
          if (settled != null) {
            done.push(settled)
          }
        } catch (err: any) {
          this.failed(peer, err)
        }
      }
    })()
    this.settling = run.finally(() => { this.settling = undefined })
    await this.settling
    return done
  }

  /**
   * Whether to settle with a server now (README, "Payments"): nothing is
   * paid before something is due; below the dust limit nothing can be paid
   * on chain, and a server does not count it overdue; a tab whose fee is at
   * most a quarter of it is paid at once; a dearer one waits, for more
   * promises or until half the grace period since it fell due has passed,
   * and is then paid if the fee is no more than the tab.
   */
  private async decide (tab: TabSummary): Promise<{ settle?: { maxFee: bigint, urgent: boolean }, wait?: Omit<SettlementState, 'peer' | 'since'> }> {
    if (tab.due === 0n || tab.dueSince == null) {
      return {}
    }
    const grace = this.components.tabs.graceMs
    const overdueAt = tab.dueSince + grace
    if (tab.outstanding < DUST) {
      return { wait: { state: 'waiting', code: 'below-dust', overdueAt, reason: `${formatAmount(tab.due)} is due, less than bitcoin's dust limit of ${formatAmount(DUST)}: it cannot be paid on chain on its own and is paid with the next promises (a server does not count it overdue)` } }
    }
    const limit = this.feeLimit(tab)
    if (limit.urgent) {
      return { settle: limit }
    }
    const fee = paymentFee(await this.feeRate())
    if (fee * FEE_SHARE <= tab.outstanding) {
      return { settle: limit }
    }
    const mustBy = mustPayBy(tab.dueSince, grace)
    return {
      wait: {
        state: 'waiting',
        code: 'fee-out-of-proportion',
        overdueAt,
        reason: `a settlement's fee of about ${formatAmount(fee)} would be more than a quarter of the ${formatAmount(tab.outstanding)} owed: it waits for more promises${tab.due >= DUST ? `, or until ${new Date(mustBy).toISOString()} when it must be paid` : ''}`
      }
    }
  }

  /**
   * The most a settlement of `tab` may pay in fee now: all of the tab once
   * it must be paid (what is due can be paid on chain, and half the grace
   * period since it fell due has passed), else a quarter of it (FEE_SHARE)
   */
  private feeLimit (tab: TabSummary): { maxFee: bigint, urgent: boolean } {
    if (tab.due >= DUST && tab.dueSince != null && Date.now() >= mustPayBy(tab.dueSince, this.components.tabs.graceMs)) {
      return { maxFee: tab.outstanding, urgent: true }
    }
    return { maxFee: tab.outstanding / FEE_SHARE, urgent: false }
  }

  /**
   * The settlement transaction for a tab, kept in the tab book before it is
   * sent. A fee over `maxFee` builds nothing: a tab that did not have to be
   * paid now waits, one that must is paid if the fee is at most the tab.
   */
  private async build (peer: string, sats: bigint, limit: { maxFee: bigint, urgent: boolean }): Promise<PendingSettlement> {
    const { tabs, wallet, chain } = this.components
    const address = await this.addressOf(peerIdFromString(peer))
    const feeRate = await this.feeRate()
    let tx
    try {
      tx = await wallet.createPayment(chain, [{ address, value: sats }], { feeRate, maxFee: limit.maxFee })
    } catch (err: any) {
      if (!(err instanceof FeeTooHighError) || limit.urgent) {
        throw err
      }
      // dearer than estimated (more coins, or change too small to keep)
      throw new NotWorthItError(`the fee would be ${formatAmount(err.fee)}, more than a quarter of the ${formatAmount(sats)} owed${err.lostChange > 0n ? ` (${formatAmount(err.lostChange)} of it change too small to keep)` : ''}: it waits for more promises or until it must be paid`, err.lostChange > 0n)
    }
    const pending: PendingSettlement = { peer, txid: tx.txid, hex: tx.hex, sats, fee: tx.fee, at: Date.now() }
    await tabs.setPendingSettlement(pending)
    return pending
  }

  /**
   * A server refused this node credit (`no-defer`) for a promise of `sats`:
   * settle the tab with it when that is what the refusal is about, so the
   * call can ask again (PROTOCOL.md 8a, "payments service"). The server's
   * payments.tab, asked for the call's method, says the credit it gives: a
   * refusal outright (no-defer, a trust score), a max-tab of 0 or one under
   * the promise leaves nothing settling could fix, and neither does an
   * answer without `credit` (an older node). Otherwise the refusal is about
   * the tab, overdue or full, and it is paid by the rule of settleDue: the
   * fee at most a quarter of it, or at most all of it once it must be paid
   * (or the server counts it overdue). `why` says why it was not paid.
   */
  private async settleForCredit (peer: string, request: CallRequest, sats: bigint): Promise<{ settled?: { sats: bigint, txid: string }, why?: string }> {
    const { tabs } = this.components
    const what = `${request.service}.${request.method}`
    try {
      return await this.peerLocks.run(peer, async () => {
        const pending = await tabs.pendingSettlement(peer)
        const tab = await tabs.tab('payable', peer)
        if (pending == null && tab.outstanding < DUST) {
          // nothing this node could pay: the refusal is about something else
          return {}
        }
        let settling = pending
        if (settling == null) {
          const credit = await this.creditAt(peer, what, request.signal)
          if (credit == null) {
            return { why: `the server does not say what credit it gives for ${what} (its payments.tab answers no credit): settling might not make room, so the tab is not paid early` }
          }
          if (credit.refused || credit.maxTab === 0n) {
            return { why: `the server gives this node no credit for ${what} whatever it owes: settling would not change that` }
          }
          if (sats > credit.maxTab) {
            return { why: `the promise of ${formatAmount(sats)} is over the server's max-tab of ${formatAmount(credit.maxTab)} for ${what}: settling would not make room` }
          }
          if (credit.outstanding === 0n) {
            return { why: 'the server counts nothing owed: settling would pay off nothing' }
          }
          settling = await this.build(peer, tab.outstanding, credit.overdue > 0n ? { maxFee: tab.outstanding, urgent: true } : this.feeLimit(tab))
        }
        const result = await this.settleWith(peer, settling)
        return { settled: { sats: settling.sats, txid: result.txid } }
      }, { signal: request.signal })
    } catch (err: any) {
      if (request.signal?.aborted === true) {
        throw err
      }
      this.failed(peer, err)
      const state = this.states.get(peer)
      return { why: state == null ? `settling failed: ${err.message}` : `the tab with it is not settled now: ${state.reason}` }
    }
  }

  /**
   * What credit a server gives this node for `what` and what it counts this
   * node owes: its payments.tab answer for that method. Undefined when it
   * says no credit (an older node) or does not answer.
   */
  private async creditAt (peer: string, what: string, signal?: AbortSignal): Promise<{ maxTab: bigint, refused: boolean, outstanding: bigint, overdue: bigint } | undefined> {
    try {
      const response = await this.components.call(peerIdFromString(peer), { service: 'payments', method: 'tab', args: [what], signal })
      const answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
      const credit = answer?.credit
      if (credit == null || typeof credit.maxTab !== 'string' || typeof credit.refused !== 'boolean') {
        return undefined
      }
      return { maxTab: parseAmount(credit.maxTab), refused: credit.refused, outstanding: parseAmount(answer.outstanding), overdue: parseAmount(answer.overdue) }
    } catch (err: any) {
      signal?.throwIfAborted()
      log('%s does not say what credit it gives for %s - %s', peer, what, err.message)
      return undefined
    }
  }

  /** A tab's new state; the log says it once, and again when its kind of reason changes */
  private setState (peer: string, next?: Omit<SettlementState, 'peer' | 'since'>): void {
    const before = this.states.get(peer)
    if (next == null) {
      if (before?.state === 'failing') {
        log('the tab with %s is settled again (it could not be since %s)', peer, new Date(before.since).toISOString())
      }
      this.states.delete(peer)
      return
    }
    const same = before?.code === next.code
    this.states.set(peer, { peer, ...next, since: same ? before.since : Date.now() })
    if (!same) {
      if (next.state === 'failing') {
        log.error('cannot settle with %s, tried again every %d s - %s', peer, Math.round(this.settleIntervalMs / 1000), next.reason)
      } else {
        log('not settling with %s yet - %s', peer, next.reason)
      }
    }
  }

  /** Why settling with a server failed, as a state with a hint the user can follow */
  private failed (peer: string, err: any): void {
    const retry = `it is tried again every ${Math.round(this.settleIntervalMs / 1000)} s`
    if (err instanceof NotWorthItError) {
      this.setState(peer, { state: 'waiting', code: 'fee-out-of-proportion', reason: err.message, hint: err.fundingHelps ? FUND_HINT : undefined })
    } else if (err instanceof InsufficientFundsError) {
      this.setState(peer, { state: 'failing', code: 'insufficient-funds', reason: err.message, hint: FUND_HINT })
    } else if (err instanceof FeeTooHighError) {
      this.setState(peer, {
        state: 'failing',
        code: 'fee-over-amount',
        reason: `${err.message}: a payment never costs more in fee than it pays`,
        hint: err.lostChange > 0n ? FUND_HINT : { text: `it is paid once more is owed or fees fall; ${retry}` }
      })
    } else if (err instanceof PaymentDeclinedError && /confirmation/.test(err.message)) {
      // on chain, and the server serves after its confirmations (PROTOCOL.md 8a)
      this.setState(peer, { state: 'waiting', code: 'unconfirmed', reason: `the settlement waits for the confirmations the server asks: ${err.message}`, hint: { text: retry } })
    } else if (err instanceof PaymentDeclinedError) {
      this.setState(peer, { state: 'failing', code: 'refused', reason: `the server refused the settlement: ${err.message}`, hint: { text: retry } })
    } else {
      this.setState(peer, { state: 'failing', code: 'error', reason: `settling failed: ${err.message}`, hint: { text: retry } })
    }
  }

  /**
   * Settle with one server by cursor: one transaction pays the oldest unpaid
   * promises, however many (`payments.settle` without ids). The transaction
   * is kept in the tab book before it is sent; after a failure the same one is
   * sent again, and the server, which knows it, answers what it settled
   * instead of taking a second payment. A new one is built only when the old
   * one is known never to have reached the chain.
   */
  private async settleWith (peer: string, pending: PendingSettlement): Promise<SettleResult> {
    const { tabs } = this.components
    const target = peerIdFromString(peer)
    const payment: Payment = { type: 'attached', currency: 'BTC', amount: formatBtc(pending.sats), txn: Uint8Array.from(Buffer.from(pending.hex, 'hex')) }
    let answer: { settled: string[], repeated?: boolean, tab?: { outstanding?: string } }
    try {
      const response = await this.components.call(target, { service: 'payments', method: 'settle', payment })
      answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
    } catch (err) {
      if (err instanceof PaymentDeclinedError && !(await this.onChain(pending.txid))) {
        // refused and never broadcast (it pays off nothing there, or its
        // coins went to another payment meanwhile): safe to build anew
        await tabs.clearPendingSettlement(peer)
        if (/pays off none of your unpaid/.test(err.message)) {
          await this.reconcile(target, peer)
        }
      }
      throw err
    }
    const settled = Array.isArray(answer.settled) ? answer.settled.filter((id): id is string => typeof id === 'string') : []
    await tabs.markPaid('payable', peer, settled, pending.txid)
    await tabs.recordPayment({ direction: 'sent', peer, txid: pending.txid, sats: pending.sats, fee: pending.fee, settles: settled, service: 'payments', method: 'settle' })
    await tabs.clearPendingSettlement(peer)
    this.setState(peer)
    log('settled %d deferred payments with %s in %s: %s and a fee of %s%s', settled.length, peer, pending.txid, formatAmount(pending.sats), pending.fee == null ? 'unknown' : formatAmount(pending.fee), answer.repeated === true ? ' (sent again after a lost answer)' : '')
    const theirs = answer.tab?.outstanding
    const ours = (await tabs.tab('payable', peer)).outstanding
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
      const { tabs } = this.components
      const unpaid = (await tabs.promises('payable', peer)).filter(p => p.paidAt == null).map(p => p.id)
      await tabs.markPaid('payable', peer, unpaid, WAIVED)
      log.error('%s has no record of %d promise(s) this node made it: closed as waived', peer, unpaid.length)
    }
  }

  private async addressOf (peer: PeerId | Multiaddr): Promise<string> {
    const res = await this.components.call(peer, { service: 'payments', method: 'address' })
    return JSON.parse(new TextDecoder().decode(await res.body.bytes())).address
  }

  /** Whether the chain knows a transaction (in its mempool or a block); undefined when it does not answer */
  private async chainKnows (txid: string): Promise<boolean | undefined> {
    try {
      await this.components.chain.transaction(txid)
      return true
    } catch (err: any) {
      return err.name === 'TransactionNotFoundError' ? false : undefined
    }
  }

  /** Whether a settlement may have reached the chain: when the chain does not answer, assume it did, and send it again later */
  private async onChain (txid: string): Promise<boolean> {
    return await this.chainKnows(txid) !== false
  }
}

/**
 * When a due tab must be paid whatever the fee (up to the tab): half the
 * grace period after it fell due, so it is paid before the server counts it
 * overdue (taking the server's grace period as this node's)
 */
function mustPayBy (dueSince: number, graceMs: number): number {
  return dueSince + Math.floor(graceMs / 2)
}

/** The PeerId of a call's target, when it names one */
function peerText (peer: PeerId | Multiaddr): string | undefined {
  return 'toMultihash' in peer ? peer.toString() : /\/p2p\/([^/]+)/.exec(peer.toString())?.[1]
}

/** A settlement not built because its fee would be out of proportion: the tab waits */
class NotWorthItError extends Error {
  override name = 'NotWorthItError'
  /** whether more coins would lower the fee (change too small to keep went to it) */
  readonly fundingHelps: boolean
  constructor (message: string, fundingHelps: boolean) {
    super(message)
    this.fundingHelps = fundingHelps
  }
}

/** The txid recorded on promises the server had no record of (reconcile) */
export const WAIVED = 'waived:unknown-to-the-server'
