import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { computeVectors } from '../../../scripts/protocol-vectors.ts'
import { decodeRequest, decodeResponse } from '../../../src/protocols/rpc/messages.ts'
import { CredentialVerifier, credentialText } from '../../../src/protocols/rpc/credentials.ts'
import { verifyMessage } from '../../../src/protocols/rpc/bip137.ts'

const fixture = JSON.parse(await readFile(new URL('../../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const protocolDoc = await readFile(new URL('../../../PROTOCOL.md', import.meta.url), 'utf8')

function flatten (value: any, prefix = ''): Array<[string, string]> {
  return Object.entries(value).flatMap(([k, v]) => typeof v === 'object' ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, String(v)]])
}

describe('PROTOCOL.md test vectors', () => {
  it('are what this implementation computes', async () => {
    assert.deepEqual(await computeVectors(), fixture)
  })

  it('are printed in PROTOCOL.md, every value', () => {
    for (const [name, value] of flatten(fixture)) {
      assert.ok(protocolDoc.replace(/\s+/g, '').includes(value), `PROTOCOL.md lacks ${name}`)
    }
  })

  it('decode and verify from the frame bytes alone', () => {
    const requestFrame = Buffer.from(fixture.request.frame, 'hex')
    // varint length (2 bytes here), then the type byte 1
    assert.equal(requestFrame[2], 1)
    const { head, signing } = decodeRequest(requestFrame.subarray(3))
    assert.equal(Buffer.from(signing).toString('hex'), fixture.request.signingBytes)
    assert.deepEqual(head.credentials.map(credentialText), [`oc:${fixture.keys.clientPeerId}`, `btc:${fixture.keys.bitcoinAddress}`])
    new CredentialVerifier().verifyAll(head.credentials, head.signatures, signing)
    assert.ok(verifyMessage(fixture.keys.bitcoinAddress, fixture.request.bitcoinMessage, Buffer.from(fixture.request.bitcoinSignature, 'hex')))

    const responseFrame = Buffer.from(fixture.response.frame, 'hex')
    const response = decodeResponse(responseFrame.subarray(3))
    assert.equal(Buffer.from(response.head.requestDigest).toString('hex'), fixture.request.signingDigest)
    new CredentialVerifier().verifyAll(response.head.credentials, response.head.signatures, response.signing)
  })

  it('stop verifying when any signed byte changes', () => {
    const requestFrame = Buffer.from(fixture.request.frame, 'hex')
    const { head, signing } = decodeRequest(requestFrame.subarray(3))
    const tampered = Buffer.from(signing)
    tampered[tampered.length - 1] ^= 1
    assert.throws(() => { new CredentialVerifier().verifyAll(head.credentials, head.signatures, tampered) }, { name: 'InvalidSignatureError' })
  })
})

describe('payment, refusal, nonce and discovery test vectors', () => {
  it('decode to what PROTOCOL.md says they are', async () => {
    const { encodeHead } = await import('../../../src/protocols/rpc/messages.ts')
    const { decodeChallenge } = await import('../../../src/protocols/rpc/nonce-store.ts')
    const { serviceCid } = await import('../../../src/services/peers/discovery.ts')
    const { Transaction, address } = await import('bitcoinjs-lib')
    const refused = decodeResponse(encodeHead([Buffer.from(fixture.refused.signature, 'hex')], Buffer.from(fixture.refused.signedPart, 'hex')))
    new CredentialVerifier().verifyAll(refused.head.credentials, refused.head.signatures, refused.signing)
    assert.equal(refused.head.status, 33)
    assert.deepEqual(refused.head.acceptablePayment, { type: 'attached', currency: 'BTC', amount: '0.00000294' })
    assert.equal(Buffer.from(refused.head.requestDigest).toString('hex'), fixture.request.signingDigest)

    const issued = decodeChallenge(Uint8Array.from(Buffer.from(fixture.refreshNonce.body, 'hex')))
    assert.equal(Buffer.from(issued.challenge).toString('hex'), '404142434445464748494a4b4c4d4e4f')
    assert.equal(issued.expiresAt, 1767226200000)

    const tx = Transaction.fromHex(fixture.payments.attachedTransaction)
    assert.equal(tx.getId(), fixture.payments.attachedTxid)
    assert.equal(address.fromOutputScript(tx.outs[0].script), fixture.keys.bitcoinAddress)
    assert.equal(tx.outs[0].value, 1000n)
    assert.ok(fixture.payments.attached.endsWith(fixture.payments.attachedTransaction))

    assert.equal((await serviceCid('sha256')).toString(), fixture.discovery.sha256Cid)
    assert.equal(Buffer.from(fixture.request.bitcoinSignatureBase64, 'base64').toString('hex'), fixture.request.bitcoinSignature)
  })
})

describe('market and reputation test vectors', () => {
  it('decode and verify from the bytes alone', async () => {
    const { decodeOffer, verifyOffer } = await import('../../../src/market/offer.ts')
    const { decodeSummary } = await import('../../../src/reputation/summary.ts')
    const offer = decodeOffer(Buffer.from(fixture.offer.bytes, 'hex'))
    verifyOffer(offer)
    assert.deepEqual({ ...offer.offer, price: Number(offer.offer.price), capacity: Number(offer.offer.capacity) }, {
      provider: fixture.keys.serverPeerId, service: 'sha256', method: 'hash', unit: 'MiB', price: 100, currency: 'BTC', capacity: 0, issuedAt: 1767225600000, validUntil: 1767226200000
    })
    const summary = decodeSummary(Buffer.from(fixture.summary.bytes, 'hex'))
    assert.equal(summary.rater, fixture.keys.clientPeerId)
    assert.deepEqual([...summary.opinions.entries()].map(([k, v]) => [k, Math.round(v * 65535)]), [[fixture.keys.serverPeerId, 49151], [fixture.keys.clientPeerId, 16384]])
    // a changed signature byte (the first byte is the signature's length)
    const tampered = Buffer.from(fixture.summary.bytes, 'hex')
    tampered[5] ^= 1
    assert.throws(() => decodeSummary(tampered), { name: 'InvalidSignatureError' })
  })
})
