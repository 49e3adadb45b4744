import { Key, type Datastore } from 'interface-datastore'
import { CONTRACT_SHARDS, CONTRACTS } from '../constants.ts'
import type { ContractRecord } from './record-types.ts'

const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

/**
 * Every contract this node holds with a host, once: one contract per host
 * holds the shards of many objects (PROTOCOL.md 8d, "What the client
 * does"), so an object's record names its contracts and every object
 * shares the one ContractRecord of each, in memory and in the datastore.
 * Whatever changes a contract (a put, a delete, rent, an audit, a renewal)
 * changes that one record, and `save` writes it: the small fields every
 * time, the shard list (the large part) only when the revision moved.
 */
export class ContractTable {
  private readonly datastore: Datastore
  private readonly byId = new Map<string, ContractRecord>()
  /** the revision whose shard list is in the datastore, per contract */
  private readonly savedRevision = new Map<string, number>()
  private loading?: Promise<void>

  constructor (datastore: Datastore) {
    this.datastore = datastore
  }

  /** Read the table from the datastore, once */
  async ready (): Promise<void> {
    this.loading ??= (async () => {
      const shards = new Map<string, Array<[string, number]>>()
      for await (const { key, value } of this.datastore.query({ prefix: CONTRACT_SHARDS })) {
        shards.set(key.baseNamespace(), dec(value))
      }
      for await (const { key, value } of this.datastore.query({ prefix: CONTRACTS })) {
        const id = key.baseNamespace()
        const record = dec<ContractRecord>(value)
        record.shards = shards.get(id) ?? []
        this.byId.set(id, record)
        this.savedRevision.set(id, shards.has(id) ? record.revision : -1)
      }
    })()
    await this.loading
  }

  get (id: string): ContractRecord | undefined {
    return this.byId.get(id)
  }

  /** Every contract, ended or not */
  entries (): Array<[string, ContractRecord]> {
    return [...this.byId]
  }

  /**
   * A contract this node did not have: a new one, or one named in a record
   * written before contracts were shared (taken over as it was). The
   * record already known wins: it is the one everyone shares.
   */
  adopt (id: string, record: ContractRecord): ContractRecord {
    const known = this.byId.get(id)
    if (known != null) {
      return known
    }
    this.byId.set(id, record)
    this.savedRevision.set(id, -1)
    return record
  }

  /** The contract `id` became when it was renewed (itself when it was not) */
  current (id: string): string {
    const seen = new Set<string>()
    let at = id
    for (;;) {
      const next = this.byId.get(at)?.renewedAs
      if (next == null || seen.has(next)) {
        return at
      }
      seen.add(at)
      at = next
    }
  }

  /** Write a contract: its small fields always, its shard list when its revision moved since the last write */
  async save (id: string): Promise<void> {
    const record = this.byId.get(id)
    if (record == null) {
      return
    }
    const { shards, ...rest } = record
    const batch = this.datastore.batch()
    batch.put(new Key(`${CONTRACTS}/${id}`), enc(rest))
    const revision = record.revision
    if (this.savedRevision.get(id) !== revision) {
      batch.put(new Key(`${CONTRACT_SHARDS}/${id}`), enc(shards))
    }
    await batch.commit()
    this.savedRevision.set(id, revision)
  }
}
