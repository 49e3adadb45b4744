import { canonicalDecimal } from '../../protocols/args.ts'
import { base64Signature } from '../../protocols/signed.ts'
import { BadRequestError } from '../../protocols/rpc/errors.ts'

/** The methods of the storage protocol (PROTOCOL.md 8d, "Methods"), one handler each under handlers/ */
export type StorageMethod = 'contract' | 'renew' | 'rent' | 'put' | 'get' | 'prove' | 'delete' | 'list' | 'end'
  // shares (PROTOCOL.md 8h)
  | 'shared-get' | 'unshare'
  // the object index (PROTOCOL.md 8g)
  | 'note-put' | 'note-list' | 'note-delete' | 'contracts'

/**
 * Each method's args: their usage (for `methods` and refusals) and how
 * many may be given. More args than a method takes are refused rather than
 * ignored, so an argument a host does not understand is never dropped in
 * silence (PROTOCOL.md 8d, "Methods").
 */
export const ARGS: Record<StorageMethod, { usage: string, min: number, max: number }> = {
  contract: { usage: '', min: 0, max: 0 },
  renew: { usage: '<contract id> <renter signature of the new contract\'s revision 1, base64>', min: 2, max: 2 },
  rent: { usage: '<contract id> [periods]', min: 1, max: 2 },
  put: { usage: '<contract id> <shard root> <renter signature of the next revision, base64>', min: 3, max: 3 },
  get: { usage: '<contract id> <shard root> <offset> <length>', min: 4, max: 4 },
  prove: { usage: '<contract id> <shard root> <challenge, 32 bytes hex> [leaves, 1-64]', min: 3, max: 4 },
  delete: { usage: '<contract id> <shard root> <renter signature of the next revision, base64>', min: 3, max: 3 },
  list: { usage: '<contract id>', min: 1, max: 1 },
  end: { usage: '<contract id>', min: 1, max: 1 },
  'shared-get': { usage: '<shard root> <offset> <length> (body: bytes grant || bytes renter signature)', min: 3, max: 3 },
  unshare: { usage: '<grant id, 16 bytes hex> <the grant\'s expiry, ms since the epoch>', min: 2, max: 2 },
  'note-put': { usage: '<note id, 64 hex>', min: 1, max: 1 },
  'note-list': { usage: '[after <note id>]', min: 0, max: 1 },
  'note-delete': { usage: '<note id>', min: 1, max: 1 },
  contracts: { usage: '', min: 0, max: 0 }
}

export function checkArgCount (method: StorageMethod, args: string[]): void {
  const { usage, min, max } = ARGS[method]
  if (args.length < min || args.length > max) {
    throw new BadRequestError(`storage.${method} takes ${usage === '' ? 'no args' : usage}; the request has ${args.length}`)
  }
}

const HEX32 = /^[0-9a-f]{64}$/

/** A contract id, a shard root or a challenge: 32 bytes in lowercase hex */
export function hexArg (value: string, what: string): string {
  if (!HEX32.test(value)) {
    throw new BadRequestError(`${what} is 64 lowercase hex digits, not "${value}"`)
  }
  return value
}

/** A whole number written canonically (no "007", "+1" or "1e3"), from min to max */
export function intArg (value: string, what: string, min: number, max: number): number {
  const n = canonicalDecimal(value, min, max)
  if (n == null) {
    throw new BadRequestError(`${what} is a whole number from ${min} to ${max} written as plain decimal digits, not "${value}"`)
  }
  return n
}

/** A renter's signature in its one base64 spelling */
export function signatureArg (value: string, what: string): Uint8Array {
  try {
    return base64Signature(value, what)
  } catch (err: any) {
    throw new BadRequestError(err.message)
  }
}
