import { formatAmount } from '../../protocols/units.ts'
import type { TabSummary } from '../../payments/tab-book.ts'

/** A tab as the `payments.tab` method and the control API show it: amounts in BTC */
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
