import { formatAmount, formatSignedAmount, parseAmount } from '../../protocols/units.ts'
import { checkAddressNetwork } from '../../protocols/bitcoin-networks.ts'
import { HttpError, positiveInteger, readJsonBody } from '../../utils/http-body.ts'
import { tabJson } from './views.ts'
import type { ChainBackend } from '../../payments/chain/interface.ts'
import type { SettlementState } from '../../payments/payment-agent.ts'
import type { OnChainRow, SummaryRow, TabSummary } from '../../payments/tab-book.ts'
import type { ModuleComponents, RouteTable } from '../module.ts'
import type { Channels } from '../../payments/channels/channels.ts'

/**
 * `payments summary`: what calls cost (the rows, and totals per peer, per
 * call and overall), and per peer and overall what this node's transactions
 * paid on chain and their fees; amounts with their unit. Without a `since`
 * the period starts at the first promise or payment (null before any).
 */
function summaryJson (rows: SummaryRow[], chain: OnChainRow[], since: number | null, until: number): Record<string, unknown> {
  const total = (list: SummaryRow[]): Record<string, unknown> => ({
    earned: formatAmount(list.reduce((s, r) => s + r.earned, 0n)),
    earnedUnpaid: formatAmount(list.reduce((s, r) => s + r.earnedUnpaid, 0n)),
    spent: formatAmount(list.reduce((s, r) => s + r.spent, 0n)),
    spentUnpaid: formatAmount(list.reduce((s, r) => s + r.spentUnpaid, 0n)),
    calls: list.reduce((s, r) => s + r.calls, 0)
  })
  const onChain = (list: OnChainRow[]): Record<string, unknown> => {
    const sent = list.reduce((s, r) => s + r.sent, 0n)
    const fees = list.reduce((s, r) => s + r.fees, 0n)
    return {
      paidOnChain: formatAmount(sent),
      fees: formatAmount(fees),
      // what left the wallet: the payments and their fees
      paidWithFees: formatAmount(sent + fees),
      receivedOnChain: formatAmount(list.reduce((s, r) => s + r.received, 0n)),
      transactions: list.reduce((s, r) => s + r.transactions, 0)
    }
  }
  const groups = (key: (r: SummaryRow) => string, name: string): Array<Record<string, unknown>> =>
    [...new Set(rows.map(key))].sort().map(k => ({ [name]: k, ...total(rows.filter(r => key(r) === k)) }))
  const peers = [...new Set([...rows.map(r => r.peer), ...chain.map(r => r.peer)])].sort()
  return {
    since: since == null ? null : new Date(since).toISOString(),
    until: new Date(until).toISOString(),
    total: { ...total(rows), ...onChain(chain) },
    byPeer: peers.map(peer => ({ peer, ...total(rows.filter(r => r.peer === peer)), ...onChain(chain.filter(r => r.peer === peer)) })),
    byCall: groups(r => r.call, 'call'),
    rows: rows.map(r => ({ peer: r.peer, call: r.call, ...total([r]) }))
  }
}

/** A payable tab for `payments tabs`: the wire's figures, when it fell due, and why it is not being paid (PaymentAgent.settlementStates) */
function payableJson (tab: TabSummary, state?: SettlementState): Record<string, unknown> {
  return {
    ...tabJson(tab),
    dueSince: tab.dueSince == null ? null : new Date(tab.dueSince).toISOString(),
    settlement: state == null
      ? null
      : { state: state.state, code: state.code, reason: state.reason, hint: state.hint ?? null, since: new Date(state.since).toISOString(), overdueAt: state.overdueAt == null ? null : new Date(state.overdueAt).toISOString() }
  }
}

/** The control API's wallet and payments routes (README, "Control API") */
const DAY_MS = 24 * 60 * 60_000

export function paymentsRoutes ({ wallet, chain, tabs, payments, config }: Pick<ModuleComponents, 'wallet' | 'chain' | 'tabs' | 'payments' | 'config'>, channels?: Channels): RouteTable {
  const requireChannels = (): Channels => {
    if (channels == null) {
      throw new HttpError(409, 'payments are off, and with them channels: set payments.chain in config.json to an Esplora API URL (npm run chain starts a local one)')
    }
    return channels
  }
  const requireChain = (): ChainBackend => {
    if (chain == null) {
      throw new HttpError(409, 'payments are off: set payments.chain in config.json to an Esplora API URL (npm run chain starts a local one)')
    }
    return chain
  }
  return {
    'GET /v1/wallet': async ({ json }) => {
      const balance = chain == null ? undefined : await wallet.balance(chain)
      json(200, {
        network: wallet.network,
        identityAddress: wallet.identityAddress,
        encrypted: wallet.encrypted,
        chain: config.payments.chain === '' ? null : config.payments.chain,
        balance: balance == null ? null : { confirmed: formatAmount(balance.confirmed), unconfirmed: formatSignedAmount(balance.unconfirmed) }
      })
    },
    'POST /v1/wallet/address': async ({ json }) => {
      json(200, { address: await wallet.freshAddress(), network: wallet.network })
    },
    'POST /v1/wallet/send': async ({ req, json }) => {
      const usage = 'send JSON: {"address": "...", "amount": "0.001 BTC"}'
      const body = await readJsonBody(req, usage)
      if (typeof body.address !== 'string' || typeof body.amount !== 'string') {
        throw new HttpError(400, usage)
      }
      let sats: bigint
      try {
        checkAddressNetwork(body.address, wallet.network)
        sats = parseAmount(body.amount, 'the amount to send')
      } catch (err: any) {
        throw new HttpError(400, err.message)
      }
      const sent = await wallet.send(requireChain(), body.address, sats)
      json(200, { txid: sent.txid, fee: formatAmount(sent.fee) })
    },
    'GET /v1/wallet/history': async ({ json }) => {
      json(200, (await wallet.history(requireChain())).map(t => ({ ...t, delta: (t.delta < 0n ? '-' : '') + formatAmount(t.delta < 0n ? -t.delta : t.delta), fee: formatAmount(t.fee) })))
    },
    'GET /v1/payments/tabs': async ({ json }) => {
      const states = new Map((payments?.settlementStates() ?? []).map(s => [s.peer, s]))
      json(200, {
        receivable: (await tabs.tabs('receivable')).map(tabJson),
        payable: (await tabs.tabs('payable')).map(t => payableJson(t, states.get(t.peer))),
        // what is paid through channels is paid, not owed: their balances beside the tabs
        channels: channels == null ? [] : (await channels.list()).filter(c => c.state === 'open' || c.state === 'funding' || c.state === 'closing')
      })
    },
    'GET /v1/payments/channels': async ({ url, json }) => {
      const all = await requireChannels().list()
      json(200, { channels: url.searchParams.get('all') === 'true' ? all : all.filter(c => c.state === 'open' || c.state === 'funding' || c.state === 'closing') })
    },
    'POST /v1/payments/channels/close': async ({ req, json }) => {
      const usage = 'send JSON: {"peer": "<PeerId>"}'
      const body = await readJsonBody(req, usage)
      if (typeof body.peer !== 'string' || body.peer === '') {
        throw new HttpError(400, usage)
      }
      json(200, { closed: await requireChannels().closeWith(body.peer) })
    },
    'GET /v1/payments/summary': async ({ url, json }) => {
      const since = url.searchParams.has('since') ? positiveInteger(url, 'since', 0) : null
      const until = url.searchParams.has('until') ? positiveInteger(url, 'until', 0) : Date.now()
      const from = since ?? await tabs.firstActivity() ?? null
      json(200, summaryJson(await tabs.summary(from ?? 0, until), await tabs.onChain(from ?? 0, until), from, until))
    },
    'GET /v1/payments/daily': async ({ url, json }) => {
      // what the dashboard draws: earned and spent per UTC day, oldest first, days without any included
      const days = positiveInteger(url, 'days', 14)
      if (days < 1 || days > 366) {
        throw new HttpError(400, 'days is 1 to 366: /v1/payments/daily?days=14')
      }
      const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate())
      const since = today - (days - 1) * DAY_MS
      const byDay = await tabs.tally(since, Infinity, c => new Date(c.at).toISOString().slice(0, 10))
      json(200, {
        days: Array.from({ length: days }, (_, i) => {
          const day = new Date(since + i * DAY_MS).toISOString().slice(0, 10)
          const row = byDay.get(day)
          return { day, earned: formatAmount(row?.earned ?? 0n), spent: formatAmount(row?.spent ?? 0n), calls: row?.calls ?? 0 }
        })
      })
    },
    'GET /v1/payments/history': async ({ json }) => {
      json(200, (await tabs.payments()).map(p => ({ ...p, amount: formatAmount(p.sats), sats: undefined, at: new Date(p.at).toISOString() })))
    }
  }
}
