import { Counter, Gauge, type Registry } from 'prom-client'
import { parseAmount, SATS_PER_BTC } from '../../protocols/units.ts'
import type { Channels } from '../../payments/channels/channels.ts'
import type { ModuleComponents } from '../module.ts'

/**
 * Amounts are BTC, as everywhere else the node shows money ("_btc" says so
 * in each name): a satoshi is 1e-8 of one, and every amount there can be
 * is exact in a double as satoshis, close to exact as BTC
 */
function btc (sats: bigint): number {
  return Number(sats) / Number(SATS_PER_BTC)
}

/**
 * The payments module's figures in the node's registry, read when
 * Prometheus scrapes: the wallet's balance, what the node earned and
 * spent by service and kind of payment (attached, channel, deferred), its
 * tabs and its channels
 */
export function paymentsMetrics (registry: Registry, { wallet, chain, tabs }: Pick<ModuleComponents, 'wallet' | 'chain' | 'tabs'>, channels?: Channels): void {
  const registers = [registry]
  new Gauge({
    name: 'opencloud_wallet_balance_btc',
    help: 'The wallet\'s balance in BTC, confirmed and unconfirmed (negative while a spend waits in the mempool); absent when payments are off or the chain cannot be reached',
    labelNames: ['state'],
    registers,
    async collect () {
      this.reset()
      if (chain == null) return
      const balance = await wallet.balance(chain).catch(() => undefined)
      if (balance == null) return
      this.set({ state: 'confirmed' }, btc(balance.confirmed))
      this.set({ state: 'unconfirmed' }, btc(balance.unconfirmed))
    }
  })
  // counters read from the payments book: they only grow while the book does
  for (const side of ['earned', 'spent'] as const) {
    new Counter({
      name: `opencloud_payments_${side}_btc_total`,
      help: `What this node's calls ${side === 'earned' ? 'earned from callers' : 'cost it'}, in BTC, by service and kind of payment (attached, channel, deferred)`,
      labelNames: ['service', 'kind'],
      registers,
      async collect () {
        this.reset()
        for (const [key, row] of await tabs.tally(0, Infinity, c => `${c.service} ${c.kind}`)) {
          const [service, kind] = key.split(' ')
          this.inc({ service, kind }, btc(row[side]))
        }
      }
    })
  }
  new Gauge({
    name: 'opencloud_tab_btc',
    help: 'Deferred payments in BTC: role receivable (owed to this node) or payable (owed by it); amount outstanding (unpaid), due, or overdue',
    labelNames: ['role', 'amount'],
    registers,
    async collect () {
      this.reset()
      for (const role of ['receivable', 'payable'] as const) {
        const all = await tabs.tabs(role)
        for (const amount of ['outstanding', 'due', 'overdue'] as const) {
          this.set({ role, amount }, btc(all.reduce((sum, t) => sum + t[amount], 0n)))
        }
      }
    }
  })
  if (channels == null) {
    return
  }
  const open = async (): Promise<Awaited<ReturnType<Channels['list']>>> => (await channels.list()).filter(c => c.state === 'open' || c.state === 'funding' || c.state === 'closing')
  new Gauge({
    name: 'opencloud_channels',
    help: 'Payment channels not yet closed, by role (payer: this node pays through it; payee) and state',
    labelNames: ['role', 'state'],
    registers,
    async collect () {
      this.reset()
      for (const c of await open()) {
        this.inc({ role: c.role, state: c.state })
      }
    }
  })
  new Gauge({
    name: 'opencloud_channel_remaining_btc',
    help: 'What is left to pay through the channels not yet closed, in BTC, by role',
    labelNames: ['role'],
    registers,
    async collect () {
      this.reset()
      for (const c of await open()) {
        this.inc({ role: c.role }, btc(parseAmount(c.remaining)))
      }
    }
  })
}
