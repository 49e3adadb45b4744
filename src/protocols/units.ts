/**
 * Money and pricing units. Amounts are integer satoshis (bigint) in every
 * calculation; the wire and the config show BTC as decimal strings, which are
 * parsed digit by digit and never pass through a float.
 */

export const SATS_PER_BTC = 100_000_000n

export class InvalidAmountError extends Error {
  override name = 'InvalidAmountError'
}

const BTC_AMOUNT = /^(0|[1-9][0-9]{0,15})(?:\.([0-9]{1,8}))?$/

/** "0.00001" -> 1000n */
export function parseBtc (amount: string): bigint {
  const match = BTC_AMOUNT.exec(amount.trim())
  if (match == null) {
    throw new InvalidAmountError(`"${amount}" is not a BTC amount: write a plain decimal with at most 8 decimals, e.g. 0.0001`)
  }
  return BigInt(match[1]) * SATS_PER_BTC + BigInt((match[2] ?? '').padEnd(8, '0'))
}

/** 1000n -> "0.00001" (the shortest exact form) */
export function formatBtc (sats: bigint): string {
  if (sats < 0n) {
    throw new InvalidAmountError('amounts are never negative')
  }
  const whole = sats / SATS_PER_BTC
  const frac = (sats % SATS_PER_BTC).toString().padStart(8, '0').replace(/0+$/, '')
  return frac === '' ? whole.toString() : `${whole}.${frac}`
}

/** No amount can exceed the 21 million BTC that will ever exist */
export const MAX_MONEY = 21_000_000n * SATS_PER_BTC

/**
 * The one rule for amounts a person writes, in CLI flags, config.json and
 * the control API alike: the amount names its unit, "100 sat" or
 * "0.000001 BTC" (any case, space optional), and a number without a unit
 * is whole satoshis. A bare decimal such as "0.0001" is refused rather than
 * guessed: read as satoshis it is a fraction, read as BTC it may be a
 * hundred million times what was meant.
 *
 * `what` names the amount in errors ("a price", "--max-price").
 */
export function parseAmount (value: string | number, what = 'an amount'): bigint {
  let sats: bigint
  if (typeof value === 'number') {
    if (value < 0) {
      throw new InvalidAmountError(`${what} can't be negative`)
    }
    if (!Number.isSafeInteger(value)) {
      throw new InvalidAmountError(`${what} of ${value} is not a whole number of satoshis; write "${value} BTC" if BTC was meant`)
    }
    sats = BigInt(value)
  } else {
    const text = value.trim()
    if (/^-/.test(text)) {
      throw new InvalidAmountError(`${what} can't be negative`)
    }
    const sat = /^([0-9]+)\s*(?:sat|sats|satoshi|satoshis)?$/i.exec(text)
    const btc = /^([0-9.]+)\s*BTC$/i.exec(text)
    if (sat != null) {
      sats = BigInt(sat[1])
    } else if (btc != null) {
      try {
        sats = parseBtc(btc[1])
      } catch {
        throw new InvalidAmountError(`${what} "${value}" is not a BTC amount: a decimal with at most 8 places, e.g. "0.0001 BTC"`)
      }
    } else if (/^[0-9]*\.[0-9]+$/.test(text)) {
      throw new InvalidAmountError(`${what} "${value}" has no unit: write "${text} BTC" or a whole number of satoshis such as "${exampleSats(text)} sat"`)
    } else {
      throw new InvalidAmountError(`${what} "${value}" is not an amount: write it with its unit, e.g. "100 sat" or "0.000001 BTC" (a number without a unit is satoshis)`)
    }
  }
  if (sats > MAX_MONEY) {
    throw new InvalidAmountError(`${what} of ${formatAmount(sats)} is more than the 21,000,000 BTC that will ever exist`)
  }
  return sats
}

/** "0.0001" -> "10000": the bare decimal read as BTC, for a hint */
function exampleSats (decimal: string): string {
  try {
    return parseBtc(decimal).toString()
  } catch {
    return '100'
  }
}

/**
 * How every amount is shown, in output and in the control API's JSON: BTC
 * with its unit, "0.000001 BTC". parseAmount reads it back.
 */
export function formatAmount (sats: bigint): string {
  return `${formatBtc(sats)} BTC`
}

/**
 * A change of an amount, which may be below zero: an unconfirmed balance
 * is negative while a spend of confirmed coins waits in the mempool
 * ("-0.0005018 BTC"). Output only: amounts given to the node are never negative.
 */
export function formatSignedAmount (sats: bigint): string {
  return sats < 0n ? `-${formatAmount(-sats)}` : formatAmount(sats)
}

/** A standard unit of service in which a method is priced (seed: "Template") */
export interface PricingUnit {
  /** short name, e.g. "call", "MiB" */
  name: string
  description: string
}

export const Units = {
  CALL: { name: 'call', description: 'one call' },
  MIB: { name: 'MiB', description: 'one mebibyte (2^20 bytes) of request body, rounded up' },
  TIB: { name: 'TiB', description: 'one tebibyte (2^40 bytes) moved, charged pro rata: the whole satoshis with the call, the fraction of a satoshi with the next rent' },
  TIB_MONTH: { name: 'TiB-month', description: 'one tebibyte (2^40 bytes) held for 30 days, accrued exactly per rent period and paid in whole satoshis' }
} as const satisfies Record<string, PricingUnit>
