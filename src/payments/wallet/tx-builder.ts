import { Psbt, address as btcAddress, payments, type Network } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { formatAmount } from '../../protocols/units.ts'

/**
 * Build and sign a P2WPKH transaction: pick coins, add change, sign every
 * input. Signing uses @noble/curves (RFC 6979 nonces, low S), so no native
 * or wasm secp256k1 is needed.
 */

export interface SpendableOutput {
  txid: string
  vout: number
  /** satoshis */
  value: bigint
  privateKey: Uint8Array
}

export interface Payee {
  address: string
  value: bigint
}

export interface BuildInit {
  coins: SpendableOutput[]
  payees: Payee[]
  changeAddress: string
  /** sat/vB */
  feeRate: number
  network: Network
  /** up to 80 bytes put in an OP_RETURN output (worth 0 sat): a checkpoint's anchor */
  data?: Uint8Array
  /**
   * The most the fee may be, change too small to keep included; a
   * transaction that would cost more is not built (FeeTooHighError).
   * Default: no limit
   */
  maxFee?: bigint
}

export class InsufficientFundsError extends Error {
  override name = 'InsufficientFundsError'
}

export class DustPaymentError extends Error {
  override name = 'DustPaymentError'
}

/** The fee a payment would cost is more than its payer allows (BuildInit.maxFee) */
export class FeeTooHighError extends Error {
  override name = 'FeeTooHighError'
  readonly fee: bigint
  readonly maxFee: bigint
  /** of the fee, change too small to keep: more coins in the wallet would save it */
  readonly lostChange: bigint
  constructor (message: string, fee: bigint, maxFee: bigint, lostChange: bigint) {
    super(message)
    this.fee = fee
    this.maxFee = maxFee
    this.lostChange = lostChange
  }
}

/** the smallest P2WPKH output the network relays */
export const DUST = 294n
// P2WPKH sizes in vbytes: an input with its witness, an output, the rest
const INPUT_VBYTES = 68
const OUTPUT_VBYTES = 31
const OVERHEAD_VBYTES = 11

/**
 * The fee of a transaction of `inputs` P2WPKH inputs and `outputs` outputs,
 * plus `extraVbytes` (an OP_RETURN output), at `feeRate` sat/vB, taken as a
 * whole number of at least 1
 */
export function feeFor (feeRate: number, inputs: number, outputs: number, extraVbytes = 0): bigint {
  return BigInt(OVERHEAD_VBYTES + inputs * INPUT_VBYTES + outputs * OUTPUT_VBYTES + extraVbytes) * BigInt(Math.max(1, Math.ceil(feeRate)))
}

/** The fee of the usual payment: one coin in, the payee and change out (141 vB) */
export function paymentFee (feeRate: number): bigint {
  return feeFor(feeRate, 1, 2)
}

export function signerFor (privateKey: Uint8Array): { publicKey: Uint8Array, sign: (hash: Uint8Array) => Uint8Array } {
  return {
    publicKey: secp256k1.getPublicKey(privateKey, true),
    sign: (hash) => secp256k1.sign(hash, privateKey, { prehash: false, lowS: true })
  }
}

export interface BuiltTransaction {
  hex: string
  txid: string
  fee: bigint
  change: bigint
}

export function buildTransaction (init: BuildInit): BuiltTransaction {
  const target = init.payees.reduce((sum, p) => sum + p.value, 0n)
  for (const payee of init.payees) {
    if (payee.value < DUST) {
      throw new DustPaymentError(`${formatAmount(payee.value)} is below bitcoin's dust limit of ${formatAmount(DUST)} and cannot be paid on chain: pay at least ${formatAmount(DUST)}, or defer small payments so they are settled together`)
    }
  }
  if (init.data != null && init.data.byteLength > 80) {
    throw new RangeError('an OP_RETURN output carries at most 80 bytes')
  }
  // value, script length, OP_RETURN, the push (OP_PUSHDATA1 and a length
  // byte past 75 bytes) and the data
  const dataVbytes = init.data == null ? 0 : 8 + 1 + 1 + (init.data.byteLength > 75 ? 2 : 1) + init.data.byteLength
  // largest coins first: fewest inputs, lowest fee
  const coins = [...init.coins].sort((a, b) => (b.value > a.value ? 1 : b.value < a.value ? -1 : 0))
  // an output other than P2WPKH (a channel's P2WSH: 43 vB) costs what its script takes
  const outputsVbytes = init.payees.reduce((sum, p) => sum + 9 + btcAddress.toOutputScript(p.address, init.network).byteLength - OUTPUT_VBYTES, 0)
  // the payees and change
  const feeOf = (inputs: number): bigint => feeFor(init.feeRate, inputs, init.payees.length + 1, dataVbytes + outputsVbytes)
  const chosen: SpendableOutput[] = []
  let total = 0n
  for (const coin of coins) {
    const need = target + feeOf(chosen.length)
    if (total >= need) {
      // enough. Change too small to keep would go to the fee, though: one
      // more coin keeps it when its input costs less than that change
      const change = total - need
      const marginal = feeOf(chosen.length + 1) - feeOf(chosen.length)
      if (change >= DUST || marginal >= change || change + coin.value - marginal < DUST) {
        break
      }
    }
    chosen.push(coin)
    total += coin.value
  }
  // with no coin at all, the fee is still that of one input
  let fee = feeOf(Math.max(1, chosen.length))
  if (total < target + fee) {
    throw new InsufficientFundsError(`the wallet has ${formatAmount(total)} spendable; ${formatAmount(target)} plus a fee of about ${formatAmount(fee)} is needed: fund the wallet`)
  }
  let change = total - target - fee
  if (change < DUST) {
    // too small to be worth an output: it goes to the fee
    fee += change
    change = 0n
  }
  if (init.maxFee != null && fee > init.maxFee) {
    const lost = fee - feeOf(chosen.length)
    throw new FeeTooHighError(`the fee would be ${formatAmount(fee)}${lost > 0n ? ` (${formatAmount(lost)} of it change too small to keep)` : ''}, more than the ${formatAmount(init.maxFee)} it may be`, fee, init.maxFee, lost)
  }
  const psbt = new Psbt({ network: init.network })
  for (const coin of chosen) {
    const signer = signerFor(coin.privateKey)
    psbt.addInput({
      hash: coin.txid,
      index: coin.vout,
      witnessUtxo: { script: payments.p2wpkh({ pubkey: signer.publicKey, network: init.network }).output as Uint8Array, value: coin.value }
    })
  }
  for (const payee of init.payees) {
    psbt.addOutput({ address: payee.address, value: payee.value })
  }
  if (init.data != null) {
    psbt.addOutput({ script: payments.embed({ data: [init.data] }).output as Uint8Array, value: 0n })
  }
  if (change > 0n) {
    psbt.addOutput({ address: init.changeAddress, value: change })
  }
  chosen.forEach((coin, i) => { psbt.signInput(i, signerFor(coin.privateKey)) })
  psbt.validateSignaturesOfAllInputs((pubkey, hash, signature) => secp256k1.verify(signature, hash, pubkey, { prehash: false }))
  psbt.finalizeAllInputs()
  const tx = psbt.extractTransaction()
  return { hex: tx.toHex(), txid: tx.getId(), fee, change }
}
