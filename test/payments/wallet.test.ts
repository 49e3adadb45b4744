import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Wallet } from '../../src/payments/wallet/wallet.ts'
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
