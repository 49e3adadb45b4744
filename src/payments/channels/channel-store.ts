import { Key, type Datastore } from 'interface-datastore'
import { keyFromHex, keyHex, type ChannelTerms } from './channel-script.ts'

/**
 * The channels this node opened (as payer) and was opened to (as payee),
 * kept in the node's datastore: each record is written before what it
 * records leaves the node (the payer's next state before it is sent, the
 * funding transaction before it is broadcast) or before the node acts on it
 * (the payee's latest state before it serves the call it paid for), so a
 * crash at any point leaves each side able to claim its money: the payee
 * closes with the latest state it served for, the payer refunds after the
 * expiry.
 */

export type ChannelRole = 'payer' | 'payee'

/**
 * funding: the funding transaction is built and kept, not yet known to be on chain;
 * open: payments may flow;
 * closing: a close or a refund is broadcast and not yet confirmed;
 * closed: spent by a state (the payee's close); refunded: spent by the refund;
 * abandoned: the funding never reached the chain (its coins went elsewhere)
 */
export type ChannelState = 'funding' | 'open' | 'closing' | 'closed' | 'refunded' | 'abandoned'

export interface ChannelRecord extends ChannelTerms {
  role: ChannelRole
  /** the other side's PeerId */
  peer: string
  /** "txid:vout" */
  id: string
  state: ChannelState
  /** satoshis paid to the payee in all, by the latest state the payer signed */
  total: bigint
  /**
   * the payer: the highest total it has signed, of a state taken back too
   * (one that may still reach the payee late); absent: `total`
   */
  signed?: bigint
  /** the payer's signature on the latest state (hex); absent before the first payment */
  signature?: string
  /** payments made through it */
  payments: number
  openedAt: number
  /** the payer: the funding transaction (hex), kept to broadcast it again after a crash */
  fundingHex?: string
  /** the payer: its share of the funding transaction's fee */
  fundingFee?: bigint
  /** the payee: the funding transaction has the confirmations its policy asks (checked once) */
  confirmed?: boolean
  /** the payee: blocks before the expiry from which it takes no payment and closes */
  closeMargin: number
  /** the transaction that spent the channel output (close or refund), once known */
  closeTxid?: string
  closedAt?: number
  /** why it is in its state, when that is not the usual course (a refusal, a failure) */
  note?: string
}

interface StoredChannel extends Omit<ChannelRecord, 'capacity' | 'fee' | 'total' | 'signed' | 'fundingFee' | 'payerKey' | 'payeeKey'> {
  capacity: string
  fee: string
  total: string
  signed?: string
  fundingFee?: string
  payerKey: string
  payeeKey: string
}

const PREFIX = '/opencloud/channels'
const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T> (bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

function store (r: ChannelRecord): StoredChannel {
  return {
    ...r,
    capacity: r.capacity.toString(),
    fee: r.fee.toString(),
    total: r.total.toString(),
    signed: r.signed?.toString(),
    fundingFee: r.fundingFee?.toString(),
    payerKey: keyHex(r.payerKey),
    payeeKey: keyHex(r.payeeKey)
  }
}

function load (s: StoredChannel): ChannelRecord {
  return {
    ...s,
    capacity: BigInt(s.capacity),
    fee: BigInt(s.fee),
    total: BigInt(s.total),
    signed: s.signed == null ? undefined : BigInt(s.signed),
    fundingFee: s.fundingFee == null ? undefined : BigInt(s.fundingFee),
    payerKey: keyFromHex(s.payerKey, 'a stored payer key'),
    payeeKey: keyFromHex(s.payeeKey, 'a stored payee key')
  }
}

/** Channel records by role and id, all held in memory too (a node has a channel per peer it pays, not millions) */
export class ChannelStore {
  private readonly datastore: Datastore
  private readonly records = new Map<string, ChannelRecord>()

  constructor (datastore: Datastore) {
    this.datastore = datastore
  }

  private key (role: ChannelRole, id: string): Key {
    return new Key(`${PREFIX}/${role}/${id.replace(':', '-')}`)
  }

  async load (): Promise<void> {
    this.records.clear()
    for await (const { value } of this.datastore.query({ prefix: PREFIX })) {
      const r = load(dec<StoredChannel>(value))
      this.records.set(`${r.role} ${r.id}`, r)
    }
  }

  get (role: ChannelRole, id: string): ChannelRecord | undefined {
    return this.records.get(`${role} ${id}`)
  }

  all (role?: ChannelRole): ChannelRecord[] {
    return [...this.records.values()].filter(r => role == null || r.role === role).sort((a, b) => a.openedAt - b.openedAt)
  }

  /** Write a record (the whole of it: records are small) and hold it */
  async put (record: ChannelRecord): Promise<void> {
    await this.datastore.put(this.key(record.role, record.id), enc(store(record)))
    this.records.set(`${record.role} ${record.id}`, record)
  }
}
