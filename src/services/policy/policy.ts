import { parseAmount } from '../../protocols/units.ts'
import { parseRateLimit, type RateLimit } from '../../utils/rate-limiter.ts'

/**
 * Policies (seed: "Policies"): the commands allow, deny, min-payment and
 * rate-limit, and for payments max-tab, no-defer, confirmations, min-balance
 * and min-holding-age, in four scopes. For each command the most specific
 * scope that sets it wins: credential, then method, then service, then
 * global. Among several credentials a call presents, a deny beats an allow,
 * the highest min-payment applies, and every rate limit applies; for the
 * payment commands the first credential that sets one wins.
 */

export interface PolicyCommands {
  allow?: boolean
  deny?: boolean
  'min-payment'?: string | number
  'rate-limit'?: string
  /** the most a caller may owe in deferred payments (the seed's bar tab) */
  'max-tab'?: string | number
  /** refuse deferred payment outright */
  'no-defer'?: boolean
  /** confirmations an attached payment needs before the call is served */
  confirmations?: number
  /** the caller must prove this much in bitcoin credentials */
  'min-balance'?: string | number
  /** ...held for at least this many blocks */
  'min-holding-age'?: number
  /** deny callers whose trust score is below this (1 is the average peer) */
  'min-trust'?: number
  /** give credit only to callers whose trust score is at least this; below it, payment must be attached */
  'defer-min-trust'?: number
}

/** The policies section of config.json */
export interface PoliciesConfig {
  global?: PolicyCommands
  /** keyed by service name */
  service?: Record<string, PolicyCommands>
  /** keyed by service.method */
  method?: Record<string, PolicyCommands>
  /** keyed by credential text: oc:<PeerId> or btc:<address> */
  credential?: Record<string, PolicyCommands>
}

interface ParsedCommands {
  access?: 'allow' | 'deny'
  minPayment?: bigint
  rateLimit?: RateLimit
  maxTab?: bigint
  noDefer?: boolean
  confirmations?: number
  minBalance?: bigint
  minHoldingAge?: number
  minTrust?: number
  deferMinTrust?: number
}

/** The payment commands, resolved the same way: most specific scope first */
export interface PaymentPolicy {
  /** satoshis; 0 means no credit */
  maxTab: bigint
  noDefer: boolean
  /** undefined: the node's default for its network */
  confirmations?: number
  minBalance: bigint
  minHoldingAge: number
  /** trust scores (1 = the average peer); 0 means no threshold */
  minTrust: number
  deferMinTrust: number
}

export interface PolicyDecision {
  access: 'allow' | 'deny'
  /** the scope whose allow/deny decided, e.g. "credential oc:12D3...", "global", "default" */
  accessScope: string
  minPayment: bigint
  /** rate limits that apply, each with the key of its bucket */
  rateLimits: Array<{ scope: string, limit: RateLimit }>
  payment: PaymentPolicy
}

export class PolicyError extends Error {
  override name = 'PolicyError'
}

const COMMANDS = new Set(['allow', 'deny', 'min-payment', 'rate-limit', 'max-tab', 'no-defer', 'confirmations', 'min-balance', 'min-holding-age', 'min-trust', 'defer-min-trust'])

function parseCommands (where: string, value: unknown): ParsedCommands {
  if (value == null || typeof value !== 'object' || Array.isArray(value)) {
    throw new PolicyError(`${where} must be an object of policy commands (allow, deny, min-payment, rate-limit)`)
  }
  const out: ParsedCommands = {}
  for (const key of Object.keys(value)) {
    if (!COMMANDS.has(key)) {
      throw new PolicyError(`${where} has an unknown command "${key}"; the commands are ${[...COMMANDS].join(', ')}`)
    }
  }
  const c = value as PolicyCommands
  if (c.allow != null && typeof c.allow !== 'boolean') {
    throw new PolicyError(`${where}.allow must be true or false`)
  }
  if (c.deny != null && typeof c.deny !== 'boolean') {
    throw new PolicyError(`${where}.deny must be true or false`)
  }
  if (c.allow === true && c.deny === true) {
    throw new PolicyError(`${where} both allows and denies`)
  }
  if (c.allow === true || c.deny === false) {
    out.access = 'allow'
  } else if (c.deny === true || c.allow === false) {
    out.access = 'deny'
  }
  if (c['min-payment'] != null) {
    try {
      out.minPayment = parseAmount(c['min-payment'], 'min-payment')
    } catch (err: any) {
      throw new PolicyError(`${where}.min-payment: ${err.message}`)
    }
  }
  for (const [key, field] of [['max-tab', 'maxTab'], ['min-balance', 'minBalance']] as const) {
    if (c[key] != null) {
      try {
        out[field] = parseAmount(c[key], key)
      } catch (err: any) {
        throw new PolicyError(`${where}.${key}: ${err.message}`)
      }
    }
  }
  if (c['no-defer'] != null) {
    if (typeof c['no-defer'] !== 'boolean') {
      throw new PolicyError(`${where}.no-defer must be true or false`)
    }
    out.noDefer = c['no-defer']
  }
  for (const [key, field] of [['confirmations', 'confirmations'], ['min-holding-age', 'minHoldingAge']] as const) {
    if (c[key] != null) {
      if (!Number.isSafeInteger(c[key]) || (c[key] as number) < 0) {
        throw new PolicyError(`${where}.${key} must be a whole number of blocks`)
      }
      out[field] = c[key]
    }
  }
  for (const [key, field] of [['min-trust', 'minTrust'], ['defer-min-trust', 'deferMinTrust']] as const) {
    if (c[key] != null) {
      if (typeof c[key] !== 'number' || !Number.isFinite(c[key]) || (c[key] as number) < 0) {
        throw new PolicyError(`${where}.${key} must be a trust score: 0 or more, where 1 is the average peer`)
      }
      out[field] = c[key]
    }
  }
  if (c['rate-limit'] != null) {
    try {
      out.rateLimit = parseRateLimit(String(c['rate-limit']))
    } catch (err: any) {
      throw new PolicyError(`${where}.rate-limit: ${err.message}`)
    }
  }
  return out
}

function parseScope (where: string, value: unknown): Map<string, ParsedCommands> {
  const out = new Map<string, ParsedCommands>()
  if (value == null) {
    return out
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new PolicyError(`${where} must be an object keyed by name`)
  }
  for (const [key, commands] of Object.entries(value)) {
    out.set(key, parseCommands(`${where}["${key}"]`, commands))
  }
  return out
}

export interface PolicyQuery {
  service: string
  method: string
  credentials: string[]
}

export class Policies {
  private readonly global: ParsedCommands
  private readonly service: Map<string, ParsedCommands>
  private readonly method: Map<string, ParsedCommands>
  private readonly credential: Map<string, ParsedCommands>

  constructor (config: PoliciesConfig = {}) {
    if (config == null || typeof config !== 'object' || Array.isArray(config)) {
      throw new PolicyError('policies must be an object with the scopes global, service, method, credential')
    }
    for (const key of Object.keys(config)) {
      if (!['global', 'service', 'method', 'credential'].includes(key)) {
        throw new PolicyError(`policies has an unknown scope "${key}"; the scopes are global, service, method, credential`)
      }
    }
    this.global = config.global == null ? {} : parseCommands('policies.global', config.global)
    this.service = parseScope('policies.service', config.service)
    this.method = parseScope('policies.method', config.method)
    for (const key of this.method.keys()) {
      if (!/^[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*$/.test(key)) {
        throw new PolicyError(`policies.method["${key}"]: method scopes are written service.method, e.g. "sha256.hash"`)
      }
    }
    this.credential = parseScope('policies.credential', config.credential)
    for (const key of this.credential.keys()) {
      if (!/^(oc|btc):\S+$/.test(key)) {
        throw new PolicyError(`policies.credential["${key}"]: credential scopes are written oc:<PeerId> or btc:<address>`)
      }
    }
  }

  /** Where a min-payment above zero is set, e.g. "policies.service.sha256"; undefined when nowhere */
  minPaymentScope (): string | undefined {
    if ((this.global.minPayment ?? 0n) > 0n) {
      return 'policies.global'
    }
    for (const [name, map] of [['service', this.service], ['method', this.method], ['credential', this.credential]] as const) {
      for (const [key, commands] of map) {
        if ((commands.minPayment ?? 0n) > 0n) {
          return `policies.${name}["${key}"]`
        }
      }
    }
    return undefined
  }

  decide (query: PolicyQuery): PolicyDecision {
    const methodKey = `${query.service}.${query.method}`
    const scopes: Array<[string, ParsedCommands | undefined]> = [
      [`method ${methodKey}`, this.method.get(methodKey)],
      [`service ${query.service}`, this.service.get(query.service)],
      ['global', this.global]
    ]
    const credentialScopes: Array<[string, ParsedCommands]> = []
    for (const c of query.credentials) {
      const commands = this.credential.get(c)
      if (commands != null) {
        credentialScopes.push([`credential ${c}`, commands])
      }
    }

    const decision: PolicyDecision = {
      access: 'allow',
      accessScope: 'default',
      minPayment: 0n,
      rateLimits: [],
      payment: {
        maxTab: this.pick(credentialScopes, scopes, 'maxTab') ?? 0n,
        noDefer: this.pick(credentialScopes, scopes, 'noDefer') ?? false,
        confirmations: this.pick(credentialScopes, scopes, 'confirmations'),
        minBalance: this.pick(credentialScopes, scopes, 'minBalance') ?? 0n,
        minHoldingAge: this.pick(credentialScopes, scopes, 'minHoldingAge') ?? 0,
        minTrust: this.pick(credentialScopes, scopes, 'minTrust') ?? 0,
        deferMinTrust: this.pick(credentialScopes, scopes, 'deferMinTrust') ?? 0
      }
    }

    const credentialAccess = credentialScopes.filter(([, c]) => c.access != null)
    const denied = credentialAccess.find(([, c]) => c.access === 'deny')
    if (denied != null) {
      decision.access = 'deny'
      decision.accessScope = denied[0]
    } else if (credentialAccess.length > 0) {
      decision.access = 'allow'
      decision.accessScope = credentialAccess[0][0]
    } else {
      const scope = scopes.find(([, c]) => c?.access != null)
      if (scope != null) {
        decision.access = scope[1]?.access as 'allow' | 'deny'
        decision.accessScope = scope[0]
      }
    }

    const credentialMin = credentialScopes.filter(([, c]) => c.minPayment != null)
    if (credentialMin.length > 0) {
      decision.minPayment = credentialMin.reduce((max, [, c]) => (c.minPayment as bigint) > max ? c.minPayment as bigint : max, 0n)
    } else {
      decision.minPayment = scopes.find(([, c]) => c?.minPayment != null)?.[1]?.minPayment ?? 0n
    }

    const credentialLimits = credentialScopes.filter(([, c]) => c.rateLimit != null)
    if (credentialLimits.length > 0) {
      decision.rateLimits = credentialLimits.map(([scope, c]) => ({ scope, limit: c.rateLimit as RateLimit }))
    } else {
      const scope = scopes.find(([, c]) => c?.rateLimit != null)
      if (scope != null) {
        decision.rateLimits = [{ scope: scope[0], limit: scope[1]?.rateLimit as RateLimit }]
      }
    }
    return decision
  }

  /** The value of a command from the most specific scope that sets it */
  private pick<K extends keyof ParsedCommands> (credentialScopes: Array<[string, ParsedCommands]>, scopes: Array<[string, ParsedCommands | undefined]>, key: K): ParsedCommands[K] | undefined {
    for (const [, c] of credentialScopes) {
      if (c[key] != null) {
        return c[key]
      }
    }
    for (const [, c] of scopes) {
      if (c?.[key] != null) {
        return c[key]
      }
    }
    return undefined
  }
}
