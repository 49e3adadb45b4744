import { BadRequestError, BodyTooLargeError, NotFoundError } from '../../protocols/rpc/errors.ts'
import { rentCharge, rentPeriods, transferCost, transferRemainder } from '../protocol/contract.ts'
import { checkArgCount, hexArg, intArg, signatureArg, type StorageMethod } from './args.ts'
import { MAX_END_BODY_BYTES, MAX_PROPOSAL_BYTES } from './constants.ts'
import { expectRevision } from './revisions.ts'
import { checkShareCall } from './share-check.ts'
import type { ContractBook, HostContract } from './contract-book.ts'
import { NO_ARGS, type CheckedCall } from './checked-call.ts'
import type { HostQuery } from './request.ts'

export type { CheckedCall } from './checked-call.ts'

/** The methods under a contract (the object index's methods are checked by handlers/notes.ts) */
export type ContractMethod = Exclude<StorageMethod, 'contract' | 'note-put' | 'note-list' | 'note-delete' | 'contracts'>

/**
 * The agreement check of a call (PROTOCOL.md section 8, step 5, and 8d,
 * "Methods"): its args in their one form, the contract held, live and the
 * caller's, the shard held, the range within it, the body within the
 * contract's room; with its price at the contract's prices. The pipeline
 * asks it before payment, so nobody pays for a refusal; each method asks
 * it again (under the contract's lock where it changes the contract),
 * since the contract may have changed in between.
 */
export function costOf (book: ContractBook, method: ContractMethod | 'contract', q: HostQuery): bigint | undefined {
  if (method === 'contract') {
    checkProposal(q)
    return undefined
  }
  return checkCall(book, method, q).price
}

/** The agreement check of `contract`: no args, a body the size of a proposal */
export function checkProposal (q: HostQuery): void {
  checkArgCount('contract', q.args)
  if (q.bodyLength > MAX_PROPOSAL_BYTES) {
    throw new BodyTooLargeError(`a contract proposal is at most ${MAX_PROPOSAL_BYTES} bytes`)
  }
}

/** The agreement check of a call under a contract (see costOf) */
export function checkCall (book: ContractBook, method: ContractMethod, q: HostQuery): CheckedCall {
  const { args, bodyLength } = q
  if (method === 'shared-get' || method === 'unshare') {
    // they name no contract: the grant (or the caller) finds it
    return checkShareCall(book, method, q)
  }
  checkArgCount(method, args)
  // the form of the args first, so a malformed call is told so whatever
  // the contract's state; then the contract; then what depends on it
  // (a revision signature's form last, next to the revision it signs)
  const id = hexArg(args[0], 'the contract id')
  switch (method) {
    case 'renew': {
      // a renewal sent again finds its old contract ended: the handler answers it
      const c = book.known(id, q.caller)
      if (bodyLength > MAX_PROPOSAL_BYTES) {
        throw new BodyTooLargeError(`a contract proposal is at most ${MAX_PROPOSAL_BYTES} bytes`)
      }
      // its form only: it signs the new contract's revision 1, whose id the body gives
      return { ...NO_ARGS, c, signature: signatureArg(args[1], 'the renter\'s signature of revision 1') }
    }
    case 'rent': {
      const periods = args[1] ?? '1'
      intArg(periods, 'the number of periods', 1, 10_000)
      const c = book.live(id, q.caller)
      // rent past the end would buy nothing: the host keeps no data then
      const left = rentPeriods(c.terms) - c.rentPaidPeriods
      if (left < 1) {
        throw new BadRequestError(`contract ${id} is paid through its end (all ${c.rentPaidPeriods} periods)`)
      }
      const n = intArg(periods, 'the number of periods', 1, Math.min(10_000, left))
      // on the bytes held now: what a put adds during a paid period is
      // charged from the next period paid on, and a delete refunds nothing
      const { accrued, price } = rentCharge(c.terms, { accrued: c.rentAccrued, paid: c.rentPaid }, c.bytes, n)
      return { ...NO_ARGS, c, periods: n, price, accrued }
    }
    case 'put':
    case 'delete': {
      const root = hexArg(args[1], 'the shard root')
      const c = book.live(id, q.caller)
      const held = c.shards.get(root)
      if (method === 'delete') {
        if (held == null) {
          throw new NotFoundError(`contract ${id} holds no shard ${root}`)
        }
        const signature = signatureArg(args[2], 'the renter\'s revision signature')
        return { ...NO_ARGS, c, root, held, signature, next: expectRevision(c, root, 'delete', signature) }
      }
      if (bodyLength === 0) {
        throw new BadRequestError('a shard is at least one byte')
      }
      if (held != null && bodyLength !== held) {
        // a shard's root fixes its bytes: another length is another shard
        throw new BadRequestError(`contract ${id} holds shard ${root} of ${held} bytes; the body is ${bodyLength}`)
      }
      if (held == null && c.bytes + bodyLength > c.terms.maxBytes) {
        throw new BodyTooLargeError(`the shard of ${bodyLength} bytes is over contract ${id}'s maximum of ${c.terms.maxBytes} bytes: it holds ${c.bytes}`)
      }
      // the revision the put leads to is known from the head: a forged
      // signature is refused here, before payment (so no attached payment
      // is kept for it) and before CONTINUE (so no byte is sent)
      const signature = signatureArg(args[2], 'the renter\'s revision signature')
      const next = expectRevision(c, root, held == null ? bodyLength : 'held', signature)
      return { ...NO_ARGS, c, root, held, signature, next, ...transfer(c, c.terms.uploadPrice, bodyLength) }
    }
    case 'get': {
      const root = hexArg(args[1], 'the shard root')
      const offset = intArg(args[2], 'the offset', 0, Number.MAX_SAFE_INTEGER)
      const length = intArg(args[3], 'the length', 0, Number.MAX_SAFE_INTEGER)
      const c = book.live(id, q.caller, true)
      const held = book.held(c, root)
      // a range past the end is refused, not cut short: a renter asking
      // for bytes the shard does not have has the wrong size on record
      if (offset > held || length > held - offset) {
        throw new BadRequestError(`bytes ${offset} to ${offset + length} are past the end of shard ${root}, which is ${held} bytes`)
      }
      return { ...NO_ARGS, c, root, held, offset, length, ...transfer(c, c.terms.downloadPrice, length) }
    }
    case 'prove': {
      const root = hexArg(args[1], 'the shard root')
      const challenge = Buffer.from(hexArg(args[2], 'the challenge'), 'hex')
      const count = intArg(args[3] ?? '1', 'the number of leaves', 1, 64)
      const c = book.live(id, q.caller)
      return { ...NO_ARGS, c, root, held: book.held(c, root), challenge, count }
    }
    case 'list':
      return { ...NO_ARGS, c: book.live(id, q.caller, true) }
    case 'end':
      if (bodyLength > MAX_END_BODY_BYTES) {
        throw new BodyTooLargeError(`the body of end is a signed rating of at most ${MAX_END_BODY_BYTES} bytes`)
      }
      return { ...NO_ARGS, c: book.live(id, q.caller, true) }
  }
}

/**
 * A put's or get's price and remainder at `price` per unit: version 2
 * pays the whole satoshis with the call (0 for a 1 MiB shard at market
 * prices: free) and accrues the fraction with rent (PROTOCOL.md 8d,
 * "Contract terms")
 */
function transfer (c: HostContract, price: bigint, bytes: number): { price: bigint, remainder: bigint } {
  return { price: transferCost(c.terms.version, price, bytes), remainder: transferRemainder(c.terms.version, price, bytes) }
}
