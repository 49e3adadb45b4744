/**
 * A one-line progress report on a terminal, for long uploads: redrawn at
 * most twice a second, and silent when stderr is not a terminal, so pipes,
 * logs and --json output stay clean.
 */
export class Progress {
  private readonly out: NodeJS.WritableStream & { isTTY?: boolean }
  private readonly label: string
  private readonly total: number
  private done = 0
  private last = 0
  private readonly started = Date.now()
  readonly active: boolean

  constructor (out: NodeJS.WritableStream, label: string, total: number, enabled = true) {
    this.out = out
    this.label = label
    this.total = total
    this.active = enabled && (out as any).isTTY === true
  }

  add (bytes: number): void {
    this.done += bytes
    const now = Date.now()
    if (this.active && (now - this.last >= 500 || this.done >= this.total)) {
      this.last = now
      const mib = (n: number): string => (n / 1048576).toFixed(1)
      const seconds = Math.max(0.001, (now - this.started) / 1000)
      this.out.write(`\r${this.label} ${mib(this.done)}/${mib(this.total)} MiB ${Math.floor(this.done / this.total * 100)}% ${mib(this.done / seconds)} MiB/s `)
    }
  }

  finish (): void {
    if (this.active) {
      this.out.write('\n')
    }
  }
}
