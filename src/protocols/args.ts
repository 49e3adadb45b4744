/**
 * How method args spell a number (PROTOCOL.md 8d, "Methods"; the ledger's
 * heights, 8e): plain decimal digits, `0` or a digit 1-9 followed by digits,
 * with no sign, no leading zero, no exponent and no spaces, so `007`, `+1`,
 * `1e3` and ` 1` are refused and every number has one spelling.
 */
const CANONICAL_DECIMAL = /^(0|[1-9][0-9]*)$/

/** The whole number `text` spells canonically, from min to max; undefined for any other text */
export function canonicalDecimal (text: string | undefined, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text == null || !CANONICAL_DECIMAL.test(text)) {
    return undefined
  }
  const n = Number(text)
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined
}
