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

export interface ChainBackend {
  tipHeight: (options?: AbortOptions) => Promise<number>
  balance: (address: string, options?: AbortOptions) => Promise<AddressBalance>
  utxos: (address: string, options?: AbortOptions) => Promise<Utxo[]>
  transactions: (address: string, options?: AbortOptions) => Promise<TxInfo[]>
  transaction: (txid: string, options?: AbortOptions) => Promise<TxInfo>
  /** confirmations of a transaction: 0 in the mempool */
  confirmations: (txid: string, options?: AbortOptions) => Promise<number>
  /** broadcast a raw transaction; resolves with its txid */
  broadcast: (hex: string, options?: AbortOptions) => Promise<string>
  /** satoshis per virtual byte to confirm within `blocks` */
  feeRate: (blocks?: number, options?: AbortOptions) => Promise<number>
}
