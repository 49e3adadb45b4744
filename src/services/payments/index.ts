import { logger } from '@libp2p/logger'
import { BadRequestError, PaymentTooLowError, RequestDeclinedError } from '../../protocols/rpc/errors.ts'
import { bodyBytes } from '../../protocols/rpc/rpc-server.ts'
import { formatAmount, formatBtc, parseAmount, Units } from '../../protocols/units.ts'
import { ChannelCloseError, ChannelOpenError, Channels, NoChannelError, withChannel, type ChannelsInit } from '../../payments/channels/channels.ts'
import { ChannelTermsError } from '../../payments/channels/channel-script.ts'
import { ConfigError, objectSection, wholeNumber, type ConfigSection } from '../config-section.ts'
import type { ChannelUse } from '../../payments/payment-agent.ts'
import type { Payment } from '../../protocols/rpc/messages.ts'
import type { TabBook } from '../../payments/tab-book.ts'
import type { ChainBackend } from '../../payments/chain/interface.ts'
import type { Wallet } from '../../payments/wallet/wallet.ts'
import { InvalidAmountError } from '../../protocols/units.ts'
import { tabJson } from './views.ts'
import { WrongNetworkAddressError } from '../../protocols/bitcoin-networks.ts'
import { DustPaymentError, FeeTooHighError, InsufficientFundsError } from '../../payments/wallet/tx-builder.ts'
import { HoldingsCheck, PaymentDesk } from './payment-desk.ts'
import { paymentsRoutes } from './routes.ts'
import { paymentsMetrics } from './metrics.ts'
import type { Warning } from '../module.ts'
import type { PaymentHook, Service } from '../interface.ts'
import type { ServiceModuleDefinition } from '../module.ts'

export const PAYMENTS_SERVICE = 'payments'

/** A method named in args, `<service>.<method>`, each in the form of section 4 of PROTOCOL.md */
const METHOD = /^([a-z][a-z0-9-]{0,63})\.([a-z][a-z0-9-]{0,63})$/

export interface PaymentsServiceComponents {
  wallet: Wallet
  tabs: TabBook
  /** channels opened to this node; absent when payments are off */
  channels?: Channels
  record?: (record: { peer: string, role: 'caller', outcome: 'satisfactory' | 'unsatisfactory', event: string, promised?: string }) => Promise<void>
}

/**
 * Core service: how to pay this node and what a caller owes it. `settle`
 * takes an attached payment and, optionally, the ids of the deferred
 * payments it pays (at most 64, the protocol's limit on args); without ids
 * it pays the caller's unpaid promises oldest first, so any number of them
 * is settled with one transaction. Each promise is credited only if what is
 * left covers it in full. A settlement is idempotent: the same transaction
 * sent again answers what it settled the first time.
 */
export function paymentsService (components: PaymentsServiceComponents): Service {
  const { wallet, tabs } = components
  return {
    name: PAYMENTS_SERVICE,
    version: '1.0.0',
    description: 'where to pay this node, what a caller owes it, and settling deferred payments',
    methods: {
      address: {
        description: 'an address of this node\'s wallet to pay to: the caller\'s unpaid one, or a fresh one',
        unit: Units.CALL,
        handle: async ({ caller }) => ({ json: { address: await wallet.addressFor(caller), network: wallet.network } })
      },
      tab: {
        description: 'the caller\'s tab with this node: promised, paid, outstanding, due, overdue; with a method named, the credit the caller gets for it',
        args: '[<service>.<method>]',
        unit: Units.CALL,
        handle: async ({ caller, args, creditFor }) => {
          const json = tabJson(await tabs.tab('receivable', caller))
          if (args.length === 0) {
            return { json }
          }
          const named = METHOD.exec(args[0])
          if (args.length > 1 || named == null) {
            throw new BadRequestError('payments.tab takes no arg, or one naming a method as <service>.<method> (e.g. storage.put): the credit this node gives you for it')
          }
          // a node whose payment check tells no credit (payments off) leaves it out: no credit
          const credit = await creditFor?.(named[1], named[2])
          return { json: credit == null ? json : { ...json, credit: { maxTab: formatAmount(credit.maxTab), refused: credit.refused } } }
        }
      },
      ...(components.channels == null ? {} : channelMethods(components.channels)),
      settle: {
        description: 'pay deferred payments: attach a payment; it pays off the ids named, or without ids the oldest unpaid first',
        args: '[<id>...]',
        unit: Units.CALL,
        handle: async ({ caller, args, paid }) => {
          if (paid == null) {
            throw new BadRequestError('settle needs an attached payment')
          }
          if (paid.repeated === true) {
            const before = await tabs.settlement(paid.txid)
            return { json: { settled: before?.settled ?? [], unknownOrUncovered: [], repeated: true, tab: tabJson(await tabs.tab('receivable', caller)) } }
          }
          const coverage = paid.settles ?? await tabs.coverage(caller, paid.sats, args)
          const covered = coverage.map(p => p.id)
          const coveredSats = coverage.reduce((sum, p) => sum + p.sats, 0n)
          const before = await tabs.tab('receivable', caller)
          await tabs.markPaid('receivable', caller, covered, paid.txid)
          await tabs.recordSettlement({ caller, txid: paid.txid, settled: covered, sats: coveredSats })
          if (covered.length > 0) {
            // a debt paid before it was overdue is a promise kept
            await components.record?.({ peer: caller, role: 'caller', outcome: before.overdue > 0n ? 'unsatisfactory' : 'satisfactory', event: before.overdue > 0n ? 'paid-late' : 'paid-on-time', promised: `${covered.length} deferred payment(s)` })
          }
          await tabs.recordPayment({ direction: 'received', peer: caller, txid: `${paid.txid}:settle`, sats: coveredSats, settles: covered, service: PAYMENTS_SERVICE, method: 'settle' })
          return { json: { settled: covered, unknownOrUncovered: args.filter(id => !covered.includes(id)), tab: tabJson(await tabs.tab('receivable', caller)) } }
        }
      }
    }
  }
}

const log = logger('opencloud:payments')

/** The largest funding transaction payments.channel-open reads */
const MAX_FUNDING_BYTES = 100_000

/** The payee's side of channels, as methods of the payments service (PROTOCOL.md 8f) */
function channelMethods (channels: Channels): Service['methods'] {
  const channelArg = (args: string[], method: string): string => {
    if (args.length !== 1 || !/^[0-9a-f]{64}:[0-9]{1,6}$/.test(args[0])) {
      throw new BadRequestError(`payments.${method} takes one arg: the channel, <funding txid>:<output index>`)
    }
    return args[0]
  }
  return {
    'channel-terms': {
      description: 'what a payer needs to open a payment channel to this node: its key, address, expiry and capacity limits, close margin, confirmations',
      unit: Units.CALL,
      handle: async ({ caller }) => ({ json: await channels.offer(caller) })
    },
    'channel-open': {
      description: 'open a channel: args <output index> <payer key> <payee key> <expiry height> <fee in BTC>, body the funding transaction (the payer broadcasts it)',
      args: '<vout> <payer-key> <payee-key> <expiry> <fee>',
      unit: Units.CALL,
      handle: async (ctx) => {
        const record = await channels.acceptOpen(ctx.caller, ctx.args, await bodyBytes(ctx.body, MAX_FUNDING_BYTES, 'a funding transaction'))
        return { json: channels.view(record) }
      }
    },
    channel: {
      description: 'a channel you opened to this node, as it holds it: what it was paid (the latest state), payments, state',
      args: '<channel>',
      unit: Units.CALL,
      handle: async ({ caller, args }) => ({ json: channels.status(caller, channelArg(args, 'channel')) })
    },
    'channel-close': {
      description: 'close a channel you opened to this node: it broadcasts the latest state, which pays it what it was paid and you the rest',
      args: '<channel>',
      unit: Units.CALL,
      handle: async ({ caller, args }) => {
        try {
          const closed = await channels.close(channelArg(args, 'channel-close'), caller)
          return { json: { txid: closed.txid, paid: formatAmount(closed.paid) } }
        } catch (err: any) {
          if (err instanceof ChannelCloseError) {
            throw new RequestDeclinedError(err.message)
          }
          throw err
        }
      }
    }
  }
}

/** `channels` in config.json: when this node pays through channels, and what it takes as a payee */
export interface ChannelSettings {
  /** auto (where a channel costs less on chain than the other kinds of payment), always, never; default auto */
  use: ChannelUse
  /** take channels from payers, default true */
  accept: boolean
  /** the capacity of a channel this node opens, at least, default "50000 sat" */
  capacity: string
  /** how long a channel this node opens lives, in blocks past the payee's close margin, default 4320 (30 days) */
  lifeBlocks: number
  /** as payee: blocks before the expiry from which it takes no payment and closes, default 144 (a day) */
  closeMarginBlocks: number
  /** as payee: the longest channel life it takes, blocks, default 52560 (a year) */
  maxExpiryBlocks: number
  /** as payee: the smallest and largest capacity it takes */
  minCapacity: string
  maxCapacity: string
  /** how often channels are watched (closes, refunds), default 30000 ms */
  watchIntervalMs: number
}

const amountSetting = (value: unknown, path: string): string => {
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new ConfigError(`${path} is an amount with its unit, e.g. "50000 sat" or "0.0005 BTC"`)
  }
  try {
    return formatAmount(parseAmount(value, path))
  } catch (err: any) {
    throw new ConfigError(err.message)
  }
}

export const channelSettings: ConfigSection<ChannelSettings> = {
  key: 'channels',
  defaults: { use: 'auto', accept: true, capacity: '50000 sat', lifeBlocks: 4320, closeMarginBlocks: 144, maxExpiryBlocks: 52_560, minCapacity: '10000 sat', maxCapacity: '0.1 BTC', watchIntervalMs: 30_000 },
  validate: (raw, path) => objectSection(raw, path, channelSettings.defaults, {
    use: (value, p) => {
      if (value !== 'auto' && value !== 'always' && value !== 'never') {
        throw new ConfigError(`${p} is "auto" (a channel where it costs less on chain), "always" or "never"`)
      }
      return value
    },
    accept: (value, p) => {
      if (typeof value !== 'boolean') {
        throw new ConfigError(`${p} is true or false`)
      }
      return value
    },
    capacity: amountSetting,
    lifeBlocks: wholeNumber(1, 'blocks'),
    closeMarginBlocks: wholeNumber(1, 'blocks'),
    maxExpiryBlocks: wholeNumber(2, 'blocks'),
    minCapacity: amountSetting,
    maxCapacity: amountSetting,
    watchIntervalMs: wholeNumber(100, 'milliseconds')
  })
}

/**
 * The payments module: the `payments` service; with a chain (payments.chain
 * set), the desk that takes attached and deferred payments and the holdings
 * check of bitcoin credentials; the paying side's settling (the payment
 * agent) and the scan of a wallet restored from its words; the control
 * API's wallet and payments routes.
 */
export const paymentsModule: ServiceModuleDefinition = {
  name: PAYMENTS_SERVICE,
  config: [channelSettings],
  create: ({ wallet, tabs, chain, payments, reputation, network, config, datastore, caller, section, options, metrics }) => {
    const record = async (r: Parameters<NonNullable<PaymentsServiceComponents['record']>>[0]): Promise<void> => reputation.record(r)
    const desk = chain == null
      ? undefined
      : new PaymentDesk({ wallet, chain, tabs, trustScore: async (peer) => (await reputation.view(peer)).score, record }, { network })
    const settings = section(channelSettings)
    const channels = chain == null
      ? undefined
      : new Channels({ datastore, wallet, chain, tabs, call: async (peer, request) => caller.plainCall(peer, request) }, {
        network,
        accept: settings.accept,
        capacity: parseAmount(settings.capacity),
        lifeBlocks: settings.lifeBlocks,
        closeMarginBlocks: settings.closeMarginBlocks,
        maxExpiryBlocks: settings.maxExpiryBlocks,
        minCapacity: parseAmount(settings.minCapacity),
        maxCapacity: parseAmount(settings.maxCapacity),
        watchIntervalMs: settings.watchIntervalMs,
        ...(options[PAYMENTS_SERVICE] as { channels?: ChannelsInit } | undefined)?.channels
      })
    if (channels != null) {
      payments?.useChannels(channels, settings.use)
    }
    const channelHook: PaymentHook | undefined = channels == null
      ? undefined
      : {
          check: async ({ required, ctx }) => {
            const payment = ctx.payment as Extract<Payment, { type: 'channel' }>
            const { sats, total } = await channels.checkPayment(ctx.caller, payment, required)
            const txid = `channel:${payment.channel}:${total}`
            ctx.paid = { txid, sats }
            await tabs.recordPayment({ direction: 'received', peer: ctx.caller, txid, sats, settles: [], service: ctx.service, method: ctx.method })
          }
        }
    // an unpaid call from a payer with a channel open to this node is told the price to pay through it
    const none: PaymentHook | undefined = desk == null
      ? undefined
      : {
          check: async (c) => {
            if (c.required > 0n && channels != null && channels.payeeHasRoom(c.ctx.caller, c.required)) {
              throw withChannel(new PaymentTooLowError(`${c.ctx.service}.${c.ctx.method} costs ${formatBtc(c.required)} BTC and the request carries no payment: pay it through your open channel`), c.required)
            }
            await desk.check(c)
          },
          credit: async (caller, policy) => desk.credit(caller, policy)
        }
    paymentsMetrics(metrics, { wallet, chain, tabs }, channels)
    return {
      services: [paymentsService({ wallet, tabs, record, channels })],
      warnings: async () => paymentWarnings({ wallet, chain, tabs }),
      payments: desk == null || none == null ? {} : { none, attached: desk, defer: desk, ...(channelHook == null ? {} : { channel: channelHook }) },
      checks: chain == null ? {} : { holdings: new HoldingsCheck(chain) },
      routes: paymentsRoutes({ wallet, chain, tabs, payments, config }, channels),
      errors: [[WrongNetworkAddressError, 400], [InvalidAmountError, 400], [DustPaymentError, 400], [InsufficientFundsError, 409], [FeeTooHighError, 409], [NoChannelError, 404], [ChannelCloseError, 409], [ChannelOpenError, 409], [ChannelTermsError, 400]],
      engine: channels,
      start: async () => {
        await channels?.start()
        payments?.start()
        if (wallet.scanNeeded && chain != null) {
          // restored from its mnemonic: find the addresses it used, in the background
          void wallet.scan(chain).catch(err => { log.error('scanning the restored wallet failed; it is tried again at the next start - %e', err) })
        }
      },
      stop: async () => {
        await payments?.stop()
        await channels?.stop()
      }
    }
  }
}

/**
 * What is wrong with paying, for the dashboard: a chain the node cannot
 * reach (nothing settles, no channel opens), and debts past their grace
 * that the wallet cannot cover
 */
async function paymentWarnings ({ wallet, chain, tabs }: { wallet: Wallet, chain?: ChainBackend, tabs: TabBook }): Promise<Warning[]> {
  if (chain == null) {
    return []
  }
  const warnings: Warning[] = []
  const balance = await wallet.balance(chain).catch((err: any) => {
    warnings.push({ module: PAYMENTS_SERVICE, severity: 'warning', text: `the chain (payments.chain) cannot be reached (${String(err.message)}): nothing is paid or settled until it can` })
    return undefined
  })
  const payable = await tabs.tabs('payable')
  const overdue = payable.reduce((sum, t) => sum + t.overdue, 0n)
  if (overdue > 0n) {
    const short = balance != null && balance.confirmed < overdue
    warnings.push({
      module: PAYMENTS_SERVICE,
      severity: short ? 'critical' : 'warning',
      text: `${formatAmount(overdue)} owed to ${payable.filter(t => t.overdue > 0n).length} peer(s) is overdue${short ? `, more than the wallet's ${formatAmount(balance.confirmed)}: fund the wallet (wallet address) or these peers stop serving this node` : ': it is settled at the next settlement round'}`
    })
  }
  return warnings
}
