import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import bitcoinMessage from 'bitcoinjs-message'
import { networks } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { signMessage, verifyMessage, decodeAddress } from '../../../src/protocols/rpc/bip137.ts'
import { bitcoinAddressFor } from '../../../src/protocols/rpc/credentials.ts'

// bitcoinjs-message is an independent implementation of the same format,
// the one many JavaScript wallets use: signatures must cross both ways
const privateKey = Uint8Array.from(Buffer.from('8ae1a6e6c4e4b3f0a2ac6a97e4dc3f3e4b1c07f6bd0c19e4a7a3b8cd1d7e2f10', 'hex'))
const publicKey = secp256k1.getPublicKey(privateKey, true)
const message = 'opencloud-rpc-v1:14a73ba9fc6813f28f42e10acf4665c3186801e143e5ac2ff84874f73690452d'

describe('BIP-137 signmessage', () => {
  for (const network of [networks.bitcoin, networks.testnet, networks.regtest]) {
    const p2pkh = bitcoinAddressFor(publicKey, 'p2pkh', network)
    const p2wpkh = bitcoinAddressFor(publicKey, 'p2wpkh', network)
    const p2sh = bitcoinAddressFor(publicKey, 'p2sh-p2wpkh', network)

    it(`verifies signatures made by bitcoinjs-message (${network.bech32})`, () => {
      const legacy = bitcoinMessage.sign(message, Buffer.from(privateKey), true)
      assert.ok(verifyMessage(p2pkh, message, legacy))
      const segwit = bitcoinMessage.sign(message, Buffer.from(privateKey), true, { segwitType: 'p2wpkh' })
      assert.equal(segwit[0] >= 39 && segwit[0] <= 42, true)
      assert.ok(verifyMessage(p2wpkh, message, segwit))
      const nested = bitcoinMessage.sign(message, Buffer.from(privateKey), true, { segwitType: 'p2sh(p2wpkh)' })
      assert.ok(verifyMessage(p2sh, message, nested))
      // Electrum signs segwit addresses with the compressed P2PKH header
      assert.ok(verifyMessage(p2wpkh, message, legacy))
      assert.ok(verifyMessage(p2sh, message, legacy))
    })

    it(`signs what bitcoinjs-message verifies (${network.bech32})`, () => {
      assert.ok(bitcoinMessage.verify(message, p2pkh, Buffer.from(signMessage(privateKey, message, 'p2pkh'))))
      assert.ok(bitcoinMessage.verify(message, p2wpkh, Buffer.from(signMessage(privateKey, message, 'p2wpkh'))))
      assert.ok(bitcoinMessage.verify(message, p2sh, Buffer.from(signMessage(privateKey, message, 'p2sh-p2wpkh'))))
      assert.ok(bitcoinMessage.verify(message, p2wpkh, Buffer.from(signMessage(privateKey, message, 'p2wpkh', { segwitHeaders: 'electrum' })), undefined, true))
    })
  }

  it('refuses another message, another address, and a header that names another type', () => {
    const p2wpkh = bitcoinAddressFor(publicKey, 'p2wpkh')
    const p2pkh = bitcoinAddressFor(publicKey, 'p2pkh')
    const sig = signMessage(privateKey, message, 'p2wpkh')
    assert.equal(verifyMessage(p2wpkh, message + 'x', sig), false)
    const otherKey = bitcoinAddressFor(secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true), 'p2wpkh')
    assert.equal(verifyMessage(otherKey, message, sig), false)
    // a P2WPKH header does not prove a P2PKH address, even for the same key
    assert.equal(verifyMessage(p2pkh, message, sig), false)
    assert.equal(verifyMessage(p2wpkh, message, sig.subarray(0, 64)), false)
    const badHeader = Uint8Array.from(sig)
    badHeader[0] = 50
    assert.equal(verifyMessage(p2wpkh, message, badHeader), false)
  })

  it('names the address types it cannot prove', () => {
    assert.throws(() => decodeAddress('bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297'), /taproot/)
    assert.throws(() => decodeAddress('not-an-address'), /not a valid bitcoin address/)
  })
})
