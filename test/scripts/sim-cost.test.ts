import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { satPerTiB, simulateProfile } from '../../scripts/sim/cost.ts'

/**
 * npm run sim:cost's core on one small profile: fifty real files of 10 KiB
 * on ten real hosts, 30 simulated days. What it must show: every file goes
 * into one contract per host, rent is on the bytes held and accrued
 * exactly (so fifty small files cost a few satoshis a month, not one per
 * file and day), no tab is worth a settlement yet, and each host's
 * payments carry their share of the settlement that will come.
 */
describe('sim:cost', () => {
  it('stores every small file in one contract per host, and charges rent on the bytes held', async () => {
    const files = 50
    const result = await simulateProfile({ name: 'small', files, fileSize: 10 * 1024, realFiles: files }, { hosts: 10, satPerVb: 10 })
    assert.deepEqual([result.k, result.n], [4, 8])
    assert.equal(result.contracts, result.n, `one contract per host for all ${files} files`)
    // 50 x 10 KiB stored 2x: worth a few thousandths of a satoshi a month at $1.50 per TB-month
    assert.ok(result.bytesRentSats < 0.01, String(result.bytesRentSats))
    // rounded up once per contract: the first and the renewed one, at most a sat each
    assert.ok(result.rentSats > 0n && result.rentSats <= BigInt(2 * result.n), `rent ${result.rentSats} sat`)
    assert.equal(result.transactions, 0, 'no tab is worth a settlement yet')
    // each host's payments carry a quarter of themselves in fees (a tab settles at four fees), rounded up per host
    assert.ok(result.amortizedFeeSats * 4n >= result.rentSats && result.amortizedFeeSats <= result.rentSats / 4n + BigInt(result.n), `fees ${result.amortizedFeeSats} sat for rent ${result.rentSats} sat`)
    assert.equal(result.totalSats, result.rentSats + result.uploadSats + result.downloadSats + result.amortizedFeeSats)
  })

  it('converts the anchors\' USD prices to sat per TiB and rounds up to the whole sat the wire carries', () => {
    const storj = satPerTiB(1.5, 90_000)
    assert.ok(Math.abs(storj.exact - 1832.5) < 0.1, String(storj.exact))
    assert.equal(storj.wire, 1833n)
    assert.equal(satPerTiB(0, 90_000).wire, 0n)
  })
})
