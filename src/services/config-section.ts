import type { PoliciesConfig } from './policy/policy.ts'
import type { BitcoinNetworkName } from '../protocols/bitcoin-networks.ts'
import { parseAmount } from '../protocols/units.ts'

/**
 * A module's part of config.json (README, "Configuration"): the key it sits
 * under, what a missing field means, and how a written one is checked. The
 * node's loader knows no module's fields: it asks each module's sections,
 * so a new module brings its settings with it and the loader is not edited.
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace'

/** services.<name>: what every service has, and what its module adds */
export interface ServiceSettings {
  /** run it, default true */
  enabled?: boolean
  /** price per unit by method, "10 sat" or 10 or "0.0000001 BTC" */
  prices?: Record<string, string | number>
  [setting: string]: unknown
}

/**
 * config.json in the data directory. Every field is optional; the defaults
 * (node/config.ts, and each module's sections) are what a missing field
 * means, and `opencloud-node` writes this file with the defaults on first
 * start so an operator can see and edit them.
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
   * {"sha256": {"prices": {"hash": 10}}}; a service's module may take more
   * (the storage host's `capacity`)
   */
  services: Record<string, ServiceSettings>
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
  /**
   * The sections of the node's modules (src/node/modules.ts), each as its
   * module's ConfigSection checked it: "storage" (upkeep of stored files),
   * "ledger" (the Cloud Ledger), ...
   */
  [section: string]: unknown
}


export class ConfigError extends Error {
  override name = 'ConfigError'
}

export interface ConfigSection<T = unknown> {
  /**
   * Where it sits in config.json: a top-level key ("ledger", "storage"), or
   * "services.<name>" for a service's own settings beside the `enabled` and
   * `prices` every service has (the storage host's `capacity`)
   */
  key: string
  /** what the section is when config.json leaves it (or any field of it) out; written on first start */
  defaults: T
  /**
   * The section as written (`undefined` when absent), checked and completed
   * with the defaults; throws ConfigError naming the field (`path` is the
   * key, for messages: "ledger.idleBlockMs must be ...")
   */
  validate: (raw: unknown, path: string) => T
}

export function isObject (value: unknown): value is Record<string, unknown> {
  return value != null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * The fields of an object section one by one: `raw` must be an object (or
 * absent), every key must be one `fields` knows, and each known key's value
 * is checked by its function, which returns the value to keep.
 */
export function objectSection<T extends object> (raw: unknown, path: string, defaults: T, fields: { [K in keyof T]: (value: unknown, path: string) => T[K] }): T {
  const out = structuredClone(defaults)
  if (raw === undefined) {
    return out
  }
  if (!isObject(raw)) {
    throw new ConfigError(`${path} must be an object`)
  }
  for (const [key, value] of Object.entries(raw)) {
    if (!Object.hasOwn(fields, key)) {
      throw new ConfigError(`unknown config field "${path}.${key}"; the fields are ${Object.keys(fields).join(', ')}`)
    }
    out[key as keyof T] = fields[key as keyof T](value, `${path}.${key}`)
  }
  return out
}

/** A whole number of at least `min` (milliseconds, bytes, counts) */
export function wholeNumber (min: number, unit = ''): (value: unknown, path: string) => number {
  return (value, path) => {
    if (!Number.isSafeInteger(value) || (value as number) < min) {
      throw new ConfigError(`${path} must be a whole number${unit === '' ? '' : ` of ${unit}`}, at least ${min}`)
    }
    return value as number
  }
}

/** A string, checked by `check` (which throws a sentence on a bad one) */
export function stringField (check: (value: string) => void = () => {}): (value: unknown, path: string) => string {
  return (value, path) => {
    if (typeof value !== 'string') {
      throw new ConfigError(`${path} must be a string`)
    }
    try {
      check(value)
    } catch (err: any) {
      throw new ConfigError(`${path}: ${err.message}`)
    }
    return value
  }
}

/**
 * A service's settings (services.<name>): `enabled` and `prices` as every
 * service has them, then the keys `extra` knows (the storage host's
 * capacity), each checked by its function
 */
export function serviceSettings (raw: unknown, path: string, defaults: ServiceSettings, extra: Record<string, (value: unknown, path: string) => unknown> = {}): ServiceSettings {
  const out: ServiceSettings = structuredClone(defaults)
  if (raw === undefined) {
    return out
  }
  if (!isObject(raw)) {
    throw new ConfigError(`${path} must be an object`)
  }
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'enabled') {
      if (typeof value !== 'boolean') {
        throw new ConfigError(`${path}.enabled must be true or false`)
      }
      out.enabled = value
    } else if (key === 'prices') {
      if (!isObject(value)) {
        throw new ConfigError(`${path}.prices must map method names to satoshis per unit`)
      }
      for (const [method, price] of Object.entries(value)) {
        try {
          parseAmount(price as string | number, 'a price')
        } catch (err: any) {
          throw new ConfigError(`${path}.prices.${method}: ${err.message}`)
        }
      }
      out.prices = { ...out.prices, ...(value as Record<string, string | number>) }
    } else if (Object.hasOwn(extra, key)) {
      out[key] = extra[key](value, `${path}.${key}`)
    } else {
      throw new ConfigError(`unknown config field "${path}.${key}"`)
    }
  }
  return out
}
