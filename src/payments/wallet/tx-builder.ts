import { Psbt, payments, type Network } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'

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
}

export class InsufficientFundsError extends Error {
  override name = 'InsufficientFundsError'
}

export class DustPaymentError extends Error {
  override name = 'DustPaymentError'
}

/** the smallest P2WPKH output the network relays */
export const DUST = 294n
// P2WPKH sizes in vbytes: an input with its witness, an output, the rest
const INPUT_VBYTES = 68
const OUTPUT_VBYTES = 31
const OVERHEAD_VBYTES = 11

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
      throw new DustPaymentError(`${payee.value} sat is below bitcoin's dust limit of ${DUST} sat and cannot be paid on chain: pay at least ${DUST} sat, or defer small payments so they are settled together`)
    }
  }
  const rate = BigInt(Math.max(1, Math.ceil(init.feeRate)))
  if (init.data != null && init.data.byteLength > 80) {
    throw new RangeError('an OP_RETURN output carries at most 80 bytes')
  }
  // value, script length, OP_RETURN, push and the data
  const dataVbytes = init.data == null ? 0 : 8 + 1 + 2 + init.data.byteLength
  // largest coins first: fewest inputs, lowest fee
  const coins = [...init.coins].sort((a, b) => (b.value > a.value ? 1 : b.value < a.value ? -1 : 0))
  const chosen: SpendableOutput[] = []
  let total = 0n
  let fee = 0n
  for (const coin of coins) {
    chosen.push(coin)
    total += coin.value
    fee = BigInt(OVERHEAD_VBYTES + chosen.length * INPUT_VBYTES + (init.payees.length + 1) * OUTPUT_VBYTES + dataVbytes) * rate
    if (total >= target + fee) {
      break
    }
  }
  if (total < target + fee) {
    throw new InsufficientFundsError(`the wallet has ${total} sat spendable; ${target} sat plus a fee of about ${fee} sat is needed`)
  }
  let change = total - target - fee
  if (change < DUST) {
    // too small to be worth an output: it goes to the fee
    fee += change
    change = 0n
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
