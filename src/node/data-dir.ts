import { chmod, mkdir, readFile, rm, stat } from 'node:fs/promises'
import { hkdfSync, randomBytes } from 'node:crypto'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { writeFileAtomic } from '../utils/files.ts'
import type { PrivateKey } from '@libp2p/interface'

/**
 * The data directory holds everything a node keeps:
 *
 *   identity.key  the node's Ed25519 key (its OpenCloud ID), mode 0600; made from
 *                 the wallet's seed (identityKeyFromSeed), so the mnemonic brings it back
 *   config.json   settings, written with the defaults on first start
 *   datastore/    LevelDB: peer store, DHT records, node state
 *   api.token     the control API's bearer token, mode 0600
 *   api.json      where the running daemon's API listens (removed on stop)
 */
export interface DataDir {
  root: string
  identity: string
  config: string
  datastore: string
  apiToken: string
  apiInfo: string
  tmp: string
}

/** --data-dir, else $OPENCLOUD_HOME, else ~/.opencloud */
export function resolveDataDir (flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.OPENCLOUD_HOME ?? join(homedir(), '.opencloud'))
}

export function dataDirPaths (root: string): DataDir {
  return {
    root,
    identity: join(root, 'identity.key'),
    config: join(root, 'config.json'),
    datastore: join(root, 'datastore'),
    apiToken: join(root, 'api.token'),
    apiInfo: join(root, 'api.json'),
    tmp: join(root, 'tmp')
  }
}

export async function ensureDataDir (root: string): Promise<DataDir> {
  const paths = dataDirPaths(root)
  await mkdir(root, { recursive: true, mode: 0o700 })
  await mkdir(paths.tmp, { recursive: true, mode: 0o700 })
  return paths
}

export class IdentityError extends Error {
  override name = 'IdentityError'
}

/**
 * The node's identity key from the wallet's BIP39 seed: Ed25519 from the
 * 32-byte HKDF-SHA256(ikm = seed, salt = "opencloud-identity", info = "v1")
 * (PROTOCOL.md 8g). The identity is the renter of every storage contract, so
 * a node restored from its mnemonic is the same renter to its hosts and can
 * read its files there again; a key separate from every bitcoin key.
 */
export async function identityKeyFromSeed (seed: Uint8Array): Promise<PrivateKey> {
  return generateKeyPairFromSeed('Ed25519', new Uint8Array(hkdfSync('sha256', seed, 'opencloud-identity', 'v1', 32)))
}

/**
 * The node's key: read from identity.key, or on first start (or after
 * `wallet restore`) `derived` (the key from the wallet's seed), else a
 * random one, saved (0600)
 */
export async function loadOrCreateIdentity (path: string, derived?: PrivateKey): Promise<PrivateKey> {
  let bytes: Buffer | undefined
  try {
    bytes = await readFile(path)
  } catch (err: any) {
    if (err.code !== 'ENOENT') {
      throw new IdentityError(`cannot read the node key ${path}: ${err.message}`)
    }
  }
  if (bytes != null) {
    const { mode } = await stat(path)
    if ((mode & 0o077) !== 0) {
      // the key is the node's identity: tighten it rather than refuse to start
      await chmod(path, 0o600)
    }
    try {
      return privateKeyFromProtobuf(bytes)
    } catch (err: any) {
      throw new IdentityError(`${path} is not a libp2p private key (${err.message}); move it away to create a new identity`)
    }
  }
  const key = derived ?? await generateKeyPair('Ed25519')
  await writeFileAtomic(path, privateKeyToProtobuf(key), 0o600)
  return key
}

/** The control API token, made on first start */
export async function loadOrCreateToken (path: string): Promise<string> {
  try {
    const token = (await readFile(path, 'utf8')).trim()
    if (token.length >= 32) {
      return token
    }
  } catch (err: any) {
    if (err.code !== 'ENOENT') {
      throw err
    }
  }
  const token = randomBytes(32).toString('hex')
  await writeFileAtomic(path, token + '\n', 0o600)
  return token
}

export interface ApiInfo {
  url: string
  peerId: string
  pid: number
  addrs: string[]
}

export async function writeApiInfo (path: string, info: ApiInfo): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(info, null, 2) + '\n')
}

export async function readApiInfo (path: string): Promise<ApiInfo | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8'))
  } catch {
    return undefined
  }
}

export async function removeApiInfo (path: string): Promise<void> {
  await rm(path, { force: true })
}
