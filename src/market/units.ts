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

/**
 * An amount in config or on the command line: "0.0001 BTC", "0.0001",
 * "1500 sat" or a bare integer number of satoshis.
 */
export function parseAmount (value: string | number): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidAmountError(`${value} is not a whole, non-negative number of satoshis`)
    }
    return BigInt(value)
  }
  const text = value.trim()
  const sat = /^([0-9]+)\s*(sat|sats|satoshi|satoshis)$/i.exec(text)
  if (sat != null) {
    return BigInt(sat[1])
  }
  const btc = /^(\S+)\s*BTC$/i.exec(text)
  return parseBtc(btc == null ? text : btc[1])
}

/** A standard unit of service in which a method is priced (seed: "Template") */
export interface PricingUnit {
  /** short name, e.g. "call", "MiB" */
  name: string
  description: string
}

export const Units = {
  CALL: { name: 'call', description: 'one call' },
  MIB: { name: 'MiB', description: 'one mebibyte (2^20 bytes) of request body, rounded up' }
} as const satisfies Record<string, PricingUnit>
