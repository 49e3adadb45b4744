import { join } from 'node:path'
import { mkdir, rm } from 'node:fs/promises'
import { LevelDatastore } from 'datastore-level'
import { Level } from 'level'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet } from '../payments/wallet/wallet.ts'
import { loadConfig, type Config } from './config.ts'
import type { ConfigSection } from '../services/config-section.ts'
import { ensureDataDir, identityKeyFromSeed, loadOrCreateIdentity, type DataDir } from './data-dir.ts'
import { checkBeforeKeys, checkIdentity, recordKeys, tightenModes } from './data-guard.ts'
import type { PrivateKey } from '@libp2p/interface'

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError'
}

export interface BootInit {
  /** the data directory (see data-dir.ts) */
  dataDir: string
  /** settings to use instead of reading config.json, for tests and embedding */
  config?: Config
  /** the config sections config.json is read with, default those of node/modules.ts's modules */
  sections?: ConfigSection[]
  /** passphrase of an encrypted wallet, default $OPENCLOUD_WALLET_PASSPHRASE */
  walletPassphrase?: string
}

/** What a node starts from: its directory, its settings, its datastore and its keys */
export interface Booted {
  paths: DataDir
  config: Config
  datastore: LevelDatastore
  privateKey: PrivateKey
  wallet: Wallet
}

/**
 * Open a data directory for one node: its config (written with the
 * defaults on first start), the datastore (whose lock makes this the only
 * node on the directory), the identity key and the wallet. Nothing is
 * created before it is clear that nothing that was there has gone missing
 * (data-guard.ts): a node whose key or wallet vanished refuses to start as
 * someone new. On any failure the datastore is closed again.
 */
export async function boot (init: BootInit): Promise<Booted> {
  const paths = await ensureDataDir(init.dataDir)
  const config = init.config ?? await loadConfig(paths.config, init.sections)
  const datastore = await openDatastore(paths)
  try {
    // holding the datastore lock, this is the only node on the directory:
    // uploads a crash left half-spooled in tmp/ can go
    await rm(paths.tmp, { recursive: true, force: true })
    await mkdir(paths.tmp, { recursive: true, mode: 0o700 })
    await tightenModes(paths)
    await checkBeforeKeys(paths, datastore)
    // the wallet before the identity: a missing identity.key is made from
    // the wallet's seed, so the mnemonic alone brings back the renter of
    // every contract (and with it the files: PROTOCOL.md 8g)
    const wallet = await Wallet.open({ path: join(paths.root, 'wallet.json'), network: config.payments.network, passphrase: init.walletPassphrase ?? process.env.OPENCLOUD_WALLET_PASSPHRASE })
    const derived = await identityKeyFromSeed(wallet.seed())
    await checkIdentity(paths, datastore, peerIdFromPrivateKey(derived).toString())
    const privateKey = await loadOrCreateIdentity(paths.identity, derived)
    await recordKeys(paths, datastore, peerIdFromPrivateKey(privateKey).toString(), wallet.identityAddress)
    return { paths, config, datastore, privateKey, wallet }
  } catch (err) {
    await datastore.close()
    throw err
  }
}

/**
 * Open the LevelDB datastore. The database is opened here rather than by
 * LevelDatastore because LevelDatastore flattens the cause into a string, and
 * the cause is what tells "another node has this directory" from corruption.
 */
async function openDatastore (paths: DataDir): Promise<LevelDatastore> {
  const db = new Level<string, Uint8Array>(paths.datastore, { keyEncoding: 'utf8', valueEncoding: 'view' })
  try {
    await db.open({ createIfMissing: true, compression: false })
  } catch (err: any) {
    if (err.cause?.code === 'LEVEL_LOCKED') {
      throw new DataDirLockedError(`another node is running with the data directory ${paths.root}; stop it or choose another --data-dir`)
    }
    throw new Error(`cannot open the datastore in ${paths.datastore}: ${err.cause?.message ?? err.message}`)
  }
  const datastore = new LevelDatastore(db)
  await datastore.open()
  return datastore
}
