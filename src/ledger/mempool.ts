import { TypedEventEmitter } from '@libp2p/interface'
import { hex, type SignedTx } from './encoding.ts'
import type { LedgerState } from './state.ts'

/**
 * Transactions waiting for a block. Verified once on the way in (their ids
 * are remembered so a block carrying them is not verified again), held in
 * arrival order per sender, and handed to a proposer one sender at a time
 * in turn: a sender that floods fills its own queue and no more, so a
 * member cloud's redemption waits one block at most behind any flood.
 */

export interface MempoolInit {
  /** transactions held in all, default 100,000 */
  maxSize?: number
  /** transactions held from one sender, default 1,000 */
  maxPerSender?: number
}

export class MempoolFullError extends Error {
  override name = 'MempoolFullError'
}

export class Mempool extends TypedEventEmitter<{ tx: CustomEvent<SignedTx> }> {
  private readonly state: LedgerState
  private readonly bySender = new Map<string, Map<string, SignedTx>>()
  private readonly ids = new Set<string>()
  /** ids whose signatures were checked here, kept a while after they leave */
  private readonly checked = new Set<string>()
  private readonly maxSize: number
  private readonly maxPerSender: number
  /** where the next selection starts, so no sender is always first */
  private turn = 0

  constructor (state: LedgerState, init: MempoolInit = {}) {
    super()
    this.state = state
    this.maxSize = init.maxSize ?? 100_000
    this.maxPerSender = init.maxPerSender ?? 1000
  }

  get size (): number {
    return this.ids.size
  }

  has (id: string): boolean {
    return this.ids.has(id)
  }

  verified (id: string): boolean {
    return this.checked.has(id)
  }

  /**
   * Hold a transaction whose signature has been checked. Resolves false for
   * one held or on the ledger already; throws MempoolFullError when full.
   */
  add (stx: SignedTx): boolean {
    const id = hex(stx.id)
    if (this.ids.has(id) || this.state.outcomes.has(id)) {
      return false
    }
    if (this.ids.size >= this.maxSize) {
      throw new MempoolFullError(`the ledger's queue is full (${this.maxSize} transactions); try again in a few slots`)
    }
    let queue = this.bySender.get(stx.tx.sender)
    if (queue == null) {
      queue = new Map()
      this.bySender.set(stx.tx.sender, queue)
    }
    if (queue.size >= this.maxPerSender) {
      throw new MempoolFullError(`${stx.tx.sender} has ${queue.size} transactions waiting, the most one sender may; wait for them to be final`)
    }
    queue.set(id, stx)
    this.ids.add(id)
    this.remember(id)
    this.safeDispatchEvent('tx', { detail: stx })
    return true
  }

  private remember (id: string): void {
    this.checked.add(id)
    if (this.checked.size > this.maxSize * 2) {
      // a Set iterates oldest first
      for (const old of this.checked) {
        this.checked.delete(old)
        if (this.checked.size <= this.maxSize) {
          break
        }
      }
    }
  }

  /** Up to `max` transactions, one per sender in turn, each sender's in the order they came */
  select (max: number): SignedTx[] {
    const senders = [...this.bySender.values()].map(q => q.values())
    if (senders.length === 0) {
      return []
    }
    const out: SignedTx[] = []
    const start = this.turn++ % senders.length
    let live = senders.length
    const done = new Set<number>()
    while (out.length < max && live > 0) {
      for (let k = 0; k < senders.length && out.length < max; k++) {
        const i = (start + k) % senders.length
        if (done.has(i)) {
          continue
        }
        const next = senders[i].next()
        if (next.done === true) {
          done.add(i)
          live--
        } else {
          out.push(next.value)
        }
      }
    }
    return out
  }

  /** Forget what a final block carried, and whatever can no longer go in (too old) */
  removeIncluded (txs: SignedTx[]): void {
    for (const stx of txs) {
      const id = hex(stx.id)
      this.ids.delete(id)
      const queue = this.bySender.get(stx.tx.sender)
      queue?.delete(id)
      if (queue?.size === 0) {
        this.bySender.delete(stx.tx.sender)
      }
    }
    const oldest = this.state.lastTime - this.state.genesis.txTtlMs
    for (const [sender, queue] of this.bySender) {
      for (const [id, stx] of queue) {
        if (stx.tx.time < oldest) {
          queue.delete(id)
          this.ids.delete(id)
        }
      }
      if (queue.size === 0) {
        this.bySender.delete(sender)
      }
    }
  }
}
