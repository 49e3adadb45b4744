import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { computeVectors } from '../../../scripts/protocol-vectors.ts'
import { decodeRequest, decodeResponse } from '../../../src/protocols/rpc/messages.ts'
import { CredentialVerifier, credentialText } from '../../../src/protocols/rpc/credentials.ts'
import { verifyMessage } from '../../../src/protocols/rpc/bip137.ts'
import { assertPrinted, readProtocolDoc, sectionOf, type PrintedKind, type Vector } from '../../helpers/protocol-doc.ts'

const fixture = JSON.parse(await readFile(new URL('../../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const protocolDoc = await readProtocolDoc()

function flatten (value: any, prefix = ''): Array<[string, string]> {
  return Object.entries(value).flatMap(([k, v]) => typeof v === 'object' ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, String(v)]])
}
const values = new Map(flatten(fixture))

/** Vectors of the fixture printed as `kind`s of their own: `blocks('request', 'nonce', 'body')` */
const as = (kind: PrintedKind) => (group: string, ...names: string[]): Vector[] => names.map(n => {
  const name = `${group}.${n}`
  const value = values.get(name)
  assert.ok(value != null, `the fixture has no ${name}`)
  return { name, value, kind }
})
const blocks = as('block')
const code = as('code')
const word = as('word')

/**
 * Where section 11 prints each vector, in the order it prints them: the
 * text under each heading (up to its first subheading for the section's
 * own), its code blocks one to one with the blocks listed. The Cloud
 * Ledger's are test/ledger/vectors.test.ts's.
 */
const printedIn: Array<[heading: string, vectors: Vector[]]> = [
  ['## 11. Test vectors', code('keys', 'clientEd25519Seed', 'clientPeerId', 'serverEd25519Seed', 'serverPeerId', 'bitcoinPrivateKey', 'bitcoinAddress')],
  ['### Request', [
    ...blocks('request', 'nonce', 'body', 'signedPart', 'signingBytes', 'signingDigest', 'opencloudSignature', 'bitcoinMessage'),
    ...code('request', 'bitcoinSignatureHeader'),
    ...blocks('request', 'bitcoinSignatureR', 'bitcoinSignatureS', 'bitcoinSignature', 'bitcoinSignatureBase64', 'frame', 'bodyFrame')
  ]],
  ['### Response', blocks('response', 'body', 'signedPart', 'signature', 'frame', 'bodyFrame')],
  ['### A refused call, with an acceptable payment', blocks('refused', 'signedPart', 'signature')],
  ['### A refresh-nonce body', blocks('refreshNonce', 'body')],
  ['### Payments', [...blocks('payments', 'defer'), ...code('payments', 'attachedTxid'), ...blocks('payments', 'attachedTransaction', 'attached')]],
  ['### Service discovery', blocks('discovery', 'sha256Cid')],
  ['### Market offer', blocks('offer', 'bytes')],
  ['### Reputation summary', blocks('summary', 'bytes')],
  ['### Storage', [
    ...blocks('storage', 'leaf0Hash', 'leaf2Hash', 'shardRoot'),
    ...code('storage', 'challenge', 'challengedLeaves'),
    ...blocks('storage', 'dataRootOfTwo', 'dataRootOfNone', 'terms', 'contractId', 'renterTermsSignature', 'hostTermsSignature', 'proposal', 'signedTerms'),
    // the rent table: each step's accrued units and price, row by row
    ...code('storage', ...fixture.storage.rentSteps.flatMap((_: unknown, i: number) => [`rentSteps.${i}.accrued`, `rentSteps.${i}.price`])),
    ...word('storage', 'uploadCostOf3TiBAnd1Byte'),
    ...code('storage', 'uploadRemainderOf3TiBAnd1Byte', 'getCostOf1MiBAt2444', 'getRemainderOf1MiBAt2444'),
    // gets, then the rent that settles their remainders
    ...code('storage', 'rentAfterGets.getCost', 'rentAfterGets.getRemainder', 'rentAfterGets.accrued', 'rentAfterGets.price'),
    ...blocks('storage', 'revision', 'renterRevisionSignature', 'hostRevisionSignature', 'signedRevision', 'proofs'),
    ...code('storage', 'rsData', 'rsParity'),
    ...blocks('storage', 'storageKey', 'objectKey', 'sealedSegment1', 'renterRating')
  ]]
]

describe('PROTOCOL.md test vectors', () => {
  it('are what this implementation computes', async () => {
    assert.deepEqual(await computeVectors(), fixture)
  })

  it('are printed in section 11, each a code block, code span or word of its own, in order', () => {
    const section11 = sectionOf(protocolDoc, '## 11. Test vectors')
    for (const [heading, printed] of printedIn) {
      const text = heading.startsWith('## ') ? sectionOf(protocolDoc, heading, { subsections: false }) : sectionOf(section11, heading)
      assertPrinted(text, printed, `PROTOCOL.md "${heading}"`)
    }
    // every vector has its place (the ledger's in test/ledger/vectors.test.ts)
    const placed = printedIn.flatMap(([, printed]) => printed.map(v => v.name))
    assert.deepEqual([...values.keys()].filter(name => !name.startsWith('ledger.')).sort(), [...placed].sort())
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
