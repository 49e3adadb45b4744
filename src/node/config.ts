import { readFile } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { parseAmount } from '../protocols/units.ts'
import { Policies, PolicyError, type PoliciesConfig } from '../services/policy/policy.ts'
import { ConfigError, isObject, serviceSettings, type Config, type ConfigSection, type LogLevel } from '../services/config-section.ts'
import { DEFAULT_MAX_BODY_BYTES } from '../protocols/rpc/constants.ts'
import { writeFileAtomic } from '../utils/files.ts'
import { BITCOIN_NETWORKS, type BitcoinNetworkName } from '../protocols/bitcoin-networks.ts'
import { MODULE_SECTIONS } from './modules.ts'

export { ConfigError, type Config, type LogLevel } from '../services/config-section.ts'

export const LOG_LEVELS: LogLevel[] = ['error', 'warn', 'info', 'debug', 'trace']

/** The node's own fields; the modules' sections add theirs (defaultConfig) */
const CORE_DEFAULTS: Config = {
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
  services: {},
  policies: {},
  payments: {
    network: 'regtest',
    chain: '',
    settleIntervalMs: 5_000,
    graceMs: 600_000
  },
  reputation: {
    pretrusted: []
  }
}

/**
 * Every default: the node's own fields and each module section's, so the
 * config.json written on first start shows an operator every setting
 */
export function defaultConfig (sections: ConfigSection[] = MODULE_SECTIONS): Config {
  const config: Config = structuredClone(CORE_DEFAULTS)
  for (const section of sections) {
    const [top, name] = section.key.split('.')
    if (top === 'services') {
      config.services[name] = structuredClone(section.defaults) as Config['services'][string]
    } else {
      config[top] = structuredClone(section.defaults)
    }
  }
  return config
}

export const DEFAULT_CONFIG: Config = defaultConfig()

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

/** The node's own top-level fields; the modules' sections add theirs */
const CORE_FIELDS = ['listen', 'bootstrap', 'api', 'logLevel', 'rpc', 'dht', 'services', 'policies', 'payments', 'reputation']

/**
 * Check a parsed config and fill in defaults; every error names the field.
 * The node checks its own fields here and each module's section with the
 * section's own check (`sections`, the modules' by default).
 */
export function validateConfig (input: unknown, sections: ConfigSection[] = MODULE_SECTIONS): Config {
  if (!isObject(input)) {
    throw new ConfigError('the config must be a JSON object')
  }
  const known = [...CORE_FIELDS, ...new Set(sections.map(s => s.key.split('.')[0]).filter(k => k !== 'services'))]
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) {
      throw new ConfigError(`unknown config field "${key}"; the fields are ${known.join(', ')}`)
    }
  }
  const config: Config = defaultConfig(sections)
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
      // a service a module describes is checked by its section; any other
      // has enabled and prices only (the node refuses names no module runs)
      const section = sections.find(s => s.key === `services.${name}`)
      config.services[name] = section == null
        ? serviceSettings(value, `services.${name}`, {})
        : section.validate(value, `services.${name}`) as Config['services'][string]
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
  for (const section of sections.filter(s => !s.key.startsWith('services.'))) {
    config[section.key] = section.validate(input[section.key], section.key)
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
export async function loadConfig (path: string, sections: ConfigSection[] = MODULE_SECTIONS): Promise<Config> {
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
    const defaults = defaultConfig(sections)
    await writeFileAtomic(path, JSON.stringify(defaults, null, 2) + '\n')
    await writeFileAtomic(last, JSON.stringify(defaults, null, 2) + '\n')
    return defaults
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err: any) {
    throw new ConfigError(`${path} is not valid JSON: ${err.message}`)
  }
  let config: Config
  try {
    config = validateConfig(parsed, sections)
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
