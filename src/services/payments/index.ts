import { logger } from '@libp2p/logger'
import { BadRequestError } from '../../protocols/rpc/errors.ts'
import { formatAmount, Units } from '../../protocols/units.ts'
import type { TabBook } from '../../payments/tab-book.ts'
import type { Wallet } from '../../payments/wallet/wallet.ts'
import { InvalidAmountError } from '../../protocols/units.ts'
import { tabJson } from './views.ts'
import { WrongNetworkAddressError } from '../../protocols/bitcoin-networks.ts'
import { DustPaymentError, FeeTooHighError, InsufficientFundsError } from '../../payments/wallet/tx-builder.ts'
import { HoldingsCheck, PaymentDesk } from './payment-desk.ts'
import { paymentsRoutes } from './routes.ts'
import type { Service } from '../interface.ts'
import type { ServiceModuleDefinition } from '../module.ts'

export const PAYMENTS_SERVICE = 'payments'

/** A method named in args, `<service>.<method>`, each in the form of section 4 of PROTOCOL.md */
const METHOD = /^([a-z][a-z0-9-]{0,63})\.([a-z][a-z0-9-]{0,63})$/

export interface PaymentsServiceComponents {
  wallet: Wallet
  tabs: TabBook
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

/**
 * The payments module: the `payments` service; with a chain (payments.chain
 * set), the desk that takes attached and deferred payments and the holdings
 * check of bitcoin credentials; the paying side's settling (the payment
 * agent) and the scan of a wallet restored from its words; the control
 * API's wallet and payments routes.
 */
export const paymentsModule: ServiceModuleDefinition = {
  name: PAYMENTS_SERVICE,
  create: ({ wallet, tabs, chain, payments, reputation, network, config }) => {
    const record = async (r: Parameters<NonNullable<PaymentsServiceComponents['record']>>[0]): Promise<void> => reputation.record(r)
    const desk = chain == null
      ? undefined
      : new PaymentDesk({ wallet, chain, tabs, trustScore: async (peer) => (await reputation.view(peer)).score, record }, { network })
    return {
      services: [paymentsService({ wallet, tabs, record })],
      payments: desk == null ? {} : { none: desk, attached: desk, defer: desk },
      checks: chain == null ? {} : { holdings: new HoldingsCheck(chain) },
      routes: paymentsRoutes({ wallet, chain, tabs, payments, config }),
      errors: [[WrongNetworkAddressError, 400], [InvalidAmountError, 400], [DustPaymentError, 400], [InsufficientFundsError, 409], [FeeTooHighError, 409]],
      start: async () => {
        payments?.start()
        if (wallet.scanNeeded && chain != null) {
          // restored from its mnemonic: find the addresses it used, in the background
          void wallet.scan(chain).catch(err => { log.error('scanning the restored wallet failed; it is tried again at the next start - %e', err) })
        }
      },
      stop: async () => { await payments?.stop() }
    }
  }
}
