/**
 * Starting and stopping opencloud-node daemons as separate processes on
 * 127.0.0.1: the local testnet and bench/gossip both use this.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { ensureDataDir, identityKeyFromSeed, loadOrCreateIdentity } from '../../src/node/data-dir.ts'
import { Wallet } from '../../src/payments/wallet/wallet.ts'

const BIN = fileURLToPath(new URL('../../bin/opencloud-node.js', import.meta.url))

export interface Started {
  index: number
  peerId: string
  addrs: string[]
  api: string
  /** the S3 gateway's endpoint, when this node serves one (--s3) */
  s3?: string
  dataDir: string
  child: ChildProcess
  priced: boolean
}

/**
 * What testnet hosts ask for storage, at a real market's level (what Storj
 * pays its hosts, at $90,000 per BTC): rent 1833 sat per TiB-month ($1.50
 * per TB-month), nothing for uploads (Storj pays no ingress), 2444 sat per
 * TiB downloaded ($2 per TB). README, "Storage", has the anchors' prices.
 */
export const TESTNET_STORAGE_PRICES = { rent: '1833 sat', put: '0 sat', get: '2444 sat' }
/** sha256.hash per MiB on the even-numbered nodes */
export const TESTNET_HASH_PRICE = '100 sat'

/**
 * The testnet pays through payment channels on purpose, to show them: at
 * its market-level prices and with the credit it gives, "auto" would rightly
 * pay small users deferred (cheaper on chain than a channel's two
 * transactions), so a store put opens channels to its hosts only with
 * "always". Its blocks come every 5 s: a margin of 6 blocks is half a
 * minute, and a channel lives 4320 blocks (6 hours) past it.
 */
export const TESTNET_CHANNELS = { use: 'always', closeMarginBlocks: 6, lifeBlocks: 4320 }

/** Settings the testnet gives node i on top of its defaults */
async function writeNodeConfig (dataDir: string, index: number, chainUrl?: string, pretrusted?: string, genesis?: string): Promise<boolean> {
  const path = join(dataDir, 'config.json')
  let config: any = {}
  try {
    config = JSON.parse(await readFile(path, 'utf8'))
  } catch {}
  // a price needs payments on: only nodes with a chain charge
  const priced = index % 2 === 0 && chainUrl != null
  if (chainUrl != null) {
    config.payments = { ...config.payments, network: 'regtest', chain: chainUrl }
  }
  config.dht = { ...config.dht, addresses: 'private' }
  // the testnet's EigenTrust anchor: every node trusts the bootstrap node's opinions
  if (pretrusted != null) {
    config.reputation = { ...config.reputation, pretrusted: [pretrusted] }
  }
  if (chainUrl != null) {
    // every node hosts storage for pay (rent per TiB-month, downloads per
    // TiB) and gives the credit deferred payments need
    config.services = { ...config.services, storage: { enabled: true, capacity: '2 GiB', prices: TESTNET_STORAGE_PRICES } }
    config.policies = { ...config.policies, global: { ...config.policies?.global, 'max-tab': '0.001 BTC' } }
    config.channels = { ...config.channels, ...TESTNET_CHANNELS }
  }
  // files stored on the testnet are audited every 2 minutes, checked every 10 s
  config.storage = { ...config.storage, auditIntervalMs: 120_000, checkIntervalMs: 10_000, orphanGraceMs: 10_000 }
  if (priced) {
    config.services = { ...config.services, sha256: { enabled: true, prices: { hash: TESTNET_HASH_PRICE } } }
  }
  // every node follows the testnet's Cloud Ledger; its validators are named in the genesis
  if (genesis != null) {
    config.ledger = { ...config.ledger, genesis, idleBlockMs: 10_000 }
  }
  await writeFile(path, JSON.stringify(config, null, 2) + '\n')
  return priced
}

/** Call a started node's control API with its token: the JSON answer, or an error naming the path and the status */
export async function nodeApi (node: Started, path: string, init: RequestInit = {}): Promise<any> {
  const token = (await readFile(join(node.dataDir, 'api.token'), 'utf8')).trim()
  const res = await fetch(`${node.api}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}`, 'content-type': 'application/json' } })
  if (!res.ok) {
    throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`)
  }
  return res.json()
}

export async function fund (node: Started, chain: RegtestServer, sats: bigint): Promise<void> {
  const { address } = await nodeApi(node, '/v1/wallet/address', { method: 'POST' }) as { address: string }
  await chain.faucet(address, sats)
}

export const nodeDir = (dir: string, index: number): string => join(dir, `node-${index}`)

/**
 * The testnet ledger's genesis, naming nodes 1 to `validators` (their
 * identities are made now if new). An existing genesis with the same
 * validators is kept, so a restarted testnet keeps its ledger.
 */
export async function writeLedgerGenesis (dir: string, validators: number): Promise<string> {
  const ids: string[] = []
  for (let i = 1; i <= validators; i++) {
    const paths = await ensureDataDir(nodeDir(dir, i))
    // made as the node makes it, from its wallet's words (the testnet is regtest),
    // so `wallet backup` of a testnet node brings back its identity and files
    const wallet = await Wallet.open({ path: join(paths.root, 'wallet.json'), network: 'regtest', passphrase: process.env.OPENCLOUD_WALLET_PASSPHRASE })
    ids.push(peerIdFromPrivateKey(await loadOrCreateIdentity(paths.identity, await identityKeyFromSeed(wallet.seed()))).toString())
  }
  const path = join(dir, 'ledger-genesis.json')
  try {
    const held = JSON.parse(await readFile(path, 'utf8'))
    if (JSON.stringify(held.validators) === JSON.stringify(ids)) {
      return path
    }
  } catch {}
  const genesis = { chain: 'opencloud-testnet', time: Date.now(), validators: ids, slotMs: 1000, checkpointEvery: 100, maxTxsPerBlock: 5000, maxRequestsPerSlot: 10, txTtlMs: 600_000 }
  await writeFile(path, JSON.stringify(genesis, null, 2) + '\n')
  return path
}

export async function startNode (index: number, dir: string, bootstrap: string | undefined, chainUrl?: string, genesis?: string, extraArgs: string[] = []): Promise<Started> {
  const dataDir = nodeDir(dir, index)
  await mkdir(dataDir, { recursive: true })
  const priced = await writeNodeConfig(dataDir, index, chainUrl, bootstrap == null ? undefined : /\/p2p\/([^/]+)$/.exec(bootstrap)?.[1], genesis)
  const args = [BIN, 'daemon', '--json', '--exit-with-parent', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0']
  if (bootstrap != null) {
    args.push('--bootstrap', bootstrap)
  }
  args.push(...extraArgs)
  const log = createWriteStream(join(dataDir, 'daemon.log'), { flags: 'a' })
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stderr?.pipe(log)
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      reject(new Error(`node ${index} ${howItEnded(code, signal)} before it started; see ${join(dataDir, 'daemon.log')}`))
    }
    child.once('exit', onExit)
    lines.on('line', line => {
      log.write(line + '\n')
      let event: any
      try {
        event = JSON.parse(line)
      } catch {
        return
      }
      if (event.event === 'started') {
        child.off('exit', onExit)
        resolve({ index, peerId: event.peerId, addrs: event.addrs, api: event.api, ...(event.s3 != null ? { s3: event.s3 } : {}), dataDir, child, priced })
      }
    })
  })
}

/** "exited with code 1", "was killed by SIGKILL" */
export function howItEnded (code: number | null, signal: NodeJS.Signals | null): string {
  return signal != null ? `was killed by ${signal}` : `exited with code ${code}`
}

/** Whether a child has ended: one killed by a signal has no exit code, only a signalCode */
export function hasEnded (child: ChildProcess): boolean {
  return child.exitCode != null || child.signalCode != null
}

/**
 * SIGTERM to every node still running, SIGKILL to any that has not stopped
 * 10 s later. A node that ended already is not waited for: its exit event
 * has fired, and waiting for another would never end (seen after a kill -9).
 */
export async function stopAll (nodes: Started[]): Promise<void> {
  await Promise.all(nodes.map(async n => {
    if (hasEnded(n.child)) {
      return
    }
    const exited = new Promise(resolve => n.child.once('exit', resolve))
    n.child.kill('SIGTERM')
    const timer = setTimeout(() => n.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }))
}

