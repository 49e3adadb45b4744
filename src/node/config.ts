import { parseRateLimit } from '../utils/rate-limiter.ts'
import { readFile } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { parseAmount } from '../protocols/units.ts'
import { parseSize } from '../utils/size.ts'
import { Policies, PolicyError, type PoliciesConfig } from '../services/policy/policy.ts'
import { DEFAULT_MAX_BODY_BYTES } from '../protocols/rpc/constants.ts'
import { writeFileAtomic } from '../utils/files.ts'
import { BITCOIN_NETWORKS, type BitcoinNetworkName } from '../protocols/bitcoin-networks.ts'

/**
 * config.json in the data directory. Every field is optional; the defaults
 * below are what a missing field means, and `opencloud-node` writes this
 * file with the defaults on first start so an operator can see and edit them.
 */
export interface Config {
  /** Multiaddrs to listen on, default ["/ip4/0.0.0.0/tcp/4100"] */
  listen: string[]
  /** Peers to join through (multiaddrs ending in /p2p/<PeerId>), default [] */
  bootstrap: string[]
  /** host:port of the local control API, always on loopback, default "127.0.0.1:4101" */
  api: string
  /** error, warn, info, debug or trace, default "info" */
  logLevel: LogLevel
  rpc: {
    /** Largest request body accepted, default 1 GiB */
    maxBodyBytes: number
    /** Refuse requests without an OpenCloud ID credential, default true */
    requireCredential: boolean
    /** Time allowed for an outgoing call without a body, default 30000 ms */
    timeoutMs: number
    /** A pooled stream with no request for this long is closed, default 120000 ms */
    idleTimeoutMs: number
    /** A request body with no bytes for this long is refused and its stream closed, default 30000 ms */
    bodyTimeoutMs: number
  }
  dht: {
    /** The DHT protocol id; a separate id keeps the network apart from IPFS. Default "/opencloud/kad/1.0.0" */
    protocol: string
    /**
     * Which peer addresses the DHT shares: "all", "public" (internet
     * deployments) or "private" (LAN and loopback testnets). Default "all".
     */
    addresses: 'all' | 'public' | 'private'
  }
  /**
   * Per service: whether it runs and its prices in satoshis per unit, e.g.
   * {"sha256": {"prices": {"hash": 10}}}. The storage service also takes
   * `capacity`, the space it offers ("10 GiB", the default).
   */
  services: Record<string, { enabled?: boolean, prices?: Record<string, string | number>, capacity?: string | number }>
  /** Policies by scope (README, "Policies") */
  policies: PoliciesConfig
  payments: {
    /** regtest, testnet4, signet or mainnet, default "regtest" */
    network: BitcoinNetworkName
    /** URL of an Esplora API (a block explorer, electrs, or `npm run chain`); empty: payments are off. Default "" */
    chain: string
    /** How often due deferred payments are paid, default 5000 ms */
    settleIntervalMs: number
    /** How long a due deferred payment may stay unpaid before it is overdue, default 600000 ms */
    graceMs: number
  }
  reputation: {
    /** PeerIds whose opinions are trusted from the start (EigenTrust's pre-trusted peers); this node always is. Default [] */
    pretrusted: string[]
  }
  /** The upkeep of files this node stores on others (services.storage is the host side) */
  storage: {
    /** How often each contract is audited, on average, default 21600000 ms (6 h) */
    auditIntervalMs: number
    /** How long a host may be unreachable before it is condemned, default 3600000 ms (1 h) */
    auditGraceMs: number
    /** How often rent, audits and repairs are looked at, default 60000 ms */
    checkIntervalMs: number
  }
  /** The Cloud Ledger (promo codes); off unless a genesis file is named */
  ledger: {
    /** Path of the ledger's genesis file (JSON), relative to the data directory or absolute; default "" (no ledger) */
    genesis: string
    /** An idle ledger makes an empty block this often, default 60000 ms */
    idleBlockMs: number
    /** Transactions a node that is not a validator may gossip, default "200/s burst 2000" */
    txRateLimit: string
  }
}

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace'
export const LOG_LEVELS: LogLevel[] = ['error', 'warn', 'info', 'debug', 'trace']

export const DEFAULT_CONFIG: Config = {
  listen: ['/ip4/0.0.0.0/tcp/4100'],
  bootstrap: [],
  api: '127.0.0.1:4101',
  logLevel: 'info',
  rpc: {
    maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
    requireCredential: true,
    timeoutMs: 30_000,
    idleTimeoutMs: 120_000,
    bodyTimeoutMs: 30_000
  },
  dht: {
    protocol: '/opencloud/kad/1.0.0',
    addresses: 'all'
  },
  services: {
    sha256: { enabled: true, prices: { hash: 0 } },
    storage: { enabled: true, capacity: '10 GiB', prices: { rent: 0, put: 0, get: 0 } }
  },
  policies: {},
  payments: {
    network: 'regtest',
    chain: '',
    settleIntervalMs: 5_000,
    graceMs: 600_000
  },
  reputation: {
    pretrusted: []
  },
  storage: {
    auditIntervalMs: 21_600_000,
    auditGraceMs: 3_600_000,
    checkIntervalMs: 60_000
  },
  ledger: {
    genesis: '',
    idleBlockMs: 60_000,
    txRateLimit: '200/s burst 2000'
  }
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value != null && typeof value === 'object' && !Array.isArray(value)
}

function stringList (where: string, value: unknown, check: (s: string) => void): string[] {
  if (!Array.isArray(value) || value.some(v => typeof v !== 'string')) {
    throw new ConfigError(`${where} must be a list of strings`)
  }
  for (const v of value) {
    try {
      check(v)
    } catch (err: any) {
      throw new ConfigError(`${where}: "${v}" is not valid: ${err.message}`)
    }
  }
  return value
}

export function checkApiAddress (value: string): { host: string, port: number } {
  const match = /^(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\]):([0-9]{1,5})$/.exec(value)
  if (match == null || Number(match[2]) > 65535) {
    throw new ConfigError(`api "${value}" must be a loopback host and port such as 127.0.0.1:4101: the control API is never exposed beyond this machine`)
  }
  return { host: match[1] === 'localhost' ? '127.0.0.1' : match[1].replace(/^\[|\]$/g, ''), port: Number(match[2]) }
}

const KNOWN = new Set(['listen', 'bootstrap', 'api', 'logLevel', 'rpc', 'dht', 'services', 'policies', 'payments', 'reputation', 'storage', 'ledger'])

/** Check a parsed config and fill in defaults; every error names the field */
export function validateConfig (input: unknown): Config {
  if (!isObject(input)) {
    throw new ConfigError('the config must be a JSON object')
  }
  for (const key of Object.keys(input)) {
    if (!KNOWN.has(key)) {
      throw new ConfigError(`unknown config field "${key}"; the fields are ${[...KNOWN].join(', ')}`)
    }
  }
  const config: Config = structuredClone(DEFAULT_CONFIG)
  if (input.listen !== undefined) {
    config.listen = stringList('listen', input.listen, s => multiaddr(s))
  }
  if (input.bootstrap !== undefined) {
    config.bootstrap = stringList('bootstrap', input.bootstrap, s => {
      if (multiaddr(s).getComponents().find(c => c.name === 'p2p') == null) {
        throw new Error('a bootstrap address must end in /p2p/<PeerId>')
      }
    })
  }
  if (input.api !== undefined) {
    if (typeof input.api !== 'string') {
      throw new ConfigError('api must be a string such as "127.0.0.1:4101"')
    }
    checkApiAddress(input.api)
    config.api = input.api
  }
  if (input.logLevel !== undefined) {
    if (!LOG_LEVELS.includes(input.logLevel as LogLevel)) {
      throw new ConfigError(`logLevel must be one of ${LOG_LEVELS.join(', ')}`)
    }
    config.logLevel = input.logLevel as LogLevel
  }
  if (input.rpc !== undefined) {
    if (!isObject(input.rpc)) {
      throw new ConfigError('rpc must be an object')
    }
    for (const [key, value] of Object.entries(input.rpc)) {
      if (key === 'maxBodyBytes' || key === 'timeoutMs' || key === 'idleTimeoutMs' || key === 'bodyTimeoutMs') {
        if (!Number.isSafeInteger(value) || (value as number) <= 0) {
          throw new ConfigError(`rpc.${key} must be a positive whole number`)
        }
        config.rpc[key] = value as number
      } else if (key === 'requireCredential') {
        if (typeof value !== 'boolean') {
          throw new ConfigError('rpc.requireCredential must be true or false')
        }
        config.rpc.requireCredential = value
      } else {
        throw new ConfigError(`unknown config field "rpc.${key}"`)
      }
    }
  }
  if (input.dht !== undefined) {
    if (!isObject(input.dht)) {
      throw new ConfigError('dht must be an object')
    }
    for (const [key, value] of Object.entries(input.dht)) {
      if (key === 'protocol') {
        if (typeof value !== 'string' || !value.startsWith('/')) {
          throw new ConfigError('dht.protocol must be a protocol id starting with "/"')
        }
        config.dht.protocol = value
      } else if (key === 'addresses') {
        if (value !== 'all' && value !== 'public' && value !== 'private') {
          throw new ConfigError('dht.addresses must be "all", "public" or "private"')
        }
        config.dht.addresses = value
      } else {
        throw new ConfigError(`unknown config field "dht.${key}"`)
      }
    }
  }
  if (input.services !== undefined) {
    if (!isObject(input.services)) {
      throw new ConfigError('services must be an object keyed by service name')
    }
    for (const [name, value] of Object.entries(input.services)) {
      if (!isObject(value)) {
        throw new ConfigError(`services.${name} must be an object`)
      }
      for (const key of Object.keys(value)) {
        if (key !== 'enabled' && key !== 'prices' && !(key === 'capacity' && name === 'storage')) {
          throw new ConfigError(`unknown config field "services.${name}.${key}"`)
        }
      }
      if (value.enabled !== undefined && typeof value.enabled !== 'boolean') {
        throw new ConfigError(`services.${name}.enabled must be true or false`)
      }
      if (value.capacity !== undefined) {
        try {
          parseSize(value.capacity as string | number, 'services.storage.capacity')
        } catch (err: any) {
          throw new ConfigError(err.message)
        }
      }
      if (value.prices !== undefined) {
        if (!isObject(value.prices)) {
          throw new ConfigError(`services.${name}.prices must map method names to satoshis per unit`)
        }
        for (const [method, price] of Object.entries(value.prices)) {
          try {
            parseAmount(price as string | number, 'a price')
          } catch (err: any) {
            throw new ConfigError(`services.${name}.prices.${method}: ${err.message}`)
          }
        }
      }
      config.services[name] = { ...config.services[name], ...(value as Config['services'][string]) }
    }
  }
  if (input.payments !== undefined) {
    if (!isObject(input.payments)) {
      throw new ConfigError('payments must be an object')
    }
    for (const [key, value] of Object.entries(input.payments)) {
      if (key === 'network') {
        if (!BITCOIN_NETWORKS.includes(value as BitcoinNetworkName)) {
          throw new ConfigError(`payments.network must be one of ${BITCOIN_NETWORKS.join(', ')}`)
        }
        config.payments.network = value as BitcoinNetworkName
      } else if (key === 'chain') {
        if (typeof value !== 'string' || (value !== '' && !/^https?:\/\//.test(value))) {
          throw new ConfigError('payments.chain must be the http(s) URL of an Esplora API, or ""')
        }
        config.payments.chain = value
      } else if (key === 'settleIntervalMs' || key === 'graceMs') {
        if (!Number.isSafeInteger(value) || (value as number) <= 0) {
          throw new ConfigError(`payments.${key} must be a positive whole number`)
        }
        config.payments[key] = value as number
      } else {
        throw new ConfigError(`unknown config field "payments.${key}"`)
      }
    }
  }
  if (input.reputation !== undefined) {
    if (!isObject(input.reputation)) {
      throw new ConfigError('reputation must be an object')
    }
    for (const [key, value] of Object.entries(input.reputation)) {
      if (key === 'pretrusted') {
        config.reputation.pretrusted = stringList('reputation.pretrusted', value, s => { peerIdFromString(s) })
      } else {
        throw new ConfigError(`unknown config field "reputation.${key}"`)
      }
    }
  }
  if (input.storage !== undefined) {
    if (!isObject(input.storage)) {
      throw new ConfigError('storage must be an object')
    }
    for (const [key, value] of Object.entries(input.storage)) {
      if (key === 'auditIntervalMs' || key === 'auditGraceMs' || key === 'checkIntervalMs') {
        if (!Number.isSafeInteger(value) || (value as number) < 100) {
          throw new ConfigError(`storage.${key} must be a whole number of milliseconds, at least 100`)
        }
        config.storage[key] = value as number
      } else {
        throw new ConfigError(`unknown config field "storage.${key}"`)
      }
    }
  }
  if (input.ledger !== undefined) {
    if (!isObject(input.ledger)) {
      throw new ConfigError('ledger must be an object')
    }
    for (const [key, value] of Object.entries(input.ledger)) {
      if (key === 'genesis') {
        if (typeof value !== 'string') {
          throw new ConfigError('ledger.genesis must be the path of the ledger\'s genesis file, or "" for no ledger')
        }
        config.ledger.genesis = value
      } else if (key === 'idleBlockMs') {
        if (!Number.isSafeInteger(value) || (value as number) < 100) {
          throw new ConfigError('ledger.idleBlockMs must be a whole number of milliseconds, at least 100')
        }
        config.ledger.idleBlockMs = value as number
      } else if (key === 'txRateLimit') {
        try {
          parseRateLimit(String(value))
        } catch (err: any) {
          throw new ConfigError(`ledger.txRateLimit: ${err.message}`)
        }
        config.ledger.txRateLimit = String(value)
      } else {
        throw new ConfigError(`unknown config field "ledger.${key}"`)
      }
    }
  }
  if (input.policies !== undefined) {
    try {
      // parsed once here so a bad policy stops the node at start, not at the first call
      void new Policies(input.policies as PoliciesConfig)
    } catch (err) {
      if (err instanceof PolicyError) {
        throw new ConfigError(err.message)
      }
      throw err
    }
    config.policies = input.policies as PoliciesConfig
  }
  return config
}

/** Prices in the form the service registry takes */
export function configPrices (config: Config): Record<string, Record<string, bigint>> {
  const out: Record<string, Record<string, bigint>> = {}
  for (const [service, settings] of Object.entries(config.services)) {
    for (const [method, price] of Object.entries(settings.prices ?? {})) {
      out[service] ??= {}
      out[service][method] = parseAmount(price)
    }
  }
  return out
}

/** Read config.json; a missing file is written with the defaults */
export async function loadConfig (path: string): Promise<Config> {
  let text: string
  const last = `${path}.last`
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    if (err.code !== 'ENOENT') {
      throw new ConfigError(`cannot read ${path}: ${err.message}`)
    }
    // a node that ran before keeps a copy: starting on the defaults would
    // silently turn payments off and forget prices and policies
    const before = await readFile(last, 'utf8').catch(() => undefined)
    if (before != null) {
      throw new ConfigError(`${path} is missing, but this node ran with one: restore it from the copy of the last one (cp ${last} ${path}), or delete ${last} to start with the defaults`)
    }
    await writeFileAtomic(path, JSON.stringify(DEFAULT_CONFIG, null, 2) + '\n')
    await writeFileAtomic(last, JSON.stringify(DEFAULT_CONFIG, null, 2) + '\n')
    return structuredClone(DEFAULT_CONFIG)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err: any) {
    throw new ConfigError(`${path} is not valid JSON: ${err.message}`)
  }
  let config: Config
  try {
    config = validateConfig(parsed)
  } catch (err: any) {
    throw new ConfigError(`${path}: ${err.message}`)
  }
  if (await readFile(last, 'utf8').catch(() => undefined) !== text) {
    await writeFileAtomic(last, text)
  }
  return config
}

/**
 * Change config.json in place: read it as written (so fields the operator
 * left out stay out), apply `change`, check the result like a start would,
 * and write it atomically. Used for settings changed at run time that must
 * survive a restart (a price set with `market price set`, --listen, --api).
 */
export async function updateConfigFile (path: string, change: (raw: Record<string, any>) => void): Promise<Config> {
  let raw: Record<string, any> = {}
  try {
    raw = JSON.parse(await readFile(path, 'utf8'))
  } catch (err: any) {
    if (err.code !== 'ENOENT') {
      throw new ConfigError(`cannot update ${path}: ${err.message}`)
    }
  }
  change(raw)
  let config: Config
  try {
    config = validateConfig(raw)
  } catch (err: any) {
    throw new ConfigError(`${path}: ${err.message}`)
  }
  const text = JSON.stringify(raw, null, 2) + '\n'
  await writeFileAtomic(path, text)
  await writeFileAtomic(`${path}.last`, text)
  return config
}
