/** A period that is not one: "forever", "0d", "30 days", "1m" */
export class InvalidDurationError extends Error {
  override name = 'InvalidDurationError'
}

const UNIT_MS = { min: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * "90min", "12h", "30d": a duration in ms. A bare "m" is refused rather than
 * read: `--duration 1m` was taken for one minute by a user who meant a
 * month, which made the contracts renew every minute at 1,440 times the
 * monthly rent
 */
export function parseDuration (text: string, what = 'a duration'): number {
  const trimmed = text.trim()
  const match = /^([0-9]+)\s*(min|h|d)$/.exec(trimmed)
  if (match == null || Number(match[1]) <= 0) {
    const ambiguous = /^([0-9]+)\s*m$/.exec(trimmed)
    if (ambiguous != null) {
      throw new InvalidDurationError(`${what} "${text}" could be minutes or months: write ${ambiguous[1]}min for minutes, or days (30d is a month)`)
    }
    throw new InvalidDurationError(`${what} takes a period such as 90min, 12h or 30d, not "${text}"`)
  }
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
}

/** A duration as parseDuration reads it back: "30d", "12h", "90min", "0" (else "N ms") */
export function durationText (ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000]] as const) {
    if (ms > 0 && ms % size === 0) {
      return `${ms / size}${unit}`
    }
  }
  return ms === 0 ? '0' : `${ms} ms`
}
