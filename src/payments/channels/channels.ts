import { Transaction } from 'bitcoinjs-lib'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { formatAmount, formatBtc, parseAmount, parseBtc } from '../../protocols/units.ts'
import { PaymentDeclinedError, PaymentTooLowError, BadRequestError } from '../../protocols/rpc/errors.ts'
import { bitcoinNetwork, type BitcoinNetworkName } from '../../protocols/bitcoin-networks.ts'
import { KeyedLock } from '../../utils/keyed-lock.ts'
import { DUST, feeFor, paymentFee } from '../wallet/tx-builder.ts'
import { TransactionRejectedError } from '../chain/errors.ts'
import {
  CLOSE_VBYTES, ChannelTermsError, channelId, channelOutput, closeTransaction, keyFromHex, keyHex, parseState,
  refundTransaction, signChannel, signedRefund, stateDifference, stateTransaction, usable, verifyChannelSignature, type ChannelTerms
} from './channel-script.ts'
import { ChannelStore, type ChannelRecord } from './channel-store.ts'
import type { Datastore } from 'interface-datastore'
import type { Wallet } from '../wallet/wallet.ts'
import type { ChainBackend } from '../chain/interface.ts'
import type { TabBook } from '../tab-book.ts'
import type { CallRequest, CallResponse } from '../../protocols/rpc/rpc-client.ts'
import { bodyFromBytes } from '../../protocols/rpc/body.ts'
import type { Payment } from '../../protocols/rpc/messages.ts'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

const log = logger('opencloud:payments:channels')

/** A payer asked for something no channel of its can do (none open with that peer, or none with room) */
export class NoChannelError extends Error {
  override name = 'NoChannelError'
}

/** Opening a channel failed: the peer refused its terms, or does not take channels */
export class ChannelOpenError extends Error {
  override name = 'ChannelOpenError'
}

/** A channel cannot be closed now (nothing to claim, not this node's to close, already spent) */
export class ChannelCloseError extends Error {
  override name = 'ChannelCloseError'
}

/** What a payee offers a payer that wants to open a channel to it (payments.channel-terms) */
export interface ChannelOffer {
  /** the payee's key for the channel (hex) and the address it pays to */
  key: string
  address: string
  /** it takes no payment, and closes, this many blocks before the expiry */
  closeMarginBlocks: number
  minExpiryBlocks: number
  maxExpiryBlocks: number
  minCapacity: string
  maxCapacity: string
  /** confirmations of the funding transaction before the first payment */
  confirmations: number
}

export interface ChannelsComponents {
  datastore: Datastore
  wallet: Wallet
  chain: ChainBackend
  tabs: TabBook
  /** an unrated call to a peer: the payments service's own methods */
  call: (peer: PeerId | Multiaddr, request: CallRequest) => Promise<CallResponse>
}

export interface ChannelsInit {
  network: BitcoinNetworkName
  /** the payee: whether it takes channels at all, default true */
  accept?: boolean
  /** the payee: blocks before the expiry from which it takes no payment and closes, default 144 (a day) */
  closeMarginBlocks?: number
  /** the payee: the shortest channel life it accepts, blocks from now, default the margin plus 6 */
  minExpiryBlocks?: number
  /** the payee: the longest, default 52,560 (a year): a payer's money is locked that long at most */
  maxExpiryBlocks?: number
  /** the payee: the smallest capacity it accepts, default 10,000 sat */
  minCapacity?: bigint
  /** the payee: the largest, default 0.1 BTC */
  maxCapacity?: bigint
  /** the payee: confirmations of the funding before the first payment, default 0 on regtest and 1 elsewhere */
  confirmations?: number
  /** the payer: the capacity of a channel opened for `--pay channel` and as the least for storage, default 50,000 sat */
  capacity?: bigint
  /** the payer: how long a channel it opens lives, blocks, default 4,320 (30 days) past the payee's margin */
  lifeBlocks?: number
  /** how often channels are watched (payer: refunds, closes seen; payee: closes before the expiry), default 30 s */
  watchIntervalMs?: number
  /** how long the chain's tip height is taken as known, default 10 s */
  tipTtlMs?: number
}

export interface OpenSpec {
  peer: string
  /** how to reach it when that is not by its PeerId alone (the multiaddr a call names) */
  target?: PeerId | Multiaddr
  /** satoshis the payer expects to pay through it; the capacity is at least this and the configured capacity */
  capacity?: bigint
  /** blocks it should live past the payee's margin, default lifeBlocks */
  lifeBlocks?: number
}

/** A channel as `payments channels` and GET /v1/payments/channels show it: amounts say their unit */
export interface ChannelView {
  id: string
  role: 'payer' | 'payee'
  peer: string
  state: ChannelRecord['state']
  capacity: string
  paid: string
  remaining: string
  fee: string
  payments: number
  expiry: number
  /** blocks left until the expiry, at the tip the node last saw */
  blocksLeft?: number
  fundingTxid: string
  closeTxid?: string
  openedAt: string
  note?: string
}

const CURRENCY = 'BTC'
/** a payee record of a funding transaction never seen on chain is given up after this long */
const ABANDON_AFTER_MS = 24 * 3600_000

/**
 * Unidirectional payment channels, both sides (PROTOCOL.md 8f). As payer:
 * open channels to many payees with one funding transaction, pay through
 * them with one signature and one write per payment, refund after the expiry
 * when a payee never closed. As payee: take an open after checking its
 * funding output, check each state (exactly the latest plus the price,
 * signed by the payer), keep the latest before serving, and close before
 * the expiry. A watcher does the chain-side upkeep of both.
 */
export class Channels {
  private readonly components: ChannelsComponents
  private readonly init: Required<Omit<ChannelsInit, 'confirmations' | 'minExpiryBlocks'>> & { confirmations: number, minExpiryBlocks: number }
  readonly store: ChannelStore
  /** one state at a time per channel, both sides: states stay totally ordered */
  private readonly locks = new KeyedLock()
  /** payer channels whose latest state the payee is known to hold or refuse (not after a lost answer or a restart) */
  private readonly synced = new Set<string>()
  private readonly payerAddresses = new Map<string, string>()
  private tip?: { height: number, at: number }
  private timer?: ReturnType<typeof setInterval>
  private watching?: Promise<void>

  constructor (components: ChannelsComponents, init: ChannelsInit) {
    this.components = components
    const closeMarginBlocks = init.closeMarginBlocks ?? 144
    this.init = {
      network: init.network,
      accept: init.accept ?? true,
      closeMarginBlocks,
      minExpiryBlocks: init.minExpiryBlocks ?? closeMarginBlocks + 6,
      maxExpiryBlocks: init.maxExpiryBlocks ?? 52_560,
      minCapacity: init.minCapacity ?? 10_000n,
      maxCapacity: init.maxCapacity ?? 10_000_000n,
      confirmations: init.confirmations ?? (init.network === 'regtest' ? 0 : 1),
      capacity: init.capacity ?? 50_000n,
      lifeBlocks: init.lifeBlocks ?? 4_320,
      watchIntervalMs: init.watchIntervalMs ?? 30_000,
      tipTtlMs: init.tipTtlMs ?? 10_000
    }
    this.store = new ChannelStore(components.datastore)
  }

  async start (): Promise<void> {
    await this.store.load()
    this.timer = setInterval(() => { void this.watch().catch(err => { log.error('watching channels failed - %e', err) }) }, this.init.watchIntervalMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    await this.watching
  }

  get accepts (): boolean {
    return this.init.accept
  }

  /** The chain's tip, asked at most every tipTtlMs */
  private async tipHeight (fresh = false): Promise<number> {
    if (!fresh && this.tip != null && Date.now() - this.tip.at < this.init.tipTtlMs) {
      return this.tip.height
    }
    const height = await this.components.chain.tipHeight()
    this.tip = { height, at: Date.now() }
    return height
  }

  // ---- the payee ----

  /** What a payer needs to open a channel to this node (payments.channel-terms) */
  async offer (payer: string): Promise<ChannelOffer> {
    if (!this.init.accept) {
      throw new PaymentDeclinedError('this node takes no payment channels (payments.channels.accept is false): pay attached or deferred')
    }
    const address = await this.components.wallet.addressFor(payer)
    return {
      key: keyHex(this.components.wallet.publicKeyOf(address)),
      address,
      closeMarginBlocks: this.init.closeMarginBlocks,
      minExpiryBlocks: this.init.minExpiryBlocks,
      maxExpiryBlocks: this.init.maxExpiryBlocks,
      minCapacity: formatAmount(this.init.minCapacity),
      maxCapacity: formatAmount(this.init.maxCapacity),
      confirmations: this.init.confirmations
    }
  }

  /**
   * A payer proposes a channel (payments.channel-open): args `<vout>
   * <payer key> <payee key> <expiry> <fee in BTC>`, the funding transaction
   * as the body, not yet broadcast. Its output must be the channel's P2WSH
   * output, the payee key this node's, the expiry and the capacity within
   * this node's policy and the fee enough to close. The payer broadcasts it
   * once every payee it funds has agreed.
   */
  async acceptOpen (payer: string, args: string[], funding: Uint8Array): Promise<ChannelRecord> {
    if (!this.init.accept) {
      throw new PaymentDeclinedError('this node takes no payment channels (payments.channels.accept is false)')
    }
    if (args.length !== 5) {
      throw new BadRequestError('payments.channel-open takes <output index> <payer key hex> <payee key hex> <expiry height> <fee in BTC>, and the funding transaction as the body')
    }
    let tx: Transaction
    try {
      tx = Transaction.fromBuffer(funding)
    } catch (err: any) {
      throw new BadRequestError(`the body is not a bitcoin transaction: ${err.message}`)
    }
    const vout = Number(args[0])
    if (!/^(0|[1-9][0-9]{0,5})$/.test(args[0]) || vout >= tx.outs.length) {
      throw new BadRequestError(`output ${args[0]} is not one of the funding transaction's ${tx.outs.length} outputs`)
    }
    let terms: ChannelTerms
    try {
      const expiry = Number(args[3])
      if (!/^[1-9][0-9]{0,8}$/.test(args[3])) {
        throw new ChannelTermsError(`the expiry "${args[3]}" is not a block height`)
      }
      terms = { txid: tx.getId(), vout, capacity: tx.outs[vout].value, fee: parseBtc(args[4]), expiry, payerKey: keyFromHex(args[1], 'the payer key'), payeeKey: keyFromHex(args[2], 'the payee key') }
    } catch (err: any) {
      throw new BadRequestError(err.message)
    }
    const id = channelId(terms)
    const existing = this.store.get('payee', id)
    if (existing != null) {
      if (existing.peer === payer) {
        // the payer asking again after a lost answer
        return existing
      }
      throw new BadRequestError(`channel ${id} is another payer's`)
    }
    const payeeAddress = this.components.wallet.addressOfKey(terms.payeeKey)
    if (payeeAddress == null) {
      throw new PaymentDeclinedError('the payee key is not one of this node\'s: ask payments.channel-terms for it')
    }
    let output
    try {
      output = channelOutput(terms, bitcoinNetwork(this.init.network))
    } catch (err: any) {
      throw new BadRequestError(err.message)
    }
    if (!Buffer.from(tx.outs[vout].script).equals(Buffer.from(output.script))) {
      throw new PaymentDeclinedError(`output ${vout} of the funding transaction is not the channel's P2WSH output for these keys and expiry (PROTOCOL.md 8f)`)
    }
    const tip = await this.tipHeight(true)
    const life = terms.expiry - tip
    if (life < this.init.minExpiryBlocks || life > this.init.maxExpiryBlocks) {
      throw new PaymentDeclinedError(`the expiry at block ${terms.expiry} is ${life} blocks from the tip (${tip}); this node takes channels that expire ${this.init.minExpiryBlocks} to ${this.init.maxExpiryBlocks} blocks from now`)
    }
    const minFee = BigInt(CLOSE_VBYTES)
    if (terms.fee < minFee) {
      throw new PaymentDeclinedError(`the channel's fee of ${formatAmount(terms.fee)} could not close it: at least ${formatAmount(minFee)} (1 sat/vB for ${CLOSE_VBYTES} vB)`)
    }
    if (terms.capacity < this.init.minCapacity || terms.capacity > this.init.maxCapacity) {
      throw new PaymentDeclinedError(`a channel's capacity here is ${formatAmount(this.init.minCapacity)} to ${formatAmount(this.init.maxCapacity)}, not ${formatAmount(terms.capacity)}`)
    }
    if (usable(terms) < 2n * DUST) {
      throw new PaymentDeclinedError(`the capacity less the fee is ${formatAmount(usable(terms))}: nothing could be paid through it`)
    }
    const record: ChannelRecord = { ...terms, role: 'payee', peer: payer, id, state: 'open', total: 0n, payments: 0, openedAt: Date.now(), closeMargin: this.init.closeMarginBlocks, confirmed: false }
    await this.store.put(record)
    // the address is taken: a wallet restored from its words scans past it
    await this.components.wallet.markPaid([payeeAddress])
    log('%s opened channel %s: %s until block %d', payer, id, formatAmount(terms.capacity), terms.expiry)
    return record
  }

  /**
   * A payment through a channel (PaymentHook of type `channel`): the state
   * must be exactly the latest plus `amount`, at least `required`, within
   * the capacity, signed by the payer, on a channel whose funding has the
   * confirmations this node asks and that is not within its close margin.
   * The state is written before the call is served. Answers what was paid.
   */
  async checkPayment (payer: string, payment: Extract<Payment, { type: 'channel' }>, required: bigint): Promise<{ sats: bigint, total: bigint }> {
    const record = this.store.get('payee', payment.channel)
    if (record == null) {
      throw withChannel(new PaymentDeclinedError(`no channel ${payment.channel} was opened to this node: open one (payments.channel-open) or pay attached or deferred`), required)
    }
    if (record.peer !== payer) {
      throw new PaymentDeclinedError(`channel ${payment.channel} is another payer's`)
    }
    if (payment.currency !== CURRENCY) {
      throw new PaymentDeclinedError(`a channel pays in BTC, not ${payment.currency}`)
    }
    const sats = parseBtc(payment.amount)
    if (sats < required) {
      throw withChannel(new PaymentTooLowError(`the call costs ${formatBtc(required)} BTC; the channel payment offers ${formatBtc(sats)}`), required)
    }
    return this.locks.run(record.id, async () => {
      const ch = this.store.get('payee', record.id) as ChannelRecord
      if (ch.state !== 'open') {
        throw new PaymentDeclinedError(`channel ${ch.id} is ${ch.state}: open a new one`)
      }
      await this.checkFunding(ch)
      const tip = await this.tipHeight()
      if (tip >= ch.expiry - ch.closeMargin) {
        throw new PaymentDeclinedError(`channel ${ch.id} expires at block ${ch.expiry} and the chain is at ${tip}: this node takes no payment within ${ch.closeMargin} blocks of the expiry; open a new channel`)
      }
      const total = ch.total + sats
      if (total > usable(ch)) {
        throw new PaymentDeclinedError(`the payment of ${formatAmount(sats)} is more than the ${formatAmount(usable(ch) - ch.total)} left in channel ${ch.id}: open a new channel`)
      }
      let tx: Transaction
      try {
        tx = parseState(payment.txn)
      } catch (err: any) {
        throw new PaymentDeclinedError(err.message)
      }
      const difference = stateDifference(ch, tx, total, ch.total)
      if (difference != null) {
        throw new PaymentDeclinedError(`the channel state is not the latest (${formatAmount(ch.total)} in all) plus this payment of ${formatAmount(sats)}: ${difference}`)
      }
      if (!verifyChannelSignature(ch, tx, ch.payerKey, payment.signature)) {
        throw new PaymentDeclinedError('the signature on the channel state is not the payer\'s key\'s (DER, low S, SIGHASH_ALL, over the BIP143 digest)')
      }
      const next: ChannelRecord = { ...ch, total, signature: Buffer.from(payment.signature).toString('hex'), payments: ch.payments + 1 }
      await this.store.put(next)
      return { sats, total }
    })
  }

  /** The funding transaction has the confirmations this node asks (checked until it has, then never again) */
  private async checkFunding (ch: ChannelRecord): Promise<void> {
    if (ch.confirmed === true) {
      return
    }
    let have: number
    try {
      have = await this.components.chain.confirmations(ch.txid)
    } catch (err: any) {
      if (err.name === 'TransactionNotFoundError') {
        throw new PaymentDeclinedError(`the funding transaction ${ch.txid} of channel ${ch.id} is not on the chain (not broadcast yet, or its coins were spent elsewhere): send it, or open another channel`)
      }
      throw err
    }
    if (have < this.init.confirmations) {
      throw new PaymentDeclinedError(`this node takes channel payments after ${this.init.confirmations} confirmation(s) of the funding; ${ch.txid} has ${have}: pay again once it confirms`)
    }
    await this.store.put({ ...ch, confirmed: true })
    Object.assign(ch, { confirmed: true })
  }

  /** The payer's view of a channel it opened to this node (payments.channel) */
  status (payer: string, id: string): ChannelView {
    const ch = this.store.get('payee', id)
    if (ch == null || ch.peer !== payer) {
      throw new BadRequestError(`no channel ${id} of yours is open to this node`)
    }
    return this.view(ch)
  }

  /**
   * Close a channel this node is paid through: the latest state, signed by
   * both, broadcast. The state is `closing` before it is sent, so no payment
   * is taken after the state that closes it.
   */
  async close (id: string, by?: string): Promise<{ txid: string, paid: bigint }> {
    const record = this.store.get('payee', id)
    if (record == null) {
      throw new ChannelCloseError(`no channel ${id} is open to this node`)
    }
    if (by != null && record.peer !== by) {
      throw new ChannelCloseError(`channel ${id} is another payer's`)
    }
    return this.locks.run(id, async () => {
      const ch = this.store.get('payee', id) as ChannelRecord
      if (ch.state !== 'open' && ch.state !== 'closing') {
        throw new ChannelCloseError(`channel ${id} is ${ch.state}${ch.closeTxid == null ? '' : ` (${ch.closeTxid})`}`)
      }
      if (ch.total < DUST || ch.signature == null) {
        throw new ChannelCloseError(`channel ${id} has paid ${formatAmount(ch.total)}, less than bitcoin's dust limit of ${formatAmount(DUST)}: there is nothing to claim on chain, and the payer refunds it after block ${ch.expiry}`)
      }
      const closing = this.closeOf(ch)
      await this.store.put({ ...ch, state: 'closing', closeTxid: closing.getId() })
      await this.broadcast(closing.toHex())
      log('closed channel %s with %s: %s paid in %d payments, in %s', id, ch.peer, formatAmount(ch.total), ch.payments, closing.getId())
      return { txid: closing.getId(), paid: ch.total }
    })
  }

  private closeOf (ch: ChannelRecord): Transaction {
    const { wallet } = this.components
    const state = stateTransaction(ch, ch.total)
    const address = wallet.addressOfKey(ch.payeeKey)
    if (address == null) {
      throw new ChannelCloseError(`the payee key of channel ${ch.id} is not in this wallet`)
    }
    const payeeSignature = signChannel(ch, state, wallet.privateKeyOf(address))
    return closeTransaction(ch, state, Buffer.from(ch.signature as string, 'hex'), payeeSignature)
  }

  /** Broadcast, taking "already known" as done: a close or refund sent again after a crash */
  private async broadcast (hex: string): Promise<void> {
    try {
      await this.components.chain.broadcast(hex)
    } catch (err: any) {
      if (!(err instanceof TransactionRejectedError) || !/already (known|in)/i.test(err.message)) {
        throw err
      }
    }
  }

  // ---- the payer ----

  /** An open channel to `peer` with room for `sats` more and not near its expiry */
  usableWith (peer: string, sats: bigint, tip = this.tip?.height): ChannelRecord | undefined {
    return this.store.all('payer').filter(ch =>
      ch.peer === peer && ch.state === 'open' && usable(ch) - ch.total >= sats &&
      (tip == null || tip < ch.expiry - ch.closeMargin - 1)
    ).sort((a, b) => a.expiry - b.expiry)[0]
  }

  /** Whether a payer has a channel open to this node with room for `sats` (an unpaid call is told to pay through it) */
  payeeHasRoom (payer: string, sats: bigint): boolean {
    return this.store.all('payee').some(ch => ch.peer === payer && ch.state === 'open' && ch.confirmed === true && usable(ch) - ch.total >= sats &&
      (this.tip == null || this.tip.height < ch.expiry - ch.closeMargin))
  }

  /** Payer channels to `peer` that are open */
  openWith (peer: string): ChannelRecord[] {
    return this.store.all('payer').filter(ch => ch.peer === peer && (ch.state === 'open' || ch.state === 'funding'))
  }

  /**
   * Open channels to several payees with one funding transaction: each
   * payee's terms, one output each, every payee's agreement before the
   * transaction is broadcast (a payee that refuses is left out and the
   * transaction built again without it), then the broadcast. The records
   * are written before the broadcast. Answers the channels opened; a payee
   * that refused is in `refused` with its reason.
   */
  async open (specs: OpenSpec[], options: { signal?: AbortSignal } = {}): Promise<{ opened: ChannelRecord[], refused: Array<{ peer: string, reason: string }>, txid?: string, fee?: bigint }> {
    const { wallet, chain } = this.components
    const network = bitcoinNetwork(this.init.network)
    const refused: Array<{ peer: string, reason: string }> = []
    const tip = await this.tipHeight(true)
    const feeRate = await chain.feeRate(6).catch(() => 1)
    const fee = BigInt(CLOSE_VBYTES) * BigInt(Math.max(1, Math.ceil(feeRate)))
    type Planned = ChannelTerms & { peer: string, target: string | PeerId | Multiaddr, payerAddress: string, closeMargin: number }
    let planned: Planned[] = []
    for (const spec of specs) {
      try {
        const offer = await this.askJson<ChannelOffer>(spec.target ?? spec.peer, 'channel-terms', [], options.signal)
        const payeeKey = keyFromHex(offer.key, 'the payee\'s channel key')
        const margin = Number(offer.closeMarginBlocks)
        const life = Math.min(Math.max(margin + (spec.lifeBlocks ?? this.init.lifeBlocks), Number(offer.minExpiryBlocks)), Number(offer.maxExpiryBlocks))
        let capacity = spec.capacity ?? 0n
        capacity = capacity < this.init.capacity ? this.init.capacity : capacity
        // the payee's limits are on the whole output, the fee added below included
        const min = parseAmount(offer.minCapacity) - fee
        const max = parseAmount(offer.maxCapacity) - fee
        capacity = capacity < min ? min : capacity > max ? max : capacity
        const key = await wallet.channelKey()
        planned.push({ peer: spec.peer, target: spec.target ?? spec.peer, txid: '', vout: 0, capacity: capacity + fee, fee, expiry: tip + life, payerKey: key.publicKey, payeeKey, payerAddress: key.address, closeMargin: margin })
      } catch (err: any) {
        options.signal?.throwIfAborted()
        refused.push({ peer: spec.peer, reason: err.message })
      }
    }
    for (let round = 0; round < 3 && planned.length > 0; round++) {
      const built = await wallet.createPayment(chain, planned.map(p => ({ address: channelOutput(p, network).address, value: p.capacity })))
      const tx = Transaction.fromHex(built.hex)
      planned = planned.map((p, vout) => ({ ...p, txid: built.txid, vout }))
      const agreed: Planned[] = []
      for (const p of planned) {
        try {
          await this.ask(p.target, 'channel-open', [String(p.vout), keyHex(p.payerKey), keyHex(p.payeeKey), String(p.expiry), formatBtc(p.fee)], tx.toBuffer(), options.signal)
          agreed.push(p)
        } catch (err: any) {
          options.signal?.throwIfAborted()
          refused.push({ peer: p.peer, reason: err.message })
        }
      }
      if (agreed.length < planned.length) {
        // build again without those who refused: their outputs would lock money until the expiry
        planned = agreed
        continue
      }
      const share = built.fee / BigInt(planned.length)
      const records: ChannelRecord[] = planned.map(p => ({
        txid: p.txid, vout: p.vout, capacity: p.capacity, fee: p.fee, expiry: p.expiry, payerKey: p.payerKey, payeeKey: p.payeeKey,
        role: 'payer', peer: p.peer, id: channelId(p), state: 'funding', total: 0n, payments: 0, openedAt: Date.now(), fundingHex: built.hex, fundingFee: share, closeMargin: p.closeMargin
      }))
      for (const r of records) {
        await this.store.put(r)
        this.synced.add(r.id)
        this.payerAddresses.set(r.id, planned.find(p => p.vout === r.vout)?.payerAddress as string)
      }
      await chain.broadcast(built.hex)
      for (const r of records) {
        await this.store.put({ ...r, state: 'open' })
      }
      log('opened %d channel(s) in %s (fee %s): %s', records.length, built.txid, formatAmount(built.fee), records.map(r => `${r.peer} ${formatAmount(r.capacity)}`).join(', '))
      return { opened: records.map(r => this.store.get('payer', r.id) as ChannelRecord), refused, txid: built.txid, fee: built.fee }
    }
    return { opened: [], refused }
  }

  /**
   * Pay `sats` to `peer` through its channel: the next state is signed and
   * written, then `send` carries it in the call; states of one channel go
   * one at a time. A payment refusal (the payee did not take the state)
   * takes the state back; a lost answer leaves it unknown whether the payee
   * took it, so the next payment asks the payee first (sync).
   */
  async pay<T> (peer: string, sats: bigint, send: (payment: Payment, channel: ChannelRecord) => Promise<T>, options: { signal?: AbortSignal } = {}): Promise<{ result: T, channel: ChannelRecord }> {
    const tip = await this.tipHeight()
    const found = this.usableWith(peer, sats, tip)
    if (found == null) {
      throw new NoChannelError(`no open channel to ${peer} has ${formatAmount(sats)} left`)
    }
    return this.locks.run(found.id, async () => {
      if (!this.synced.has(found.id)) {
        await this.sync(found.id, options.signal)
      }
      const ch = this.store.get('payer', found.id) as ChannelRecord
      if (ch.state !== 'open' || usable(ch) - ch.total < sats) {
        throw new NoChannelError(`channel ${ch.id} to ${peer} is ${ch.state === 'open' ? `left with ${formatAmount(usable(ch) - ch.total)}` : ch.state}`)
      }
      const total = ch.total + sats
      const state = stateTransaction(ch, total)
      const signature = signChannel(ch, state, this.components.wallet.privateKeyOf(this.payerAddress(ch)))
      const next: ChannelRecord = { ...ch, total, signed: ch.signed != null && ch.signed > total ? ch.signed : total, signature: Buffer.from(signature).toString('hex'), payments: ch.payments + 1 }
      await this.store.put(next)
      this.synced.delete(ch.id)
      const payment: Payment = { type: 'channel', currency: CURRENCY, amount: formatBtc(sats), channel: ch.id, txn: state.toBuffer(), signature }
      try {
        const result = await send(payment, next)
        this.synced.add(ch.id)
        return { result, channel: next }
      } catch (err: any) {
        if (err instanceof PaymentTooLowError) {
          // refused for its amount, the first thing a payee checks: it kept nothing
          await this.store.put(ch)
          this.synced.add(ch.id)
          throw err
        }
        if (err instanceof PaymentDeclinedError) {
          // whether it kept the state, and whether the channel is still open
          // there, is the payee's to say: ask now, so a channel it closed is
          // left at once (a payee's words are not read)
          await this.sync(ch.id, options.signal).catch(() => {})
          const now = this.store.get('payer', ch.id) as ChannelRecord
          if (now.state !== 'open') {
            throw new NoChannelError(`channel ${ch.id} to ${peer} is ${now.state} at the payee: ${err.message}`)
          }
        }
        // any other answer, or none: the next payment asks the payee first
        throw err
      }
    }, options)
  }

  private payerAddress (ch: ChannelRecord): string {
    let address = this.payerAddresses.get(ch.id)
    if (address == null) {
      address = this.components.wallet.addressOfKey(ch.payerKey)
      if (address == null) {
        throw new NoChannelError(`the payer key of channel ${ch.id} is not in this wallet`)
      }
      this.payerAddresses.set(ch.id, address)
    }
    return address
  }

  /**
   * Ask the payee what it holds of a channel: after a lost answer or a
   * restart, the latest state this node signed may or may not have reached
   * it. Its total can only be one this node signed: the latest, one before
   * it when the latest never arrived (taken back), or one taken back that
   * arrived after all; the channel goes on from it.
   */
  private async sync (id: string, signal?: AbortSignal): Promise<void> {
    const ch = this.store.get('payer', id) as ChannelRecord
    const theirs = await this.askJson<ChannelView>(ch.peer, 'channel', [id], signal)
    const total = parseAmount(theirs.paid)
    if (total > (ch.signed ?? ch.total)) {
      // no state is sent through it again; the payee can close only with one this node signed
      await this.store.put({ ...ch, state: 'closing', note: `the payee says it holds a state of ${formatAmount(total)}, more than this node signed (${formatAmount(ch.signed ?? ch.total)})` })
      throw new NoChannelError(`channel ${id}: the payee says it was paid ${formatAmount(total)}, more than this node signed; it is not used again`)
    }
    if (total !== ch.total || theirs.state !== 'open') {
      await this.store.put({ ...ch, total, payments: theirs.payments, signature: undefined, state: theirs.state === 'open' ? 'open' : 'closing', note: theirs.state === 'open' ? ch.note : `the payee has it ${theirs.state}` })
      if (total !== ch.total) {
        log('channel %s: this node counted %s and %s holds %s; it goes on from that', id, formatAmount(ch.total), ch.peer, formatAmount(total))
      }
    }
    this.synced.add(id)
  }

  /** Ask the payee to close a channel this node pays through (it gets what it was paid); answers its close txid */
  async requestClose (id: string, signal?: AbortSignal): Promise<{ txid: string }> {
    const ch = this.store.get('payer', id)
    if (ch == null) {
      throw new ChannelCloseError(`this node opened no channel ${id}`)
    }
    const answer = await this.askJson<{ txid: string }>(ch.peer, 'channel-close', [id], signal)
    await this.store.put({ ...(this.store.get('payer', id) as ChannelRecord), state: 'closing', closeTxid: answer.txid })
    return answer
  }

  /** Close `peer`'s channels with this node, either side: as payee broadcast; as payer ask the payee (`payments channel close`) */
  async closeWith (peer: string, signal?: AbortSignal): Promise<Array<{ id: string, role: 'payer' | 'payee', txid?: string, error?: string }>> {
    const out: Array<{ id: string, role: 'payer' | 'payee', txid?: string, error?: string }> = []
    for (const ch of this.store.all()) {
      if (ch.peer !== peer || ch.state !== 'open') {
        continue
      }
      try {
        const { txid } = ch.role === 'payee' ? await this.close(ch.id) : await this.requestClose(ch.id, signal)
        out.push({ id: ch.id, role: ch.role, txid })
      } catch (err: any) {
        out.push({ id: ch.id, role: ch.role, error: err.message })
      }
    }
    if (out.length === 0) {
      throw new NoChannelError(`no open channel with ${peer}`)
    }
    return out
  }

  /** Refund a payer channel once the chain has reached its expiry and the payee has not closed it */
  async refund (id: string): Promise<{ txid: string }> {
    const ch = this.store.get('payer', id)
    if (ch == null) {
      throw new ChannelCloseError(`this node opened no channel ${id}`)
    }
    const tip = await this.tipHeight(true)
    if (tip < ch.expiry) {
      throw new ChannelCloseError(`channel ${id} can be refunded from block ${ch.expiry}; the chain is at ${tip}`)
    }
    const spent = await this.components.chain.outspend(ch.txid, ch.vout)
    if (spent.spent) {
      throw new ChannelCloseError(`channel ${id} was spent by ${spent.txid ?? 'a transaction'}: nothing to refund`)
    }
    const refund = signedRefund(ch, this.components.wallet.privateKeyOf(this.payerAddress(ch)))
    await this.store.put({ ...ch, state: 'closing', closeTxid: refund.getId(), note: 'refund after the expiry' })
    await this.broadcast(refund.toHex())
    log('refunded channel %s with %s after its expiry: %s back in %s', id, ch.peer, formatAmount(usable(ch)), refund.getId())
    return { txid: refund.getId() }
  }

  // ---- upkeep ----

  /**
   * One round of upkeep. The payee closes its channels that reach the close
   * margin and sends a close again until it is on chain. The payer sends a
   * funding transaction again after a crash, sees its channels closed, and
   * refunds those the payee left open past the expiry.
   */
  async watch (): Promise<void> {
    if (this.watching != null) {
      return this.watching
    }
    this.watching = (async () => {
      const tip = await this.tipHeight(true)
      for (const ch of this.store.all()) {
        if (ch.state === 'closed' || ch.state === 'refunded' || ch.state === 'abandoned') {
          continue
        }
        try {
          await (ch.role === 'payee' ? this.watchPayee(ch, tip) : this.watchPayer(ch, tip))
        } catch (err: any) {
          log.error('channel %s with %s: %s', ch.id, ch.peer, err.message)
        }
      }
    })()
    try {
      await this.watching
    } finally {
      this.watching = undefined
    }
  }

  private async watchPayee (ch: ChannelRecord, tip: number): Promise<void> {
    if (ch.state === 'open' && ch.confirmed !== true && Date.now() - ch.openedAt > ABANDON_AFTER_MS) {
      const known = await this.components.chain.transaction(ch.txid).then(() => true, (err) => err.name === 'TransactionNotFoundError' ? false : undefined)
      if (known === false) {
        await this.store.put({ ...ch, state: 'abandoned', note: 'its funding transaction never reached the chain' })
        return
      }
    }
    const spent = await this.components.chain.outspend(ch.txid, ch.vout).catch(() => undefined)
    if (spent?.spent === true) {
      const closedByUs = spent.txid === ch.closeTxid
      await this.store.put({ ...ch, state: closedByUs ? 'closed' : 'refunded', closeTxid: spent.txid, closedAt: Date.now(), note: closedByUs ? undefined : 'spent by the payer\'s refund' })
      return
    }
    if (ch.state === 'closing') {
      await this.broadcast(this.closeOf(ch).toHex())
      return
    }
    if (tip >= ch.expiry - ch.closeMargin && ch.total >= DUST) {
      await this.close(ch.id)
    }
  }

  private async watchPayer (ch: ChannelRecord, tip: number): Promise<void> {
    const { chain } = this.components
    if (ch.state === 'funding') {
      try {
        await chain.transaction(ch.txid)
      } catch (err: any) {
        if (err.name !== 'TransactionNotFoundError' || ch.fundingHex == null) {
          throw err
        }
        try {
          await this.broadcast(ch.fundingHex)
        } catch (err: any) {
          if (err instanceof TransactionRejectedError) {
            await this.store.put({ ...ch, state: 'abandoned', note: `the funding transaction was refused: ${err.message}` })
            return
          }
          throw err
        }
      }
      await this.store.put({ ...ch, state: 'open' })
      return
    }
    const spent = await chain.outspend(ch.txid, ch.vout)
    if (spent.spent) {
      // a txid leaves the witness out: the unsigned refund has the signed one's
      const refunded = spent.txid === refundTransaction(ch).getId()
      if (spent.confirmed === true || ch.state === 'open') {
        await this.store.put({ ...ch, state: refunded ? 'refunded' : (spent.confirmed === true ? 'closed' : 'closing'), closeTxid: spent.txid, closedAt: spent.confirmed === true ? Date.now() : undefined })
      }
      return
    }
    if (tip >= ch.expiry) {
      await this.refund(ch.id)
    }
  }

  // ---- views and plumbing ----

  view (ch: ChannelRecord): ChannelView {
    const tip = this.tip?.height
    return {
      id: ch.id,
      role: ch.role,
      peer: ch.peer,
      state: ch.state,
      capacity: formatAmount(ch.capacity),
      paid: formatAmount(ch.total),
      remaining: formatAmount(usable(ch) - ch.total),
      fee: formatAmount(ch.fee),
      payments: ch.payments,
      expiry: ch.expiry,
      blocksLeft: tip == null ? undefined : ch.expiry - tip,
      fundingTxid: ch.txid,
      closeTxid: ch.closeTxid,
      openedAt: new Date(ch.openedAt).toISOString(),
      note: ch.note
    }
  }

  async list (): Promise<ChannelView[]> {
    await this.tipHeight().catch(() => undefined)
    return this.store.all().map(ch => this.view(ch))
  }

  private async ask (peer: string | PeerId | Multiaddr, method: string, args: string[], body?: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    const response = await this.components.call(typeof peer === 'string' ? peerIdFromString(peer) : peer, { service: 'payments', method, args, body: body == null ? undefined : bodyFromBytes(body), signal })
    return response.body.bytes()
  }

  private async askJson<T> (peer: string | PeerId | Multiaddr, method: string, args: string[], signal?: AbortSignal): Promise<T> {
    return JSON.parse(new TextDecoder().decode(await this.ask(peer, method, args, undefined, signal)))
  }
}

/** A refusal that says a channel payment of `sats` would do */
export function withChannel<E extends Error & { acceptablePayment?: any }> (err: E, sats: bigint): E {
  err.acceptablePayment = { type: 'channel', currency: CURRENCY, amount: formatBtc(sats) }
  return err
}

/** The on-chain cost of paying through a channel, in vbytes: its share of a funding transaction of `outputs` channels, and its close */
export function channelVbytes (outputs: number): number {
  // a P2WSH output is 43 vB; the funding's one input, change and overhead
  // (a one-input, one-output transaction at 1 sat/vB) are shared
  return 43 + Math.ceil(Number(feeFor(1, 1, 1)) / Math.max(1, outputs)) + CLOSE_VBYTES
}

/**
 * Whether paying `expected` satoshis to one payee over a channel's life
 * costs less on chain through a channel than the other types would: with
 * credit, deferred promises settle once they are worth a settlement (four
 * times its fee, PaymentAgent), so ceil(expected / that) settlements; without,
 * an attached payment per call. A channel costs its share of the funding and
 * its close.
 */
export function channelIsCheaper (o: { expected: bigint, calls: number, feeRate: number, credit: boolean, outputs?: number }): { cheaper: boolean, channelFee: bigint, otherFee: bigint } {
  const rate = BigInt(Math.max(1, Math.ceil(o.feeRate)))
  const channelFee = BigInt(channelVbytes(o.outputs ?? 1)) * rate
  const settlement = paymentFee(o.feeRate)
  const worth = settlement * 4n > DUST ? settlement * 4n : DUST
  const transactions = o.credit ? (o.expected + worth - 1n) / worth : BigInt(o.calls)
  const otherFee = transactions * settlement
  // a payee paid less than the dust limit in all could never claim it: the refund would take it back
  return { cheaper: o.expected >= DUST && channelFee < otherFee, channelFee, otherFee }
}
