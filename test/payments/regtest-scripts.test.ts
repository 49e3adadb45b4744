import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { Transaction, address, payments, networks, script } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { EsploraClient } from '../../src/payments/chain/esplora.ts'
import { InvalidSignatureError, LockTimeError, NonStandardError, ScriptFailedError, TransactionNotFoundError } from '../../src/payments/chain/errors.ts'
import { runWitnessScript } from '../../src/payments/chain/regtest/script-interpreter.ts'
import { tempDir } from '../helpers/nodes.ts'

const network = networks.regtest
const { OPS } = script

interface Key { privateKey: Uint8Array, publicKey: Uint8Array, address: string }

function newKey (): Key {
  const privateKey = Uint8Array.from(randomBytes(32))
  const publicKey = secp256k1.getPublicKey(privateKey, true)
  return { privateKey, publicKey, address: payments.p2wpkh({ pubkey: publicKey, network }).address as string }
}

/** The unidirectional payment channel's witness script (BIP65 style) */
function channelScript (payee: Key, payer: Key, expiry: number): Uint8Array {
  return script.compile([
    OPS.OP_IF, payee.publicKey, OPS.OP_CHECKSIGVERIFY,
    OPS.OP_ELSE, script.number.encode(expiry), OPS.OP_CHECKLOCKTIMEVERIFY, OPS.OP_DROP,
    OPS.OP_ENDIF, payer.publicKey, OPS.OP_CHECKSIG
  ])
}

interface Coin { txid: string, vout: number, value: bigint, witnessScript: Uint8Array, address: string }

/**
 * A spend of one P2WSH coin to `to`, unsigned, with the bare Transaction
 * API: PSBT refuses to finalize some of the spends the chain must refuse.
 */
function spendOf (coin: Coin, to: string, options: { lockTime?: number, sequence?: number } = {}): Transaction {
  const tx = new Transaction()
  tx.version = 2
  tx.locktime = options.lockTime ?? 0
  tx.addInput(Buffer.from(coin.txid, 'hex').reverse(), coin.vout, options.sequence ?? 0xfffffffe)
  tx.addOutput(address.toOutputScript(to, network), coin.value - 1000n)
  return tx
}

function sign (tx: Transaction, coin: Coin, key: Key): Uint8Array {
  const sighash = tx.hashForWitnessV0(0, coin.witnessScript, coin.value, Transaction.SIGHASH_ALL)
  return script.signature.encode(secp256k1.sign(sighash, key.privateKey, { prehash: false, lowS: true }), Transaction.SIGHASH_ALL)
}

const EMPTY = new Uint8Array(0)

describe('the regtest chain runs P2WSH witness scripts: a payment channel', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let server: RegtestServer
  let chain: EsploraClient
  const payer = newKey()
  const payee = newKey()
  const stranger = newKey()

  const mine = async (blocks = 1): Promise<void> => {
    const res = await fetch(`${server.url}/regtest/mine?blocks=${blocks}`, { method: 'POST' })
    assert.equal(res.status, 200)
  }

  /** Fund a P2WSH output of `witnessScript` from the faucet (left in the mempool: it can be spent at once) */
  const fund = async (witnessScript: Uint8Array, value = 100_000n): Promise<Coin> => {
    const p2wsh = payments.p2wsh({ redeem: { output: witnessScript }, network })
    const txid = await server.faucet(p2wsh.address as string, value)
    const vout = (await chain.transaction(txid)).outputs.findIndex(o => o.address === p2wsh.address)
    assert.ok(vout >= 0)
    return { txid, vout, value, witnessScript, address: p2wsh.address as string }
  }

  const close = (coin: Coin, witness: (tx: Transaction) => Uint8Array[]): string => {
    const tx = spendOf(coin, payee.address)
    tx.setWitness(0, [...witness(tx), coin.witnessScript])
    return tx.toHex()
  }

  const refund = (coin: Coin, options: { lockTime: number, sequence?: number }): string => {
    const tx = spendOf(coin, payer.address, options)
    tx.setWitness(0, [sign(tx, coin, payer), EMPTY, coin.witnessScript])
    return tx.toHex()
  }

  before(async () => {
    dir = await tempDir()
    server = new RegtestServer({ dir: dir.path, blockIntervalMs: 0 })
    await server.start()
    chain = new EsploraClient({ url: server.url })
  })

  after(async () => {
    await server?.stop()
    await dir?.cleanup()
  })

  it('accepts a close signed by the payee and the payer, at any time', async () => {
    const coin = await fund(channelScript(payee, payer, (await chain.tipHeight()) + 1000))
    const hex = close(coin, tx => [sign(tx, coin, payer), sign(tx, coin, payee), Uint8Array.of(1)])
    const txid = await chain.broadcast(hex)
    await mine()
    assert.equal(await chain.confirmations(txid), 1)
    assert.equal((await chain.balance(payee.address)).confirmed, coin.value - 1000n)
  })

  it('refuses a close whose signatures do not verify, or whose payee signature is empty', async () => {
    const coin = await fund(channelScript(payee, payer, (await chain.tipHeight()) + 1000))
    // the payee's signature made by another key
    await assert.rejects(chain.broadcast(close(coin, tx => [sign(tx, coin, payer), sign(tx, coin, stranger), Uint8Array.of(1)])),
      /InvalidSignatureError: input 0, OP_CHECKSIGVERIFY with key [0-9a-f]{16}…: the signature does not verify/)
    // the payer's signature made by another key
    await assert.rejects(chain.broadcast(close(coin, tx => [sign(tx, coin, stranger), sign(tx, coin, payee), Uint8Array.of(1)])),
      /InvalidSignatureError: input 0, OP_CHECKSIG with key [0-9a-f]{16}…: the signature does not verify/)
    // a signature over another transaction
    const other = spendOf(coin, stranger.address)
    await assert.rejects(chain.broadcast(close(coin, tx => [sign(tx, coin, payer), sign(other, coin, payee), Uint8Array.of(1)])),
      /InvalidSignatureError: .*OP_CHECKSIGVERIFY.*does not verify/)
    await assert.rejects(chain.broadcast(close(coin, tx => [sign(tx, coin, payer), EMPTY, Uint8Array.of(1)])),
      /InvalidSignatureError: input 0, OP_CHECKSIGVERIFY with key [0-9a-f]{16}…: the signature is empty/)
    // and the payer alone cannot close: an empty payer signature leaves false
    await assert.rejects(chain.broadcast(close(coin, tx => [EMPTY, sign(tx, coin, payee), Uint8Array.of(1)])),
      /ScriptFailedError: input 0: the witness script failed: it ended with false/)
  })

  it('refuses a non-minimal OP_IF argument, extra witness items, and a script that is not the output\'s', async () => {
    const coin = await fund(channelScript(payee, payer, (await chain.tipHeight()) + 1000))
    await assert.rejects(chain.broadcast(close(coin, tx => [sign(tx, coin, payer), sign(tx, coin, payee), Uint8Array.of(2)])),
      /ScriptFailedError: input 0: the witness script failed at OP_IF: its argument must be empty or 0x01 \(MINIMALIF\), not 0x02/)
    await assert.rejects(chain.broadcast(close(coin, tx => [sign(tx, coin, payer), sign(tx, coin, payee), Uint8Array.of(1, 0)])),
      /MINIMALIF\), not 0x0100/)
    await assert.rejects(chain.broadcast(close(coin, tx => [Uint8Array.of(7), sign(tx, coin, payer), sign(tx, coin, payee), Uint8Array.of(1)])),
      /ScriptFailedError: input 0: the witness script failed: it ended with 2 items on the stack, not exactly one \(CLEANSTACK\)/)
    const tx = spendOf(coin, payee.address)
    const otherScript = channelScript(payee, payer, 5)
    tx.setWitness(0, [sign(tx, coin, payer), EMPTY, otherScript])
    await assert.rejects(chain.broadcast(tx.toHex()), /ScriptFailedError: input 0: the witness script does not match the output it spends/)
    // the honest close still goes through afterwards
    await chain.broadcast(close(coin, tx => [sign(tx, coin, payer), sign(tx, coin, payee), Uint8Array.of(1)]))
  })

  it('refuses a witness script with an opcode it does not run, naming it', async () => {
    const csv = script.compile([script.number.encode(10), OPS.OP_CHECKSEQUENCEVERIFY, OPS.OP_DROP, payer.publicKey, OPS.OP_CHECKSIG])
    const coin = await fund(csv)
    const tx = spendOf(coin, payer.address, { sequence: 10 })
    tx.setWitness(0, [sign(tx, coin, payer), csv])
    await assert.rejects(chain.broadcast(tx.toHex()),
      /NonStandardError: input 0: the witness script uses OP_CHECKSEQUENCEVERIFY \(byte 0xb2 at 1\), which this chain's script interpreter does not run/)
  })

  describe('the refund, the payer alone after the expiry', () => {
    let expiry: number
    let coin: Coin

    before(async () => {
      expiry = (await chain.tipHeight()) + 5
      coin = await fund(channelScript(payee, payer, expiry))
      await mine()
    })

    it('is not final while its lock time, the expiry, is above the tip', async () => {
      const tip = await chain.tipHeight()
      assert.ok(tip < expiry)
      await assert.rejects(chain.broadcast(refund(coin, { lockTime: expiry })),
        new RegExp(`NonFinalError: lock time ${expiry} is above the tip ${tip}: it can enter a block once the chain reaches ${expiry}`))
      // a lock time that is a time is held to the clock: 4,000,000,000 s is in 2096
      await assert.rejects(chain.broadcast(refund(coin, { lockTime: 4_000_000_000 })),
        /NonFinalError: lock time 4000000000 \(2096-10-02T07:06:40Z\) is not yet past: it can enter a block after 2096-10-02T07:06:40Z; it is 20\d\d-/)
    })

    it('is refused by CHECKLOCKTIMEVERIFY when its lock time is below the expiry', async () => {
      const tip = await chain.tipHeight()
      await assert.rejects(chain.broadcast(refund(coin, { lockTime: tip })),
        new RegExp(`LockTimeError: input 0: the output cannot be spent before block ${expiry}; the transaction's lock time is ${tip}`))
      // no lock time at all (final, so it passes the finality rule) is no way round it
      await assert.rejects(chain.broadcast(refund(coin, { lockTime: 0 })),
        new RegExp(`LockTimeError: input 0: the output cannot be spent before block ${expiry}; the transaction's lock time is 0`))
      // nor is a lock time that is a time, however late
      await assert.rejects(chain.broadcast(refund(coin, { lockTime: 1_600_000_000 })),
        new RegExp(`LockTimeError: input 0: the output is locked until block ${expiry}, but the transaction's lock time 1600000000 is a time`))
    })

    it('is refused with nSequence 0xffffffff, which would turn the lock time off', async () => {
      // a final input makes the transaction final at once: only CLTV stands in the way
      await assert.rejects(chain.broadcast(refund(coin, { lockTime: expiry, sequence: 0xffffffff })),
        /LockTimeError: input 0: the input's nSequence is 0xffffffff, which turns the lock time off; use 0xfffffffe/)
    })

    it('is accepted once the chain reaches the expiry', async () => {
      await mine(expiry - await chain.tipHeight())
      assert.equal(await chain.tipHeight(), expiry)
      const txid = await chain.broadcast(refund(coin, { lockTime: expiry }))
      await mine()
      assert.equal(await chain.confirmations(txid), 1)
    })
  })

  it('answers outspend: unspent, then spent by a mempool transaction, then confirmed; the P2WSH address lists both', async () => {
    const coin = await fund(channelScript(payee, payer, (await chain.tipHeight()) + 1000))
    assert.deepEqual(await chain.outspend(coin.txid, coin.vout), { spent: false })
    const closeTxid = await chain.broadcast(close(coin, tx => [sign(tx, coin, payer), sign(tx, coin, payee), Uint8Array.of(1)]))
    assert.deepEqual(await chain.outspend(coin.txid, coin.vout), { spent: true, txid: closeTxid, vin: 0, confirmed: false })
    await mine()
    const tip = await chain.tipHeight()
    assert.deepEqual(await chain.outspend(coin.txid, coin.vout), { spent: true, txid: closeTxid, vin: 0, confirmed: true, blockHeight: tip })
    // the faucet's change output is another output of the same transaction, still unspent
    assert.deepEqual(await chain.outspend(coin.txid, 1 - coin.vout), { spent: false })
    await assert.rejects(chain.outspend(randomBytes(32).toString('hex'), 0), TransactionNotFoundError)
    await assert.rejects(chain.outspend(coin.txid, 7), TransactionNotFoundError)

    const history = await chain.transactions(coin.address)
    assert.deepEqual(history.map(t => t.txid).sort(), [coin.txid, closeTxid].sort())
    const closing = history.find(t => t.txid === closeTxid)
    assert.deepEqual(closing?.inputs.map(i => ({ address: i.address, value: i.value })), [{ address: coin.address, value: coin.value }])
    assert.deepEqual(await chain.balance(coin.address), { confirmed: 0n, unconfirmed: 0n, txCount: 2 })
  })
})

describe('the witness script interpreter, the opcodes a channel does not use', () => {
  const key = newKey()
  const value = 50_000n

  /** Run `chunks` over `stack` as input 0 of a transaction with this lock time and nSequence */
  const run = (chunks: Array<number | Uint8Array> | Uint8Array, stack: Array<Uint8Array | ((tx: Transaction, witnessScript: Uint8Array) => Uint8Array)> = [], options: { lockTime?: number, sequence?: number } = {}): void => {
    const witnessScript = chunks instanceof Uint8Array ? chunks : script.compile(chunks)
    const tx = new Transaction()
    tx.version = 2
    tx.locktime = options.lockTime ?? 0
    tx.addInput(randomBytes(32), 0, options.sequence ?? 0xfffffffe)
    tx.addOutput(address.toOutputScript(key.address, network), value - 1000n)
    runWitnessScript({ tx, index: 0, witnessScript, value, stack: stack.map(item => item instanceof Uint8Array ? item : item(tx, witnessScript)) })
  }
  const signed = (signer: Key) => (tx: Transaction, witnessScript: Uint8Array): Uint8Array =>
    script.signature.encode(secp256k1.sign(tx.hashForWitnessV0(0, witnessScript, value, Transaction.SIGHASH_ALL), signer.privateKey, { prehash: false, lowS: true }), Transaction.SIGHASH_ALL)
  const sha256 = (data: Uint8Array): Uint8Array => createHash('sha256').update(data).digest()

  it('runs a key hash script (DUP, HASH160, EQUALVERIFY, CHECKSIG)', () => {
    const p2pkhLike = [OPS.OP_DUP, OPS.OP_HASH160, payments.p2wpkh({ pubkey: key.publicKey }).hash as Uint8Array, OPS.OP_EQUALVERIFY, OPS.OP_CHECKSIG]
    run(p2pkhLike, [signed(key), key.publicKey])
    const other = newKey()
    assert.throws(() => { run(p2pkhLike, [signed(other), other.publicKey]) }, (err: Error) => err instanceof ScriptFailedError && /failed at OP_EQUALVERIFY: the two items on top of the stack differ/.test(err.message))
    assert.throws(() => { run(p2pkhLike, [signed(other), key.publicKey]) }, InvalidSignatureError)
    const uncompressed = secp256k1.getPublicKey(key.privateKey, false)
    assert.throws(() => { run([uncompressed, OPS.OP_CHECKSIG], [signed(key)]) }, /NonStandardError|must be compressed/)
  })

  it('runs a hash lock (SHA256, EQUAL) and NOTIF', () => {
    const preimage = Uint8Array.from(randomBytes(32))
    run([OPS.OP_SHA256, sha256(preimage), OPS.OP_EQUAL], [preimage])
    assert.throws(() => { run([OPS.OP_SHA256, sha256(preimage), OPS.OP_EQUAL], [Uint8Array.from(randomBytes(32))]) }, /it ended with false/)
    const notif = [OPS.OP_NOTIF, OPS.OP_1, OPS.OP_ELSE, OPS.OP_0, OPS.OP_ENDIF]
    run(notif, [EMPTY])
    assert.throws(() => { run(notif, [Uint8Array.of(1)]) }, /it ended with false/)
    // nested: the inner branch of an untaken outer one does not run, even after its OP_ELSE
    run([OPS.OP_0, OPS.OP_IF, OPS.OP_0, OPS.OP_IF, OPS.OP_ELSE, OPS.OP_0, OPS.OP_VERIFY, OPS.OP_ENDIF, OPS.OP_ENDIF, OPS.OP_16])
  })

  it('keeps the stack rules: OP_VERIFY, negative zero, OP_1NEGATE, an unbalanced IF, an empty stack', () => {
    run([OPS.OP_1NEGATE])
    assert.throws(() => { run([OPS.OP_VERIFY, OPS.OP_1], [Uint8Array.of(0, 0x80)]) }, /failed at OP_VERIFY: the item on top of the stack is false/)
    assert.throws(() => { run([OPS.OP_1, OPS.OP_IF, OPS.OP_1]) }, /1 OP_IF without OP_ENDIF/)
    assert.throws(() => { run([OPS.OP_1, OPS.OP_ENDIF]) }, /failed at OP_ENDIF: there is no OP_IF to go with it/)
    assert.throws(() => { run([OPS.OP_ELSE, OPS.OP_1]) }, /failed at OP_ELSE: there is no OP_IF/)
    assert.throws(() => { run([OPS.OP_DROP, OPS.OP_1]) }, /failed at OP_DROP: the stack is empty/)
    assert.throws(() => { run([OPS.OP_IF, OPS.OP_ENDIF, OPS.OP_1]) }, /failed at OP_IF: the stack is empty/)
    assert.throws(() => { run([OPS.OP_1, OPS.OP_1]) }, /2 items on the stack, not exactly one \(CLEANSTACK\)/)
  })

  it('refuses what it does not run, in a branch taken or not, and pushes that are not the shortest', () => {
    assert.throws(() => { run([OPS.OP_0, OPS.OP_IF, OPS.OP_CAT, OPS.OP_ENDIF, OPS.OP_1]) }, (err: Error) => err instanceof NonStandardError && /uses OP_CAT \(byte 0x7e at 2\)/.test(err.message))
    assert.throws(() => { run(Uint8Array.of(OPS.OP_PUSHDATA4, 1, 0, 0, 0, 7)) }, /uses OP_PUSHDATA4/)
    assert.throws(() => { run(Uint8Array.of(0xc0)) }, /uses opcode 0xc0/)
    assert.throws(() => { run(Uint8Array.of(0x01, 0x05)) }, /pushes 1 bytes with opcode 0x01, not the shortest way \(MINIMALDATA\)/)
    assert.throws(() => { run(Uint8Array.of(OPS.OP_PUSHDATA1, 3, 1, 2, 3)) }, /pushes 3 bytes with OP_PUSHDATA1, not the shortest way/)
    run(Uint8Array.of(OPS.OP_PUSHDATA1, 76, ...new Uint8Array(75), 1))
    assert.throws(() => { run(Uint8Array.of(0x05, 1, 2)) }, /ends inside a push of 5 bytes/)
    assert.throws(() => { run([OPS.OP_1], [new Uint8Array(81)]) }, /witness item 0 of 81 bytes is above the standard 80/)
  })

  it('checks CHECKLOCKTIMEVERIFY as BIP65 says, for heights and for times', () => {
    const height = [script.number.encode(300), OPS.OP_CHECKLOCKTIMEVERIFY]
    run(height, [], { lockTime: 300 })
    run(height, [], { lockTime: 301 })
    assert.throws(() => { run(height, [], { lockTime: 299 }) }, (err: Error) => err instanceof LockTimeError && /the output cannot be spent before block 300; the transaction's lock time is 299/.test(err.message))
    assert.throws(() => { run(height, [], { lockTime: 300, sequence: 0xffffffff }) }, /nSequence is 0xffffffff/)
    assert.throws(() => { run([OPS.OP_CHECKLOCKTIMEVERIFY], [], { lockTime: 300 }) }, /OP_CHECKLOCKTIMEVERIFY found the stack empty/)
    assert.throws(() => { run([OPS.OP_1NEGATE, OPS.OP_CHECKLOCKTIMEVERIFY], [], { lockTime: 300 }) }, /argument -1 is negative/)
    assert.throws(() => { run([Uint8Array.of(1, 0), OPS.OP_CHECKLOCKTIMEVERIFY], [], { lockTime: 300 }) }, /argument 0x0100 is not a minimal script number/)
    assert.throws(() => { run([Uint8Array.of(1, 0, 0, 0, 0, 0), OPS.OP_CHECKLOCKTIMEVERIFY], [], { lockTime: 300 }) }, /not a minimal script number of at most 5 bytes/)
    // a time: 1,700,000,000 s is 2023-11-14T22:13:20Z; 0xffffffff needs five bytes as a script number
    const time = [script.number.encode(1_700_000_000), OPS.OP_CHECKLOCKTIMEVERIFY]
    run(time, [], { lockTime: 1_700_000_000 })
    assert.throws(() => { run(time, [], { lockTime: 1_699_999_999 }) }, /cannot be spent before 2023-11-14T22:13:20Z; the transaction's lock time is 2023-11-14T22:13:19Z/)
    assert.throws(() => { run(time, [], { lockTime: 300 }) }, /locked until 2023-11-14T22:13:20Z, but the transaction's lock time 300 is a block height/)
    run([script.number.encode(0xffffffff), OPS.OP_CHECKLOCKTIMEVERIFY], [], { lockTime: 0xffffffff })
  })
})
