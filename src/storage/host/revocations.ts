import { Key, type Datastore } from 'interface-datastore'
import { InsufficientStorageError } from '../../protocols/rpc/errors.ts'

/** Where a host keeps the grants renters revoked: /storage/host/revoked/<renter>/<grant id hex> -> expires (ms, decimal) */
export const REVOKED_PREFIX = '/storage/host/revoked'

/**
 * The most revoked grants a host keeps per renter until they expire:
 * 10,000 (a few hundred KiB). Bounded so a renter cannot fill the host's
 * datastore with ids; a renter over it is told so, and its grants stay
 * revocable again as the earlier ones expire (at most MAX_SHARE_MS).
 */
export const MAX_REVOKED_PER_RENTER = 10_000

export interface RevocationsComponents {
  datastore: Datastore
  now: () => number
}

/**
 * The grants each renter revoked with `unshare` (PROTOCOL.md 8h), each kept
 * until its expiry: after that the grant is refused as expired anyway. In
 * memory (renter -> grant id hex -> expires) and in the datastore, so a
 * host that restarts still refuses them.
 */
export class Revocations {
  private readonly datastore: Datastore
  private readonly now: () => number
  private readonly revoked = new Map<string, Map<string, number>>()

  constructor (components: RevocationsComponents) {
    this.datastore = components.datastore
    this.now = components.now
  }

  /** Read the revocations kept, dropping those that have expired */
  async load (): Promise<void> {
    const now = this.now()
    for await (const { key, value } of this.datastore.query({ prefix: REVOKED_PREFIX })) {
      const [renter, id] = key.toString().slice(REVOKED_PREFIX.length + 1).split('/')
      const expires = Number(new TextDecoder().decode(value))
      if (!(expires > now)) {
        await this.datastore.delete(key)
        continue
      }
      this.of(renter).set(id, expires)
    }
  }

  private of (renter: string): Map<string, number> {
    let ids = this.revoked.get(renter)
    if (ids == null) {
      ids = new Map()
      this.revoked.set(renter, ids)
    }
    return ids
  }

  has (renter: string, id: string): boolean {
    // until the expiry it was revoked to, as after a restart (which keeps only those not past it)
    return (this.revoked.get(renter)?.get(id) ?? 0) > this.now()
  }

  /**
   * Revoke a grant until `expires`. Resolves with until when it is kept,
   * undefined when it has expired already (nothing to keep). At the bound
   * the renter's expired ones go first, so it counts only grants still live.
   */
  async revoke (renter: string, id: string, expires: number): Promise<number | undefined> {
    const now = this.now()
    if (expires <= now) {
      return undefined
    }
    const ids = this.of(renter)
    if (!ids.has(id) && ids.size >= MAX_REVOKED_PER_RENTER) {
      // at the bound only: a sweep per revocation would make each one cost them all
      for (const [other, until] of ids) {
        if (until <= now) {
          ids.delete(other)
          await this.datastore.delete(new Key(`${REVOKED_PREFIX}/${renter}/${other}`))
        }
      }
    }
    if (!ids.has(id) && ids.size >= MAX_REVOKED_PER_RENTER) {
      throw new InsufficientStorageError(`this host keeps at most ${MAX_REVOKED_PER_RENTER} revoked shares per renter until they expire; the earliest of yours expires at ${new Date(Math.min(...ids.values())).toISOString()}`)
    }
    // the later expiry wins: a grant id sent again with another expiry is the renter's word twice
    const until = Math.max(expires, ids.get(id) ?? 0)
    await this.datastore.put(new Key(`${REVOKED_PREFIX}/${renter}/${id}`), new TextEncoder().encode(String(until)))
    ids.set(id, until)
    return until
  }
}
