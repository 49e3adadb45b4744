import { access, chmod, readFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { Key, type Datastore } from 'interface-datastore'
import { writeFileAtomic } from '../utils/files.ts'
import type { DataDir } from './data-dir.ts'
import { CLI } from '../utils/cli-name.ts'

/**
 * A node that lost a key file or its datastore must not quietly start as
 * someone new: a fresh identity.key is a new OpenCloud ID (no reputation, no
 * tabs), a fresh wallet.json is a new wallet beside a ledger of debts, an
 * empty datastore forgets every tab. So the data directory and the datastore
 * remember each other: the datastore records the node's PeerId and wallet,
 * and `datastore.id` beside it names the datastore. At start, anything that
 * was there and is gone stops the node with one sentence saying what is
 * missing and how to restore it.
 */

const PEER_ID = new Key('/opencloud/node/peer-id')
const WALLET = new Key('/opencloud/node/wallet-address')
const DATASTORE_ID = new Key('/opencloud/node/datastore-id')
const PROMISES = '/opencloud/ledger/promises'

export class MissingDataError extends Error {
  override name = 'MissingDataError'
}

async function exists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

async function get (datastore: Datastore, key: Key): Promise<string | undefined> {
  return (await datastore.has(key)) ? text(await datastore.get(key)) : undefined
}

/** Secret and money-bearing paths are the owner's alone, whatever modes they had */
export async function tightenModes (paths: DataDir): Promise<void> {
  await chmod(paths.root, 0o700)
  for (const dir of [paths.datastore, paths.tmp]) {
    await chmod(dir, 0o700).catch(() => {})
  }
  for (const file of [paths.identity, paths.apiToken, join(paths.root, 'wallet.json')]) {
    await chmod(file, 0o600).catch(() => {})
  }
}

/**
 * Before the identity and the wallet are loaded: the datastore is the one
 * this directory had, and the key files it knew of are still there.
 */
export async function checkBeforeKeys (paths: DataDir, datastore: Datastore): Promise<void> {
  const idFile = join(paths.root, 'datastore.id')
  const recorded = await get(datastore, DATASTORE_ID)
  const expected = (await exists(idFile)) ? (await readFile(idFile, 'utf8')).trim() : undefined
  if (expected != null && recorded !== expected) {
    throw new MissingDataError(`the datastore in ${paths.datastore} is not the one this node had (it was lost, emptied or replaced), so its tabs and payments are gone: restore datastore/ from a backup, or, to start with an empty ledger, delete ${idFile}`)
  }
  const wallet = await get(datastore, WALLET)
  const walletPath = join(paths.root, 'wallet.json')
  if (wallet != null && !(await exists(walletPath))) {
    let promises = 0
    for await (const _ of datastore.queryKeys({ prefix: PROMISES })) {
      promises++
    }
    throw new MissingDataError(`wallet.json is missing, but this node's wallet was ${wallet}${promises > 0 ? ` and its ledger holds ${promises} deferred payment(s)` : ''}: restore ${walletPath} from a backup, or restore the wallet from its mnemonic with: ${CLI} wallet restore --data-dir ${paths.root}`)
  }
}

/**
 * After the wallet is open, before the identity is loaded: identity.key is
 * there, or the datastore remembers no identity, or the one it remembers is
 * the one the wallet's seed derives (`derivedPeerId`: identity.key is then
 * made again from the seed, quietly). A node whose identity was a random
 * key (made before identities came from the seed) cannot get it back so.
 */
export async function checkIdentity (paths: DataDir, datastore: Datastore, derivedPeerId: string): Promise<void> {
  const peerId = await get(datastore, PEER_ID)
  if (peerId != null && peerId !== derivedPeerId && !(await exists(paths.identity))) {
    throw new MissingDataError(`identity.key is missing, but this node was ${peerId}: restore ${paths.identity} from a backup (a new key would be a new identity, without this one's reputation, tabs and stored files; this one was not made from the wallet's words, so they cannot bring it back); to start as a new node, move ${paths.root} away`)
  }
}

/** After a start: the datastore remembers this node's identity and wallet, and is named */
export async function recordKeys (paths: DataDir, datastore: Datastore, peerId: string, walletAddress: string): Promise<void> {
  const idFile = join(paths.root, 'datastore.id')
  let id = await get(datastore, DATASTORE_ID)
  if (id == null) {
    id = randomBytes(16).toString('hex')
    await datastore.put(DATASTORE_ID, bytes(id))
  }
  if (!(await exists(idFile))) {
    await writeFileAtomic(idFile, id + '\n', 0o600)
  }
  if (await get(datastore, PEER_ID) !== peerId) {
    await datastore.put(PEER_ID, bytes(peerId))
  }
  if (await get(datastore, WALLET) !== walletAddress) {
    await datastore.put(WALLET, bytes(walletAddress))
  }
}
