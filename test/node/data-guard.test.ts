import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, rm, stat, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { loadConfig } from '../../src/node/config.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { EsploraClient } from '../../src/payments/chain/esplora.ts'
import { Wallet, GAP_LIMIT } from '../../src/payments/wallet/wallet.ts'
import { tempDir } from '../helpers/nodes.ts'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'

/**
 * Lost key files and datastores (issue 8, items 5 and 13): a node refuses to
 * start as someone new, says in one sentence what is missing and how to
 * restore it, and a wallet restored from its mnemonic finds its money.
 */
describe('a data directory that lost something', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  let chain: EsploraClient

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: join(dir.path, 'chain'), blockIntervalMs: 0 })
    await regtest.start()
    chain = new EsploraClient({ url: regtest.url })
  })

  after(async () => {
    await regtest?.stop()
    await dir?.cleanup()
  })

  /** A node that ran once, with a config.json of its own, a promise in its ledger, and stopped */
  const ranOnce = async (name: string, options: { randomIdentity?: boolean } = {}): Promise<{ root: string, peerId: string, wallet: string }> => {
    const root = join(dir.path, name)
    await mkdir(root, { recursive: true, mode: 0o755 })
    await chmod(root, 0o755)
    if (options.randomIdentity === true) {
      // a key made before identities came from the wallet's seed
      await writeFile(join(root, 'identity.key'), privateKeyToProtobuf(await generateKeyPair('Ed25519')), { mode: 0o600 })
    }
    await writeFile(join(root, 'config.json'), JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], payments: { chain: regtest.url } }))
    const node = await OpenCloudNode.create({ dataDir: root })
    await node.tabs.addPromise({ role: 'receivable', peer: node.peerId.toString(), id: 'x', sats: 500n, threshold: '', service: 'sha256', method: 'hash' })
    const ran = { root, peerId: node.peerId.toString(), wallet: node.wallet.identityAddress }
    await node.stop()
    return ran
  }

  it('keeps secrets and the ledger to their owner, whatever modes the directory had', async () => {
    const { root } = await ranOnce('modes')
    assert.equal((await stat(root)).mode & 0o777, 0o700)
    assert.equal((await stat(join(root, 'datastore'))).mode & 0o777, 0o700)
    for (const file of ['identity.key', 'wallet.json']) {
      assert.equal((await stat(join(root, file))).mode & 0o777, 0o600, file)
    }
  })

  it('refuses to start without wallet.json, naming the wallet, the debts and the restore command', async () => {
    const { root, wallet } = await ranOnce('no-wallet')
    await rm(join(root, 'wallet.json'))
    await assert.rejects(OpenCloudNode.create({ dataDir: root }), (err: any) => {
      assert.equal(err.name, 'MissingDataError')
      assert.match(err.message, new RegExp(`^wallet.json is missing, but this node's wallet was ${wallet} and its ledger holds 1 deferred payment\\(s\\): restore .*wallet.json from a backup, or restore the wallet from its mnemonic with: (npx )?opencloud-node wallet restore --data-dir ${root}$`))
      return true
    })
  })

  it('refuses to start without identity.key when it was a random key, naming the identity', async () => {
    const { root, peerId } = await ranOnce('no-identity', { randomIdentity: true })
    await rm(join(root, 'identity.key'))
    await assert.rejects(OpenCloudNode.create({ dataDir: root }), new RegExp(`identity.key is missing, but this node was ${peerId}: restore .*this one was not made from the wallet's words`))
  })

  it('makes identity.key again from the wallet\'s seed when it was made from it, quietly', async () => {
    const { root, peerId } = await ranOnce('derived-identity')
    await rm(join(root, 'identity.key'))
    const node = await OpenCloudNode.create({ dataDir: root })
    try {
      assert.equal(node.peerId.toString(), peerId)
      assert.equal((await stat(join(root, 'identity.key'))).mode & 0o777, 0o600)
    } finally {
      await node.stop()
    }
  })

  it('refuses to start on an empty or replaced datastore', async () => {
    const { root } = await ranOnce('no-datastore')
    // (without only datastore/CURRENT, LevelDB here recovers every record: nothing is lost)
    await rm(join(root, 'datastore'), { recursive: true })
    await assert.rejects(OpenCloudNode.create({ dataDir: root }), /the datastore in .* is not the one this node had .*restore datastore\/ from a backup, or, to start with an empty ledger, delete .*datastore.id/)
  })

  it('refuses to start on the defaults when config.json is gone, and says how to restore it', async () => {
    const { root } = await ranOnce('no-config')
    await rm(join(root, 'config.json'))
    await assert.rejects(loadConfig(join(root, 'config.json')), /config.json is missing, but this node ran with one: restore it from the copy of the last one \(cp .*config.json.last .*config.json\)/)
  })

  it('restores a wallet from its mnemonic, finds the addresses it used, and its balance', async () => {
    const path = join(dir.path, 'wallet-a.json')
    const original = await Wallet.open({ path, network: 'regtest' })
    // money on the 1st, 4th and (a gap later) the 12th receive address, and change
    const addresses = []
    for (let i = 0; i < 12; i++) {
      addresses.push(await original.newAddress())
    }
    for (const i of [0, 3, 11]) {
      await regtest.faucet(addresses[i], 10_000n)
    }
    await regtest.faucet(await original.newAddress(true), 5_000n)
    await regtest.chain.mine(1, regtest.faucetAddress)
    const before = await original.balance(chain)

    const restored = await Wallet.restore({ path: join(dir.path, 'wallet-b.json'), network: 'regtest', mnemonic: ` ${original.backupPhrase().toUpperCase()} \n` })
    assert.equal(restored.scanNeeded, true)
    assert.equal((await restored.balance(chain)).confirmed, 10_000n, 'before the scan only the first address is known')
    assert.deepEqual(await restored.scan(chain), { receive: 12, change: 1 })
    assert.equal(restored.scanNeeded, false)
    assert.deepEqual(await restored.balance(chain), before)
    await assert.rejects(Wallet.restore({ path, network: 'regtest', mnemonic: original.backupPhrase() }), /exists: a wallet is restored only where there is none/)
  })

  it('reuses a change address nothing was sent to, so failed payments leave no trail a restore would miss', async () => {
    const wallet = await Wallet.open({ path: join(dir.path, 'wallet-d.json'), network: 'regtest' })
    await regtest.faucet(await wallet.newAddress(), 100_000n)
    await regtest.chain.mine(1, regtest.faucetAddress)
    const payee = regtest.faucetAddress
    // built but never broadcast, as when a server refuses an attached payment
    const first = await wallet.createPayment(chain, [{ address: payee, value: 1000n }])
    const second = await wallet.createPayment(chain, [{ address: payee, value: 2000n }])
    assert.notEqual(first.txid, second.txid)
    assert.equal(wallet.addresses().filter(a => a.change).length, 1, 'one change address for both')
    await chain.broadcast(second.hex)
    await wallet.createPayment(chain, [{ address: payee, value: 1000n }])
    assert.equal(wallet.addresses().filter(a => a.change).length, 2, 'a change address the chain has seen is not used again')
  })

  it('hands a payer its unpaid address again, and never more than the gap limit of unpaid addresses', async () => {
    const wallet = await Wallet.open({ path: join(dir.path, 'wallet-c.json'), network: 'regtest' })
    assert.equal(await wallet.addressFor('alice'), await wallet.addressFor('alice'))
    const handed = new Set<string>()
    for (let i = 0; i < 5000; i++) {
      handed.add(await wallet.addressFor(`caller-${i}`))
    }
    assert.ok(handed.size <= GAP_LIMIT, `${handed.size} addresses for 5,000 callers`)
    assert.ok(wallet.addresses().length <= GAP_LIMIT + 1)
    // once one is paid, the window moves on
    const paid = await wallet.addressFor('alice')
    await wallet.markPaid([paid])
    assert.notEqual(await wallet.addressFor('alice'), paid)
  })
})
