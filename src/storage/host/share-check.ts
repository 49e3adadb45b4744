import { AccessDeniedError, BadRequestError, BodyTooLargeError } from '../../protocols/rpc/errors.ts'
import { DecodeError } from '../../protocols/codec.ts'
import { transferCost } from '../protocol/contract.ts'
import { decodeGrant, decodeGrantBody, grantOpens, MAX_GRANT_BODY_BYTES, MAX_SHARE_MS, SHARE_CLOCK_SKEW_MS, verifyGrant, type Grant } from '../protocol/share.ts'
import { ShareExpiredError, ShareHolderError, ShareNotHeldError, ShareRevokedError, ShareScopeError, ShareSignatureError } from '../errors.ts'
import { checkArgCount, hexArg, intArg } from './args.ts'
import type { ContractBook, HostContract } from './contract-book.ts'
import { NO_ARGS, type CheckedCall } from './checked-call.ts'
import type { HostQuery } from './request.ts'
import type { Revocations } from './revocations.ts'

/** The methods of shares (PROTOCOL.md 8h): a holder's read, and its renter's revocation */
export type ShareMethod = 'shared-get' | 'unshare'

const GRANT_ID = /^[0-9a-f]{32}$/

/**
 * A contract that has not ended (past its end, within the grace, still
 * serves reads, as `get`'s does) holding `root`, of `renter` when given
 * (the handler knows it from the grant; the check before payment does not,
 * and a root is the Merkle root of ciphertext under one object's key, so
 * in practice one renter's)
 */
export function contractHolding (book: ContractBook, root: string, renter?: string): HostContract | undefined {
  return book.all().find(c => c.endedAt == null && c.shards.has(root) && (renter == null || c.terms.renter === renter))
}

/**
 * The agreement check of a share method before payment (see agreement.ts,
 * costOf): the args in their one form; for shared-get a body of a grant's
 * size, a contract here holding the root and the range within the shard,
 * priced as `get` at that contract's download price (per TiB), paid by the
 * caller (the holder: the grant's renter pays nothing for it). The fraction
 * of a satoshi a version 2 price leaves is not accrued: it would land on
 * the renter's contract. For unshare, a contract of the caller's here: only
 * a renter of this host can ask it to keep anything.
 */
export function checkShareCall (book: ContractBook, method: ShareMethod, q: HostQuery): CheckedCall {
  checkArgCount(method, q.args)
  if (method === 'unshare') {
    if (!GRANT_ID.test(q.args[0])) {
      throw new BadRequestError(`the grant id is 32 lowercase hex digits (16 bytes), not "${q.args[0]}"`)
    }
    intArg(q.args[1], 'the grant\'s expiry (ms since the epoch)', 0, Number.MAX_SAFE_INTEGER)
    const c = book.all().find(c => c.terms.renter === q.caller && c.endedAt == null)
    if (c == null) {
      throw new AccessDeniedError('unshare is for a renter with a contract at this host, and this caller has none: a host keeps revocations only of the renters whose shards it holds')
    }
    return { ...NO_ARGS, c, price: 0n }
  }
  const root = hexArg(q.args[0], 'the shard root')
  const offset = intArg(q.args[1], 'the offset', 0, Number.MAX_SAFE_INTEGER)
  const length = intArg(q.args[2], 'the length', 0, Number.MAX_SAFE_INTEGER)
  if (q.bodyLength === 0) {
    throw new BadRequestError('the body of shared-get is the grant and its signature (PROTOCOL.md 8h)')
  }
  if (q.bodyLength > MAX_GRANT_BODY_BYTES) {
    throw new BodyTooLargeError(`the body of shared-get is a grant and its signature, at most ${MAX_GRANT_BODY_BYTES} bytes`)
  }
  const c = contractHolding(book, root)
  if (c == null) {
    throw new ShareNotHeldError(`share-unknown: this host holds no shard ${root} under a live contract (ended, moved to another host, or never here): the holder's node asks the object's other hosts`)
  }
  const held = c.shards.get(root)!
  if (offset > held || length > held - offset) {
    throw new BadRequestError(`bytes ${offset} to ${offset + length} are past the end of shard ${root}, which is ${held} bytes`)
  }
  return { ...NO_ARGS, c, root, held, offset, length, price: transferCost(c.terms.version, c.terms.downloadPrice, length), remainder: 0n }
}

/**
 * The grant of a shared-get, checked in the order PROTOCOL.md 8h gives:
 * it decodes; its renter signed it (the renter's key is in its PeerId);
 * it has not expired on this host's clock and lasts no longer than a share
 * may; its renter has not revoked it; the caller is its holder when it
 * names one; it opens the root asked for. Resolves with the grant and the
 * contract of its renter that holds the root.
 */
export function checkGrant (book: ContractBook, revocations: Revocations, caller: string, root: string, body: Uint8Array): { grant: Grant, c: HostContract } {
  let grant: Grant
  let encoded: Uint8Array
  let signature: Uint8Array
  try {
    ({ grant: encoded, signature } = decodeGrantBody(body))
    grant = decodeGrant(encoded)
  } catch (err: any) {
    if (err instanceof DecodeError) {
      throw new BadRequestError(`the grant does not decode: ${err.message}`)
    }
    throw err
  }
  try {
    verifyGrant(encoded, grant.renter, signature)
  } catch {
    throw new ShareSignatureError(`share-signature: the grant is not signed by its renter ${grant.renter} (forged, or changed after it was signed): ask the owner for the share again`)
  }
  const now = book.now()
  if (grant.expires <= now) {
    throw new ShareExpiredError(`share-expired: the share expired at ${new Date(grant.expires).toISOString()} (this host's clock: ${new Date(now).toISOString()}): ask its owner for a new one`)
  }
  if (grant.expires > now + MAX_SHARE_MS + SHARE_CLOCK_SKEW_MS) {
    throw new BadRequestError(`the grant expires at ${new Date(grant.expires).toISOString()}, past the longest a share lasts (366 days from now)`)
  }
  const id = Buffer.from(grant.id).toString('hex')
  if (revocations.has(grant.renter, id)) {
    throw new ShareRevokedError(`share-revoked: the owner revoked share ${id} before its expiry: ask them for a new one`)
  }
  if (grant.holder != null && grant.holder !== caller) {
    throw new ShareHolderError(`share-holder: share ${id} is for ${grant.holder}, and this call comes from ${caller}: only that node can use it`)
  }
  if (!grantOpens(grant, Buffer.from(root, 'hex'))) {
    throw new ShareScopeError(`share-scope: share ${id} does not open shard ${root}: a share reads the objects it was made for and nothing else`)
  }
  const c = contractHolding(book, root, grant.renter)
  if (c == null) {
    throw new ShareNotHeldError(`share-unknown: this host holds no shard ${root} of ${grant.renter} under a live contract: the holder's node asks the object's other hosts`)
  }
  return { grant, c }
}
