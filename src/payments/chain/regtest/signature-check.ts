import { script as btcScript, Transaction } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { InvalidSignatureError, NonStandardError } from '../errors.ts'

export interface SignatureCheck {
  /** DER signature and its hash type byte, as a scriptSig or witness carries it */
  signature: Uint8Array
  publicKey: Uint8Array
  /** the digest signed, asked for only once the signature's encoding passed */
  sighash: () => Uint8Array
  /** who is checked, for the error: "input 0" */
  label: string
}

/**
 * One ECDSA signature as the chain demands it of every input, whatever the
 * script around it: strict DER, SIGHASH_ALL only (the wallet signs nothing
 * else, and the other hash types are a malleability surface we need not
 * test), and a low S (BIP62; bitcoind's relay policy).
 */
export function checkSignature (check: SignatureCheck): void {
  let decoded
  try {
    decoded = btcScript.signature.decode(check.signature)
  } catch (err: any) {
    throw new InvalidSignatureError(`${check.label}: the signature is not strict DER (${err.message})`)
  }
  if (decoded.hashType !== Transaction.SIGHASH_ALL) {
    throw new NonStandardError(`${check.label}: only SIGHASH_ALL signatures are accepted`)
  }
  let ok = false
  try {
    ok = secp256k1.verify(decoded.signature, check.sighash(), check.publicKey, { prehash: false, lowS: true })
  } catch {
    ok = false
  }
  if (!ok) {
    throw new InvalidSignatureError(`${check.label}: the signature does not verify`)
  }
}
