import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Transaction, script as btcScript } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import {
  CLOSE_VBYTES, channelScript, channelSighash, closeTransaction, parseState, payoutScript, refundTransaction, signChannel, signedRefund,
  stateDifference, stateOutputs, stateTransaction, usable, verifyChannelSignature
} from '../../src/payments/channels/channel-script.ts'
import { channelIsCheaper } from '../../src/payments/channels/channels.ts'
import { runWitnessScript } from '../../src/payments/chain/regtest/script-interpreter.ts'
import { CHANNEL_VECTOR } from '../../scripts/protocol-vectors.ts'

// the channel of PROTOCOL.md's vectors: capacity 50,180 less a fee of 180, 50,000 sat usable
const { payerPrivate, payeePrivate, terms } = CHANNEL_VECTOR
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

describe('channel script', () => {
  it('refuses keys that are not compressed points and expiries that are not heights', () => {
    assert.throws(() => channelScript({ ...terms, payerKey: secp256k1.getPublicKey(payerPrivate, false) }), { name: 'ChannelTermsError', message: /compressed/ })
    assert.throws(() => channelScript({ ...terms, payeeKey: Uint8Array.of(2, ...new Uint8Array(32).fill(0xff)) }), { name: 'ChannelTermsError', message: /not a point/ })
    assert.throws(() => channelScript({ ...terms, expiry: 0 }), { name: 'ChannelTermsError' })
    // 500,000,000 and above is a time to CHECKLOCKTIMEVERIFY, not a height
    assert.throws(() => channelScript({ ...terms, expiry: 500_000_000 }), { name: 'ChannelTermsError' })
    assert.doesNotThrow(() => channelScript({ ...terms, expiry: 499_999_999 }))
  })
})

describe('stateOutputs', () => {
  it('leaves an output below 294 sat out, and its value goes to the fee', () => {
    assert.deepEqual(stateOutputs(terms, 0n), { payee: 0n, payer: 50_000n, fee: 180n })
    assert.deepEqual(stateOutputs(terms, 293n), { payee: 0n, payer: 49_707n, fee: 473n })
    assert.deepEqual(stateOutputs(terms, 294n), { payee: 294n, payer: 49_706n, fee: 180n })
    assert.deepEqual(stateOutputs(terms, 49_706n), { payee: 49_706n, payer: 294n, fee: 180n })
    assert.deepEqual(stateOutputs(terms, 49_707n), { payee: 49_707n, payer: 0n, fee: 473n })
    assert.deepEqual(stateOutputs(terms, 50_000n), { payee: 50_000n, payer: 0n, fee: 180n })
    assert.equal(stateTransaction(terms, 293n).outs.length, 1)
    assert.ok(same(stateTransaction(terms, 293n).outs[0].script, payoutScript(terms.payerKey)))
    assert.equal(stateTransaction(terms, 49_707n).outs.length, 1)
    assert.ok(same(stateTransaction(terms, 49_707n).outs[0].script, payoutScript(terms.payeeKey)))
  })

  it('pays at most the capacity less the fee, and never less than nothing', () => {
    assert.equal(usable(terms), 50_000n)
    assert.throws(() => stateOutputs(terms, 50_001n), { name: 'ChannelTermsError', message: /pays 0 to 0.0005 BTC/ })
    assert.throws(() => stateOutputs(terms, -1n), { name: 'ChannelTermsError' })
  })

  it('gives each total a state of its own', () => {
    const ids = new Set([0n, 1n, 293n, 294n, 30_000n, 49_706n, 49_707n, 50_000n].map(t => stateTransaction(terms, t).getId()))
    assert.equal(ids.size, 8)
  })
})

describe('stateDifference', () => {
  const latest = 1_000n
  const price = 500n
  const total = latest + price
  const differs = (tx: Transaction): string | undefined => stateDifference(terms, tx, total, latest)

  it('says nothing of the exact state for the latest plus the price', () => {
    assert.equal(differs(stateTransaction(terms, total)), undefined)
  })

  it('names a replay of the latest state, an old state and one that pays the payee less', () => {
    assert.match(differs(stateTransaction(terms, latest)) as string, /latest state again .*a state pays once/)
    assert.match(differs(stateTransaction(terms, 600n)) as string, /less than the latest state's 0.00001 BTC: an old state/)
    assert.match(differs(stateTransaction(terms, total - 1n)) as string, /pays the payee 0.00001499 BTC; the latest state \(0.00001 BTC\) plus this payment is 0.000015 BTC/)
  })

  it('names a changed payer output (a bigger fee taken from it)', () => {
    const greedy = stateTransaction(terms, total)
    greedy.outs[1].value -= 100n
    assert.match(differs(greedy) as string, /pays the payer 0.000484 BTC, not the 0.000485 BTC/)
  })

  it('names an output to neither side, another input, and another version, lock time or sequence', () => {
    const foreign = stateTransaction(terms, total)
    foreign.outs[1].script = payoutScript(secp256k1.getPublicKey(new Uint8Array(32).fill(0x33), true))
    assert.match(differs(foreign) as string, /neither the payee's nor the payer's/)
    assert.match(stateDifference({ ...terms, vout: 0 }, stateTransaction(terms, total), total, latest) as string, /does not spend the channel output 0123456789abcdef.*:0 alone/)
    assert.match(stateDifference({ ...terms, txid: 'ab'.repeat(32) }, stateTransaction(terms, total), total, latest) as string, /does not spend the channel output/)
    for (const change of [(tx: Transaction) => { tx.version = 1 }, (tx: Transaction) => { tx.locktime = 5 }, (tx: Transaction) => { tx.ins[0].sequence = 0xfffffffe }]) {
      const tx = stateTransaction(terms, total)
      change(tx)
      assert.match(differs(tx) as string, /version 2, lock time 0, input sequence 0xffffffff/)
    }
  })

  it('names outputs in the wrong order', () => {
    const swapped = stateTransaction(terms, total)
    swapped.outs.reverse()
    assert.match(differs(swapped) as string, /not in the order payee, payer/)
  })

  it('tells states below the dust limit apart by the payer\'s output', () => {
    // the payee's output is left out of both: the payer's says what was paid
    assert.match(stateDifference(terms, stateTransaction(terms, 100n), 103n, 100n) as string, /latest state again/)
    assert.match(stateDifference(terms, stateTransaction(terms, 50n), 103n, 100n) as string, /an old state/)
    assert.match(stateDifference(terms, stateTransaction(terms, 102n), 103n, 100n) as string, /pays the payer/)
  })
})

describe('channel signatures', () => {
  const state = stateTransaction(terms, 30_000n)
  const signature = signChannel(terms, state, payerPrivate)

  it('verify by the signer\'s key only, and only on the state signed', () => {
    assert.ok(verifyChannelSignature(terms, state, terms.payerKey, signature))
    assert.equal(verifyChannelSignature(terms, state, terms.payeeKey, signature), false)
    assert.equal(verifyChannelSignature(terms, stateTransaction(terms, 30_001n), terms.payerKey, signature), false)
    // another capacity is another BIP143 digest
    assert.equal(verifyChannelSignature({ ...terms, capacity: terms.capacity + 1n }, state, terms.payerKey, signature), false)
  })

  it('are SIGHASH_ALL with a low S, and nothing else verifies', () => {
    const { signature: compact, hashType } = btcScript.signature.decode(signature)
    assert.equal(hashType, Transaction.SIGHASH_ALL)
    assert.equal(signature.at(-1), 0x01)
    // the same signature under another hash type byte
    assert.equal(verifyChannelSignature(terms, state, terms.payerKey, btcScript.signature.encode(compact, Transaction.SIGHASH_NONE)), false)
    assert.equal(verifyChannelSignature(terms, state, terms.payerKey, btcScript.signature.encode(compact, Transaction.SIGHASH_ALL | Transaction.SIGHASH_ANYONECANPAY)), false)
    // its high-S twin is as valid to ECDSA, and refused
    const sig = secp256k1.Signature.fromBytes(compact, 'compact')
    const high = new secp256k1.Signature(sig.r, secp256k1.Point.CURVE().n - sig.s).toBytes('compact')
    assert.ok(secp256k1.verify(high, channelSighash(terms, state), terms.payerKey, { prehash: false, lowS: false }))
    assert.equal(verifyChannelSignature(terms, state, terms.payerKey, btcScript.signature.encode(high, Transaction.SIGHASH_ALL)), false)
    assert.equal(verifyChannelSignature(terms, state, terms.payerKey, Uint8Array.of(1, 2, 3)), false)
  })

  it('are deterministic (RFC 6979): the same state signs to the same bytes', () => {
    assert.ok(same(signChannel(terms, stateTransaction(terms, 30_000n), payerPrivate), signature))
  })
})

describe('the close and the refund', () => {
  const spend = (tx: Transaction, t = terms): void => {
    runWitnessScript({ tx, index: 0, witnessScript: channelScript(t), stack: tx.ins[0].witness.slice(0, -1), value: t.capacity })
  }

  it('a close spends the channel output, and fits the virtual size its fee is budgeted at', () => {
    const state = stateTransaction(terms, 30_000n)
    const close = closeTransaction(terms, state, signChannel(terms, state, payerPrivate), signChannel(terms, state, payeePrivate))
    spend(close)
    assert.equal(close.getId(), state.getId(), 'the witness is not part of the txid')
    assert.ok(close.virtualSize() <= CLOSE_VBYTES)
    // the largest a close can be: both outputs, the longest expiry push, 73-byte signatures
    const longest = { ...terms, expiry: 499_999_999 }
    const worst = closeTransaction(longest, stateTransaction(longest, 30_000n), new Uint8Array(73), new Uint8Array(73))
    assert.equal(worst.outs.length, 2)
    assert.ok(worst.virtualSize() <= CLOSE_VBYTES, `a close of ${worst.virtualSize()} vB is over the ${CLOSE_VBYTES} budgeted`)
  })

  it('a close signed by the payer alone, or with the signatures swapped, does not spend it', () => {
    const state = stateTransaction(terms, 30_000n)
    const payer = signChannel(terms, state, payerPrivate)
    assert.throws(() => { spend(closeTransaction(terms, state, payer, signChannel(terms, state, payerPrivate))) }, { name: 'InvalidSignatureError' })
    assert.throws(() => { spend(closeTransaction(terms, state, signChannel(terms, state, payeePrivate), payer)) }, { name: 'InvalidSignatureError' })
  })

  it('a refund locks until the expiry with a sequence below final, and pays the payer the capacity less the fee', () => {
    const refund = refundTransaction(terms)
    assert.equal(refund.version, 2)
    assert.equal(refund.locktime, terms.expiry)
    assert.equal(refund.ins.length, 1)
    assert.equal(refund.ins[0].sequence, 0xfffffffe)
    assert.equal(refund.ins[0].index, terms.vout)
    assert.equal(Buffer.from(refund.ins[0].hash).reverse().toString('hex'), terms.txid)
    assert.equal(refund.outs.length, 1)
    assert.equal(refund.outs[0].value, 50_000n)
    assert.ok(same(refund.outs[0].script, payoutScript(terms.payerKey)))
    const signed = signedRefund(terms, payerPrivate)
    assert.equal(signed.ins[0].witness.length, 3)
    assert.equal(signed.ins[0].witness[1].length, 0, 'the empty item takes the OP_ELSE branch')
    spend(signed)
    // signed by the payee, it is no refund
    const byPayee = refundTransaction(terms)
    byPayee.setWitness(0, [signChannel(terms, byPayee, payeePrivate), new Uint8Array(0), channelScript(terms)])
    assert.throws(() => { spend(byPayee) }, { name: 'InvalidSignatureError' })
  })
})

describe('parseState', () => {
  it('takes a state without witness, and refuses one with it or bytes that are no transaction', () => {
    const state = stateTransaction(terms, 30_000n)
    assert.equal(parseState(state.toBuffer()).getId(), state.getId())
    const close = closeTransaction(terms, state, signChannel(terms, state, payerPrivate), signChannel(terms, state, payeePrivate))
    assert.throws(() => parseState(close.toBuffer()), { name: 'ChannelTermsError', message: /without its witness/ })
    assert.throws(() => parseState(Uint8Array.of(1, 2, 3)), { name: 'ChannelTermsError', message: /not a bitcoin transaction/ })
  })
})

describe('channelIsCheaper', () => {
  it('with credit, a small user is cheaper deferred and a large one through a channel', () => {
    // 1 sat/vB: a channel 333 sat (43 + 110 + 180 vB); settlements of 141 sat each per 564 sat owed
    const small = channelIsCheaper({ expected: 1_000n, calls: 50, feeRate: 1, credit: true })
    assert.deepEqual(small, { cheaper: false, channelFee: 333n, otherFee: 282n })
    const large = channelIsCheaper({ expected: 100_000n, calls: 50, feeRate: 1, credit: true })
    assert.equal(large.cheaper, true)
    assert.equal(large.otherFee, 178n * 141n)
  })

  it('without credit, two calls to each of two payees already make channels cheaper; one payee needs three', () => {
    assert.deepEqual(channelIsCheaper({ expected: 1_000n, calls: 2, feeRate: 1, credit: false, outputs: 2 }), { cheaper: true, channelFee: 278n, otherFee: 282n })
    assert.equal(channelIsCheaper({ expected: 1_000n, calls: 2, feeRate: 1, credit: false }).cheaper, false)
    assert.equal(channelIsCheaper({ expected: 1_000n, calls: 3, feeRate: 1, credit: false }).cheaper, true)
    assert.equal(channelIsCheaper({ expected: 1_000n, calls: 1, feeRate: 1, credit: false, outputs: 8 }).cheaper, false)
    // a payee paid less than the dust limit in all could never close: no channel, whatever the fees
    assert.equal(channelIsCheaper({ expected: 293n, calls: 50, feeRate: 1, credit: false }).cheaper, false)
  })

  it('scales both sides with the fee rate, rounded up', () => {
    const at = channelIsCheaper({ expected: 1_000n, calls: 2, feeRate: 9.2, credit: false, outputs: 2 })
    assert.deepEqual(at, { cheaper: true, channelFee: 2780n, otherFee: 2820n })
  })
})
