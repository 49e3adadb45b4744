/**
 * A counting semaphore: at most `slots` holders at once, the others
 * waiting in order. A slot given back goes straight to the next waiter (no
 * newcomer slips in between), and a waiter whose signal aborts leaves the
 * queue. The storage client's segment slots and the S3 gateway's request
 * turns are each one.
 */
export class Slots {
  private free: number
  private readonly waiting: Array<() => void> = []

  constructor (slots: number) {
    this.free = slots
  }

  /** Resolves with the function that gives the slot back (call it once) */
  async take (signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted()
    if (this.free > 0) {
      this.free--
      return this.giver()
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiting.indexOf(grant)
        if (i >= 0) {
          this.waiting.splice(i, 1)
        }
        reject(signal?.reason)
      }
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      this.waiting.push(grant)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
    return this.giver()
  }

  private giver (): () => void {
    let given = false
    return () => {
      if (given) {
        return
      }
      given = true
      const next = this.waiting.shift()
      if (next != null) {
        next()
      } else {
        this.free++
      }
    }
  }
}
