import { logger } from '@libp2p/logger'
import { AccessDeniedError, InsufficientStorageError, NotFoundError } from '../../protocols/rpc/errors.ts'

const log = logger('opencloud:storage:host')

/** A shard this host holds under a contract is corrupt or missing on its disk: that copy is lost */
export class ShardCorruptError extends Error {
  override name = 'ShardCorruptError'

  constructor (message = 'a shard is corrupt or missing on this host: put it again to repair it') {
    super(message)
  }
}

/** The bytes of a put do not hash to the Merkle root it names: nothing is kept */
export class ShardMismatchError extends Error {
  override name = 'ShardMismatchError'

  constructor (message = 'the shard\'s bytes do not hash to the Merkle root named: send the bytes of that root') {
    super(message)
  }
}

/**
 * A shard this host knows is corrupt or missing on its disk is answered
 * `not-found` with the reason, as a shard it does not hold: the renter has
 * lost this copy either way, and counts it lost (PROTOCOL.md 8d, "Storing
 * and serving shards"). Any other failure (a full disk, a bug) is the RPC
 * server's generic `server-error`, which a renter takes as transient.
 */
export async function shardLost<T> (read: () => Promise<T>): Promise<T> {
  try {
    return await read()
  } catch (err: any) {
    if (err instanceof ShardCorruptError) {
      log.error('%s', err.message)
      throw new NotFoundError(err.message)
    }
    throw err
  }
}

/** A renter that has no live contract with this host asked it to keep a note: only renters are indexed */
export class NoteWithoutContractError extends AccessDeniedError {
  override name = 'NoteWithoutContractError'
}

/** A renter's notes at this host would pass its caps (count or bytes): nothing is kept */
export class NoteQuotaError extends InsufficientStorageError {
  override name = 'NoteQuotaError'
}
