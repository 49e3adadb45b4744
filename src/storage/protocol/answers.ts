/** The JSON answers of the storage methods that both sides read the same way (PROTOCOL.md 8d) */

/** The answer of `list` (PROTOCOL.md 8d): what a renter resynchronises from */
export interface ListAnswer {
  /** encodeSigned(terms, renter signature, host signature), base64 */
  contract: string
  revision: number
  /** encodeSigned(revision, renter signature, host signature) of the latest revision, base64; null before the first */
  signedRevision: string | null
  shards: Array<{ root: string, bytes: number }>
  rentPaidPeriods: number
  /** ISO time the rent paid covers */
  paidThrough: string
}
