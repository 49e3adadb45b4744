import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Transaction, payments } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { Wallet } from '../../src/payments/wallet/wallet.ts'
import { buildTransaction, FeeTooHighError, type SpendableOutput } from '../../src/payments/wallet/tx-builder.ts'
import { bitcoinNetwork } from '../../src/protocols/bitcoin-networks.ts'
import { tempDir } from '../helpers/nodes.ts'

const ABANDON = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about'

describe('HD wallet', () => {
  it('derives the BIP84 test vectors', async () => {
    const dir = await tempDir()
    try {
      // BIP84's own test vectors for this mnemonic, account 0 on mainnet
      const wallet = await Wallet.open({ path: join(dir.path, 'w.json'), network: 'mainnet', mnemonic: ABANDON })
      assert.equal(wallet.addressAt(false, 0), 'bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu')
      assert.equal(wallet.addressAt(false, 1), 'bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g')
      assert.equal(wallet.addressAt(true, 0), 'bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el')
      assert.equal(wallet.identityAddress, 'bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu')
    } finally {
      await dir.cleanup()
    }
  })

  it('is created once, mode 0600, and hands out each address once across reopening', async () => {
    const dir = await tempDir()
    try {
      const path = join(dir.path, 'wallet.json')
      const first = await Wallet.open({ path, network: 'regtest' })
      assert.equal((await stat(path)).mode & 0o777, 0o600)
      const a = await first.newAddress()
      const again = await Wallet.open({ path, network: 'regtest' })
      const b = await again.newAddress()
      assert.notEqual(a, b)
      assert.ok(again.owns(a) && again.owns(b))
      assert.match(a, /^bcrt1q/)
      await assert.rejects(Wallet.open({ path, network: 'mainnet' }), /is for regtest, but the node is configured for mainnet/)
    } finally {
      await dir.cleanup()
    }
  })

  it('encrypts the mnemonic with a passphrase and refuses the wrong one', async () => {
    const dir = await tempDir()
    try {
      const path = join(dir.path, 'wallet.json')
      const wallet = await Wallet.open({ path, network: 'regtest', passphrase: 'correct horse', mnemonic: ABANDON })
      const file = await readFile(path, 'utf8')
      assert.ok(!file.includes('abandon'), 'the mnemonic is not stored in the clear')
      assert.equal(wallet.encrypted, true)
      await assert.rejects(Wallet.open({ path, network: 'regtest' }), { name: 'WalletLockedError', message: /OPENCLOUD_WALLET_PASSPHRASE/ })
      await assert.rejects(Wallet.open({ path, network: 'regtest', passphrase: 'wrong' }), /passphrase is wrong/)
      const reopened = await Wallet.open({ path, network: 'regtest', passphrase: 'correct horse' })
      assert.equal(reopened.identityAddress, wallet.identityAddress)
    } finally {
      await dir.cleanup()
    }
  })
})

describe('building a payment', () => {
  const network = bitcoinNetwork('regtest')
  const key = new Uint8Array(32).fill(3)
  const to = payments.p2wpkh({ pubkey: secp256k1.getPublicKey(new Uint8Array(32).fill(4), true), network }).address as string
  const change = payments.p2wpkh({ pubkey: secp256k1.getPublicKey(key, true), network }).address as string
  const coin = (value: bigint, n: number): SpendableOutput => ({ txid: String(n).repeat(64).slice(0, 64), vout: 0, value, privateKey: key })
  const build = (coins: SpendableOutput[], value: bigint, maxFee?: bigint) => buildTransaction({ coins, payees: [{ address: to, value }], changeAddress: change, feeRate: 1, network, maxFee })

  it('says in BTC what an empty or short wallet lacks, with the fee of at least one coin', () => {
    assert.throws(() => build([], 1000n), {
      name: 'InsufficientFundsError',
      message: 'the wallet has 0 BTC spendable; 0.00001 BTC plus a fee of about 0.00000141 BTC is needed: fund the wallet'
    })
    assert.throws(() => build([coin(700n, 1)], 2300n), { message: /^the wallet has 0.000007 BTC spendable; 0.000023 BTC plus a fee of about 0.00000141 BTC/ })
  })

  it('refuses, in BTC, a payment below the dust limit', () => {
    assert.throws(() => build([coin(100_000n, 1)], 293n), {
      name: 'DustPaymentError',
      message: "0.00000293 BTC is below bitcoin's dust limit of 0.00000294 BTC and cannot be paid on chain: pay at least 0.00000294 BTC, or defer small payments so they are settled together"
    })
    assert.equal(build([coin(100_000n, 1)], 294n).fee, 141n)
  })

  it('never pays a fee over the limit, counting change too small to keep', () => {
    // 700 sat in, 300 out: 141 sat of fee and 259 sat of change too small to keep
    assert.throws(() => build([coin(700n, 1)], 300n, 300n), (err: any) => {
      assert.ok(err instanceof FeeTooHighError)
      assert.equal(err.fee, 400n)
      assert.equal(err.lostChange, 259n)
      assert.match(err.message, /the fee would be 0.000004 BTC \(0.00000259 BTC of it change too small to keep\), more than the 0.000003 BTC it may be/)
      return true
    })
    assert.equal(build([coin(700n, 1)], 300n, 400n).fee, 400n)
  })

  it('pays for every byte at the fee rate, an OP_RETURN output included', () => {
    for (const data of [undefined, new Uint8Array(32).fill(9), new Uint8Array(80)]) {
      const built = buildTransaction({ coins: [coin(100_000n, 1)], payees: data == null ? [{ address: to, value: 1000n }] : [], changeAddress: change, feeRate: 3, network, data })
      const vbytes = Transaction.fromHex(built.hex).virtualSize()
      // the estimate counts a signature at its largest (73 bytes): at most a vbyte over per input
      assert.ok(built.fee >= BigInt(vbytes) * 3n && built.fee <= BigInt(vbytes + 1) * 3n, `${built.fee} sat for ${vbytes} vB at 3 sat/vB`)
    }
  })

  it('adds a coin rather than give change to the fee when its input costs less', () => {
    // the 600 sat coin alone leaves 159 sat of change, lost to the fee; with the
    // 400 sat coin too the fee is 209 sat and 491 sat comes back
    const built = build([coin(400n, 2), coin(600n, 1)], 300n)
    assert.equal(built.fee, 209n)
    assert.equal(built.change, 491n)
    // a coin too small to bring the change over the dust limit is not added
    assert.equal(build([coin(600n, 1), coin(100n, 2)], 300n).fee, 300n)
  })
})
