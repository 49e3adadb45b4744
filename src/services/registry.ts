import { formatAmount, Units } from '../protocols/units.ts'
import { BadRequestError, MethodUnsupportedError, ServiceUnsupportedError } from '../protocols/rpc/errors.ts'
import type { OfferedMethod } from '../market/market.ts'
import { TEMPLATE_METHODS, type MethodSpec, type Service, type UnitsQuery } from './interface.ts'

export interface Quote {
  service: string
  method: string
  unit: string
  units: number
  /** satoshis per unit */
  price: bigint
  /** satoshis for the call: units x price */
  total: bigint
}

export interface ServiceRegistryInit {
  /** Per-service, per-method prices in satoshis per unit, overriding the services' defaults */
  prices?: Record<string, Record<string, bigint>>
}

/**
 * The services a node runs, and the one place prices are looked up: `quote`
 * and the pipeline's payment check both ask `quote()` here, so a quote is
 * always what the node will charge.
 */
export class ServiceRegistry {
  private readonly services = new Map<string, Service>()
  private readonly prices: Record<string, Record<string, bigint>>

  constructor (init: ServiceRegistryInit = {}) {
    this.prices = init.prices ?? {}
  }

  register (service: Service): void {
    if (this.services.has(service.name)) {
      throw new Error(`service "${service.name}" is registered twice`)
    }
    for (const name of TEMPLATE_METHODS) {
      if (Object.hasOwn(service.methods, name)) {
        throw new Error(`service "${service.name}" defines "${name}", which the service template provides`)
      }
    }
    this.services.set(service.name, service)
  }

  list (): Service[] {
    return [...this.services.values()]
  }

  names (): string[] {
    return [...this.services.keys()]
  }

  /** The method a call names, or the error the caller should see */
  resolve (serviceName: string, methodName: string): { service: Service, method: MethodSpec } {
    const service = this.services.get(serviceName)
    if (service == null) {
      throw new ServiceUnsupportedError(`this node does not run a "${serviceName}" service; it runs ${this.names().join(', ')}`)
    }
    const method = this.templateMethod(service, methodName) ?? (Object.hasOwn(service.methods, methodName) ? service.methods[methodName] : undefined)
    if (method == null) {
      throw new MethodUnsupportedError(`the ${serviceName} service has no method "${methodName}"; it has ${this.methodNames(service).join(', ')}`)
    }
    return { service, method }
  }

  methodNames (service: Service): string[] {
    return [...TEMPLATE_METHODS, ...Object.keys(service.methods)]
  }

  priceOf (serviceName: string, methodName: string, method: MethodSpec): bigint {
    return this.prices[serviceName]?.[methodName] ?? method.price ?? 0n
  }

  /** Every method of every service with its unit and price (what the market offers) */
  offered (): OfferedMethod[] {
    return this.list().flatMap(service => Object.entries(service.methods).map(([name, spec]) => ({
      service: service.name,
      method: name,
      unit: spec.unit.name,
      price: this.priceOf(service.name, name, spec),
      advertise: spec.advertise === true
    })))
  }

  setPrice (serviceName: string, methodName: string, price: bigint): void {
    this.resolve(serviceName, methodName)
    this.prices[serviceName] ??= {}
    this.prices[serviceName][methodName] = price
  }

  quote (serviceName: string, methodName: string, query: UnitsQuery): Quote {
    const { method } = this.resolve(serviceName, methodName)
    const units = method.units?.(query) ?? 1
    const price = this.priceOf(serviceName, methodName, method)
    return { service: serviceName, method: methodName, unit: method.unit.name, units, price, total: price * BigInt(units) }
  }

  async start (): Promise<void> {
    for (const service of this.services.values()) {
      await service.start?.()
    }
  }

  async stop (): Promise<void> {
    for (const service of this.services.values()) {
      await service.stop?.()
    }
  }

  /** info, methods and quote, the same for every service */
  private templateMethod (service: Service, name: string): MethodSpec | undefined {
    switch (name) {
      case 'info':
        return {
          description: 'the service name, version and description',
          unit: Units.CALL,
          handle: async () => ({ json: { name: service.name, version: service.version, description: service.description } })
        }
      case 'methods':
        return {
          description: 'the methods of this service with their pricing units and prices',
          unit: Units.CALL,
          handle: async () => ({
            json: this.methodNames(service).map(m => {
              const spec = this.resolve(service.name, m).method
              return {
                name: m,
                description: spec.description,
                args: spec.args ?? '',
                unit: spec.unit.name,
                unitDescription: spec.unit.description,
                price: formatAmount(this.priceOf(service.name, m, spec)),
                currency: 'BTC'
              }
            })
          })
        }
      case 'quote':
        return {
          description: 'the cost of calling a method for a number of units of service',
          args: '<method> [units]',
          unit: Units.CALL,
          handle: async ({ args, priceOf }) => {
            const [method, unitsText] = args
            if (method == null) {
              throw new BadRequestError('quote takes the method name and, optionally, a number of units')
            }
            const units = unitsText == null ? 1 : Number(unitsText)
            if (!Number.isSafeInteger(units) || units < 0) {
              throw new BadRequestError(`units must be a whole number, not "${unitsText}"`)
            }
            const spec = this.resolve(service.name, method).method
            const price = this.priceOf(service.name, method, spec)
            // the caller's own price where the pipeline knows it (policies may raise it)
            const total = priceOf?.(method, units) ?? price * BigInt(units)
            return {
              json: {
                service: service.name,
                method,
                unit: spec.unit.name,
                units,
                price: formatAmount(price),
                total: formatAmount(total),
                currency: 'BTC'
              }
            }
          }
        }
      default:
        return undefined
    }
  }
}
