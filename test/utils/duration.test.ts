import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidDurationError, parseDuration } from '../../src/utils/duration.ts'
import { parseSince } from '../../src/cli/commands/wallet.ts'

describe('durations', () => {
  it('reads minutes, hours and days', () => {
    assert.equal(parseDuration('90min'), 90 * 60_000)
    assert.equal(parseDuration(' 12 h '), 12 * 3_600_000)
    assert.equal(parseDuration('30d'), 30 * 86_400_000)
  })

  it('refuses a bare m, which a user took for a month and the node for a minute, saying how to write either', () => {
    assert.throws(() => parseDuration('1m', '--duration'), (err: any) => err instanceof InvalidDurationError &&
      err.message === '--duration "1m" could be minutes or months: write 1min for minutes, or days (30d is a month)')
  })

  it('refuses no period, zero and other units', () => {
    for (const text of ['', '30', '0d', '30 days', '1w', 'forever', '-1d']) {
      assert.throws(() => parseDuration(text), InvalidDurationError, text)
    }
  })

  it('--since takes the same periods back from now, or a date', () => {
    const now = Date.parse('2026-12-01T00:00:00Z')
    assert.equal(parseSince('90min', now), now - 90 * 60_000)
    assert.equal(parseSince('2026-11-01', now), Date.parse('2026-11-01'))
    assert.throws(() => parseSince('7m', now), /could be minutes or months: write 7min for minutes.*; or a date/)
  })
})
