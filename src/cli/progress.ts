/** A rate is shown only once it has been measured over this long */
const RATE_AFTER_MS = 1000

/**
 * A one-line progress report on a terminal, for long uploads: redrawn at
 * most twice a second, and silent when stderr is not a terminal, so pipes,
 * logs and --json output stay clean.
 */
export class Progress {
  private readonly out: NodeJS.WritableStream & { isTTY?: boolean }
  private readonly label: string
  private readonly total: number
  private readonly now: () => number
  private done = 0
  private last = 0
  /** when the first bytes were reported, and how many: the rate counts from there */
  private first?: { at: number, done: number }
  readonly active: boolean

  constructor (out: NodeJS.WritableStream, label: string, total: number, enabled = true, now: () => number = Date.now) {
    this.out = out
    this.label = label
    this.total = total
    this.now = now
    this.active = enabled && (out as any).isTTY === true
  }

  add (bytes: number): void {
    this.done += bytes
    const now = this.now()
    // the first report often carries what was done before anyone watched
    // (a put's first segment, hashed and sent in a few ms): a rate from it
    // alone read 4500 MiB/s
    this.first ??= { at: now, done: this.done }
    if (this.active && (now - this.last >= 500 || this.done >= this.total)) {
      this.last = now
      // \x1b[K clears what a longer line before left at the end
      const mib = (n: number): string => (n / 1048576).toFixed(1)
      const elapsed = now - this.first.at
      const rate = elapsed >= RATE_AFTER_MS ? ` ${mib((this.done - this.first.done) / (elapsed / 1000))} MiB/s` : ''
      this.out.write(`\r${this.label} ${mib(this.done)}/${mib(this.total)} MiB ${Math.floor(this.done / this.total * 100)}%${rate}\x1b[K`)
    }
  }

  finish (): void {
    if (this.active) {
      this.out.write('\n')
    }
  }
}
