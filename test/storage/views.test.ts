import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { objectSummary, storageCosts } from '../../src/storage/views.ts'
import type { ContractRecord, StoredObject } from '../../src/storage/client/storage-client.ts'

const DAY = 86_400_000
const root = (i: number): string => String(i).padStart(2, '0').repeat(32)

/** A 1-of-2 object of two segments on hosts a and b */
function object (): StoredObject {
  const contract = (host: string): ContractRecord => ({
    host, signed: '', start: Date.now(), end: Date.now() + 30 * DAY, maxBytes: 100, storagePrice: '1000', uploadPrice: '0', downloadPrice: '0',
    rentPeriodMs: DAY, rentPaidPeriods: 1, revision: 2, shards: [[root(1), 17], [root(2), 17]], spent: { upload: '0', download: '0', rent: '3' }
  })
  return {
    id: '11'.repeat(16), name: 'f', size: 2, sha256: '', createdAt: Date.now(), k: 1, n: 2, segmentSize: 4096,
    segments: [0, 1].map(i => ({ plainLength: 1, shardSize: 17, shards: [{ host: 'a', contract: 'ca', root: root(i) }, { host: 'b', contract: 'cb', root: root(i) }] })),
    contracts: { ca: contract('a'), cb: contract('b') }
  }
}

/** How stored objects look in the control API and `store ... --json` */
describe('storage views', () => {
  it('says any K of its N hosts rebuild a file only while every segment has N shards that count on N hosts', () => {
    const healthy = objectSummary(object()) as any
    assert.equal(healthy.redundancyText, '1-of-2 (any 1 of its 2 hosts rebuild it)')
    assert.equal(healthy.health.healthyShards, 2)
    // one shard of one segment lost: still two hosts hold shards that count
    const lost = object()
    lost.segments[1].shards[0].lost = Date.now()
    const degraded = objectSummary(lost) as any
    assert.equal(degraded.hosts, 2)
    assert.equal(degraded.redundancyText, '1-of-2 (any 1 of a segment\'s 2 shards rebuild it; its weakest segment has 1 that count, on 2 hosts)')
    const removed = object()
    removed.removedAt = Date.UTC(2026, 10, 1)
    assert.equal((objectSummary(removed) as any).redundancyText, '1-of-2 (removed 2026-11-01T00:00:00.000Z)')
  })

  it('says when the contracts in force end, not when a renewed or ended one did', () => {
    const renewed = object()
    // ca was renewed into ca2 three days ago: its end is moot
    renewed.contracts.ca2 = { ...renewed.contracts.ca, end: Date.UTC(2027, 0, 30) }
    renewed.contracts.cb.end = Date.UTC(2027, 0, 20)
    renewed.contracts.ca.end = Date.UTC(2026, 11, 3)
    renewed.contracts.ca.ended = Date.UTC(2026, 10, 28)
    assert.equal((objectSummary(renewed) as any).expires, '2027-01-20T00:00:00.000Z')
    // a removed object's contracts are all ended: their ends are what there is
    for (const c of Object.values(renewed.contracts)) {
      c.ended = Date.UTC(2026, 11, 1)
    }
    assert.equal((objectSummary(renewed) as any).expires, '2026-12-03T00:00:00.000Z')
  })

  it('shows what storage cost on chain beside what its calls cost, in BTC', () => {
    assert.deepEqual(storageCosts({ promised: 480n, unpaid: 40n, paidOnChain: 2352n, fees: 1128n, throughChannels: 30n }), {
      calls: '0.0000048 BTC', throughChannels: '0.0000003 BTC', unpaid: '0.0000004 BTC', paidOnChain: '0.00002352 BTC', fees: '0.00001128 BTC', onChain: '0.0000348 BTC'
    })
  })
})
