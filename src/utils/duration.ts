/** A period that is not one: "forever", "0d", "30 days" */
export class InvalidDurationError extends Error {
  override name = 'InvalidDurationError'
}

/** "30d", "12h", "90m": a duration in ms */
export function parseDuration (text: string, what = 'a duration'): number {
  const match = /^([0-9]+)\s*(m|h|d)$/.exec(text.trim())
  if (match == null || Number(match[1]) <= 0) {
    throw new InvalidDurationError(`${what} takes a period such as 90m, 12h or 30d, not "${text}"`)
  }
  return Number(match[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'm' | 'h' | 'd']
}
