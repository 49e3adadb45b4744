import { NotFoundError, PaymentDeclinedError, RpcError } from '../../protocols/rpc/errors.ts'

/**
 * What a host's refusal of a `get` or `prove` of a shard says, for a renter
 * whose record has the shard on that host: the one reading used by
 * downloads, repairs and audits alike (PROTOCOL.md 8d, "Storing and serving
 * shards"; the README's Storage section says what follows from each).
 *
 * - `lost`: `not-found`. The host says the shard is not there, or that its
 *   copy is corrupt or missing on its disk, or that the contract is gone
 *   (ended, expired): this copy is lost. A get or repair counts the shard
 *   lost and repair rebuilds it elsewhere; an audit, which the host was
 *   paid to pass, condemns the contract.
 * - `owed`: a payment refusal (`payment-declined` and its kinds), a price
 *   over what this node pays, or this node's payments off: about this
 *   node's debts or limits, not the
 *   host's service. Other hosts are asked; the caller hears of it only when
 *   too few shards can be had without this host.
 * - `transient`: anything else, `server-error` first of all (what a server
 *   answers for any failure of its own: a full disk, a failed read, a
 *   bug), a rate limit, a timeout, a dropped connection. It says nothing
 *   about the shard: other hosts are asked, the host is audited again at
 *   the next check, and condemned only if it stays so past the audit grace.
 *
 * Bytes that do not match the shard's root are judged where they arrive:
 * the host is condemned as a cheat.
 */
export type HostAnswer = 'lost' | 'owed' | 'transient'

export function judgeHostError (err: unknown): HostAnswer {
  if (err instanceof NotFoundError) {
    return 'lost'
  }
  if (err instanceof PaymentDeclinedError || ['BiddingError', 'PaymentsOffError'].includes((err as Error | undefined)?.name ?? '')) {
    return 'owed'
  }
  return 'transient'
}

/** Whether the host answered at all (a status of its own), rather than not being reached */
export function hostAnswered (err: unknown): boolean {
  return err instanceof RpcError
}
