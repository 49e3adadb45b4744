import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { Progress } from '../../src/cli/progress.ts'

const MIB = 1048576

/** A terminal that keeps what was drawn on it */
function terminal (): Writable & { isTTY: boolean, drawn: string[] } {
  const drawn: string[] = []
  const out = new Writable({ write (chunk, _enc, done) { drawn.push(String(chunk)); done() } }) as Writable & { isTTY: boolean, drawn: string[] }
  out.isTTY = true
  out.drawn = drawn
  return out
}

describe('the progress bar', () => {
  it('shows no rate until it has been measured for a second, then the rate since its first reading', () => {
    const out = terminal()
    let now = 10_000
    const bar = new Progress(out, 'storing', 400 * MIB, true, () => now)
    // a put's first report carries 45 MiB done before anyone watched: it
    // read 4500.0 MiB/s
    bar.add(45 * MIB)
    assert.equal(out.drawn.at(-1), '\rstoring 45.0/400.0 MiB 11%\x1b[K')
    now += 600
    bar.add(5 * MIB)
    assert.doesNotMatch(out.drawn.at(-1) ?? '', /MiB\/s/)
    now += 1400
    bar.add(15 * MIB)
    // 20 MiB over the 2 s since the first reading
    assert.equal(out.drawn.at(-1), '\rstoring 65.0/400.0 MiB 16% 10.0 MiB/s\x1b[K')
  })

  it('draws nothing on a pipe', () => {
    const out = terminal()
    out.isTTY = false
    const bar = new Progress(out, 'storing', MIB)
    bar.add(MIB)
    bar.finish()
    assert.deepEqual(out.drawn, [])
  })
})
