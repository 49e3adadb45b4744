import { parseAmount } from '../protocols/units.ts'
import { parseDuration } from '../utils/duration.ts'
import { MAX_CONTRACT_MS } from './protocol/contract.ts'
import { InvalidPutOptionError, InvalidRedundancyError } from './errors.ts'

/**
 * A put's options as people write them (`--redundancy 4-of-8`, `--duration
 * 30d`, `--max-price "2000 sat"`), read in one place for both the control
 * API and the CLI: the CLI checks them before it asks the daemon, so a
 * mistake is a usage error named as the user typed it; the API checks them
 * again before any host is asked.
 */

export { InvalidRedundancyError, InvalidPutOptionError }

/** "4-of-8" */
export function parseRedundancy (text: string): { k: number, n: number } {
  const match = /^([0-9]+)-of-([0-9]+)$/.exec(text.trim())
  const k = Number(match?.[1])
  const n = Number(match?.[2])
  if (match == null || k < 1 || n < k || n > 255) {
    throw new InvalidRedundancyError(`--redundancy takes K-of-N with 1 <= K <= N <= 255, e.g. 4-of-8 (any 4 of 8 shards rebuild the file), not "${text}"`)
  }
  return { k, n }
}

/** What a put's options are called where they come from: the API's fields, or the CLI's flags */
export interface PutOptionNames {
  redundancy: string
  duration: string
  maxPrice: string
}

/** A put's options read from text (StorageClient's PutOptions takes them) */
export interface ParsedPutOptions {
  k?: number
  n?: number
  durationMs?: number
  /** satoshis per TiB-month */
  maxStoragePrice?: bigint
}

/**
 * A put's redundancy, duration and price ceiling, checked as the API
 * receives them and, under the flags' names, by the CLI before it asks the
 * daemon (so a mistake is a usage error, named as the user typed it)
 */
export function parsePutOptions (input: { redundancy?: unknown, duration?: unknown, maxPrice?: unknown }, names: PutOptionNames = { redundancy: 'redundancy', duration: 'duration', maxPrice: 'maxPrice' }): ParsedPutOptions {
  const options: ParsedPutOptions = {}
  try {
    if (input.redundancy != null) {
      // parseRedundancy speaks of the CLI's flag: each caller gets its own name
      Object.assign(options, parseRedundancy(String(input.redundancy)))
    }
  } catch (err: any) {
    throw new InvalidPutOptionError(err.message.replace(/^--redundancy/, names.redundancy))
  }
  if (input.duration != null) {
    try {
      options.durationMs = parseDuration(String(input.duration), names.duration)
    } catch (err: any) {
      throw new InvalidPutOptionError(err.message)
    }
    if (options.durationMs > MAX_CONTRACT_MS) {
      throw new InvalidPutOptionError(`${names.duration} "${String(input.duration)}" is longer than hosts sign contracts for: at most ${MAX_CONTRACT_MS / 86_400_000} days`)
    }
  }
  try {
    options.maxStoragePrice = input.maxPrice == null ? undefined : parseAmount(input.maxPrice as string, names.maxPrice)
  } catch (err: any) {
    throw new InvalidPutOptionError(err.message)
  }
  return options
}
