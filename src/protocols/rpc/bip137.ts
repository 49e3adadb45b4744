import { createHash } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { address as btcAddress, crypto as btcCrypto } from 'bitcoinjs-lib'

/**
 * Bitcoin's "signmessage" format (BIP-137), the signature an ordinary wallet
 * makes with "Sign message". The message is hashed with the "Bitcoin Signed
 * Message" prefix, signed with a recoverable ECDSA signature, and sent as 65
 * bytes: a header byte, then r and s.
 *
 * The header says how to read the recovered key: 27-30 uncompressed P2PKH,
 * 31-34 compressed P2PKH, 35-38 P2SH-P2WPKH, 39-42 P2WPKH. Electrum and
 * Bitcoin Core-derived wallets sign segwit addresses with the compressed P2PKH
 * headers (31-34), so a verifier accepts those for any address made from a
 * compressed key; that is the segwit-address convention of common wallets.
 */

export type BitcoinAddressType = 'p2pkh' | 'p2sh-p2wpkh' | 'p2wpkh'

const MAGIC = 'Bitcoin Signed Message:\n'

function varint (n: number): Buffer {
  if (n < 0xfd) {
    return Buffer.from([n])
  }
  if (n <= 0xffff) {
    const b = Buffer.alloc(3)
    b[0] = 0xfd
    b.writeUInt16LE(n, 1)
    return b
  }
  const b = Buffer.alloc(5)
  b[0] = 0xfe
  b.writeUInt32LE(n, 1)
  return b
}

function sha256 (data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest()
}

/** double SHA-256 of varstr(magic) || varstr(message) */
export function magicHash (message: string | Uint8Array): Uint8Array {
  const prefix = Buffer.from(MAGIC, 'utf8')
  const msg = typeof message === 'string' ? Buffer.from(message, 'utf8') : Buffer.from(message)
  return sha256(sha256(Buffer.concat([varint(prefix.length), prefix, varint(msg.length), msg])))
}

export interface DecodedAddress {
  type: BitcoinAddressType
  /** hash160 of the key (P2PKH, P2WPKH) or of the redeem script (P2SH) */
  hash: Uint8Array
}

export class UnsupportedAddressError extends Error {
  override name = 'UnsupportedAddressError'
}

/** P2SH is read as P2SH-P2WPKH: the only P2SH form a single key signs for */
export function decodeAddress (address: string): DecodedAddress {
  if (/^(bc|tb|bcrt)1/i.test(address)) {
    let decoded
    try {
      decoded = btcAddress.fromBech32(address)
    } catch (err: any) {
      throw new UnsupportedAddressError(`"${address}" is not a valid bech32 address: ${err.message}`)
    }
    if (decoded.version !== 0 || decoded.data.byteLength !== 20) {
      throw new UnsupportedAddressError(`"${address}" is not a P2WPKH address; signmessage cannot prove taproot or script addresses`)
    }
    return { type: 'p2wpkh', hash: decoded.data }
  }
  let decoded
  try {
    decoded = btcAddress.fromBase58Check(address)
  } catch (err: any) {
    throw new UnsupportedAddressError(`"${address}" is not a valid bitcoin address: ${err.message}`)
  }
  // 0x00 and 0x6f are P2PKH on mainnet and on testnet/regtest; 0x05 and 0xc4 are P2SH
  if (decoded.version === 0x00 || decoded.version === 0x6f) {
    return { type: 'p2pkh', hash: decoded.hash }
  }
  if (decoded.version === 0x05 || decoded.version === 0xc4) {
    return { type: 'p2sh-p2wpkh', hash: decoded.hash }
  }
  throw new UnsupportedAddressError(`"${address}" has an unknown version byte ${decoded.version}`)
}

function keyHash (type: BitcoinAddressType, publicKey: Uint8Array): Uint8Array {
  const h = btcCrypto.hash160(publicKey)
  if (type === 'p2sh-p2wpkh') {
    return btcCrypto.hash160(Uint8Array.from([0x00, 0x14, ...h]))
  }
  return h
}

const HEADER_BASE: Record<BitcoinAddressType, number> = { p2pkh: 31, 'p2sh-p2wpkh': 35, p2wpkh: 39 }

export interface SignMessageOptions {
  /**
   * 'bip137' uses the segwit headers (35-38, 39-42) for segwit addresses;
   * 'electrum' uses the compressed P2PKH headers (31-34) for every type, as
   * Electrum does. Default 'bip137'.
   */
  segwitHeaders?: 'bip137' | 'electrum'
}

/** Sign a message for an address of the given type made from a compressed key */
export function signMessage (privateKey: Uint8Array, message: string | Uint8Array, type: BitcoinAddressType, options: SignMessageOptions = {}): Uint8Array {
  const recovered = secp256k1.sign(magicHash(message), privateKey, { prehash: false, format: 'recovered', lowS: true })
  const base = options.segwitHeaders === 'electrum' ? 31 : HEADER_BASE[type]
  const out = new Uint8Array(65)
  out[0] = base + recovered[0]
  out.set(recovered.subarray(1), 1)
  return out
}

/** True when the 65-byte signature proves control of the address over the message */
export function verifyMessage (address: string, message: string | Uint8Array, signature: Uint8Array): boolean {
  if (signature.byteLength !== 65) {
    return false
  }
  const header = signature[0]
  if (header < 27 || header > 42) {
    return false
  }
  const decoded = decodeAddress(address)
  const recovery = (header - 27) % 4
  const compressed = header >= 31
  // the header's own type, where it names one; 31-34 fit any type (Electrum)
  if (header >= 35 && header <= 38 && decoded.type !== 'p2sh-p2wpkh') {
    return false
  }
  if (header >= 39 && decoded.type !== 'p2wpkh') {
    return false
  }
  if (!compressed && decoded.type !== 'p2pkh') {
    return false
  }
  let publicKey: Uint8Array
  try {
    const recoveredSig = new Uint8Array(65)
    recoveredSig[0] = recovery
    recoveredSig.set(signature.subarray(1), 1)
    const compressedKey = secp256k1.recoverPublicKey(recoveredSig, magicHash(message), { prehash: false })
    publicKey = compressed ? compressedKey : secp256k1.Point.fromBytes(compressedKey).toBytes(false)
  } catch {
    return false
  }
  return Buffer.from(keyHash(decoded.type, publicKey)).equals(Buffer.from(decoded.hash))
}
