/**
 * One holder at a time per key: `run(key, fn)` calls `fn` once every earlier
 * caller with the same key has finished (resolved or thrown), in the order
 * they called. Keys are independent, and a key nobody holds or waits for
 * takes no memory.
 *
 * A caller may stop waiting through `signal`: it then rejects with the
 * signal's reason and `fn` never runs, while those after it still wait for
 * the holders before it (the work they are kept from sharing is theirs, not
 * its).
 */
export class KeyedLock<K = string> {
  /** per key: settles once the last caller so far (and all before it) is done */
  private readonly tails = new Map<K, Promise<void>>()

  async run<T> (key: K, fn: () => Promise<T>, options: { signal?: AbortSignal } = {}): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>(resolve => { release = resolve })
    // tails never reject, so neither does `before`
    const tail = before.then(async () => mine)
    this.tails.set(key, tail)
    void tail.then(() => {
      // forget the key once its last caller is done, never before: a waiter
      // that gave up must not let a newcomer past the holder still running
      if (this.tails.get(key) === tail) {
        this.tails.delete(key)
      }
    })
    try {
      await waitFor(before, options.signal)
      return await fn()
    } finally {
      release()
    }
  }

  /** Whether anyone holds or waits for `key` */
  held (key: K): boolean {
    return this.tails.has(key)
  }
}

/** `promise`, or the signal's reason once it aborts first */
async function waitFor (promise: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (signal == null) {
    return promise
  }
  signal.throwIfAborted()
  let onAbort!: () => void
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
