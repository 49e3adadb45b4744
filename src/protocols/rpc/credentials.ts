import { createHash, createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto'
import { peerIdFromMultihash, peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { payments, networks, type Network } from 'bitcoinjs-lib'
import { checkAddressNetwork, type BitcoinNetworkName } from '../bitcoin-networks.ts'
import { CredentialType, type Credential } from './messages.ts'
import { InvalidSignatureError, MalformedMessageError } from './errors.ts'
import { signMessage, verifyMessage, UnsupportedAddressError, type BitcoinAddressType } from './bip137.ts'
import type { PrivateKey } from '@libp2p/interface'

/**
 * Identity credentials (seed: "Identity credentials"): an OpenCloud ID is the
 * node's libp2p Ed25519 key, shown as its PeerId; a bitcoin address is proven
 * with a BIP-137 signmessage signature. A credential's text form is
 * `oc:<PeerId>` or `btc:<address>`.
 */

export interface CredentialSigner {
  readonly credential: Credential
  readonly text: string
  sign (signing: Uint8Array): Uint8Array
}

// DER wrappers that turn raw Ed25519 keys into node:crypto KeyObjects, which
// sign and verify several times faster than a pure JavaScript Ed25519
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')

function ed25519PrivateKeyObject (seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' })
}

function ed25519PublicKeyObject (raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' })
}

export function openCloudCredential (peerId: string): Credential {
  return { type: CredentialType.OPENCLOUD, value: peerIdFromString(peerId).toMultihash().bytes }
}

/** A signer for the node's own OpenCloud ID */
export function openCloudSigner (privateKey: PrivateKey): CredentialSigner {
  if (privateKey.type !== 'Ed25519') {
    throw new TypeError(`an OpenCloud ID must be an Ed25519 key, not ${privateKey.type}`)
  }
  const keyObject = ed25519PrivateKeyObject(privateKey.raw.subarray(0, 32))
  const credential: Credential = {
    type: CredentialType.OPENCLOUD,
    value: peerIdFromPrivateKey(privateKey).toMultihash().bytes
  }
  return {
    credential,
    text: credentialText(credential),
    sign: (signing) => edSign(null, signing, keyObject)
  }
}

/**
 * The text a bitcoin credential signs: a wallet's "Sign message" box takes
 * text, so the binary signing bytes are represented by their SHA-256 in hex.
 */
export function bitcoinMessage (signing: Uint8Array): string {
  return `opencloud-rpc-v1:${createHash('sha256').update(signing).digest('hex')}`
}

export interface BitcoinSignerInit {
  /** 32-byte secp256k1 private key */
  privateKey: Uint8Array
  /** the address type to prove, default 'p2wpkh' */
  type?: BitcoinAddressType
  /** default bitcoin mainnet */
  network?: Network
}

export function bitcoinAddressFor (publicKey: Uint8Array, type: BitcoinAddressType, network: Network = networks.bitcoin): string {
  const pubkey = Buffer.from(publicKey)
  switch (type) {
    case 'p2pkh': return payments.p2pkh({ pubkey, network }).address as string
    case 'p2wpkh': return payments.p2wpkh({ pubkey, network }).address as string
    case 'p2sh-p2wpkh': return payments.p2sh({ redeem: payments.p2wpkh({ pubkey, network }), network }).address as string
  }
}

/** A signer that proves control of a bitcoin address */
export function bitcoinSigner (init: BitcoinSignerInit): CredentialSigner {
  const type = init.type ?? 'p2wpkh'
  const address = bitcoinAddressFor(secp256k1.getPublicKey(init.privateKey, true), type, init.network)
  const credential: Credential = { type: CredentialType.BITCOIN, value: new TextEncoder().encode(address) }
  return {
    credential,
    text: `btc:${address}`,
    sign: (signing) => signMessage(init.privateKey, bitcoinMessage(signing), type)
  }
}

/**
 * OpenCloud ID texts by their credential bytes: a PeerId's base58 text costs
 * about as much to make as the rest of a small call's head together, and a
 * server sees the same callers again and again
 */
const ID_TEXTS = new Map<string, string>()
const ID_TEXTS_MAX = 10_000

export function credentialText (credential: Credential): string {
  if (credential.type === CredentialType.OPENCLOUD) {
    const key = Buffer.from(credential.value.buffer, credential.value.byteOffset, credential.value.byteLength).toString('latin1')
    let text = ID_TEXTS.get(key)
    if (text == null) {
      try {
        text = `oc:${peerIdFromMultihash(Digest.decode(credential.value)).toString()}`
      } catch {
        return 'oc:<malformed>'
      }
      if (ID_TEXTS.size >= ID_TEXTS_MAX) {
        // drop the oldest entry: Map iterates in insertion order
        ID_TEXTS.delete(ID_TEXTS.keys().next().value as string)
      }
      ID_TEXTS.set(key, text)
    }
    return text
  }
  return `btc:${new TextDecoder().decode(credential.value)}`
}

export interface CredentialVerifierInit {
  /** How many OpenCloud ID public keys to keep parsed, default 10,000 */
  cacheSize?: number
  /**
   * The bitcoin network whose addresses are accepted as credentials, default
   * any. A node checks balances on one chain, so an address of another
   * network proves nothing it can check.
   */
  network?: BitcoinNetworkName
}

/**
 * Checks one signature per credential. Parsed Ed25519 public keys are cached
 * because parsing costs about as much as a verify, and a busy server sees the
 * same callers again and again.
 */
export class CredentialVerifier {
  private readonly cache = new Map<string, KeyObject>()
  private readonly cacheSize: number
  private readonly network?: BitcoinNetworkName

  constructor (init: CredentialVerifierInit = {}) {
    this.cacheSize = init.cacheSize ?? 10_000
    this.network = init.network
  }

  /** Throws InvalidSignatureError naming the first credential that fails */
  verifyAll (credentials: Credential[], signatures: Uint8Array[], signing: Uint8Array): void {
    if (signatures.length !== credentials.length) {
      throw new InvalidSignatureError(`${credentials.length} credentials but ${signatures.length} signatures: each credential needs exactly one`)
    }
    for (let i = 0; i < credentials.length; i++) {
      this.verify(credentials[i], signatures[i], signing)
    }
  }

  verify (credential: Credential, signature: Uint8Array, signing: Uint8Array): void {
    if (credential.type === CredentialType.OPENCLOUD) {
      const key = this.openCloudKey(credential.value)
      if (signature.byteLength !== 64 || !edVerify(null, signing, key, signature)) {
        throw new InvalidSignatureError(`the signature for ${credentialText(credential)} does not verify`)
      }
      return
    }
    const address = new TextDecoder().decode(credential.value)
    if (this.network != null) {
      try {
        checkAddressNetwork(address, this.network)
      } catch (err: any) {
        throw new InvalidSignatureError(`credential btc:${address}: ${err.message}`)
      }
    }
    let ok: boolean
    try {
      ok = verifyMessage(address, bitcoinMessage(signing), signature)
    } catch (err) {
      if (err instanceof UnsupportedAddressError) {
        throw new InvalidSignatureError(err.message)
      }
      throw err
    }
    if (!ok) {
      throw new InvalidSignatureError(`the signmessage signature for btc:${address} does not verify`)
    }
  }

  private openCloudKey (value: Uint8Array): KeyObject {
    const id = Buffer.from(value).toString('base64')
    let key = this.cache.get(id)
    if (key != null) {
      return key
    }
    let raw: Uint8Array
    try {
      const peerId = peerIdFromMultihash(Digest.decode(value))
      if (peerId.type !== 'Ed25519') {
        throw new Error(`${peerId.type} keys are not OpenCloud IDs`)
      }
      raw = peerId.publicKey.raw
    } catch (err: any) {
      throw new MalformedMessageError(`an OpenCloud ID credential is not an Ed25519 PeerId: ${err.message}`)
    }
    key = ed25519PublicKeyObject(raw)
    if (this.cache.size >= this.cacheSize) {
      // drop the oldest entry: Map iterates in insertion order
      this.cache.delete(this.cache.keys().next().value as string)
    }
    this.cache.set(id, key)
    return key
  }
}

/** The PeerId text of the first OpenCloud ID credential, if there is one */
export function firstOpenCloudId (credentials: Credential[]): string | undefined {
  const c = credentials.find(c => c.type === CredentialType.OPENCLOUD)
  return c == null ? undefined : credentialText(c).slice(3)
}
