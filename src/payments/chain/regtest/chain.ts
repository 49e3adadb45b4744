import { createHash } from 'node:crypto'
import { Level } from 'level'
import { address as btcAddress, crypto as btcCrypto, networks, payments, script as btcScript, Transaction } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { logger } from '@libp2p/logger'
import {
  FeeTooLowError, InvalidSignatureError, MalformedTransactionError, NonStandardError, OverspendError,
  SpentInputError, TransactionNotFoundError, UnknownInputError
} from '../errors.ts'
import type { TxInfo, Utxo, AddressBalance, TxStatus } from '../interface.ts'
import { formatAmount } from '../../../protocols/units.ts'

const log = logger('opencloud:regtest')

/**
 * A local bitcoin regtest chain for development and the testnet: a UTXO set
 * in LevelDB, a mempool, blocks mined on demand or on a timer. It applies the
 * rules a wallet's transaction must meet on the real network: every input
 * exists and is unspent (no double spend, in a block or in the mempool),
 * every signature verifies (P2WPKH and P2PKH, SIGHASH_ALL, strict DER, low S),
 * outputs do not exceed inputs, the fee is at least 1 sat/vB, outputs are
 * standard and above dust, and coinbase outputs mature after 100 blocks.
 * There is no proof of work: a block is whatever this node says it is.
 */

export const COINBASE_MATURITY = 100
export const MIN_RELAY_FEE_RATE = 1n // sat/vB
const HALVING_INTERVAL = 150 // as bitcoind's regtest
const DUST_LIMIT = 294n // a P2WPKH output's dust limit at the default relay fee

interface StoredTx {
  hex: string
  /** undefined while in the mempool */
  height?: number
  fee: string
  coinbase: boolean
  /** prevouts, for history and fee display */
  inputs: Array<{ txid: string, vout: number, address?: string, value: string }>
  seq: number
}

interface StoredBlock {
  height: number
  hash: string
  time: number
  txids: string[]
}

export interface AddressStats {
  funded: bigint
  spent: bigint
  txCount: number
}

interface UtxoEntry {
  txid: string
  vout: number
  value: bigint
  script: Uint8Array
  address?: string
  /** undefined: created by a mempool transaction */
  height?: number
  coinbase: boolean
}

export interface RegtestChainInit {
  /** LevelDB directory */
  path: string
  /** For tests */
  now?: () => number
}

function sha256d (data: Uint8Array): Buffer {
  return createHash('sha256').update(createHash('sha256').update(data).digest()).digest()
}

const outpoint = (txid: string, vout: number): string => `${txid}:${vout}`

export class RegtestChain {
  readonly network = networks.regtest
  private readonly db: Level<string, string>
  private readonly now: () => number
  private readonly blocks: StoredBlock[] = []
  private readonly txs = new Map<string, StoredTx>()
  /** every transaction parsed once, when applied */
  private readonly parsed = new Map<string, Transaction>()
  private readonly utxos = new Map<string, UtxoEntry>()
  /** outpoints spent by mempool transactions -> spending txid */
  private readonly mempoolSpends = new Map<string, string>()
  private readonly byAddress = new Map<string, Set<string>>()
  private seq = 0

  constructor (init: RegtestChainInit) {
    this.db = new Level<string, string>(init.path, { valueEncoding: 'utf8' })
    this.now = init.now ?? (() => Math.floor(Date.now() / 1000))
  }

  async open (): Promise<void> {
    await this.db.open()
    for await (const [, value] of this.db.iterator({ gte: 'block:', lt: 'block;' })) {
      this.blocks.push(JSON.parse(value))
    }
    this.blocks.sort((a, b) => a.height - b.height)
    const stored: Array<[string, StoredTx]> = []
    for await (const [key, value] of this.db.iterator({ gte: 'tx:', lt: 'tx;' })) {
      stored.push([key.slice(3), JSON.parse(value)])
    }
    // replay in acceptance order to rebuild the UTXO set and the mempool
    stored.sort((a, b) => a[1].seq - b[1].seq)
    for (const [txid, tx] of stored) {
      this.apply(txid, tx, Transaction.fromHex(tx.hex))
      this.seq = Math.max(this.seq, tx.seq + 1)
    }
    log('opened at height %d with %d utxos', this.height, this.utxos.size)
  }

  async close (): Promise<void> {
    await this.db.close()
  }

  get height (): number {
    return this.blocks.length - 1
  }

  get tipHash (): string {
    return this.blocks.at(-1)?.hash ?? '00'.repeat(32)
  }

  /** Add a transaction's effects to the in-memory state */
  private apply (txid: string, record: StoredTx, tx: Transaction): void {
    this.txs.set(txid, record)
    this.parsed.set(txid, tx)
    if (!record.coinbase) {
      for (const input of tx.ins) {
        const prev = outpoint(Buffer.from(input.hash).reverse().toString('hex'), input.index)
        if (record.height == null) {
          this.mempoolSpends.set(prev, txid)
        } else {
          this.utxos.delete(prev)
          this.mempoolSpends.delete(prev)
        }
        const spent = record.inputs.find(i => outpoint(i.txid, i.vout) === prev)
        if (spent?.address != null) {
          this.index(spent.address, txid)
        }
      }
    }
    tx.outs.forEach((out, vout) => {
      const address = this.addressOf(out.script)
      this.utxos.set(outpoint(txid, vout), { txid, vout, value: out.value, script: out.script, address, height: record.height, coinbase: record.coinbase })
      if (address != null) {
        this.index(address, txid)
      }
    })
  }

  private index (address: string, txid: string): void {
    let set = this.byAddress.get(address)
    if (set == null) {
      set = new Set()
      this.byAddress.set(address, set)
    }
    set.add(txid)
  }

  private addressOf (script: Uint8Array): string | undefined {
    try {
      return btcAddress.fromOutputScript(script, this.network)
    } catch {
      return undefined
    }
  }

  /**
   * Check a transaction against the UTXO set and the mempool and accept it
   * into the mempool. Throws the error class of the first rule it breaks.
   */
  async submit (hex: string): Promise<string> {
    let tx: Transaction
    try {
      tx = Transaction.fromHex(hex)
    } catch (err: any) {
      throw new MalformedTransactionError(`the transaction does not parse: ${err.message}`)
    }
    const txid = tx.getId()
    if (this.txs.has(txid)) {
      throw new SpentInputError(`transaction ${txid} is already known`)
    }
    if (tx.isCoinbase()) {
      throw new MalformedTransactionError('a coinbase transaction cannot be broadcast')
    }
    if (tx.ins.length === 0 || tx.outs.length === 0) {
      throw new MalformedTransactionError('a transaction needs at least one input and one output')
    }
    const seen = new Set<string>()
    const inputs: StoredTx['inputs'] = []
    let inValue = 0n
    for (let i = 0; i < tx.ins.length; i++) {
      const input = tx.ins[i]
      const prevTxid = Buffer.from(input.hash).reverse().toString('hex')
      const key = outpoint(prevTxid, input.index)
      if (seen.has(key)) {
        throw new SpentInputError(`input ${i} spends ${key} twice in one transaction`)
      }
      seen.add(key)
      const prev = this.utxos.get(key)
      if (prev == null) {
        if (this.txs.has(prevTxid)) {
          throw new SpentInputError(`input ${i} spends ${key}, which is already spent`)
        }
        throw new UnknownInputError(`input ${i} spends ${key}, which this chain has never seen`)
      }
      const spender = this.mempoolSpends.get(key)
      if (spender != null) {
        throw new SpentInputError(`input ${i} spends ${key}, which mempool transaction ${spender} already spends: a double spend`)
      }
      if (prev.coinbase && (prev.height == null || this.height + 1 - prev.height < COINBASE_MATURITY)) {
        throw new SpentInputError(`input ${i} spends a coinbase output that matures after ${COINBASE_MATURITY} blocks`)
      }
      this.verifyInput(tx, i, prev)
      inValue += prev.value
      inputs.push({ txid: prevTxid, vout: input.index, address: prev.address, value: prev.value.toString() })
    }
    let outValue = 0n
    tx.outs.forEach((out, vout) => {
      const isData = out.script[0] === btcScript.OPS.OP_RETURN
      if (!isData && this.addressOf(out.script) == null) {
        throw new NonStandardError(`output ${vout} has a non-standard script`)
      }
      if (!isData && out.value < DUST_LIMIT) {
        throw new NonStandardError(`output ${vout} of ${formatAmount(out.value)} is below the dust limit of ${formatAmount(DUST_LIMIT)}`)
      }
      outValue += out.value
    })
    if (outValue > inValue) {
      throw new OverspendError(`the outputs (${formatAmount(outValue)}) exceed the inputs (${formatAmount(inValue)})`)
    }
    const fee = inValue - outValue
    const minFee = BigInt(tx.virtualSize()) * MIN_RELAY_FEE_RATE
    if (fee < minFee) {
      throw new FeeTooLowError(`the fee of ${formatAmount(fee)} is below the minimum of ${formatAmount(minFee)} (${MIN_RELAY_FEE_RATE} sat/vB x ${tx.virtualSize()} vB)`)
    }
    const record: StoredTx = { hex, fee: fee.toString(), coinbase: false, inputs, seq: this.seq++ }
    await this.db.put(`tx:${txid}`, JSON.stringify(record))
    this.apply(txid, record, tx)
    log('accepted %s', txid)
    return txid
  }

  private verifyInput (tx: Transaction, i: number, prev: UtxoEntry): void {
    const input = tx.ins[i]
    const script = prev.script
    const isP2wpkh = script.length === 22 && script[0] === 0x00 && script[1] === 0x14
    const isP2pkh = script.length === 25 && script[0] === btcScript.OPS.OP_DUP && script[1] === btcScript.OPS.OP_HASH160
    let signature: Uint8Array
    let publicKey: Uint8Array
    let expectedHash: Uint8Array
    if (isP2wpkh) {
      if (input.witness.length !== 2 || input.script.length !== 0) {
        throw new InvalidSignatureError(`input ${i} spends a P2WPKH output and needs a witness of signature and public key`)
      }
      [signature, publicKey] = input.witness
      expectedHash = script.subarray(2)
    } else if (isP2pkh) {
      const chunks = btcScript.decompile(input.script)
      if (chunks == null || chunks.length !== 2 || !(chunks[0] instanceof Uint8Array) || !(chunks[1] instanceof Uint8Array)) {
        throw new InvalidSignatureError(`input ${i} spends a P2PKH output and needs a script of signature and public key`)
      }
      signature = chunks[0]
      publicKey = chunks[1]
      expectedHash = script.subarray(3, 23)
    } else {
      throw new NonStandardError(`input ${i} spends an output type this chain does not check (only P2WPKH and P2PKH)`)
    }
    if (!Buffer.from(btcCrypto.hash160(publicKey)).equals(Buffer.from(expectedHash))) {
      throw new InvalidSignatureError(`input ${i}: the public key does not match the output it spends`)
    }
    let decoded
    try {
      decoded = btcScript.signature.decode(signature)
    } catch (err: any) {
      throw new InvalidSignatureError(`input ${i}: the signature is not strict DER (${err.message})`)
    }
    if (decoded.hashType !== Transaction.SIGHASH_ALL) {
      throw new NonStandardError(`input ${i}: only SIGHASH_ALL signatures are accepted`)
    }
    const sighash = isP2wpkh
      ? tx.hashForWitnessV0(i, payments.p2pkh({ hash: expectedHash }).output as Uint8Array, prev.value, Transaction.SIGHASH_ALL)
      : tx.hashForSignature(i, script, Transaction.SIGHASH_ALL)
    let ok = false
    try {
      ok = secp256k1.verify(decoded.signature, sighash, publicKey, { prehash: false, lowS: true })
    } catch {
      ok = false
    }
    if (!ok) {
      throw new InvalidSignatureError(`input ${i}: the signature does not verify`)
    }
  }

  /** Mine `count` blocks paying their reward to `address`; returns the new block hashes */
  async mine (count: number, address: string): Promise<string[]> {
    const script = btcAddress.toOutputScript(address, this.network)
    const hashes: string[] = []
    for (let n = 0; n < count; n++) {
      const height = this.height + 1
      const mempool = [...this.txs.entries()].filter(([, t]) => t.height == null).sort((a, b) => a[1].seq - b[1].seq)
      const fees = mempool.reduce((sum, [, t]) => sum + BigInt(t.fee), 0n)
      const subsidy = (50n * 100_000_000n) >> BigInt(Math.floor(height / HALVING_INTERVAL))
      const coinbase = new Transaction()
      coinbase.version = 2
      const heightScript = btcScript.compile([btcScript.number.encode(height)])
      coinbase.addInput(Buffer.alloc(32), 0xffffffff, 0xffffffff, heightScript)
      coinbase.addOutput(script, subsidy + fees)
      const coinbaseId = coinbase.getId()
      const txids = [coinbaseId, ...mempool.map(([id]) => id)]
      const time = Math.max(this.now(), (this.blocks.at(-1)?.time ?? 0) + 1)
      const hash = sha256d(Buffer.concat([Buffer.from(this.tipHash, 'hex'), ...txids.map(id => Buffer.from(id, 'hex')), Buffer.from(String(time))])).toString('hex')
      const block: StoredBlock = { height, hash, time, txids }
      const coinbaseRecord: StoredTx = { hex: coinbase.toHex(), height, fee: '0', coinbase: true, inputs: [], seq: this.seq++ }
      const batch = this.db.batch()
      batch.put(`block:${String(height).padStart(10, '0')}`, JSON.stringify(block))
      batch.put(`tx:${coinbaseId}`, JSON.stringify(coinbaseRecord))
      for (const [id, record] of mempool) {
        record.height = height
        batch.put(`tx:${id}`, JSON.stringify(record))
      }
      await batch.write()
      this.blocks.push(block)
      this.apply(coinbaseId, coinbaseRecord, coinbase)
      for (const [id, record] of mempool) {
        // confirm: outputs get a height, spends leave the UTXO set
        this.apply(id, record, this.parsed.get(id) as Transaction)
      }
      hashes.push(hash)
    }
    log('mined %d blocks, tip %d', count, this.height)
    return hashes
  }

  private status (height: number | undefined): TxStatus {
    if (height == null) {
      return { confirmed: false }
    }
    return { confirmed: true, blockHeight: height, blockTime: this.blocks[height]?.time }
  }

  /** Unspent outputs of an address, leaving out those a mempool transaction spends */
  utxosOf (address: string): Utxo[] {
    const out: Utxo[] = []
    for (const txid of this.byAddress.get(address) ?? []) {
      const tx = this.txs.get(txid)
      if (tx == null) {
        continue
      }
      this.parsed.get(txid)?.outs.forEach((_, vout) => {
        const key = outpoint(txid, vout)
        const utxo = this.utxos.get(key)
        if (utxo?.address === address && !this.mempoolSpends.has(key)) {
          out.push({ txid, vout, value: utxo.value, status: this.status(utxo.height) })
        }
      })
    }
    return out
  }

  /** Esplora's address statistics: sums funded to and spent from the address, in blocks and in the mempool */
  addressStats (address: string): { chain: AddressStats, mempool: AddressStats } {
    const chain: AddressStats = { funded: 0n, spent: 0n, txCount: 0 }
    const mempool: AddressStats = { funded: 0n, spent: 0n, txCount: 0 }
    for (const txid of this.byAddress.get(address) ?? []) {
      const tx = this.txs.get(txid)
      if (tx == null) {
        continue
      }
      const stats = tx.height == null ? mempool : chain
      stats.txCount++
      for (const out of this.parsed.get(txid)?.outs ?? []) {
        if (this.addressOf(out.script) === address) {
          stats.funded += out.value
        }
      }
      for (const input of tx.inputs) {
        if (input.address === address) {
          stats.spent += BigInt(input.value)
        }
      }
    }
    return { chain, mempool }
  }

  balanceOf (address: string): AddressBalance {
    const { chain, mempool } = this.addressStats(address)
    return { confirmed: chain.funded - chain.spent, unconfirmed: mempool.funded - mempool.spent, txCount: chain.txCount + mempool.txCount }
  }

  blockTime (height: number): number | undefined {
    return this.blocks[height]?.time
  }

  transaction (txid: string): TxInfo {
    const tx = this.txs.get(txid)
    if (tx == null) {
      throw new TransactionNotFoundError(`transaction ${txid} is not known`)
    }
    const parsed = this.parsed.get(txid) as Transaction
    return {
      txid,
      hex: tx.hex,
      inputs: tx.inputs.map(i => ({ txid: i.txid, vout: i.vout, address: i.address, value: BigInt(i.value) })),
      outputs: parsed.outs.map(o => ({ address: this.addressOf(o.script), value: o.value, scriptPubKey: Buffer.from(o.script).toString('hex') })),
      fee: BigInt(tx.fee),
      status: this.status(tx.height)
    }
  }

  transactionsOf (address: string): TxInfo[] {
    return [...(this.byAddress.get(address) ?? [])]
      .map(txid => this.transaction(txid))
      .sort((a, b) => (b.status.blockHeight ?? Infinity) - (a.status.blockHeight ?? Infinity))
  }

  confirmations (txid: string): number {
    const tx = this.txs.get(txid)
    if (tx == null) {
      throw new TransactionNotFoundError(`transaction ${txid} is not known`)
    }
    return tx.height == null ? 0 : this.height - tx.height + 1
  }

  get mempoolSize (): number {
    let n = 0
    for (const tx of this.txs.values()) {
      if (tx.height == null) {
        n++
      }
    }
    return n
  }
}
