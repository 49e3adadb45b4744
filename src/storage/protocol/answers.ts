/** The JSON answers of the storage methods that both sides read the same way (PROTOCOL.md 8d) */

/** The answer of `list` (PROTOCOL.md 8d): what a renter resynchronises from */
export interface ListAnswer {
  /** encodeSigned(terms, renter signature, host signature), base64 */
  contract: string
  revision: number
  /** encodeSigned(revision, renter signature, host signature) of the latest revision, base64; null before the first */
  signedRevision: string | null
  shards: Array<{ root: string, bytes: number }>
  /** the sum of the shards' bytes: what version 2 rent is charged on */
  bytes: number
  rentPaidPeriods: number
  /** ISO time the rent paid covers */
  paidThrough: string
  /** the whole satoshis paid in rent so far, as formatAmount shows them ("0.00000012 BTC") */
  rentPaid: string
  /** the exact rent charged so far, a decimal string of 1 / RENT_UNITS_PER_SAT sat (version 1: "0") */
  rentAccrued: string
}
