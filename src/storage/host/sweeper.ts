import { logger } from '@libp2p/logger'
import { rentPeriods } from '../protocol/contract.ts'
import type { ContractBook, HostContract } from './contract-book.ts'
import type { ShardStore } from './shard-store.ts'
import type { NoteStore } from './note-store.ts'

const log = logger('opencloud:storage:host')

export interface SweeperComponents {
  book: ContractBook
  store: ShardStore
  /** the renters' notes: a renter's go once it has no contract here whose shards are kept */
  notes?: NoteStore
  /** a reputation record of a renter that stopped paying rent */
  rateRenter?: (renter: string, event: 'rent-unpaid') => void
  /** a reputation record of a renter when a contract ends */
  recordRenter?: (renter: string, outcome: 'satisfactory' | 'unsatisfactory', event: string) => void
}

export interface SweeperInit {
  /** how long rent may stay unpaid (and a contract past its end) before its shards are deleted */
  graceMs: number
  /** how often contracts are looked at */
  intervalMs: number
}

/**
 * Ends the contracts nobody pays for: rent unpaid past the grace, or past
 * their end date by the grace without being renewed or ended. Their shards
 * are deleted, so a host's disk does not fill with data nobody pays for,
 * and the renter is rated. It looks every intervalMs while started, and
 * then saves the contracts whose gets accrued in memory since their last
 * save (ContractBook.flush), so a crash loses at most an interval of those
 * fractions of a satoshi; stop() signals a sweep under way to stop between
 * contracts and waits for it.
 */
export class Sweeper {
  private readonly components: SweeperComponents
  private readonly init: SweeperInit
  private timer?: ReturnType<typeof setInterval>
  private sweeping?: Promise<unknown>
  private shutdown = new AbortController()

  constructor (components: SweeperComponents, init: SweeperInit) {
    this.components = components
    this.init = init
  }

  start (): void {
    this.shutdown = new AbortController()
    this.timer = setInterval(() => {
      this.sweeping ??= this.sweep().catch(err => {
        if (!this.shutdown.signal.aborted) {
          log.error('looking for unpaid and expired contracts failed - %e', err)
        }
      }).finally(() => { this.sweeping = undefined })
    }, this.init.intervalMs)
    this.timer.unref?.()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.shutdown.abort()
    await this.sweeping
  }

  /** What the timer runs: both checks, then the accruals not saved yet */
  private async sweep (): Promise<void> {
    await this.endOverdue()
    await this.pruneNotes()
    await this.components.book.flush({ signal: this.shutdown.signal })
  }

  /**
   * Delete the notes of renters whose last contract here ended (swept, or
   * ended by the renter): the index points at shards this host no longer
   * holds. Resolves with how many notes went.
   */
  async pruneNotes (): Promise<number> {
    const { book, notes } = this.components
    if (notes == null) {
      return 0
    }
    const held = new Set(book.all().filter(c => c.endedAt == null).map(c => c.terms.renter))
    let n = 0
    for (const renter of notes.renters()) {
      if (!held.has(renter)) {
        const gone = await notes.deleteAll(renter, () => !book.all().some(c => c.terms.renter === renter && c.endedAt == null))
        if (gone > 0) {
          log('deleted the %d notes of %s: it has no contract here any more', gone, renter)
        }
        n += gone
      }
    }
    return n
  }

  /** Both checks the timer runs: unpaid rent, then expiry */
  async endOverdue (now = this.components.book.now()): Promise<string[]> {
    return [...await this.endUnpaid(now), ...await this.endExpired(now)]
  }

  /**
   * End the contracts that expired more than the grace period ago without
   * being renewed or ended by the renter (a renewal moves the shards to the
   * new contract and ends the old one): the shards are deleted, so a host's
   * disk does not fill with data nobody pays for, and the renter is rated
   * by whether it paid every period. The grace is the rent grace: a renter
   * whose node was off over the end date can still fetch and move its data.
   */
  async endExpired (now = this.components.book.now()): Promise<string[]> {
    const { book, recordRenter } = this.components
    const ended: string[] = []
    for (const c of book.all()) {
      if (c.endedAt != null || now <= c.terms.end + this.init.graceMs) {
        continue
      }
      // whether it paid every period is read under the lock: a rent call may be under way
      if (await this.end(c, now, () => c.rentPaidPeriods >= rentPeriods(c.terms) ? 'expired' : 'expired, rent unpaid')) {
        const paid = c.endedReason === 'expired'
        recordRenter?.(c.terms.renter, paid ? 'satisfactory' : 'unsatisfactory', paid ? 'contract-expired' : 'rent-unpaid')
        log('contract %s with %s expired at %s, shards deleted', c.id, c.terms.renter, new Date(c.terms.end).toISOString())
        ended.push(c.id)
      }
    }
    return ended
  }

  /**
   * End the contracts whose rent is unpaid past the grace period: the shards
   * are deleted, the space is free again, and the renter is rated. Resolves
   * with the contracts ended.
   */
  async endUnpaid (now = this.components.book.now()): Promise<string[]> {
    const { book, rateRenter } = this.components
    const ended: string[] = []
    for (const c of book.all()) {
      if (c.endedAt != null || c.terms.end <= now) {
        continue
      }
      const paidThrough = (): number => c.terms.start + c.rentPaidPeriods * c.terms.rentPeriodMs
      if (now <= paidThrough() + this.init.graceMs) {
        continue
      }
      // read again under the lock: a rent call queued before this sweep
      // (behind a put holding the lock) may have paid while it waited
      if (await this.end(c, now, () => now <= paidThrough() + this.init.graceMs ? undefined : 'rent unpaid')) {
        rateRenter?.(c.terms.renter, 'rent-unpaid')
        log('contract %s with %s ended: rent paid through %s only', c.id, c.terms.renter, new Date(paidThrough()).toISOString())
        ended.push(c.id)
      }
    }
    return ended
  }

  /**
   * End one contract under its lock, for the reason `why` gives there (none:
   * it is not to end after all), unless it ended while this waited: its
   * shards are deleted once it is saved ended. Answers whether it ended it.
   * The shutdown signal stops a sweep between contracts, and a sweep waiting
   * for a contract's lock.
   */
  private async end (c: HostContract, now: number, why: () => string | undefined): Promise<boolean> {
    const { book, store } = this.components
    const signal = this.shutdown.signal
    signal.throwIfAborted()
    return book.locks.run(c.id, async () => {
      const reason = c.endedAt == null ? why() : undefined
      if (reason == null) {
        return false
      }
      c.endedAt = now
      c.endedReason = reason
      c.shards = new Map()
      c.bytes = 0
      await book.save(c)
      await store.deleteContract(c.id)
      return true
    }, { signal })
  }
}
