import type { AbortOptions } from '@libp2p/interface'

/**
 * What a node needs from a bitcoin chain. The Esplora client implements it
 * for the real networks and for the local regtest chain, which serves the
 * same HTTP API, so a node has one code path for both.
 */

export interface TxStatus {
  confirmed: boolean
  blockHeight?: number
  blockTime?: number
}

export interface Utxo {
  txid: string
  vout: number
  /** satoshis */
  value: bigint
  status: TxStatus
}

export interface AddressBalance {
  /** satoshis in confirmed outputs */
  confirmed: bigint
  /** satoshis in unconfirmed outputs, less unconfirmed spends */
  unconfirmed: bigint
  txCount: number
}

export interface TxOutput {
  address?: string
  value: bigint
  scriptPubKey: string
}

export interface TxInfo {
  txid: string
  hex?: string
  inputs: Array<{ txid: string, vout: number, address?: string, value?: bigint }>
  outputs: TxOutput[]
  fee: bigint
  status: TxStatus
}

/** Whether an output is spent, and by what (Esplora's /tx/:txid/outspend/:vout) */
export interface Outspend {
  spent: boolean
  /** the spending transaction, when spent */
  txid?: string
  /** which of its inputs spends the output */
  vin?: number
  /** whether the spending transaction is in a block: false while it waits in the mempool */
  confirmed?: boolean
  blockHeight?: number
}

export interface ChainBackend {
  tipHeight: (options?: AbortOptions) => Promise<number>
  balance: (address: string, options?: AbortOptions) => Promise<AddressBalance>
  utxos: (address: string, options?: AbortOptions) => Promise<Utxo[]>
  transactions: (address: string, options?: AbortOptions) => Promise<TxInfo[]>
  transaction: (txid: string, options?: AbortOptions) => Promise<TxInfo>
  /** confirmations of a transaction: 0 in the mempool */
  confirmations: (txid: string, options?: AbortOptions) => Promise<number>
  /**
   * whether output `vout` of `txid` is spent, in a block or in the mempool,
   * and by which transaction: how a channel's party sees the other close or
   * refund it; an unknown txid throws TransactionNotFoundError
   */
  outspend: (txid: string, vout: number, options?: AbortOptions) => Promise<Outspend>
  /** broadcast a raw transaction; resolves with its txid */
  broadcast: (hex: string, options?: AbortOptions) => Promise<string>
  /** satoshis per virtual byte to confirm within `blocks` */
  feeRate: (blocks?: number, options?: AbortOptions) => Promise<number>
}
