import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { HDKey } from '@scure/bip32'
import { generateMnemonic, mnemonicToSeedSync, validateMnemonic } from '@scure/bip39'
import { wordlist } from '@scure/bip39/wordlists/english.js'
import { payments } from 'bitcoinjs-lib'
import { logger } from '@libp2p/logger'
import { writeFileAtomic } from '../../node/files.ts'
import { bitcoinNetwork, checkAddressNetwork, coinType, type BitcoinNetworkName } from './networks.ts'
import { buildTransaction, type SpendableOutput } from './tx-builder.ts'
import type { ChainBackend, TxInfo } from '../chain/interface.ts'

const log = logger('opencloud:wallet')

/**
 * The node's HD wallet: a BIP39 mnemonic, BIP84 native segwit accounts
 * (m/84'/coin'/0'/change/index), kept in wallet.json in the data directory
 * with mode 0600, optionally encrypted with a passphrase (scrypt, then
 * AES-256-GCM). Addresses are handed out in order and the next index is
 * saved before an address leaves the wallet, so a crash never reuses one.
 */

interface WalletFile {
  version: 1
  network: BitcoinNetworkName
  createdAt: string
  mnemonic?: string
  encrypted?: { kdf: 'scrypt', N: number, r: number, p: number, salt: string, iv: string, tag: string, ciphertext: string }
  /** next unused receive and change indexes */
  receiveIndex: number
  changeIndex: number
}

export class WalletError extends Error {
  override name = 'WalletError'
}

export class WalletLockedError extends WalletError {
  override name = 'WalletLockedError'
}

export interface WalletInit {
  path: string
  network: BitcoinNetworkName
  /** Encrypts a new wallet; required to open an encrypted one */
  passphrase?: string
  /** Restore from this mnemonic instead of making a new one */
  mnemonic?: string
}

export interface OwnedAddress {
  address: string
  change: boolean
  index: number
}

export interface WalletTx {
  txid: string
  /** satoshis in (positive) or out (negative) of the wallet, fee included */
  delta: bigint
  fee: bigint
  confirmed: boolean
  blockHeight?: number
}

const SCRYPT = { N: 1 << 15, r: 8, p: 1 }

function encrypt (mnemonic: string, passphrase: string): NonNullable<WalletFile['encrypted']> {
  const salt = randomBytes(16)
  const key = scryptSync(passphrase, salt, 32, { ...SCRYPT, maxmem: 64 * 1024 * 1024 })
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const ciphertext = Buffer.concat([cipher.update(mnemonic, 'utf8'), cipher.final()])
  return { kdf: 'scrypt', ...SCRYPT, salt: salt.toString('hex'), iv: iv.toString('hex'), tag: cipher.getAuthTag().toString('hex'), ciphertext: ciphertext.toString('hex') }
}

function decrypt (box: NonNullable<WalletFile['encrypted']>, passphrase: string): string {
  const key = scryptSync(passphrase, Buffer.from(box.salt, 'hex'), 32, { N: box.N, r: box.r, p: box.p, maxmem: 64 * 1024 * 1024 })
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(box.iv, 'hex'))
  decipher.setAuthTag(Buffer.from(box.tag, 'hex'))
  try {
    return Buffer.concat([decipher.update(Buffer.from(box.ciphertext, 'hex')), decipher.final()]).toString('utf8')
  } catch {
    throw new WalletLockedError('the wallet passphrase is wrong')
  }
}

export class Wallet {
  readonly network: BitcoinNetworkName
  private readonly path: string
  private readonly file: WalletFile
  private readonly account: HDKey
  private readonly owned = new Map<string, OwnedAddress>()

  private constructor (path: string, file: WalletFile, mnemonic: string) {
    this.path = path
    this.file = file
    this.network = file.network
    const root = HDKey.fromMasterSeed(mnemonicToSeedSync(mnemonic))
    this.account = root.derive(`m/84'/${coinType(file.network)}'/0'`)
    this.refreshOwned()
  }

  /** Open wallet.json, or create it (with a new or the given mnemonic) */
  static async open (init: WalletInit): Promise<Wallet> {
    let text: string | undefined
    try {
      text = await readFile(init.path, 'utf8')
    } catch (err: any) {
      if (err.code !== 'ENOENT') {
        throw new WalletError(`cannot read the wallet ${init.path}: ${err.message}`)
      }
    }
    if (text == null) {
      const mnemonic = init.mnemonic ?? generateMnemonic(wordlist, 256)
      if (!validateMnemonic(mnemonic, wordlist)) {
        throw new WalletError('the mnemonic is not a valid BIP39 English mnemonic')
      }
      const file: WalletFile = {
        version: 1,
        network: init.network,
        createdAt: new Date().toISOString(),
        ...(init.passphrase != null && init.passphrase !== '' ? { encrypted: encrypt(mnemonic, init.passphrase) } : { mnemonic }),
        receiveIndex: 0,
        changeIndex: 0
      }
      await writeFileAtomic(init.path, JSON.stringify(file, null, 2) + '\n', 0o600)
      log('created a %s wallet', init.network)
      return new Wallet(init.path, file, mnemonic)
    }
    let file: WalletFile
    try {
      file = JSON.parse(text)
    } catch {
      throw new WalletError(`${init.path} is not valid JSON; restore the wallet from its mnemonic`)
    }
    if (file.network !== init.network) {
      throw new WalletError(`the wallet in ${init.path} is for ${file.network}, but the node is configured for ${init.network}`)
    }
    let mnemonic: string
    if (file.encrypted != null) {
      if (init.passphrase == null || init.passphrase === '') {
        throw new WalletLockedError('the wallet is encrypted: give its passphrase in OPENCLOUD_WALLET_PASSPHRASE')
      }
      mnemonic = decrypt(file.encrypted, init.passphrase)
    } else if (file.mnemonic != null) {
      mnemonic = file.mnemonic
    } else {
      throw new WalletError(`${init.path} holds no mnemonic`)
    }
    return new Wallet(init.path, file, mnemonic)
  }

  get encrypted (): boolean {
    return this.file.encrypted != null
  }

  private key (change: boolean, index: number): HDKey {
    return this.account.derive(`m/${change ? 1 : 0}/${index}`)
  }

  addressAt (change: boolean, index: number): string {
    const pubkey = this.key(change, index).publicKey as Uint8Array
    return payments.p2wpkh({ pubkey, network: bitcoinNetwork(this.network) }).address as string
  }

  privateKeyOf (address: string): Uint8Array {
    const owned = this.owned.get(address)
    if (owned == null) {
      throw new WalletError(`${address} is not an address of this wallet`)
    }
    return this.key(owned.change, owned.index).privateKey as Uint8Array
  }

  /** The wallet's first receive address, used as its bitcoin credential */
  get identityAddress (): string {
    return this.addressAt(false, 0)
  }

  private refreshOwned (): void {
    // the first index is always owned, so the identity address counts
    for (let i = 0; i < Math.max(1, this.file.receiveIndex); i++) {
      const address = this.addressAt(false, i)
      this.owned.set(address, { address, change: false, index: i })
    }
    for (let i = 0; i < this.file.changeIndex; i++) {
      const address = this.addressAt(true, i)
      this.owned.set(address, { address, change: true, index: i })
    }
  }

  private async save (): Promise<void> {
    await writeFileAtomic(this.path, JSON.stringify(this.file, null, 2) + '\n', 0o600)
  }

  /** A receive address never handed out before */
  async newAddress (change = false): Promise<string> {
    const index = change ? this.file.changeIndex++ : this.file.receiveIndex++
    await this.save()
    const address = this.addressAt(change, index)
    this.owned.set(address, { address, change, index })
    return address
  }

  owns (address: string): boolean {
    return this.owned.has(address)
  }

  addresses (): OwnedAddress[] {
    return [...this.owned.values()]
  }

  async spendable (chain: ChainBackend): Promise<SpendableOutput[]> {
    const lists = await Promise.all(this.addresses().map(async a => (await chain.utxos(a.address)).map(u => ({ ...u, privateKey: this.privateKeyOf(a.address) }))))
    return lists.flat()
  }

  async balance (chain: ChainBackend): Promise<{ confirmed: bigint, unconfirmed: bigint }> {
    const balances = await Promise.all(this.addresses().map(async a => chain.balance(a.address)))
    return {
      confirmed: balances.reduce((s, b) => s + b.confirmed, 0n),
      unconfirmed: balances.reduce((s, b) => s + b.unconfirmed, 0n)
    }
  }

  /** Build and sign a payment; `broadcast` is separate so an attached payment can travel in a request instead */
  async createPayment (chain: ChainBackend, payees: Array<{ address: string, value: bigint }>, feeRate?: number): Promise<{ hex: string, txid: string, fee: bigint }> {
    const coins = await this.spendable(chain)
    const changeAddress = await this.newAddress(true)
    return buildTransaction({ coins, payees, changeAddress, feeRate: feeRate ?? await chain.feeRate(6), network: bitcoinNetwork(this.network) })
  }

  async send (chain: ChainBackend, address: string, value: bigint, feeRate?: number): Promise<{ txid: string, fee: bigint }> {
    checkAddressNetwork(address, this.network)
    const payment = await this.createPayment(chain, [{ address, value }], feeRate)
    await chain.broadcast(payment.hex)
    return { txid: payment.txid, fee: payment.fee }
  }

  async history (chain: ChainBackend): Promise<WalletTx[]> {
    const seen = new Map<string, TxInfo>()
    for (const a of this.addresses()) {
      for (const tx of await chain.transactions(a.address)) {
        seen.set(tx.txid, tx)
      }
    }
    return [...seen.values()].map(tx => {
      const received = tx.outputs.reduce((s, o) => s + (o.address != null && this.owns(o.address) ? o.value : 0n), 0n)
      const spent = tx.inputs.reduce((s, i) => s + (i.address != null && this.owns(i.address) ? (i.value ?? 0n) : 0n), 0n)
      return { txid: tx.txid, delta: received - spent, fee: tx.fee, confirmed: tx.status.confirmed, blockHeight: tx.status.blockHeight }
    }).sort((a, b) => (b.blockHeight ?? Infinity) - (a.blockHeight ?? Infinity))
  }
}
