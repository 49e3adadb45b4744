import { BadRequestError } from '../../protocols/rpc/errors.ts'
import { formatAmount, Units } from '../../market/units.ts'
import type { Ledger, TabSummary } from '../../payments/ledger.ts'
import type { Wallet } from '../../payments/wallet/wallet.ts'
import type { Service } from '../interface.ts'

export const PAYMENTS_SERVICE = 'payments'

export interface PaymentsServiceComponents {
  wallet: Wallet
  ledger: Ledger
  record?: (record: { peer: string, role: 'caller', outcome: 'satisfactory' | 'unsatisfactory', event: string, promised?: string }) => Promise<void>
}

export function tabJson (tab: TabSummary): Record<string, unknown> {
  return {
    peer: tab.peer,
    role: tab.role,
    promised: formatAmount(tab.promised),
    paid: formatAmount(tab.paid),
    outstanding: formatAmount(tab.outstanding),
    due: formatAmount(tab.due),
    overdue: formatAmount(tab.overdue),
    promises: tab.promises
  }
}

/**
 * Core service: how to pay this node and what a caller owes it. `settle`
 * takes an attached payment and the ids of deferred payments it pays; the
 * oldest listed promises are credited first, and a payment too small for all
 * of them pays those it covers in full.
 */
export function paymentsService (components: PaymentsServiceComponents): Service {
  const { wallet, ledger } = components
  return {
    name: PAYMENTS_SERVICE,
    version: '1.0.0',
    description: 'where to pay this node, what a caller owes it, and settling deferred payments',
    methods: {
      address: {
        description: 'a fresh address of this node\'s wallet to pay to',
        unit: Units.CALL,
        handle: async () => ({ json: { address: await wallet.newAddress(), network: wallet.network } })
      },
      tab: {
        description: 'the caller\'s tab with this node: promised, paid, outstanding, due, overdue',
        unit: Units.CALL,
        handle: async ({ caller }) => ({ json: tabJson(await ledger.tab('receivable', caller)) })
      },
      settle: {
        description: 'pay deferred payments: attach a payment and name the ids it pays',
        args: '<id>...',
        unit: Units.CALL,
        handle: async ({ caller, args, paid }) => {
          if (paid == null) {
            throw new BadRequestError('settle needs an attached payment')
          }
          if (args.length === 0) {
            throw new BadRequestError('settle takes the ids of the deferred payments it pays')
          }
          const owed = new Map((await ledger.promises('receivable', caller)).filter(p => p.paidAt == null).map(p => [p.id, p]))
          let left = paid.sats
          const covered: string[] = []
          for (const id of args) {
            const promise = owed.get(id)
            if (promise != null && promise.sats <= left) {
              left -= promise.sats
              covered.push(id)
            }
          }
          const before = await ledger.tab('receivable', caller)
          await ledger.markPaid('receivable', caller, covered, paid.txid)
          if (covered.length > 0) {
            // a debt paid before it was overdue is a promise kept
            await components.record?.({ peer: caller, role: 'caller', outcome: before.overdue > 0n ? 'unsatisfactory' : 'satisfactory', event: before.overdue > 0n ? 'paid-late' : 'paid-on-time', promised: `${covered.length} deferred payment(s)` })
          }
          await ledger.recordPayment({ direction: 'received', peer: caller, txid: `${paid.txid}:settle`, sats: paid.sats - left, settles: covered, service: PAYMENTS_SERVICE, method: 'settle' })
          return { json: { settled: covered, unknownOrUncovered: args.filter(id => !covered.includes(id)), tab: tabJson(await ledger.tab('receivable', caller)) } }
        }
      }
    }
  }
}
