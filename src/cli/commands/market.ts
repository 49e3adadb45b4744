import { connectApi } from '../api-client.ts'
import { printJson, table, UsageError, type Command } from '../command.ts'
import { parseAmount } from '../../protocols/units.ts'

export const marketCommand: Command = {
  name: 'market',
  summary: 'market prices gossiped by providers, their statistics, and this node\'s own price',
  usage: 'opencloud-node market <prices [--service S] [--method M] | stats | price set <service>.<method> <amount>>',
  help: `Providers publish signed offers (price per standard unit) on a gossipsub
topic; every node keeps the latest valid offer of each provider.

  market prices                     offers this node knows, by method, cheapest first
  market stats                      count, min, median and p90 per method and unit
  market price set sha256.hash "100 sat"
                                    change this node's price now, announce it,
                                    and keep it in config.json
Amounts name their unit: "100 sat", 100sat or "0.000001 BTC"; a number without
a unit is satoshis (100 means 100 sat). A price more than 10 times the market
median needs --yes.

Options:
  --service S  only offers for service S
  --method M   only offers for method M
  --yes        set a price far above the market anyway`,
  options: { service: { type: 'string' }, method: { type: 'string' }, yes: { type: 'boolean' } },
  run: async ({ values, positionals, json, dataDir, out }) => {
    const [sub, ...rest] = positionals
    const usage = 'usage: opencloud-node market <prices | stats | price set <service>.<method> <amount>>'
    // the command line is checked before the node is asked, so a mistake is a usage error
    let sats: bigint | undefined
    let target: RegExpExecArray | null = null
    if (sub === 'price') {
      if (rest[0] !== 'set' || rest.length !== 3) {
        throw new UsageError(usage)
      }
      target = /^([a-z][a-z0-9-]*)\.([a-z][a-z0-9-]*)$/.exec(rest[1])
      if (target == null) {
        throw new UsageError(`"${rest[1]}" is not <service>.<method>, e.g. sha256.hash`)
      }
      try {
        sats = parseAmount(rest[2], 'a price')
      } catch (e: any) {
        throw new UsageError(e.message)
      }
    } else if ((sub !== 'prices' && sub !== 'stats') || rest.length > 0) {
      throw new UsageError(usage)
    }
    const api = await connectApi(dataDir, values.api)
    const query = new URLSearchParams()
    if (values.service != null) query.set('service', values.service)
    if (values.method != null) query.set('method', values.method)
    if (sub === 'prices') {
      const prices = await api.get<any[]>(`/v1/market/prices?${query.toString()}`)
      if (json) {
        printJson(out, prices)
      } else {
        out.write(prices.length === 0 ? 'no offers known yet\n' : table([['PROVIDER', 'METHOD', 'PRICE', 'PER', 'VALID UNTIL'], ...byMethod(prices).map(p => [p.provider, `${p.service}.${p.method}`, p.price, p.unit, p.validUntil])]))
      }
      return
    }
    if (sub === 'stats') {
      const stats = await api.get<any[]>(`/v1/market/stats?${query.toString()}`)
      if (json) {
        printJson(out, stats)
      } else {
        out.write(stats.length === 0 ? 'no offers known yet\n' : table([['METHOD', 'PER', 'OFFERS', 'MIN', 'MEDIAN', 'P90'], ...stats.map(s => [`${s.service}.${s.method}`, s.unit, String(s.count), s.min, s.median, s.p90])]))
      }
      return
    }
    if (sats != null && target != null) {
      const result = await api.post<any>('/v1/market/price', { service: target[1], method: target[2], amount: `${sats} sat`, confirm: values.yes === true })
      if (json) {
        printJson(out, result)
      } else {
        const unit = result.offer?.unit == null ? 'unit' : result.offer.unit
        out.write(`${result.service}.${result.method} now costs ${result.price} per ${unit}` +
          `${result.offer == null ? ' (free: no offer is published)' : '; the offer is announced'}` +
          `${result.persisted === true ? ', and config.json keeps it' : ' until the node stops'}\n`)
      }
    }
  }
}

/**
 * The offers grouped by method, in the order the API gives them within each
 * (cheapest first): a table of storage offers mixed rent, put and get rows
 */
export function byMethod<T extends { service: string, method: string }> (offers: T[]): T[] {
  const key = (o: T): string => `${o.service}.${o.method}`
  return offers.map((o, i) => ({ o, i })).sort((a, b) => key(a.o) < key(b.o) ? -1 : key(a.o) > key(b.o) ? 1 : a.i - b.i).map(x => x.o)
}
