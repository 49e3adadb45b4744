import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { HDKey } from '@scure/bip32'
import { storageKeyFromSeed } from '../../storage/protocol/crypto.ts'
import { indexKeyFromSeed } from '../../storage/protocol/index-notes.ts'
import { generateMnemonic, mnemonicToSeedSync, validateMnemonic } from '@scure/bip39'
import { wordlist } from '@scure/bip39/wordlists/english.js'
import { payments } from 'bitcoinjs-lib'
import { logger } from '@libp2p/logger'
import { writeFileAtomic } from '../../utils/files.ts'
import { bitcoinNetwork, checkAddressNetwork, coinType, type BitcoinNetworkName } from '../../protocols/bitcoin-networks.ts'
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
  /** the highest receive index a payment was seen to, -1 for none */
  lastUsedReceive?: number
  /** set when restored from a mnemonic: the next start with a chain scans for used addresses */
  scanNeeded?: boolean
}

/**
 * How many receive addresses may be handed out beyond the last one that was
 * paid. BIP44's gap limit: a wallet restored from its mnemonic scans until it
 * finds this many unused addresses in a row, so no address further out may
 * ever hold money. It also bounds what a flood of callers asking for
 * addresses can make the wallet track.
 */
export const GAP_LIMIT = 20

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

export interface PaymentOptions {
  /** sat/vB, default the chain's estimate for 6 blocks */
  feeRate?: number
  /**
   * The most the fee may be, change too small to keep included
   * (FeeTooHighError past it). Default: no limit, the fee the chain needs,
   * for what the user asks for (an attached payment, `wallet send`); the
   * node's own settlements pass theirs (PaymentAgent)
   */
  maxFee?: bigint
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
  private readonly mnemonic: string
  private readonly derived = new Map<string, string>()
  private readonly privateKeys = new Map<string, Uint8Array>()
  /** the address last handed to each payer (bounded; forgotten on restart) */
  private readonly payers = new Map<string, OwnedAddress>()

  private constructor (path: string, file: WalletFile, mnemonic: string) {
    this.path = path
    this.file = file
    this.mnemonic = mnemonic
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

  /**
   * The key that encrypts this node's stored files (src/storage/protocol/crypto.ts):
   * HKDF-SHA256 of the BIP39 seed, so the mnemonic alone recovers it, and a
   * key separate from every bitcoin key.
   */
  storageKey (): Uint8Array {
    return storageKeyFromSeed(mnemonicToSeedSync(this.mnemonic))
  }

  /**
   * The BIP39 seed of the mnemonic, for the keys derived from it outside
   * bitcoin (the node's identity, the object index's key: PROTOCOL.md 8g)
   */
  seed (): Uint8Array {
    return mnemonicToSeedSync(this.mnemonic)
  }

  /** The key that seals the object index's notes at the hosts (indexKeyFromSeed) */
  indexKey (): Uint8Array {
    return indexKeyFromSeed(this.seed())
  }

  /** The BIP39 mnemonic: everything needed to restore the wallet's money */
  backupPhrase (): string {
    return this.mnemonic
  }

  /** Whether the wallet was restored from its mnemonic and has not yet looked for its used addresses */
  get scanNeeded (): boolean {
    return this.file.scanNeeded === true
  }

  /**
   * Write wallet.json from a mnemonic (`wallet restore`). The next start
   * with a chain scans for the addresses the wallet used before, so its
   * balance and its next addresses are right.
   */
  static async restore (init: WalletInit & { mnemonic: string }): Promise<Wallet> {
    let exists = true
    try {
      await readFile(init.path)
    } catch {
      exists = false
    }
    if (exists) {
      throw new WalletError(`${init.path} exists: a wallet is restored only where there is none (move it away first)`)
    }
    const mnemonic = init.mnemonic.trim().split(/\s+/).join(' ').toLowerCase()
    const wallet = await Wallet.open({ ...init, mnemonic })
    wallet.file.scanNeeded = true
    await wallet.save()
    return wallet
  }

  /**
   * Find the addresses this wallet used: each chain (receive and change)
   * from index 0 until GAP_LIMIT unused addresses in a row, as BIP44
   * wallets do. The next indexes move past the last used one.
   */
  async scan (chain: ChainBackend): Promise<{ receive: number, change: number }> {
    const found = { receive: 0, change: 0 }
    for (const change of [false, true]) {
      let last = -1
      for (let i = 0, unused = 0; unused < GAP_LIMIT; i++) {
        const used = (await chain.transactions(this.addressAt(change, i))).length > 0
        if (used) {
          last = i
          unused = 0
        } else {
          unused++
        }
      }
      if (change) {
        this.file.changeIndex = Math.max(this.file.changeIndex, last + 1)
        found.change = last + 1
      } else {
        this.file.receiveIndex = Math.max(this.file.receiveIndex, last + 1)
        this.file.lastUsedReceive = Math.max(this.file.lastUsedReceive ?? -1, last)
        found.receive = last + 1
      }
    }
    this.file.scanNeeded = false
    await this.save()
    this.refreshOwned()
    log('scanned the chain: %d receive and %d change addresses used', found.receive, found.change)
    return found
  }

  /**
   * An address for a payer to pay to: the one it was given before while
   * that is still unpaid, else a fresh one, but never more than GAP_LIMIT
   * beyond the last paid address; past that, unpaid addresses are handed out
   * again. Payments are recognised by their transaction, so sharing an
   * address loses nothing, and a flood of callers cannot grow the wallet.
   */
  async addressFor (payer: string): Promise<string> {
    const lastUsed = this.file.lastUsedReceive ?? -1
    const given = this.payers.get(payer)
    if (given != null && given.index > lastUsed) {
      return given.address
    }
    let owned: OwnedAddress
    if (this.file.receiveIndex - (lastUsed + 1) < GAP_LIMIT) {
      const address = await this.newAddress()
      owned = this.owned.get(address) as OwnedAddress
    } else {
      // the gap is full: one of the unpaid addresses, the same for the same payer
      let h = 0
      for (const c of payer) h = (h * 31 + c.charCodeAt(0)) >>> 0
      const index = lastUsed + 1 + (h % GAP_LIMIT)
      const address = this.addressAt(false, index)
      owned = { address, change: false, index }
    }
    if (this.payers.size >= 10_000) {
      this.payers.delete(this.payers.keys().next().value as string)
    }
    this.payers.set(payer, owned)
    return owned.address
  }

  /**
   * Where change goes: the last change address again while the chain has
   * seen nothing sent to it (the payment that took it was refused, or never
   * sent), else a new one. Payments that fail would otherwise leave a trail
   * of unused change addresses longer than a restore scans (GAP_LIMIT).
   */
  private async changeAddress (chain: ChainBackend): Promise<string> {
    if (this.file.changeIndex > 0) {
      const last = this.addressAt(true, this.file.changeIndex - 1)
      if ((await chain.transactions(last)).length === 0) {
        return last
      }
    }
    return this.newAddress(true)
  }

  /**
   * A receive address for this node's owner (`wallet address --new`): a new
   * one while fewer than GAP_LIMIT handed out are unpaid, else the oldest
   * unpaid one again, so a wallet restored from its mnemonic finds them all.
   */
  async freshAddress (): Promise<string> {
    const lastUsed = this.file.lastUsedReceive ?? -1
    if (this.file.receiveIndex - (lastUsed + 1) < GAP_LIMIT) {
      return this.newAddress()
    }
    return this.addressAt(false, lastUsed + 1)
  }

  /** A payment reached these addresses: they are used, and the gap moves on */
  async markPaid (addresses: string[]): Promise<void> {
    let highest = this.file.lastUsedReceive ?? -1
    for (const address of addresses) {
      const owned = this.owned.get(address)
      if (owned != null && !owned.change && owned.index > highest) {
        highest = owned.index
      }
    }
    if (highest > (this.file.lastUsedReceive ?? -1)) {
      this.file.lastUsedReceive = highest
      await this.save()
    }
  }

  private key (change: boolean, index: number): HDKey {
    return this.account.derive(`m/${change ? 1 : 0}/${index}`)
  }

  addressAt (change: boolean, index: number): string {
    // deriving a key costs a point multiplication: remember the addresses
    const cacheKey = `${change ? 1 : 0}/${index}`
    let address = this.derived.get(cacheKey)
    if (address == null) {
      const pubkey = this.key(change, index).publicKey as Uint8Array
      address = payments.p2wpkh({ pubkey, network: bitcoinNetwork(this.network) }).address as string
      this.derived.set(cacheKey, address)
    }
    return address
  }

  privateKeyOf (address: string): Uint8Array {
    const owned = this.owned.get(address)
    if (owned == null) {
      throw new WalletError(`${address} is not an address of this wallet`)
    }
    // deriving a key costs a point multiplication, and every payment asks for the key of every coin
    let key = this.privateKeys.get(address)
    if (key == null) {
      key = this.key(owned.change, owned.index).privateKey as Uint8Array
      this.privateKeys.set(address, key)
    }
    return key
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

  /**
   * A key for a payment channel this node opens (its side of the channel's
   * script, and where the channel pays it back): a change address's, so the
   * mnemonic holds it and the wallet counts what comes back to it
   */
  async channelKey (): Promise<{ address: string, publicKey: Uint8Array }> {
    const address = await this.newAddress(true)
    return { address, publicKey: this.publicKeyOf(address) }
  }

  /** The compressed public key of an address of this wallet */
  publicKeyOf (address: string): Uint8Array {
    const owned = this.owned.get(address)
    if (owned == null) {
      throw new WalletError(`${address} is not an address of this wallet`)
    }
    return this.key(owned.change, owned.index).publicKey as Uint8Array
  }

  /** The address of this wallet whose key is `publicKey`, if one is */
  addressOfKey (publicKey: Uint8Array): string | undefined {
    const address = payments.p2wpkh({ pubkey: publicKey, network: bitcoinNetwork(this.network) }).address as string
    return this.owns(address) ? address : undefined
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

  /**
   * Build and sign a payment; `broadcast` is separate so an attached payment
   * can travel in a request instead. It pays the fee the chain needs unless
   * `maxFee` limits it: a small payment at a high fee rate costs more in fee
   * than it pays, which the user who asks for it is told (the fee is in the
   * answer), and which the node's own settlements never do.
   */
  async createPayment (chain: ChainBackend, payees: Array<{ address: string, value: bigint }>, options: PaymentOptions = {}): Promise<{ hex: string, txid: string, fee: bigint }> {
    const coins = await this.spendable(chain)
    const changeAddress = await this.changeAddress(chain)
    return buildTransaction({ coins, payees, changeAddress, feeRate: options.feeRate ?? await chain.feeRate(6), network: bitcoinNetwork(this.network), maxFee: options.maxFee })
  }

  async send (chain: ChainBackend, address: string, value: bigint, options: PaymentOptions = {}): Promise<{ txid: string, fee: bigint }> {
    checkAddressNetwork(address, this.network)
    const payment = await this.createPayment(chain, [{ address, value }], options)
    await chain.broadcast(payment.hex)
    return { txid: payment.txid, fee: payment.fee }
  }

  /**
   * Put up to 80 bytes in bitcoin: a transaction whose only output besides
   * change is an OP_RETURN carrying `data`, paying just the fee. Resolves
   * with its txid once broadcast.
   */
  async anchor (chain: ChainBackend, data: Uint8Array, feeRate?: number): Promise<{ txid: string, fee: bigint }> {
    const coins = await this.spendable(chain)
    const changeAddress = await this.changeAddress(chain)
    const built = buildTransaction({ coins, payees: [], changeAddress, feeRate: feeRate ?? await chain.feeRate(6), network: bitcoinNetwork(this.network), data })
    await chain.broadcast(built.hex)
    return { txid: built.txid, fee: built.fee }
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
