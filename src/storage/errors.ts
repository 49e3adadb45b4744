import { DecryptError } from './protocol/crypto.ts'
import { AccessDeniedError, InvalidSignatureError, NotFoundError } from '../protocols/rpc/errors.ts'

/**
 * Every error of the storage client, one class per condition. Each is
 * thrown with a sentence that says what happened and what to do; the
 * storage module gives each its HTTP status in the control API
 * (src/services/storage: its `errors`).
 */

/** a put of a name another put is storing right now (the name is held until it is done or fails) */
export class ObjectBeingStoredError extends Error {
  override name = 'ObjectBeingStoredError'
}

/** `store get NAME --version N` of a version the upkeep pruned (older than storage.versionsKeptFor) or `store rm --version` removed */
export class VersionPrunedError extends Error {
  override name = 'VersionPrunedError'
}

/** a put of a file identical (size and SHA-256) to the current version of its name: nothing is stored (force stores it) */
export class ObjectUnchangedError extends Error {
  override name = 'ObjectUnchangedError'
  /** the current version, which already holds these bytes */
  readonly object?: unknown
  constructor (message: string, object?: unknown) {
    super(message)
    this.object = object
  }
}

/** `store rm` of a folder without recursive: it says how many objects it would remove */
export class FolderNotEmptyError extends Error {
  override name = 'FolderNotEmptyError'
}

/** a folder put or get that cannot go ahead as a whole: a file that cannot be read, a path that escapes the output folder */
export class TreeRefusedError extends Error {
  override name = 'TreeRefusedError'
}

/** a folder put that failed part way: each file stored is whole, and the message says which were and were not */
export class TreeIncompleteError extends Error {
  override name = 'TreeIncompleteError'
}

/** no stored object has that name or id */
export class ObjectNotFoundError extends Error {
  override name = 'ObjectNotFoundError'
}

/** the market knows too few hosts for the redundancy asked, or too few of them took a contract */
export class NotEnoughHostsError extends Error {
  override name = 'NotEnoughHostsError'
}

/** a host held up a put's segment long after the other hosts had taken theirs (frozen, or far slower than they): its slot moves to another host */
export class HostStalledError extends Error {
  override name = 'HostStalledError'
}

/** fewer than K shards of a segment could be fetched */
export class ShardUnavailableError extends Error {
  override name = 'ShardUnavailableError'
}

/** a host answered something other than what was signed or stored (another contract, other bytes, another hash) */
export class IntegrityError extends Error {
  override name = 'IntegrityError'
}

/** an object's name that cannot be stored */
export class InvalidNameError extends Error {
  override name = 'InvalidNameError'
}

/** `store get` would write over a file that is there already */
export class OutputExistsError extends Error {
  override name = 'OutputExistsError'
}

/** a host would not serve because of what this node owes it (an overdue deferred payment, credit refused) */
export class PaymentRefusedError extends Error {
  override name = 'PaymentRefusedError'
}

/** repair found no host that can take a lost shard */
export class RepairStuckError extends Error {
  override name = 'RepairStuckError'
}

/** the node is stopping: upkeep and transfers in flight end with this */
export class StorageStoppedError extends Error {
  override name = 'StorageStoppedError'
  constructor (message = 'the node is stopping') {
    super(message)
  }
}

/** a put's byte stream ended before, or went on after, the size it declared (the contracts were sized for it) */
export class StreamSizeError extends Error {
  override name = 'StreamSizeError'
}

/** The host answered an audit, and the answer is wrong or says the shard is gone */
export class AuditFailedError extends Error {
  override name = 'AuditFailedError'
}

/** A put's redundancy that is not K-of-N with 1 <= K <= N <= 255 */
export class InvalidRedundancyError extends Error {
  override name = 'InvalidRedundancyError'
}

/** A put's redundancy, duration or price ceiling that no host would take */
export class InvalidPutOptionError extends Error {
  override name = 'InvalidPutOptionError'
}

/** an object that does not decrypt with this wallet's storage key (protocol/crypto.ts) */
export { DecryptError }

/** no host asked holds notes of this identity's object index: the words are not the ones that stored anything (or the hosts are gone) */
export class NoIndexFoundError extends Error {
  override name = 'NoIndexFoundError'
  /** how many hosts answered: none means nothing could be asked, not that there is nothing */
  readonly hostsAnswered: number

  constructor (message: string, hostsAnswered = 0) {
    super(message)
    this.hostsAnswered = hostsAnswered
  }
}

/** a put's object could not be written to the index at any of its hosts: the put is not committed */
export class IndexWriteError extends Error {
  override name = 'IndexWriteError'
}

// ---- shares (PROTOCOL.md 8h) ----
//
// A host refuses a shared-get or an unshare with one of these. Each travels
// as its wire status (access-denied, invalid-signature or not-found) with a
// message that starts with its reason word ("share-expired: ..."): the
// holder's node reads the word back into the same class (shareRefusalOf),
// so its CLI says why, whichever host refused.

/** The reason words a host's refusal of a share starts with, and the class each is */
export const SHARE_REASONS = {
  'share-expired': () => ShareExpiredError,
  'share-revoked': () => ShareRevokedError,
  'share-scope': () => ShareScopeError,
  'share-holder': () => ShareHolderError,
  'share-signature': () => ShareSignatureError,
  'share-unknown': () => ShareNotHeldError
} as const
export type ShareReason = keyof typeof SHARE_REASONS

/** the grant's expiry has passed on the host's clock */
export class ShareExpiredError extends AccessDeniedError {
  override name = 'ShareExpiredError'
}

/** its renter revoked the grant (`store unshare`) before its expiry */
export class ShareRevokedError extends AccessDeniedError {
  override name = 'ShareRevokedError'
}

/** the grant does not open the shard root asked for: a share for one object used to read another */
export class ShareScopeError extends AccessDeniedError {
  override name = 'ShareScopeError'
}

/** the grant names a holder, and the caller is another peer */
export class ShareHolderError extends AccessDeniedError {
  override name = 'ShareHolderError'
}

/** the grant's signature is not its renter's (forged, or changed after it was signed) */
export class ShareSignatureError extends InvalidSignatureError {
  override name = 'ShareSignatureError'
}

/** the host holds no live contract of the grant's renter with that shard (ended, moved, or never there) */
export class ShareNotHeldError extends NotFoundError {
  override name = 'ShareNotHeldError'
}

/** a share text that does not read, or names nothing this node can fetch */
export class InvalidShareError extends Error {
  override name = 'InvalidShareError'
}

/** no share of this node has that id or names that object */
export class ShareNotFoundError extends Error {
  override name = 'ShareNotFoundError'
}

/**
 * A host's refusal of a share as its own class, from the reason word its
 * message starts with (the word is dropped from the message); anything
 * else is returned as it is
 */
export function shareRefusalOf (err: unknown): unknown {
  const message = (err as any)?.message
  if (typeof message !== 'string') {
    return err
  }
  const word = /^(share-[a-z]+): /.exec(message)?.[1]
  if (word == null || !Object.hasOwn(SHARE_REASONS, word)) {
    return err
  }
  const ErrorClass = SHARE_REASONS[word as ShareReason]()
  // the class says which refusal it is; the sentence after the word is for people
  return new ErrorClass(message.slice(word.length + 2))
}
