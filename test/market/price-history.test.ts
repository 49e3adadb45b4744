import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { PriceHistory } from '../../src/market/price-history.ts'
import type { PriceStats } from '../../src/market/price-index.ts'

describe('PriceHistory: the market\'s prices over time for the dashboard', () => {
  it('samples every service and method, oldest first, and keeps at most maxPoints of each', () => {
    let now = 1_000
    let median = 10n
    const stats = (): PriceStats[] => [
      { service: 'storage', method: 'rent', unit: 'TiB-month', count: 3, min: 5n, median, p90: 20n },
      { service: 'sha256', method: 'hash', unit: 'MiB', count: 1, min: 1n, median: 1n, p90: 1n }
    ]
    const history = new PriceHistory({ stats }, { maxPoints: 3, now: () => now })
    for (let i = 0; i < 5; i++) {
      history.sample()
      now += 60_000
      median += 1n
    }
    const rent = history.list().filter(p => p.method === 'rent')
    assert.deepEqual(rent.map(p => p.median), [12n, 13n, 14n], 'the oldest two went')
    assert.deepEqual(rent.map(p => p.at), [121_000, 181_000, 241_000])
    assert.equal(history.list().length, 6)
    assert.deepEqual(history.list(181_000).map(p => `${p.service}.${p.method}`), ['sha256.hash', 'storage.rent', 'sha256.hash', 'storage.rent'])
  })

  it('samples at start and on its interval until stopped', async () => {
    let calls = 0
    const history = new PriceHistory({ stats: () => { calls++; return [] } }, { intervalMs: 20 })
    history.start()
    assert.equal(calls, 1)
    while (calls < 3) {
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    history.stop()
    const seen = calls
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(calls, seen, 'no sample after stop')
  })
})
