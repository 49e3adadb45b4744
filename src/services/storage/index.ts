import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { join } from 'node:path'
import { parseSize } from '../../utils/size.ts'
import { parseDuration } from '../../utils/duration.ts'
import { selectProviders } from '../../market/provider-choice.ts'
import { StorageClient, type HostOffer, type StorageClientInit } from '../../storage/client/storage-client.ts'
import { ConfigError, objectSection, serviceSettings, wholeNumber, type ConfigSection, type ServiceSettings } from '../config-section.ts'
import { StorageHost } from '../../storage/host/storage-host.ts'
import { STORAGE_SERVICE, storageService } from './methods.ts'
import { STORAGE_ERRORS, storageRoutes } from './routes.ts'
import { SHARE_ERRORS, shareRoutes } from './routes-shares.ts'
import { RECOVERY_ERRORS, recoverAfterRestore, recoveryRoutes } from './routes-recovery.ts'
import { RECOVERY_MARKER } from '../../storage/constants.ts'
import { access } from 'node:fs/promises'
import { hostingRoutes, storageMetrics, storageWarnings } from './dashboard.ts'
import type { ModuleComponents, ServiceModuleDefinition } from '../module.ts'

/** A size in config.json ("256 MiB", or bytes), refused with the path when it does not parse */
function sizeSetting (value: unknown, where: string): string | number {
  try {
    parseSize(value as string | number, where)
  } catch (err: any) {
    throw new ConfigError(err.message)
  }
  return value as string | number
}

/** services.storage: this node as a storage host, on by default, free, offering 10 GiB */
export const storageHostSettings: ConfigSection<ServiceSettings> = {
  key: `services.${STORAGE_SERVICE}`,
  defaults: { enabled: true, capacity: '10 GiB', prices: { rent: 0, put: 0, get: 0 } },
  validate: (raw, path) => serviceSettings(raw, path, storageHostSettings.defaults, {
    capacity: sizeSetting
  })
}

/** config.json's "storage": the upkeep of the files this node stores on others */
export interface StorageUpkeepConfig {
  /** how often each contract is audited, on average, default 21600000 ms (6 h) */
  auditIntervalMs: number
  /** how long a host may be unreachable before it is condemned, default 3600000 ms (1 h) */
  auditGraceMs: number
  /** how often rent, audits and repairs are looked at, default 60000 ms */
  checkIntervalMs: number
  /** the room a new contract with a host reserves beyond the put that forms it, default "256 MiB" (DEFAULT_CONTRACT_ALLOWANCE) */
  contractAllowance: string | number
  /**
   * how long a version is kept after a newer one of its name is stored,
   * default "30d" (Dropbox Plus keeps 30 days); "0" keeps only the current
   * version. Older ones are removed by the upkeep (DEFAULT_VERSIONS_KEPT_FOR_MS)
   */
  versionsKeptFor: string
  /**
   * how long the first start after `wallet restore` waits for the market to
   * list storage hosts before it asks them for this wallet's files, default
   * 60000 ms (DEFAULT_RECOVER_WAIT_MS); `store recover --wait` for one run
   */
  recoverWaitMs: number
  /**
   * how long a shard this node did not put itself (learned from a host's
   * revision) must have been named by nothing before the upkeep deletes it
   * (or ends a contract holding such shards), default 21600000 ms (6 h,
   * DEFAULT_ORPHAN_GRACE_MS): longer than a put runs, because another
   * machine restored from the same words names its shards only when its put
   * commits
   */
  orphanGraceMs: number
}

/** versionsKeptFor in ms: "0", or a period such as 90min, 12h, 30d */
export function versionsKeptForMs (text: string, where = 'storage.versionsKeptFor'): number {
  if (text.trim() === '0') {
    return 0
  }
  try {
    return parseDuration(text, where)
  } catch (err: any) {
    throw new ConfigError(`${err.message} ("0" keeps only the current version)`)
  }
}

export const storageUpkeepSettings: ConfigSection<StorageUpkeepConfig> = {
  key: 'storage',
  defaults: { auditIntervalMs: 21_600_000, auditGraceMs: 3_600_000, checkIntervalMs: 60_000, contractAllowance: '256 MiB', versionsKeptFor: '30d', recoverWaitMs: 60_000, orphanGraceMs: 21_600_000 },
  validate: (raw, path) => objectSection(raw, path, storageUpkeepSettings.defaults, {
    auditIntervalMs: wholeNumber(100, 'milliseconds'),
    auditGraceMs: wholeNumber(100, 'milliseconds'),
    checkIntervalMs: wholeNumber(100, 'milliseconds'),
    contractAllowance: sizeSetting,
    recoverWaitMs: wholeNumber(0, 'milliseconds'),
    orphanGraceMs: wholeNumber(0, 'milliseconds'),
    versionsKeptFor: (value, path) => {
      const text = typeof value === 'number' && value === 0 ? '0' : value
      if (typeof text !== 'string') {
        throw new ConfigError(`${path} takes a period such as "30d", "12h" or "0", not ${JSON.stringify(value)}`)
      }
      versionsKeptForMs(text, path)
      return text
    }
  })
}

/** What the storage module runs: this node as a host, and this node's files on others */
export interface StorageEngines {
  host: StorageHost
  client: StorageClient
}

/**
 * Storage hosts the market knows, best first (selectProviders on the rent
 * offer), with their prices per TiB-month, per TiB up and per TiB down. A
 * host that publishes no put or get offer charges nothing for them.
 */
export async function storageHosts ({ market, reputation, peerId }: Pick<ModuleComponents, 'market' | 'reputation' | 'peerId'>): Promise<HostOffer[]> {
  let ranked: string[]
  try {
    ranked = await selectProviders(market.index, async peer => (await reputation.view(peer)).score, { service: STORAGE_SERVICE, method: 'rent', me: peerId.toString() })
  } catch {
    return []
  }
  const price = (peer: string, method: string): bigint => market.index.query({ service: STORAGE_SERVICE, method }).find(e => e.offer.provider === peer)?.offer.price ?? 0n
  return ranked.map(peer => ({ peer, storage: price(peer, 'rent'), upload: price(peer, 'put'), download: price(peer, 'get') }))
}

/**
 * The storage module: this node as a storage host (the `storage` service,
 * which config.json may switch off) and the client of the files it stores
 * on others (put, get, audits, rent, renewal, repair)
 */
export const storageModule: ServiceModuleDefinition = {
  name: STORAGE_SERVICE,
  config: [storageHostSettings, storageUpkeepSettings],
  create: (components) => {
    const { peerId, signer, datastore, registry, reputation, wallet, caller, chain, section, dataDir, options } = components
    const hostSettings = section(storageHostSettings)
    const upkeep = section(storageUpkeepSettings)
    const record = (r: Parameters<typeof reputation.record>[0]): void => { void reputation.record(r).catch(() => {}) }
    const host = new StorageHost({
      peerId: peerId.toString(),
      signer,
      datastore,
      prices: () => {
        const price = (method: string): bigint => registry.priceOf(STORAGE_SERVICE, method, registry.resolve(STORAGE_SERVICE, method).method)
        return { storage: price('rent'), upload: price('put'), download: price('get') }
      },
      takesPayments: chain != null,
      recordRenter: (renter, outcome, event) => { record({ peer: renter, role: 'caller', outcome, event, service: STORAGE_SERVICE, method: 'end' }) },
      rateRenter: (renter, event) => { record({ peer: renter, role: 'caller', outcome: 'unsatisfactory', event, service: STORAGE_SERVICE, method: 'rent' }) }
    }, {
      dir: join(dataDir, 'storage'),
      capacity: parseSize(hostSettings.capacity as string | number, 'services.storage.capacity')
    })
    let indexKey: Uint8Array | undefined
    const client = new StorageClient({
      peerId: peerId.toString(),
      signer,
      datastore,
      storageKey: () => wallet.storageKey(),
      // the object index at the hosts (PROTOCOL.md 8g), sealed under a key of the wallet's seed
      indexKey: () => (indexKey ??= wallet.indexKey()),
      hosts: async () => storageHosts(components),
      trust: (peer) => reputation.scoreOf(peer),
      call: async (peer, request, sats) => caller.payingCall(peer, request, sats),
      prepay: async (payees, signal) => caller.prepay(payees, signal),
      alive: async (peer, signal) => {
        try {
          await (components.libp2p.services as { ping: { ping: (peer: PeerId, options: { signal: AbortSignal }) => Promise<number> } }).ping.ping(peerIdFromString(peer), { signal })
          return true
        } catch {
          return false
        }
      },
      rate: (peer, event, method) => { record({ peer, role: 'server', outcome: 'unsatisfactory', event, service: STORAGE_SERVICE, method }) },
      rateContract: (peer, satisfactory) => { record({ peer, role: 'server', outcome: satisfactory ? 'satisfactory' : 'unsatisfactory', event: 'contract-rated', service: STORAGE_SERVICE, method: 'end' }) }
    }, { auditIntervalMs: upkeep.auditIntervalMs, auditGraceMs: upkeep.auditGraceMs, rentCheckMs: upkeep.checkIntervalMs, contractAllowance: parseSize(upkeep.contractAllowance, 'storage.contractAllowance'), versionsKeptForMs: versionsKeptForMs(upkeep.versionsKeptFor), orphanGraceMs: upkeep.orphanGraceMs, ...(options[STORAGE_SERVICE] as StorageClientInit | undefined) })
    const engines: StorageEngines = { host, client }
    const hosting = hostSettings.enabled !== false
    storageMetrics(components.metrics, client, host)
    return {
      services: hosting ? [storageService(host)] : [],
      routes: { ...storageRoutes(client, components), ...recoveryRoutes(client), ...shareRoutes(client), ...hostingRoutes(host, hosting, components) },
      warnings: async () => storageWarnings(client, host, hosting, components),
      errors: [...STORAGE_ERRORS, ...RECOVERY_ERRORS, ...SHARE_ERRORS],
      engine: engines,
      start: async () => {
        client.start()
        // the first start after `wallet restore`: the files come back from the hosts' index
        if (await access(join(dataDir, RECOVERY_MARKER)).then(() => true, () => false)) {
          void recoverAfterRestore(client, dataDir, upkeep.recoverWaitMs)
        }
      },
      stop: async () => { await client.stop() }
    }
  }
}
