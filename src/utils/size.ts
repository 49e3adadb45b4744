/**
 * Sizes a person writes: "10 GiB", "500MiB", "64 KiB", "1 TiB" or a whole
 * number of bytes. Binary units only: a disk's "GB" is not a GiB, and
 * guessing would misstate a host's capacity by 7%.
 */

export class InvalidSizeError extends Error {
  override name = 'InvalidSizeError'
}

const UNITS: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 }

export function parseSize (value: string | number, what = 'a size'): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidSizeError(`${what} of ${value} is not a whole number of bytes`)
    }
    return value
  }
  const match = /^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)$/i.exec(value.trim())
  const unit = match == null ? undefined : UNITS[(match[2] === '' ? 'b' : match[2]).toLowerCase()]
  if (match == null || unit == null) {
    throw new InvalidSizeError(`${what} "${value}" is not a size: write it with a binary unit, e.g. "10 GiB", "500 MiB", or a number of bytes`)
  }
  const bytes = Math.floor(Number(match[1]) * unit)
  if (!Number.isSafeInteger(bytes)) {
    throw new InvalidSizeError(`${what} "${value}" is too large`)
  }
  return bytes
}

export function formatSize (bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let i = 0
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024
    i++
  }
  return i === 0 ? `${bytes} bytes` : `${Number(value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2))} ${units[i]}`
}
