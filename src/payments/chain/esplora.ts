import { ChainUnavailableError, TransactionNotFoundError, TransactionRejectedError } from './errors.ts'
import type { AddressBalance, ChainBackend, Outspend, TxInfo, TxStatus, Utxo } from './interface.ts'
import type { AbortOptions } from '@libp2p/interface'

export interface EsploraClientInit {
  /** Base URL, e.g. http://127.0.0.1:3002 or a public explorer's /api */
  url: string
  /** Per-request timeout, default 15 s */
  timeoutMs?: number
}

function status (s: any): TxStatus {
  return s?.confirmed === true ? { confirmed: true, blockHeight: s.block_height, blockTime: s.block_time } : { confirmed: false }
}

const sats = (n: unknown): bigint => BigInt(Math.round(Number(n ?? 0)))

/**
 * A client of the Esplora HTTP API: public block explorers, self-hosted
 * electrs, and this project's regtest chain all serve it.
 */
export class EsploraClient implements ChainBackend {
  private readonly url: string
  private readonly timeoutMs: number

  constructor (init: EsploraClientInit) {
    this.url = init.url.replace(/\/$/, '')
    this.timeoutMs = init.timeoutMs ?? 15_000
  }

  private async request (path: string, init: RequestInit = {}, options: AbortOptions = {}): Promise<Response> {
    const signal = options.signal == null ? AbortSignal.timeout(this.timeoutMs) : AbortSignal.any([options.signal, AbortSignal.timeout(this.timeoutMs)])
    let res: Response
    try {
      res = await fetch(`${this.url}${path}`, { ...init, signal })
    } catch (err: any) {
      throw new ChainUnavailableError(`the chain backend at ${this.url} did not answer (${err.cause?.code ?? err.message})`)
    }
    if (res.status === 404) {
      throw new TransactionNotFoundError(`${path}: not found at ${this.url}`)
    }
    if (res.status === 400) {
      throw new TransactionRejectedError((await res.text()).trim())
    }
    if (!res.ok) {
      throw new ChainUnavailableError(`the chain backend at ${this.url} answered HTTP ${res.status} for ${path}`)
    }
    return res
  }

  private async json (path: string, options?: AbortOptions): Promise<any> {
    return (await this.request(path, {}, options)).json()
  }

  async tipHeight (options?: AbortOptions): Promise<number> {
    return Number(await (await this.request('/blocks/tip/height', {}, options)).text())
  }

  async balance (address: string, options?: AbortOptions): Promise<AddressBalance> {
    const a = await this.json(`/address/${address}`, options)
    return {
      confirmed: sats(a.chain_stats.funded_txo_sum) - sats(a.chain_stats.spent_txo_sum),
      unconfirmed: sats(a.mempool_stats.funded_txo_sum) - sats(a.mempool_stats.spent_txo_sum),
      txCount: Number(a.chain_stats.tx_count) + Number(a.mempool_stats.tx_count)
    }
  }

  async utxos (address: string, options?: AbortOptions): Promise<Utxo[]> {
    const list = await this.json(`/address/${address}/utxo`, options)
    return list.map((u: any) => ({ txid: u.txid, vout: u.vout, value: sats(u.value), status: status(u.status) }))
  }

  private tx (t: any): TxInfo {
    return {
      txid: t.txid,
      inputs: (t.vin ?? []).map((i: any) => ({ txid: i.txid, vout: i.vout, address: i.prevout?.scriptpubkey_address, value: i.prevout == null ? undefined : sats(i.prevout.value) })),
      outputs: (t.vout ?? []).map((o: any) => ({ address: o.scriptpubkey_address, value: sats(o.value), scriptPubKey: o.scriptpubkey })),
      fee: sats(t.fee),
      status: status(t.status)
    }
  }

  async transactions (address: string, options?: AbortOptions): Promise<TxInfo[]> {
    return (await this.json(`/address/${address}/txs`, options)).map((t: any) => this.tx(t))
  }

  async transaction (txid: string, options?: AbortOptions): Promise<TxInfo> {
    const info = this.tx(await this.json(`/tx/${txid}`, options))
    info.hex = await (await this.request(`/tx/${txid}/hex`, {}, options)).text()
    return info
  }

  async confirmations (txid: string, options?: AbortOptions): Promise<number> {
    const s = status(await this.json(`/tx/${txid}/status`, options))
    if (!s.confirmed) {
      return 0
    }
    return (await this.tipHeight(options)) - (s.blockHeight as number) + 1
  }

  async outspend (txid: string, vout: number, options?: AbortOptions): Promise<Outspend> {
    // {"spent":true,"txid":"…","vin":0,"status":{"confirmed":true,"block_height":…}} or {"spent":false}
    const o = await this.json(`/tx/${txid}/outspend/${vout}`, options)
    if (o.spent !== true) {
      return { spent: false }
    }
    const s = status(o.status)
    return { spent: true, txid: o.txid, vin: o.vin, confirmed: s.confirmed, ...(s.blockHeight == null ? {} : { blockHeight: s.blockHeight }) }
  }

  async broadcast (hex: string, options?: AbortOptions): Promise<string> {
    return (await (await this.request('/tx', { method: 'POST', body: hex }, options)).text()).trim()
  }

  async feeRate (blocks = 6, options?: AbortOptions): Promise<number> {
    const estimates = await this.json('/fee-estimates', options)
    const targets = Object.keys(estimates).map(Number).sort((a, b) => a - b)
    const target = targets.find(t => t >= blocks) ?? targets.at(-1)
    return target == null ? 1 : Math.max(1, Number(estimates[target]))
  }
}
