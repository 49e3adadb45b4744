import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Transaction, address, payments, networks, script } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { EsploraClient } from '../../src/payments/chain/esplora.ts'
import { buildTransaction } from '../../src/payments/wallet/tx-builder.ts'
import { tempDir } from '../helpers/nodes.ts'

const network = networks.regtest

function newKey (): { privateKey: Uint8Array, address: string } {
  const privateKey = Uint8Array.from(randomBytes(32))
  return { privateKey, address: payments.p2wpkh({ pubkey: secp256k1.getPublicKey(privateKey, true), network }).address as string }
}

/**
 * Sign whatever outputs we ask for, with the bare Transaction API: PSBT
 * refuses to build some of the transactions the chain must refuse.
 */
function rawSpend (coin: { txid: string, vout: number, value: bigint, privateKey: Uint8Array }, outputs: Array<{ address: string, value: bigint }>): string {
  const publicKey = secp256k1.getPublicKey(coin.privateKey, true)
  const tx = new Transaction()
  tx.version = 2
  tx.addInput(Buffer.from(coin.txid, 'hex').reverse(), coin.vout)
  for (const o of outputs) {
    tx.addOutput(address.toOutputScript(o.address, network), o.value)
  }
  const scriptCode = payments.p2pkh({ pubkey: publicKey }).output as Uint8Array
  const sighash = tx.hashForWitnessV0(0, scriptCode, coin.value, Transaction.SIGHASH_ALL)
  const signature = secp256k1.sign(sighash, coin.privateKey, { prehash: false, lowS: true })
  tx.setWitness(0, [script.signature.encode(signature, Transaction.SIGHASH_ALL), publicKey])
  return tx.toHex()
}

describe('the local regtest chain', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let server: RegtestServer
  let chain: EsploraClient
  const alice = newKey()
  const bob = newKey()
  let funding: string

  before(async () => {
    dir = await tempDir()
    server = new RegtestServer({ dir: dir.path, blockIntervalMs: 0 })
    await server.start()
    chain = new EsploraClient({ url: server.url })
    funding = await server.faucet(alice.address, 1_000_000n)
    await fetch(`${server.url}/regtest/mine?blocks=1`, { method: 'POST' })
  })

  after(async () => {
    await server?.stop()
    await dir?.cleanup()
  })

  const aliceCoin = async (): Promise<{ txid: string, vout: number, value: bigint, privateKey: Uint8Array }> => {
    const [utxo] = await chain.utxos(alice.address)
    return { ...utxo, privateKey: alice.privateKey }
  }

  it('funds an address from its faucet and reports it through the Esplora API', async () => {
    assert.deepEqual(await chain.balance(alice.address), { confirmed: 1_000_000n, unconfirmed: 0n, txCount: 1 })
    assert.equal(await chain.confirmations(funding), 1)
    assert.ok(await chain.tipHeight() >= 111)
    const tx = await chain.transaction(funding)
    assert.ok(tx.outputs.some(o => o.address === alice.address && o.value === 1_000_000n))
  })

  it('accepts a valid payment, then confirms it in a block', async () => {
    const built = buildTransaction({ coins: [await aliceCoin()], payees: [{ address: bob.address, value: 200_000n }], changeAddress: alice.address, feeRate: 2, network })
    assert.equal(await chain.broadcast(built.hex), built.txid)
    assert.equal(await chain.confirmations(built.txid), 0)
    assert.deepEqual(await chain.balance(bob.address), { confirmed: 0n, unconfirmed: 200_000n, txCount: 1 })
    await fetch(`${server.url}/regtest/mine`, { method: 'POST' })
    assert.equal(await chain.confirmations(built.txid), 1)
    assert.equal((await chain.balance(bob.address)).confirmed, 200_000n)
    assert.equal((await chain.balance(alice.address)).confirmed, 1_000_000n - 200_000n - built.fee)
  })

  it('refuses an invalid signature', async () => {
    const coin = await aliceCoin()
    const tx = Transaction.fromHex(rawSpend(coin, [{ address: bob.address, value: coin.value - 1000n }]))
    const sig = Buffer.from(tx.ins[0].witness[0])
    sig[10] ^= 0x01
    tx.ins[0].witness[0] = sig
    await assert.rejects(chain.broadcast(tx.toHex()), /InvalidSignatureError: input 0: the signature (does not verify|is not strict DER)/)
    // someone else's key cannot spend alice's coin either
    const stolen = rawSpend({ ...coin, privateKey: bob.privateKey }, [{ address: bob.address, value: coin.value - 1000n }])
    await assert.rejects(chain.broadcast(stolen), /InvalidSignatureError: input 0: the public key does not match/)
  })

  it('refuses an input that was already spent, in a block or in the mempool', async () => {
    await assert.rejects(chain.broadcast(rawSpend({ txid: funding, vout: 0, value: 1_000_000n, privateKey: alice.privateKey }, [{ address: bob.address, value: 900_000n }])),
      /SpentInputError: .*already spent|UnknownInputError/)
    const coin = await aliceCoin()
    await chain.broadcast(rawSpend(coin, [{ address: bob.address, value: coin.value - 1000n }]))
    await assert.rejects(chain.broadcast(rawSpend(coin, [{ address: alice.address, value: coin.value - 2000n }])), /SpentInputError: .*a double spend/)
    await fetch(`${server.url}/regtest/mine`, { method: 'POST' })
  })

  it('refuses to create more than it spends, and fees below 1 sat/vB', async () => {
    const [coin] = (await chain.utxos(bob.address)).map(u => ({ ...u, privateKey: bob.privateKey }))
    await assert.rejects(chain.broadcast(rawSpend(coin, [{ address: alice.address, value: coin.value + 1n }])), /OverspendError: the outputs \(0\.\d+ BTC\) exceed the inputs \(0\.\d+ BTC\)/)
    await assert.rejects(chain.broadcast(rawSpend(coin, [{ address: alice.address, value: coin.value - 10n }])), /FeeTooLowError: the fee of 0\.0000001 BTC is below the minimum of 0\.00000\d+ BTC \(1 sat\/vB x \d+ vB\)/)
    await assert.rejects(chain.broadcast(rawSpend(coin, [{ address: alice.address, value: 100n }])), /NonStandardError: output 0 of 0\.000001 BTC is below the dust limit of 0\.00000294 BTC/)
  })

  it('refuses an input it has never seen, and garbage', async () => {
    const unknown = rawSpend({ txid: randomBytes(32).toString('hex'), vout: 0, value: 50_000n, privateKey: alice.privateKey }, [{ address: bob.address, value: 40_000n }])
    await assert.rejects(chain.broadcast(unknown), /UnknownInputError: input 0 spends [0-9a-f]{64}:0, which this chain has never seen/)
    await assert.rejects(chain.broadcast('deadbeef'), /MalformedTransactionError/)
  })

  it('keeps coinbase outputs unspendable for 100 blocks', async () => {
    const miner = newKey()
    await fetch(`${server.url}/regtest/mine?address=${miner.address}`, { method: 'POST' })
    const [coinbase] = await chain.utxos(miner.address)
    await assert.rejects(chain.broadcast(rawSpend({ ...coinbase, privateKey: miner.privateKey }, [{ address: bob.address, value: coinbase.value - 10_000n }])), /matures after 100 blocks/)
  })

  it('keeps its blocks, UTXO set and mempool across a restart', async () => {
    const [utxo] = await chain.utxos(bob.address)
    const coin = { ...utxo, privateKey: bob.privateKey }
    const pending = rawSpend(coin, [{ address: alice.address, value: coin.value - 1000n }])
    const txid = await chain.broadcast(pending)
    const before = { height: await chain.tipHeight(), alice: await chain.balance(alice.address), bob: await chain.balance(bob.address) }
    await server.stop()
    server = new RegtestServer({ dir: dir.path, blockIntervalMs: 0 })
    await server.start()
    chain = new EsploraClient({ url: server.url })
    assert.deepEqual({ height: await chain.tipHeight(), alice: await chain.balance(alice.address), bob: await chain.balance(bob.address) }, before)
    assert.equal(await chain.confirmations(txid), 0, 'the mempool survived')
    await assert.rejects(chain.broadcast(rawSpend(coin, [{ address: alice.address, value: coin.value - 5000n }])), /double spend/)
  })
})
