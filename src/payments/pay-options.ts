import { formatBtc, parseAmount } from '../protocols/units.ts'
import { parseThreshold } from './tab-book.ts'

/**
 * How a person asks a call to pay, as typed on the command line (`--pay`,
 * `--max-price`, `--threshold`) or given to the control API (`pay`,
 * `maxPrice`, `threshold`). One parser for both, so a mistake is caught the
 * same way: by the CLI before anything is sent (a usage error, exit 2) and
 * by the API with a 400.
 */

/** How a call pays */
export type PayMode =
  | { kind: 'none' }
  | { kind: 'attached', sats: bigint }
  | { kind: 'defer', sats: bigint }
  /** through this node's channel with the server, opening one when it has none with room */
  | { kind: 'channel', sats: bigint }
  | { kind: 'auto' }
  /** a Cloud Ledger promo code this node owns (hex) */
  | { kind: 'promo', code: string }

/** The most a call may pay: an amount, or the market median times a factor */
export type MaxPrice = { kind: 'amount', sats: bigint } | { kind: 'market', factor: number }

export interface PayRequest {
  pay: PayMode
  maxPrice?: MaxPrice
  /** the threshold in its wire form (PROTOCOL.md, "Deferred payment") */
  threshold?: string
}

export class PayOptionError extends Error {
  override name = 'PayOptionError'
}

/** The factor `--max-price market` means, and the largest one accepted */
export const DEFAULT_MARKET_FACTOR = 1.5
const MAX_MARKET_FACTOR = 100

/** "attached:0.0001 BTC", "defer:500 sat", "auto", "none" */
export function parsePayMode (text: string): PayMode {
  if (text === 'auto' || text === 'none') {
    return { kind: text }
  }
  const promo = /^promo:(.*)$/.exec(text)
  if (promo != null) {
    if (!/^[0-9a-f]{64}$/.test(promo[1])) {
      throw new PayOptionError(`--pay promo:<code> takes a promo code of 64 hex digits (\`ledger promo mine\` lists yours), not "${promo[1]}"`)
    }
    return { kind: 'promo', code: promo[1] }
  }
  const match = /^(attached|defer|channel):(.+)$/.exec(text)
  if (match == null) {
    throw new PayOptionError(`--pay takes auto, none, attached:<amount>, defer:<amount>, channel:<amount> (e.g. attached:500sat) or promo:<code>, not "${text}"`)
  }
  try {
    return { kind: match[1] as 'attached' | 'defer' | 'channel', sats: parseAmount(match[2], `the --pay ${match[1]} amount`) }
  } catch (err: any) {
    throw new PayOptionError(err.message)
  }
}

/** "market", "market:2", or an amount */
export function parseMaxPrice (text: string): MaxPrice {
  const market = /^market(?::(.*))?$/.exec(text.trim())
  if (market != null) {
    const factor = market[1] == null ? DEFAULT_MARKET_FACTOR : Number(market[1])
    if (!/^[0-9]+(\.[0-9]+)?$/.test(market[1] ?? '1') || !(factor > 0) || factor > MAX_MARKET_FACTOR) {
      throw new PayOptionError(`--max-price market:<factor> takes a factor above 0 and at most ${MAX_MARKET_FACTOR}, e.g. market:2; not "${text}"`)
    }
    return { kind: 'market', factor }
  }
  try {
    return { kind: 'amount', sats: parseAmount(text, '--max-price') }
  } catch (err: any) {
    throw new PayOptionError(`${err.message}; or say market (the market median times ${DEFAULT_MARKET_FACTOR})`)
  }
}

/** time:<seconds>, amount:<amount> or completion, in the wire form (amounts as BTC decimals) */
export function parseThresholdOption (text: string): string {
  const amount = /^amount:(.+)$/.exec(text.trim())
  try {
    const wire = amount == null ? text.trim() : `amount:${formatBtc(parseAmount(amount[1], 'the --threshold amount'))}`
    parseThreshold(wire)
    return wire
  } catch (err: any) {
    throw new PayOptionError(`--threshold takes time:<seconds>, amount:<amount> or completion: ${err.message}`)
  }
}

/** The options of one paid call; undefined when it does not pay */
export function parsePayRequest (options: { pay?: string, maxPrice?: string, threshold?: string }): PayRequest | undefined {
  const pay = parsePayMode(options.pay ?? 'none')
  if (pay.kind === 'none') {
    if (options.maxPrice != null || options.threshold != null) {
      throw new PayOptionError('--max-price and --threshold go with --pay, e.g. --pay auto --max-price 500sat')
    }
    return undefined
  }
  if (pay.kind === 'auto' && options.maxPrice == null) {
    throw new PayOptionError('--pay auto needs --max-price, the most you will pay: e.g. --max-price 500sat, --max-price "0.00001 BTC" or --max-price market')
  }
  if (pay.kind === 'promo' && (options.maxPrice != null || options.threshold != null)) {
    throw new PayOptionError('a promo code pays for one call up to its credit: --max-price and --threshold do not go with --pay promo:<code>')
  }
  if (options.threshold != null && (pay.kind === 'attached' || pay.kind === 'channel')) {
    throw new PayOptionError('--threshold is for deferred payments: use it with --pay defer:<amount> or --pay auto')
  }
  return {
    pay,
    maxPrice: options.maxPrice == null ? undefined : parseMaxPrice(options.maxPrice),
    threshold: options.threshold == null ? undefined : parseThresholdOption(options.threshold)
  }
}
