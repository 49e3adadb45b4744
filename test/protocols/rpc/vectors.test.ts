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
  ['### Payment channels', [
    ...code('channel', 'payerPrivateKey', 'payerKey', 'payeePrivateKey', 'payeeKey', 'fundingTxid', 'fundingVout', 'id', 'capacity', 'fee', 'expiry'),
    ...blocks('channel', 'witnessScript', 'outputScript'),
    ...code('channel', 'address', 'payeePayout', 'payerPayout'),
    ...code('channel', ...Object.keys(fixture.channel.expiryPushes).map(e => `expiryPushes.${e}`)),
    ...['state250', 'state30000', 'state49800'].flatMap(state => [
      ...code('channel', `${state}.total`, `${state}.payee`, `${state}.payer`, `${state}.fee`),
      ...blocks('channel', `${state}.transaction`, `${state}.sighash`, `${state}.payerSignature`)
    ]),
    ...code('channel', 'paymentAmount'),
    ...blocks('channel', 'payment', 'payeeSignature', 'closeTransaction'),
    ...code('channel', 'closeTxid'),
    ...blocks('channel', 'refundSighash', 'refundTransaction'),
    ...code('channel', 'refundTxid')
  ]],
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
  ]],
  ['### Shares', blocks('share', 'domain', 'grant', 'signature', 'body', 'text')]
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
    // every vector has its place (the ledger's in test/ledger/vectors.test.ts, the object index's in section 8g: test/storage/recovery-vectors.test.ts)
    const placed = printedIn.flatMap(([, printed]) => printed.map(v => v.name))
    assert.deepEqual([...values.keys()].filter(name => !name.startsWith('ledger.') && !name.startsWith('index.')).sort(), [...placed].sort())
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

describe('payment channel test vectors', () => {
  const c = fixture.channel
  const bytes = (h: string): Buffer => Buffer.from(h, 'hex')
  const le = (n: number | bigint, size: number): Buffer => {
    const b = Buffer.alloc(size)
    if (size === 8) b.writeBigUInt64LE(BigInt(n)); else b.writeUInt32LE(Number(n))
    return b
  }

  it('are what section 8f\'s byte rules build, without the project\'s channel code', async () => {
    const { createHash: hash } = await import('node:crypto')
    const { crypto: btcCrypto } = await import('bitcoinjs-lib')
    // the expiry push: OP_1..OP_16, else a length byte and the little-endian
    // number in the fewest bytes, a 00 added when the last has its top bit set
    const expiryPush = (height: number): Buffer => {
      if (height >= 1 && height <= 16) {
        return Buffer.of(0x50 + height)
      }
      const n: number[] = []
      for (let v = height; v > 0; v = Math.floor(v / 256)) n.push(v % 256)
      if ((n[n.length - 1] & 0x80) !== 0) n.push(0)
      return Buffer.from([n.length, ...n])
    }
    for (const [height, push] of Object.entries(c.expiryPushes)) {
      assert.equal(expiryPush(Number(height)).toString('hex'), push, `the push of ${height}`)
    }
    const script = Buffer.concat([Buffer.of(0x63, 0x21), bytes(c.payeeKey), Buffer.of(0xad, 0x67), expiryPush(Number(c.expiry)), Buffer.of(0xb1, 0x75, 0x68, 0x21), bytes(c.payerKey), Buffer.of(0xac)])
    assert.equal(script.toString('hex'), c.witnessScript)
    assert.equal(Buffer.concat([Buffer.of(0x00, 0x20), hash('sha256').update(script).digest()]).toString('hex'), c.outputScript)
    const payout = (key: string): Buffer => Buffer.concat([Buffer.of(0x00, 0x14), btcCrypto.hash160(bytes(key))])
    assert.equal(payout(c.payeeKey).toString('hex'), c.payeePayout)
    assert.equal(payout(c.payerKey).toString('hex'), c.payerPayout)
    const usable = BigInt(c.capacity) - BigInt(c.fee)
    for (const state of [c.state250, c.state30000, c.state49800]) {
      const total = BigInt(state.total)
      const outputs = [[total, c.payeePayout], [usable - total, c.payerPayout]].filter(([value]) => BigInt(value) >= 294n)
      const tx = Buffer.concat([
        le(2, 4), Buffer.of(1), bytes(c.fundingTxid).reverse(), le(Number(c.fundingVout), 4), Buffer.of(0), Buffer.from('ffffffff', 'hex'),
        Buffer.of(outputs.length), ...outputs.flatMap(([value, out]) => [le(value as bigint, 8), Buffer.of(22), bytes(out as string)]),
        le(0, 4)
      ])
      assert.equal(tx.toString('hex'), state.transaction, `the state of ${state.total}`)
      const paid = outputs.reduce((sum, [value]) => sum + BigInt(value), 0n)
      assert.equal(String(BigInt(c.capacity) - paid), state.fee)
    }
  })

  it('sign and spend as section 8f says: BIP143, low S, the close and the refund run in the script', async () => {
    const { Transaction, script: btcScript } = await import('bitcoinjs-lib')
    const { secp256k1 } = await import('@noble/curves/secp256k1.js')
    const { runWitnessScript } = await import('../../../src/payments/chain/regtest/script-interpreter.ts')
    const script = bytes(c.witnessScript)
    for (const state of [c.state250, c.state30000, c.state49800]) {
      const tx = Transaction.fromHex(state.transaction)
      assert.equal(Buffer.from(tx.hashForWitnessV0(0, script, BigInt(c.capacity), Transaction.SIGHASH_ALL)).toString('hex'), state.sighash)
      const { signature, hashType } = btcScript.signature.decode(bytes(state.payerSignature))
      assert.equal(hashType, 1)
      assert.ok(secp256k1.verify(signature, bytes(state.sighash), bytes(c.payerKey), { prehash: false, lowS: true }))
    }
    const close = Transaction.fromHex(c.closeTransaction)
    assert.equal(close.getId(), c.closeTxid)
    assert.equal(close.getId(), Transaction.fromHex(c.state30000.transaction).getId(), 'the close is the state, with its witness')
    assert.deepEqual(close.ins[0].witness.map(w => Buffer.from(w).toString('hex')), [c.state30000.payerSignature, c.payeeSignature, '01', c.witnessScript])
    assert.ok(close.virtualSize() <= 180)
    const spend = (tx: InstanceType<typeof Transaction>, stack: Uint8Array[]): void => { runWitnessScript({ tx, index: 0, witnessScript: script, stack, value: BigInt(c.capacity) }) }
    spend(close, close.ins[0].witness.slice(0, -1))
    assert.throws(() => { spend(close, [bytes(c.payeeSignature), bytes(c.state30000.payerSignature), Buffer.of(1)]) }, { name: 'InvalidSignatureError' })
    const refund = Transaction.fromHex(c.refundTransaction)
    assert.equal(refund.getId(), c.refundTxid)
    assert.equal(refund.locktime, Number(c.expiry))
    assert.equal(refund.ins[0].sequence, 0xfffffffe)
    assert.equal(refund.outs[0].value, BigInt(c.capacity) - BigInt(c.fee))
    assert.equal(Buffer.from(refund.hashForWitnessV0(0, script, BigInt(c.capacity), Transaction.SIGHASH_ALL)).toString('hex'), c.refundSighash)
    spend(refund, refund.ins[0].witness.slice(0, -1))
    // one block early, OP_CHECKLOCKTIMEVERIFY fails (the signature aside: it runs first)
    const early = refund.clone()
    early.locktime = Number(c.expiry) - 1
    assert.throws(() => { spend(early, refund.ins[0].witness.slice(0, -1)) }, { name: 'LockTimeError' })
  })

  it('travel in a request head: decodeRequest gives back the payment that encodePayment wrote', async () => {
    const { encodeHead, encodePayment, encodeRequestSigned } = await import('../../../src/protocols/rpc/messages.ts')
    const payment = { type: 'channel' as const, currency: 'BTC', amount: c.paymentAmount, channel: c.id, txn: Uint8Array.from(bytes(c.state30000.transaction)), signature: Uint8Array.from(bytes(c.state30000.payerSignature)) }
    assert.equal(Buffer.from(encodePayment(payment)).toString('hex'), c.payment)
    const head = (p: any): Uint8Array => encodeHead([], encodeRequestSigned({ credentials: [], nonce: new Uint8Array(0), service: 'sha256', method: 'hash', args: [], payment: p, bodyLength: 0, bodySha256: new Uint8Array(32) }))
    const signed = head(payment)
    assert.ok(Buffer.from(signed).toString('hex').includes(c.payment))
    const decoded = decodeRequest(signed).head.payment
    assert.deepEqual({ ...decoded, txn: Buffer.from((decoded as any).txn).toString('hex'), signature: Buffer.from((decoded as any).signature).toString('hex') },
      { ...payment, txn: c.state30000.transaction, signature: c.state30000.payerSignature })
    // a channel named any other way, a state over 1,024 bytes, a signature over 80 bytes
    const refused = { name: /^(MalformedMessageError|DecodeError)$/ }
    for (const channel of [`${c.fundingTxid}:01`, `${c.fundingTxid.toUpperCase()}:1`, c.fundingTxid, `${c.fundingTxid.slice(2)}:1`, `${c.fundingTxid}:1234567`, `${c.fundingTxid}:-1`, `${c.fundingTxid}:1 `]) {
      assert.throws(() => decodeRequest(head({ ...payment, channel })), refused, channel)
    }
    assert.throws(() => decodeRequest(head({ ...payment, txn: new Uint8Array(1025) })), refused)
    assert.doesNotThrow(() => decodeRequest(head({ ...payment, txn: new Uint8Array(1024) })))
    assert.throws(() => decodeRequest(head({ ...payment, signature: new Uint8Array(81) })), refused)
    assert.doesNotThrow(() => decodeRequest(head({ ...payment, signature: new Uint8Array(80) })))
  })

  it('are named acceptable with index 3 in a response (section 5)', async () => {
    const { encodeHead, encodeResponseSigned } = await import('../../../src/protocols/rpc/messages.ts')
    const signed = encodeResponseSigned({ credentials: [], requestDigest: new Uint8Array(32), nonce: new Uint8Array(0), status: 33, message: '', acceptablePayment: { type: 'channel', currency: 'BTC', amount: '0.00000003' }, bodyLength: 0, bodySha256: new Uint8Array(32) })
    // ... status 33, an empty message, then has-acceptable-payment 1 and the type index
    assert.ok(Buffer.from(signed).toString('hex').includes('2100' + '01' + '03' + '03425443' + '0a302e3030303030303033'))
    assert.deepEqual(decodeResponse(encodeHead([], signed)).head.acceptablePayment, { type: 'channel', currency: 'BTC', amount: '0.00000003' })
  })

  it('match what the node answers in section 8f\'s JSON examples', async () => {
    const { Channels } = await import('../../../src/payments/channels/channels.ts')
    const { formatAmount } = await import('../../../src/protocols/units.ts')
    const methods = sectionOf(sectionOf(protocolDoc, '## 8f. Payment channels'), '### Messages')
    const examples = [...methods.matchAll(/^```json\n([\s\S]*?)\n```$/gm)].map(m => JSON.parse(m[1]))
    assert.equal(examples.length, 2, 'the terms and a channel view')
    const payeeAddress = 'bcrt1q2vfxp232rx0z9rzn0hay9jptagk8c86ddphpjv'
    const wallet = { addressFor: async () => payeeAddress, publicKeyOf: () => bytes(c.payeeKey) }
    const channels = new Channels({ datastore: {}, wallet, chain: {}, tabs: {}, call: async () => { throw new Error('no calls') } } as any, { network: 'regtest' })
    assert.deepEqual(JSON.parse(JSON.stringify(await channels.offer(fixture.keys.clientPeerId))), examples[0])
    const { payments, networks } = await import('bitcoinjs-lib')
    assert.equal(payments.p2wpkh({ pubkey: bytes(c.payeeKey), network: networks.regtest }).address, payeeAddress, 'the terms\' address is the payee key\'s')
    // the channel of the vectors, just opened, 4,464 blocks before its expiry
    ;(channels as any).tip = { height: Number(c.expiry) - 4464, at: Date.now() }
    const record = {
      txid: c.fundingTxid, vout: 1, capacity: BigInt(c.capacity), fee: BigInt(c.fee), expiry: Number(c.expiry), payerKey: bytes(c.payerKey), payeeKey: bytes(c.payeeKey),
      role: 'payee' as const, peer: fixture.keys.clientPeerId, id: c.id, state: 'open' as const, total: 0n, payments: 0, openedAt: Date.parse('2026-01-01T00:00:00Z'), closeMargin: 144, confirmed: false
    }
    // as it travels: JSON, where an absent field is left out
    assert.deepEqual(JSON.parse(JSON.stringify(channels.view(record))), examples[1])
    // every field the view can have is in the table, in its order
    const fields = [...methods.slice(methods.indexOf('A channel view has these fields')).matchAll(/^\| `([a-zA-Z]+)`(?:, `([a-zA-Z]+)`)? \|/gm)].flatMap(m => m.slice(1).filter(f => f != null))
    const full = channels.view({ ...record, closeTxid: c.closeTxid, note: 'a note' })
    assert.deepEqual([...fields].sort(), Object.keys(full).sort())
    const close = /`(\{"txid":[^`]*\})`/.exec(methods)
    assert.deepEqual(JSON.parse(close?.[1] ?? 'null'), { txid: c.closeTxid, paid: formatAmount(BigInt(c.state30000.total)) })
  })
})
