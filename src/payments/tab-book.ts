import { Key, type Datastore } from 'interface-datastore'
import { parseBtc } from '../protocols/units.ts'
import { DUST } from './wallet/tx-builder.ts'

/**
 * The payment ledger, kept in the node's datastore so nothing is lost on a
 * crash or a restart. It records, keyed by the counterparty's OpenCloud ID:
 *
 * - deferred promises: what a caller promised this node (`receivable`), and
 *   what this node promised servers (`payable`), each with its threshold and
 *   when it was paid;
 * - payments: attached transactions received and sent.
 *
 * Reputation will read these records: they are what was promised and what
 * happened.
 */

export type Role = 'receivable' | 'payable'

/**
 * When a deferred payment falls due (PROTOCOL.md, "Deferred payment"):
 *   time:<seconds>   that long after the promise
 *   amount:<BTC>     when the unpaid total with that peer reaches the amount
 *   completion       as soon as the service has been delivered
 * An empty threshold means time:600. A caller's due promises are overdue once
 * they have been due for longer than the grace period, and only while they
 * add up to at least the dust limit: less cannot be paid on chain on its own.
 */
export type Threshold =
  | { kind: 'time', seconds: number }
  | { kind: 'amount', sats: bigint }
  | { kind: 'completion' }

export class ThresholdError extends Error {
  override name = 'ThresholdError'
}

export const DEFAULT_THRESHOLD: Threshold = { kind: 'time', seconds: 600 }

export function parseThreshold (text: string): Threshold {
  const t = text.trim()
  if (t === '') {
    return DEFAULT_THRESHOLD
  }
  if (t === 'completion') {
    return { kind: 'completion' }
  }
  const time = /^time:([0-9]{1,9})$/.exec(t)
  if (time != null) {
    return { kind: 'time', seconds: Number(time[1]) }
  }
  const amount = /^amount:(\S+)$/.exec(t)
  if (amount != null) {
    try {
      return { kind: 'amount', sats: parseBtc(amount[1]) }
    } catch (err: any) {
      throw new ThresholdError(`defer threshold "${text}": ${err.message}`)
    }
  }
  throw new ThresholdError(`defer threshold "${text}" is not time:<seconds>, amount:<BTC> or completion`)
}

export interface DeferredPromise {
  role: Role
  /** the counterparty's PeerId */
  peer: string
  /** the id the caller chose, unique per caller */
  id: string
  sats: bigint
  threshold: string
  service: string
  method: string
  createdAt: number
  paidAt?: number
  txid?: string
}

export interface PaymentRecord {
  direction: 'received' | 'sent'
  peer: string
  txid: string
  sats: bigint
  /** deferred ids this payment settled */
  settles: string[]
  service: string
  method: string
  at: number
  /** sent: the transaction's fee, which this node paid on top (absent in records from before fees were kept) */
  fee?: bigint
}

export interface TabSummary {
  peer: string
  role: Role
  promised: bigint
  paid: bigint
  /** unpaid */
  outstanding: bigint
  /** unpaid and past its threshold */
  due: bigint
  /** due for longer than the grace period, when what is due reaches the dust limit */
  overdue: bigint
  promises: number
  /** when the first of the due promises fell due; absent while nothing is due */
  dueSince?: number
}

/** What this node's transactions moved with one counterparty over a period */
export interface OnChainRow {
  peer: string
  /** what this node's transactions paid it: attached payments and settlements */
  sent: bigint
  /** the fees of those transactions, paid by this node on top */
  fees: bigint
  /** what its transactions paid this node */
  received: bigint
  /** transactions sent */
  transactions: number
}

/** What calls cost and what paying for them took from the wallet (TabBook.costs) */
export interface Costs {
  /** what the calls cost: deferred payments promised and attached payments made */
  promised: bigint
  /** of that, promised and not yet paid */
  unpaid: bigint
  /** what this node's transactions paid for them (a settlement's amount shared among its promises by their amounts) */
  paidOnChain: bigint
  /** the fees of those transactions, shared the same way */
  fees: bigint
  /** of what the calls cost, what was paid through payment channels (off chain until the payee closes) */
  throughChannels: bigint
}

/** What one counterparty and service came to over a period (`payments summary`) */
export interface SummaryRow {
  peer: string
  /** service.method */
  call: string
  /** earned: attached payments received and deferred payments promised to this node */
  earned: bigint
  /** of what was earned, promised and not yet paid */
  earnedUnpaid: bigint
  /** spent: attached payments sent and deferred payments this node promised */
  spent: bigint
  /** of what was spent, promised and not yet paid */
  spentUnpaid: bigint
  calls: number
}

interface StoredPromise extends Omit<DeferredPromise, 'sats'> { sats: string }
interface StoredPayment extends Omit<PaymentRecord, 'sats' | 'fee'> { sats: string, fee?: string }

export interface LedgerInit {
  /** How long a due promise may stay unpaid before it is overdue, default 10 minutes */
  graceMs?: number
  now?: () => number
}

const PROMISES = '/opencloud/ledger/promises'
const PAYMENTS = '/opencloud/ledger/payments'
const USED = '/opencloud/ledger/used-txids'
const SETTLING = '/opencloud/ledger/settling'
const SETTLEMENTS = '/opencloud/ledger/settlements'

/**
 * A settlement this node is paying: the transaction is kept before it is
 * sent, so that after a lost answer the same transaction goes again and the
 * server, which knows it, answers what it settled instead of being paid twice.
 */
export interface PendingSettlement {
  peer: string
  txid: string
  /** the signed transaction, hex */
  hex: string
  sats: bigint
  /** its fee (absent in settlements kept before fees were) */
  fee?: bigint
  at: number
}

/** What a received settlement paid off, kept so a repeated settle answers the same */
export interface SettlementRecord {
  caller: string
  txid: string
  settled: string[]
  sats: bigint
}

const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T> (bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))
// peer ids and promise ids become key segments; keep them safe
const seg = (s: string): string => encodeURIComponent(s)

/** The txid of a record of a payment through a channel: `channel:<channel id>:<the state's total>` */
export const CHANNEL_PAYMENT = 'channel:'

/** A record of a payment on chain, not the bookkeeping of what a settlement covered (`<txid>:settle`) nor a channel payment */
const onChain = (p: PaymentRecord): boolean => !p.txid.includes(':')

export class TabBook {
  private readonly datastore: Datastore
  /** how long a due promise may stay unpaid before it is overdue */
  readonly graceMs: number
  private readonly now: () => number

  constructor (datastore: Datastore, init: LedgerInit = {}) {
    this.datastore = datastore
    this.graceMs = init.graceMs ?? 10 * 60_000
    this.now = init.now ?? Date.now
  }

  private promiseKey (role: Role, peer: string, id: string): Key {
    return new Key(`${PROMISES}/${role}/${seg(peer)}/${seg(id)}`)
  }

  async hasPromise (role: Role, peer: string, id: string): Promise<boolean> {
    return this.datastore.has(this.promiseKey(role, peer, id))
  }

  async addPromise (promise: Omit<DeferredPromise, 'createdAt'> & { createdAt?: number }): Promise<DeferredPromise> {
    const full: DeferredPromise = { ...promise, createdAt: promise.createdAt ?? this.now() }
    const stored: StoredPromise = { ...full, sats: full.sats.toString() }
    await this.datastore.put(this.promiseKey(full.role, full.peer, full.id), enc(stored))
    return full
  }

  async promises (role: Role, peer?: string): Promise<DeferredPromise[]> {
    const prefix = peer == null ? `${PROMISES}/${role}` : `${PROMISES}/${role}/${seg(peer)}`
    const out: DeferredPromise[] = []
    for await (const { value } of this.datastore.query({ prefix })) {
      const p = dec<StoredPromise>(value)
      out.push({ ...p, sats: BigInt(p.sats) })
    }
    return out.sort((a, b) => a.createdAt - b.createdAt)
  }

  async markPaid (role: Role, peer: string, ids: string[], txid: string): Promise<DeferredPromise[]> {
    const paid: DeferredPromise[] = []
    // one batch: a settlement of thousands of promises is one write, all or nothing
    const batch = this.datastore.batch()
    for (const id of ids) {
      const key = this.promiseKey(role, peer, id)
      if (!(await this.datastore.has(key))) {
        continue
      }
      const p = dec<StoredPromise>(await this.datastore.get(key))
      if (p.paidAt != null) {
        continue
      }
      p.paidAt = this.now()
      p.txid = txid
      batch.put(key, enc(p))
      paid.push({ ...p, sats: BigInt(p.sats) })
    }
    await batch.commit()
    return paid
  }

  /**
   * The unpaid promises of a caller that `sats` pays off: the ids listed, in
   * their order, or without a list the oldest first; each only if what is
   * left covers it in full.
   */
  async coverage (peer: string, sats: bigint, ids?: string[]): Promise<DeferredPromise[]> {
    const unpaid = (await this.promises('receivable', peer)).filter(p => p.paidAt == null)
    const ordered = ids == null || ids.length === 0
      ? unpaid
      : ids.map(id => unpaid.find(p => p.id === id)).filter((p): p is DeferredPromise => p != null)
    let left = sats
    const covered: DeferredPromise[] = []
    const seen = new Set<string>()
    for (const p of ordered) {
      if (!seen.has(p.id) && p.sats <= left) {
        seen.add(p.id)
        left -= p.sats
        covered.push(p)
      }
    }
    return covered
  }

  async pendingSettlement (peer: string): Promise<PendingSettlement | undefined> {
    const key = new Key(`${SETTLING}/${seg(peer)}`)
    if (!(await this.datastore.has(key))) {
      return undefined
    }
    const stored = dec<Omit<PendingSettlement, 'sats' | 'fee'> & { sats: string, fee?: string }>(await this.datastore.get(key))
    return { ...stored, sats: BigInt(stored.sats), fee: stored.fee == null ? undefined : BigInt(stored.fee) }
  }

  async setPendingSettlement (pending: PendingSettlement): Promise<void> {
    await this.datastore.put(new Key(`${SETTLING}/${seg(pending.peer)}`), enc({ ...pending, sats: pending.sats.toString(), fee: pending.fee?.toString() }))
  }

  async clearPendingSettlement (peer: string): Promise<void> {
    await this.datastore.delete(new Key(`${SETTLING}/${seg(peer)}`))
  }

  async settlement (txid: string): Promise<SettlementRecord | undefined> {
    const key = new Key(`${SETTLEMENTS}/${txid}`)
    if (!(await this.datastore.has(key))) {
      return undefined
    }
    const stored = dec<Omit<SettlementRecord, 'sats'> & { sats: string }>(await this.datastore.get(key))
    return { ...stored, sats: BigInt(stored.sats) }
  }

  async recordSettlement (record: SettlementRecord): Promise<void> {
    await this.datastore.put(new Key(`${SETTLEMENTS}/${record.txid}`), enc({ ...record, sats: record.sats.toString() }))
  }

  /**
   * When each unpaid promise falls due, or undefined if its threshold is not
   * reached: `time:` so long after it was made, `completion` when it was
   * made, `amount:` when the unpaid promises, oldest first, first add up to
   * the amount (and not before the promise itself).
   */
  private dueTimes (unpaid: DeferredPromise[]): Array<number | undefined> {
    // unpaid is oldest first; the moment each amount is reached, found once per amount
    const reached = new Map<bigint, number | undefined>()
    const reach = (sats: bigint): number | undefined => {
      if (!reached.has(sats)) {
        let sum = 0n
        let at: number | undefined
        for (const p of unpaid) {
          sum += p.sats
          if (sum >= sats) {
            at = p.createdAt
            break
          }
        }
        reached.set(sats, at)
      }
      return reached.get(sats)
    }
    return unpaid.map(p => {
      const t = parseThreshold(p.threshold)
      switch (t.kind) {
        case 'completion': return p.createdAt
        case 'time': return p.createdAt + t.seconds * 1000
        case 'amount': {
          const at = reach(t.sats)
          return at == null ? undefined : Math.max(at, p.createdAt)
        }
      }
    })
  }

  /** The tab with a peer, as it stands now or, with nothing paid or promised meanwhile, at `now` */
  async tab (role: Role, peer: string, now = this.now()): Promise<TabSummary> {
    const list = await this.promises(role, peer)
    const unpaid = list.filter(p => p.paidAt == null)
    const dueAt = this.dueTimes(unpaid)
    const due = unpaid.map((p, i) => ({ p, at: dueAt[i] })).filter((d): d is { p: DeferredPromise, at: number } => d.at != null && d.at <= now)
    const dueSats = due.reduce((s, d) => s + d.p.sats, 0n)
    return {
      peer,
      role,
      promised: list.reduce((s, p) => s + p.sats, 0n),
      paid: list.filter(p => p.paidAt != null).reduce((s, p) => s + p.sats, 0n),
      outstanding: unpaid.reduce((s, p) => s + p.sats, 0n),
      due: dueSats,
      // below the dust limit a debt cannot be paid on chain on its own: it
      // waits for more and is never late
      overdue: dueSats < DUST ? 0n : due.filter(d => now > d.at + this.graceMs).reduce((s, d) => s + d.p.sats, 0n),
      promises: list.length,
      dueSince: due.length === 0 ? undefined : due.reduce((min, d) => d.at < min ? d.at : min, Infinity)
    }
  }

  async tabs (role: Role): Promise<TabSummary[]> {
    const peers = new Set((await this.promises(role)).map(p => p.peer))
    return Promise.all([...peers].sort().map(async peer => this.tab(role, peer)))
  }

  async recordPayment (record: Omit<PaymentRecord, 'at'>): Promise<void> {
    const at = this.now()
    const stored: StoredPayment = { ...record, at, sats: record.sats.toString(), fee: record.fee?.toString() }
    await this.datastore.put(new Key(`${PAYMENTS}/${String(at).padStart(15, '0')}-${record.txid}`), enc(stored))
  }

  async payments (): Promise<PaymentRecord[]> {
    const out: PaymentRecord[] = []
    for await (const { value } of this.datastore.query({ prefix: PAYMENTS })) {
      const p = dec<StoredPayment>(value)
      out.push({ ...p, sats: BigInt(p.sats), fee: p.fee == null ? undefined : BigInt(p.fee) })
    }
    return out.sort((a, b) => b.at - a.at)
  }

  /**
   * Earned and spent per counterparty and call, for calls made in
   * [since, until). A deferred payment counts when it was promised (it is
   * what the call cost), with what is still unpaid beside it; the
   * transactions that settle promises are not counted again.
   */
  async summary (since = 0, until = Infinity): Promise<SummaryRow[]> {
    const rows = new Map<string, SummaryRow>()
    await this.eachCost(since, until, (c) => {
      const key = `${c.peer} ${c.call}`
      let r = rows.get(key)
      if (r == null) {
        r = { peer: c.peer, call: c.call, earned: 0n, earnedUnpaid: 0n, spent: 0n, spentUnpaid: 0n, calls: 0 }
        rows.set(key, r)
      }
      addCost(r, c)
    })
    return [...rows.values()].sort((a, b) => a.peer.localeCompare(b.peer) || a.call.localeCompare(b.call))
  }

  /**
   * The summary's figures grouped by `keyOf` (a day, a month, a kind of
   * payment; undefined leaves a cost out), in one pass over the book: what
   * the dashboard draws and the metrics count
   */
  async tally (since: number, until: number, keyOf: (cost: CallCost) => string | undefined): Promise<Map<string, PeriodRow>> {
    const groups = new Map<string, PeriodRow>()
    await this.eachCost(since, until, (c) => {
      const key = keyOf(c)
      if (key == null) {
        return
      }
      let r = groups.get(key)
      if (r == null) {
        r = { earned: 0n, earnedUnpaid: 0n, spent: 0n, spentUnpaid: 0n, calls: 0 }
        groups.set(key, r)
      }
      addCost(r, c)
    })
    return groups
  }

  /** Every call's cost in [since, until): payments made at once, and promises; settlements are not counted again */
  private async eachCost (since: number, until: number, visit: (cost: CallCost) => void): Promise<void> {
    const within = (at: number): boolean => at >= since && at < until
    for (const p of await this.payments()) {
      if (!within(p.at) || p.settles.length > 0 || (p.service === 'payments' && p.method === 'settle')) {
        continue
      }
      visit({ peer: p.peer, call: `${p.service}.${p.method}`, service: p.service, kind: p.txid.startsWith('channel:') ? 'channel' : 'attached', at: p.at, earned: p.direction === 'received', sats: p.sats, unpaid: 0n })
    }
    for (const role of ['receivable', 'payable'] as const) {
      for (const p of await this.promises(role)) {
        if (!within(p.createdAt)) {
          continue
        }
        visit({ peer: p.peer, call: `${p.service}.${p.method}`, service: p.service, kind: 'deferred', at: p.createdAt, earned: role === 'receivable', sats: p.sats, unpaid: p.paidAt == null ? p.sats : 0n })
      }
    }
  }

  /**
   * What this node's transactions paid each counterparty, with their fees,
   * and what its transactions paid this node, for payments made in
   * [since, until): the money that moved on chain, beside what the calls
   * cost (summary).
   */
  async onChain (since = 0, until = Infinity): Promise<OnChainRow[]> {
    const rows = new Map<string, OnChainRow>()
    for (const p of await this.payments()) {
      if (p.at < since || p.at >= until || !onChain(p)) {
        continue
      }
      const r = rows.get(p.peer) ?? { peer: p.peer, sent: 0n, fees: 0n, received: 0n, transactions: 0 }
      rows.set(p.peer, r)
      if (p.direction === 'sent') {
        r.sent += p.sats
        r.fees += p.fee ?? 0n
        r.transactions++
      } else {
        r.received += p.sats
      }
    }
    return [...rows.values()].sort((a, b) => a.peer.localeCompare(b.peer))
  }

  /**
   * What this node's calls of a service (or all) cost and what paying for
   * them took from the wallet: each settlement's amount and fee are shared
   * among the promises it paid by their amounts, so a settlement that paid
   * storage and sha256 promises counts toward each its part.
   */
  async costs (filter: { service?: string } = {}): Promise<Costs> {
    const matches = (service: string): boolean => filter.service == null || service === filter.service
    const promises = await this.promises('payable')
    const byId = new Map(promises.map(p => [`${p.peer} ${p.id}`, p]))
    const costs: Costs = { promised: 0n, unpaid: 0n, paidOnChain: 0n, fees: 0n, throughChannels: 0n }
    for (const p of promises) {
      if (matches(p.service)) {
        costs.promised += p.sats
        costs.unpaid += p.paidAt == null ? p.sats : 0n
      }
    }
    for (const p of await this.payments()) {
      if (p.direction === 'sent' && p.txid.startsWith(CHANNEL_PAYMENT) && matches(p.service)) {
        costs.promised += p.sats
        costs.throughChannels += p.sats
        continue
      }
      if (p.direction !== 'sent' || !onChain(p)) {
        continue
      }
      const settlement = p.service === 'payments' && p.method === 'settle'
      if (!settlement) {
        if (matches(p.service)) {
          costs.promised += p.sats
          costs.paidOnChain += p.sats
          costs.fees += p.fee ?? 0n
        }
        continue
      }
      let all = 0n
      let mine = 0n
      for (const id of p.settles) {
        const promise = byId.get(`${p.peer} ${id}`)
        all += promise?.sats ?? 0n
        mine += promise != null && matches(promise.service) ? promise.sats : 0n
      }
      if (all > 0n) {
        costs.paidOnChain += p.sats * mine / all
        costs.fees += (p.fee ?? 0n) * mine / all
      } else if (filter.service == null) {
        // it paid off promises no longer on record: still money spent
        costs.paidOnChain += p.sats
        costs.fees += p.fee ?? 0n
      }
    }
    return costs
  }

  /** When the first promise or payment was made; undefined before any */
  async firstActivity (): Promise<number | undefined> {
    const times = [
      ...(await this.promises('receivable')).slice(0, 1),
      ...(await this.promises('payable')).slice(0, 1)
    ].map(p => p.createdAt)
    const payments = await this.payments()
    if (payments.length > 0) {
      times.push(payments[payments.length - 1].at)
    }
    return times.length === 0 ? undefined : Math.min(...times)
  }

  /** A received transaction id is used once: the replay guard for attached payments */
  async isUsed (txid: string): Promise<boolean> {
    return this.datastore.has(new Key(`${USED}/${txid}`))
  }

  async markUsed (txid: string): Promise<void> {
    await this.datastore.put(new Key(`${USED}/${txid}`), enc({ at: this.now() }))
  }
}

/** The summary's figures of one group (TabBook.tally), satoshis */
export interface PeriodRow {
  earned: bigint
  earnedUnpaid: bigint
  spent: bigint
  spentUnpaid: bigint
  calls: number
}

/** One call's cost as the summaries count it: earned (this node was paid) or spent */
export interface CallCost {
  peer: string
  /** "service.method" */
  call: string
  service: string
  /** how it was paid: attached (a transaction with the call), channel, or deferred (a promise, settled later) */
  kind: 'attached' | 'channel' | 'deferred'
  /** ms since the epoch: when it was paid or promised */
  at: number
  earned: boolean
  sats: bigint
  unpaid: bigint
}

function addCost (r: PeriodRow, c: CallCost): void {
  r.calls++
  if (c.earned) {
    r.earned += c.sats
    r.earnedUnpaid += c.unpaid
  } else {
    r.spent += c.sats
    r.spentUnpaid += c.unpaid
  }
}
