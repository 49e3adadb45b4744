import { createHash } from 'node:crypto'
import { Level } from 'level'
import { address as btcAddress, crypto as btcCrypto, networks, payments, script as btcScript, Transaction } from 'bitcoinjs-lib'
import { logger } from '@libp2p/logger'
import {
  FeeTooLowError, InvalidSignatureError, MalformedTransactionError, NonFinalError, NonStandardError, OverspendError,
  ScriptFailedError, SpentInputError, TransactionNotFoundError, UnknownInputError
} from '../errors.ts'
import type { TxInfo, Utxo, AddressBalance, TxStatus, Outspend } from '../interface.ts'
import { formatAmount } from '../../../protocols/units.ts'
import { isHeight, lockTimeText, SEQUENCE_FINAL } from './lock-time.ts'
import { runWitnessScript } from './script-interpreter.ts'
import { checkSignature } from './signature-check.ts'

const log = logger('opencloud:regtest')

/**
 * A local bitcoin regtest chain for development and the testnet: a UTXO set
 * in LevelDB, a mempool, blocks mined on demand or on a timer. It applies the
 * rules a wallet's transaction must meet on the real network:
 * - the transaction is final: a lock time that is a height is at most the
 *   tip (it can enter the next block), one that is a time is before now,
 *   unless every input's nSequence is 0xffffffff (bitcoind's IsFinalTx; now
 *   stands in for the median time past of blocks mined on demand);
 * - every input exists and is unspent (no double spend, in a block or in the
 *   mempool), and coinbase outputs mature after 100 blocks;
 * - every input proves it may spend: P2WPKH and P2PKH by their signature,
 *   P2WSH by its witness script, whose sha256 the output commits to, run
 *   by a small strict interpreter (script-interpreter.ts: pushes, IF/ELSE,
 *   VERIFY, DUP, DROP, EQUAL, SHA256, HASH160, CHECKSIG, and
 *   CHECKLOCKTIMEVERIFY for payment channels' refunds); every signature is
 *   SIGHASH_ALL, strict DER, low S; any other output type is refused;
 * - outputs do not exceed inputs, the fee is at least 1 sat/vB, and outputs
 *   are standard and above dust.
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
  /** every outpoint spent, in a block or in the mempool -> spending txid (Esplora's outspend) */
  private readonly spends = new Map<string, string>()
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
        this.spends.set(prev, txid)
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
    this.checkFinal(tx)
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

  /**
   * Whether the transaction may enter the next block (bitcoind's IsFinalTx
   * at the tip's height + 1). A time lock time is compared with now rather
   * than the median time past of the last 11 blocks: blocks here are mined
   * on demand, so their median time says more about when someone last mined
   * than about the time, and now is what a test can set (init.now).
   */
  private checkFinal (tx: Transaction): void {
    if (tx.locktime === 0 || tx.ins.every(input => input.sequence === SEQUENCE_FINAL)) {
      return
    }
    if (isHeight(tx.locktime)) {
      if (tx.locktime > this.height) {
        throw new NonFinalError(`lock time ${tx.locktime} is above the tip ${this.height}: it can enter a block once the chain reaches ${tx.locktime}`)
      }
      return
    }
    const now = this.now()
    if (tx.locktime >= now) {
      throw new NonFinalError(`lock time ${tx.locktime} (${lockTimeText(tx.locktime)}) is not yet past: it can enter a block after ${lockTimeText(tx.locktime)}; it is ${lockTimeText(now)}`)
    }
  }

  private verifyInput (tx: Transaction, i: number, prev: UtxoEntry): void {
    const input = tx.ins[i]
    const script = prev.script
    const isP2wpkh = script.length === 22 && script[0] === 0x00 && script[1] === 0x14
    const isP2wsh = script.length === 34 && script[0] === 0x00 && script[1] === 0x20
    const isP2pkh = script.length === 25 && script[0] === btcScript.OPS.OP_DUP && script[1] === btcScript.OPS.OP_HASH160
    if (isP2wsh) {
      this.verifyP2wsh(tx, i, prev)
      return
    }
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
      throw new NonStandardError(`input ${i} spends an output type this chain does not check (only P2WPKH, P2WSH and P2PKH)`)
    }
    if (!Buffer.from(btcCrypto.hash160(publicKey)).equals(Buffer.from(expectedHash))) {
      throw new InvalidSignatureError(`input ${i}: the public key does not match the output it spends`)
    }
    checkSignature({
      signature,
      publicKey,
      sighash: () => isP2wpkh
        ? tx.hashForWitnessV0(i, payments.p2pkh({ hash: expectedHash }).output as Uint8Array, prev.value, Transaction.SIGHASH_ALL)
        : tx.hashForSignature(i, script, Transaction.SIGHASH_ALL),
      label: `input ${i}`
    })
  }

  /** P2WSH: OP_0 <sha256(witness script)>; the witness is the script's stack, then the script */
  private verifyP2wsh (tx: Transaction, i: number, prev: UtxoEntry): void {
    const input = tx.ins[i]
    if (input.script.length !== 0) {
      throw new ScriptFailedError(`input ${i} spends a P2WSH output and must leave its scriptSig empty`)
    }
    const witnessScript = input.witness.at(-1)
    if (witnessScript == null) {
      throw new ScriptFailedError(`input ${i} spends a P2WSH output and needs a witness that ends with its witness script`)
    }
    if (!createHash('sha256').update(witnessScript).digest().equals(prev.script.subarray(2))) {
      throw new ScriptFailedError(`input ${i}: the witness script does not match the output it spends (its sha256 differs)`)
    }
    runWitnessScript({ tx, index: i, witnessScript, stack: input.witness.slice(0, -1), value: prev.value })
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

  /** Esplora's outspend: which transaction spends an output, if any (a mempool spend counts, unconfirmed) */
  outspend (txid: string, vout: number): Outspend {
    const outs = this.parsed.get(txid)?.outs
    if (outs == null) {
      throw new TransactionNotFoundError(`transaction ${txid} is not known`)
    }
    if (!Number.isSafeInteger(vout) || vout < 0 || vout >= outs.length) {
      throw new TransactionNotFoundError(`transaction ${txid} has no output ${vout}`)
    }
    const key = outpoint(txid, vout)
    const spender = this.spends.get(key)
    if (spender == null) {
      return { spent: false }
    }
    const vin = (this.parsed.get(spender) as Transaction).ins.findIndex(input => outpoint(Buffer.from(input.hash).reverse().toString('hex'), input.index) === key)
    const height = this.txs.get(spender)?.height
    return height == null ? { spent: true, txid: spender, vin, confirmed: false } : { spent: true, txid: spender, vin, confirmed: true, blockHeight: height }
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
