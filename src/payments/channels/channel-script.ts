import { Transaction, payments, script as btcScript, type Network } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { formatAmount } from '../../protocols/units.ts'
import { DUST } from '../wallet/tx-builder.ts'

/**
 * A unidirectional payment channel on chain (PROTOCOL.md 8f): one segwit v0
 * P2WSH output with two ways to spend it,
 *
 *   OP_IF <payee key> OP_CHECKSIGVERIFY
 *   OP_ELSE <expiry> OP_CHECKLOCKTIMEVERIFY OP_DROP
 *   OP_ENDIF <payer key> OP_CHECKSIG
 *
 * the payee and the payer together at any time (a state, closed by the
 * payee), or the payer alone once the chain reaches the expiry height (the
 * refund). The refund needs no transaction signed in advance, so nothing
 * depends on the funding transaction's id before it is final (BIP65's
 * "micropayment channel" design).
 *
 * Every state is one canonical transaction that only the channel's terms and
 * the total paid determine, so both sides build the same bytes and a payee
 * can tell exactly what a payer changed.
 */

/** What both sides agree at the open and never change */
export interface ChannelTerms {
  /** the funding transaction's id (display order, hex) */
  txid: string
  vout: number
  /** satoshis in the channel output */
  capacity: bigint
  /** the fee every state and the refund pay, satoshis, fixed at the open */
  fee: bigint
  /** block height from which the payer alone may spend the output */
  expiry: number
  /** compressed secp256k1 public keys, 33 bytes each */
  payerKey: Uint8Array
  payeeKey: Uint8Array
}

export class ChannelTermsError extends Error {
  override name = 'ChannelTermsError'
}

/** "txid:vout", how a channel is named everywhere */
export function channelId (terms: Pick<ChannelTerms, 'txid' | 'vout'>): string {
  return `${terms.txid}:${terms.vout}`
}

/** `final` sequence of a state's input: no lock time applies to it */
const FINAL = 0xffffffff
/** the refund's input sequence: below FINAL, so its lock time (and CLTV) applies */
const REFUND_SEQUENCE = 0xfffffffe
/** the largest expiry taken as a block height (BIP65: below 500,000,000) */
const MAX_HEIGHT = 499_999_999

/**
 * The virtual size a close is budgeted at (a state with both outputs, both
 * signatures of up to 73 bytes and the script): the fee agreed at the open
 * is the fee rate times this. A refund is smaller (one signature, one output).
 */
export const CLOSE_VBYTES = 180

/** The witness script of a channel */
export function channelScript (terms: Pick<ChannelTerms, 'payeeKey' | 'payerKey' | 'expiry'>): Uint8Array {
  checkKey(terms.payeeKey, 'the payee key')
  checkKey(terms.payerKey, 'the payer key')
  if (!Number.isSafeInteger(terms.expiry) || terms.expiry < 1 || terms.expiry > MAX_HEIGHT) {
    throw new ChannelTermsError(`a channel's expiry is a block height from 1 to ${MAX_HEIGHT}, not ${terms.expiry}`)
  }
  const O = btcScript.OPS
  return btcScript.compile([
    O.OP_IF, terms.payeeKey, O.OP_CHECKSIGVERIFY,
    O.OP_ELSE, btcScript.number.encode(terms.expiry), O.OP_CHECKLOCKTIMEVERIFY, O.OP_DROP,
    O.OP_ENDIF, terms.payerKey, O.OP_CHECKSIG
  ])
}

/** The P2WSH output script and address that fund a channel */
export function channelOutput (terms: Pick<ChannelTerms, 'payeeKey' | 'payerKey' | 'expiry'>, network: Network): { script: Uint8Array, address: string } {
  const p = payments.p2wsh({ redeem: { output: channelScript(terms) }, network })
  return { script: p.output as Uint8Array, address: p.address as string }
}

/** Where a side's money goes when the channel is spent: the P2WPKH output of its channel key */
export function payoutScript (key: Uint8Array): Uint8Array {
  return payments.p2wpkh({ pubkey: key }).output as Uint8Array
}

function checkKey (key: Uint8Array, what: string): void {
  if (key.byteLength !== 33 || (key[0] !== 2 && key[0] !== 3)) {
    throw new ChannelTermsError(`${what} must be a compressed secp256k1 public key (33 bytes starting 02 or 03)`)
  }
  try {
    secp256k1.Point.fromBytes(key)
  } catch {
    throw new ChannelTermsError(`${what} is not a point on secp256k1`)
  }
}

/** The most a channel can pay its payee: the capacity less the fee */
export function usable (terms: Pick<ChannelTerms, 'capacity' | 'fee'>): bigint {
  return terms.capacity - terms.fee
}

/**
 * What a state paying `total` in all to the payee pays each side: an output
 * below the dust limit is left out and its value goes to the fee (a payee
 * paid less than that in all has nothing it could claim on chain yet).
 */
export function stateOutputs (terms: ChannelTerms, total: bigint): { payee: bigint, payer: bigint, fee: bigint } {
  if (total < 0n || total > usable(terms)) {
    // formatAmount refuses a negative amount: a negative total is said in satoshis
    throw new ChannelTermsError(`a state of this channel pays 0 to ${formatAmount(usable(terms))} (the capacity of ${formatAmount(terms.capacity)} less the fee of ${formatAmount(terms.fee)}), not ${total < 0n ? `${total} sat` : formatAmount(total)}`)
  }
  const payee = total >= DUST ? total : 0n
  const rest = usable(terms) - total
  const payer = rest >= DUST ? rest : 0n
  return { payee, payer, fee: terms.capacity - payee - payer }
}

/**
 * The state transaction paying `total` to the payee, without its witness:
 * version 2, lock time 0, the channel output as its one input (sequence
 * 0xffffffff), then the payee's output and the payer's, each left out below
 * the dust limit.
 */
export function stateTransaction (terms: ChannelTerms, total: bigint): Transaction {
  const { payee, payer } = stateOutputs(terms, total)
  const tx = new Transaction()
  tx.version = 2
  tx.locktime = 0
  tx.addInput(Buffer.from(terms.txid, 'hex').reverse(), terms.vout, FINAL)
  if (payee > 0n) {
    tx.addOutput(payoutScript(terms.payeeKey), payee)
  }
  if (payer > 0n) {
    tx.addOutput(payoutScript(terms.payerKey), payer)
  }
  return tx
}

/** The refund: the whole channel less the fee back to the payer, valid from the expiry height */
export function refundTransaction (terms: ChannelTerms): Transaction {
  const tx = new Transaction()
  tx.version = 2
  tx.locktime = terms.expiry
  tx.addInput(Buffer.from(terms.txid, 'hex').reverse(), terms.vout, REFUND_SEQUENCE)
  tx.addOutput(payoutScript(terms.payerKey), usable(terms))
  return tx
}

/** The BIP143 digest a side signs to spend the channel output in `tx` */
export function channelSighash (terms: ChannelTerms, tx: Transaction): Uint8Array {
  return tx.hashForWitnessV0(0, channelScript(terms), terms.capacity, Transaction.SIGHASH_ALL)
}

/** A side's signature on `tx`: DER, low S, SIGHASH_ALL */
export function signChannel (terms: ChannelTerms, tx: Transaction, privateKey: Uint8Array): Uint8Array {
  const signature = secp256k1.sign(channelSighash(terms, tx), privateKey, { prehash: false, lowS: true })
  return btcScript.signature.encode(signature, Transaction.SIGHASH_ALL)
}

/** Whether `signature` is `key`'s on `tx` (DER, low S, SIGHASH_ALL) */
export function verifyChannelSignature (terms: ChannelTerms, tx: Transaction, key: Uint8Array, signature: Uint8Array): boolean {
  try {
    const decoded = btcScript.signature.decode(signature)
    if (decoded.hashType !== Transaction.SIGHASH_ALL) {
      return false
    }
    return secp256k1.verify(decoded.signature, channelSighash(terms, tx), key, { prehash: false, lowS: true })
  } catch {
    return false
  }
}

/** The state `tx` signed by both, ready to broadcast: the payee's close */
export function closeTransaction (terms: ChannelTerms, tx: Transaction, payerSignature: Uint8Array, payeeSignature: Uint8Array): Transaction {
  const closing = tx.clone()
  closing.setWitness(0, [payerSignature, payeeSignature, Uint8Array.of(1), channelScript(terms)])
  return closing
}

/** The refund signed by the payer, ready to broadcast once the chain reaches the expiry */
export function signedRefund (terms: ChannelTerms, payerKey: Uint8Array): Transaction {
  const tx = refundTransaction(terms)
  tx.setWitness(0, [signChannel(terms, tx, payerKey), new Uint8Array(0), channelScript(terms)])
  return tx
}

/** A state transaction as it travels (no witness), parsed; a ChannelTermsError when it is not one */
export function parseState (bytes: Uint8Array): Transaction {
  let tx: Transaction
  try {
    tx = Transaction.fromBuffer(bytes)
  } catch (err: any) {
    throw new ChannelTermsError(`the channel state is not a bitcoin transaction: ${err.message}`)
  }
  if (tx.hasWitnesses()) {
    throw new ChannelTermsError('a channel state travels without its witness: the payer\'s signature goes in its own field')
  }
  return tx
}

/**
 * What differs between a state a payer sent and the one the channel's terms
 * make for `total`, in words; undefined when it is exactly that state.
 */
export function stateDifference (terms: ChannelTerms, sent: Transaction, total: bigint, latest: bigint): string | undefined {
  const expected = stateTransaction(terms, total)
  if (Buffer.from(sent.toBuffer()).equals(Buffer.from(expected.toBuffer()))) {
    return undefined
  }
  if (sent.ins.length !== 1 || Buffer.from(sent.ins[0].hash).reverse().toString('hex') !== terms.txid || sent.ins[0].index !== terms.vout) {
    return `it does not spend the channel output ${channelId(terms)} alone`
  }
  if (sent.version !== 2 || sent.locktime !== 0 || sent.ins[0].sequence !== FINAL) {
    return 'a state is version 2, lock time 0, input sequence 0xffffffff'
  }
  const payeeOut = payoutScript(terms.payeeKey)
  const payerOut = payoutScript(terms.payerKey)
  let toPayee = 0n
  let toPayer = 0n
  for (const out of sent.outs) {
    if (Buffer.from(out.script).equals(Buffer.from(payeeOut))) {
      toPayee += out.value
    } else if (Buffer.from(out.script).equals(Buffer.from(payerOut))) {
      toPayer += out.value
    } else {
      return 'it pays an output that is neither the payee\'s nor the payer\'s'
    }
  }
  const want = stateOutputs(terms, total)
  // what it pays the payee in all: its output, or below the dust limit what the payer's leaves
  const paid = toPayee > 0n || toPayer === 0n ? toPayee : usable(terms) - toPayer
  if (paid === latest) {
    return `it is the latest state again (${formatAmount(latest)} in all): a state pays once`
  }
  if (paid < latest) {
    return `it pays ${formatAmount(paid)} in all, less than the latest state's ${formatAmount(latest)}: an old state`
  }
  if (toPayee !== want.payee) {
    return `it pays the payee ${formatAmount(toPayee)}; the latest state (${formatAmount(latest)}) plus this payment is ${formatAmount(total)}`
  }
  if (toPayer !== want.payer) {
    return `it pays the payer ${formatAmount(toPayer)}, not the ${formatAmount(want.payer)} the channel leaves it (the capacity less the fee of ${formatAmount(terms.fee)} and the total)`
  }
  return 'its outputs are not in the order payee, payer'
}

/** A compressed public key as hex, for args and records */
export const keyHex = (key: Uint8Array): string => Buffer.from(key).toString('hex')
export const keyFromHex = (hex: string, what: string): Uint8Array => {
  if (!/^0[23][0-9a-f]{64}$/.test(hex)) {
    throw new ChannelTermsError(`${what} is a compressed public key: 66 hex digits starting 02 or 03, not "${hex.slice(0, 80)}"`)
  }
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}
