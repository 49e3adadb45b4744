import { Key, type Datastore } from 'interface-datastore'

/**
 * Reputation records in the node's datastore (seed: "Record collection"),
 * keyed by the peer's OpenCloud ID. Each interaction adds a record of what
 * was promised and what happened; the running counts of satisfactory and
 * unsatisfactory interactions are kept beside them, so local trust is one
 * read per peer. Summaries received from other raters are kept too, so
 * global trust survives a restart.
 *
 * Writes are behind: a record counts at once in memory and reaches the
 * datastore in one batch with the others of the last `flushMs` (250 ms by
 * default), and on stop. A write per call halved the RPC's small-call
 * throughput (bench/rpc); a crash loses at most the last quarter second of
 * records.
 */

export type Outcome = 'satisfactory' | 'unsatisfactory'

export interface ReputationRecord {
  peer: string
  /** what the peer was to us */
  role: 'server' | 'caller'
  outcome: Outcome
  /** what happened, e.g. "served", "paid-not-served", "failed", "paid-on-time", "overdue" */
  event: string
  service?: string
  method?: string
  /** what was promised: a price, a deferred payment, a level of service */
  promised?: string
  latencyMs?: number
  /** bytes per second, for calls with a body */
  throughput?: number
  at: number
}

export interface Counts {
  satisfactory: number
  unsatisfactory: number
}

const RECORDS = '/opencloud/reputation/records'
const COUNTS = '/opencloud/reputation/counts'
const SUMMARIES = '/opencloud/reputation/summaries'
const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))
const dec = <T> (b: Uint8Array): T => JSON.parse(new TextDecoder().decode(b))

export interface ReputationStoreInit {
  /** default 250 ms */
  flushMs?: number
}

export class ReputationStore {
  private readonly datastore: Datastore
  private readonly counts = new Map<string, Counts>()
  private readonly pending: ReputationRecord[] = []
  private readonly flushMs: number
  private flushTimer?: ReturnType<typeof setTimeout>
  private flushing: Promise<void> = Promise.resolve()
  private loaded = false

  constructor (datastore: Datastore, init: ReputationStoreInit = {}) {
    this.datastore = datastore
    this.flushMs = init.flushMs ?? 250
  }

  /** Read the counts; done at start so that record() can count synchronously */
  async load (): Promise<void> {
    if (this.loaded) {
      return
    }
    for await (const { key, value } of this.datastore.query({ prefix: COUNTS })) {
      this.counts.set(decodeURIComponent(key.baseNamespace()), dec<Counts>(value))
    }
    this.loaded = true
  }

  /**
   * Count an interaction at once (a view taken right after sees it) and
   * persist it; once loaded, the counting happens before the first await.
   */
  async record (record: Omit<ReputationRecord, 'at'> & { at?: number }): Promise<void> {
    if (!this.loaded) {
      await this.load()
    }
    const at = record.at ?? Date.now()
    const counts = this.counts.get(record.peer) ?? { satisfactory: 0, unsatisfactory: 0 }
    counts[record.outcome]++
    this.counts.set(record.peer, counts)
    this.pending.push({ ...record, at })
    if (this.flushTimer == null) {
      this.flushTimer = setTimeout(() => { void this.flush() }, this.flushMs)
    }
  }

  /** Write what is pending in one batch */
  async flush (): Promise<void> {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    const records = this.pending.splice(0)
    if (records.length === 0) {
      return this.flushing
    }
    const peers = new Set(records.map(r => r.peer))
    this.flushing = this.flushing.then(async () => {
      const batch = this.datastore.batch()
      for (const r of records) {
        batch.put(new Key(`${RECORDS}/${encodeURIComponent(r.peer)}/${String(r.at).padStart(15, '0')}-${Math.random().toString(36).slice(2, 8)}`), enc(r))
      }
      for (const peer of peers) {
        batch.put(new Key(`${COUNTS}/${encodeURIComponent(peer)}`), enc(this.counts.get(peer)))
      }
      await batch.commit()
    })
    return this.flushing
  }

  async records (peer: string, limit = 50): Promise<ReputationRecord[]> {
    await this.flush()
    const out: ReputationRecord[] = []
    for await (const { value } of this.datastore.query({ prefix: `${RECORDS}/${encodeURIComponent(peer)}` })) {
      out.push(dec<ReputationRecord>(value))
    }
    return out.sort((a, b) => b.at - a.at).slice(0, limit)
  }

  /** satisfactory minus unsatisfactory, per peer: the s_ij of EigenTrust */
  async localTrust (): Promise<Map<string, number>> {
    await this.load()
    return new Map([...this.counts].map(([peer, c]) => [peer, c.satisfactory - c.unsatisfactory]))
  }

  async countsOf (peer: string): Promise<Counts> {
    await this.load()
    return this.counts.get(peer) ?? { satisfactory: 0, unsatisfactory: 0 }
  }

  async saveSummary (rater: string, bytes: Uint8Array): Promise<void> {
    await this.datastore.put(new Key(`${SUMMARIES}/${encodeURIComponent(rater)}`), bytes)
  }

  async deleteSummary (rater: string): Promise<void> {
    await this.datastore.delete(new Key(`${SUMMARIES}/${encodeURIComponent(rater)}`))
  }

  async summaries (): Promise<Uint8Array[]> {
    const out: Uint8Array[] = []
    for await (const { value } of this.datastore.query({ prefix: SUMMARIES })) {
      out.push(value)
    }
    return out
  }
}
