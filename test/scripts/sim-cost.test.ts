import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { satPerGiB, simulateProfile } from '../../scripts/sim/cost.ts'

/**
 * npm run sim:cost's core on one tiny profile: five real files of 10 KiB on
 * ten real hosts, 30 simulated days, each standing for 100 (500 files).
 * What it must show of today's code: every file forms its own contract with
 * each of its N hosts, each of those contracts pays at least 1 sat a rent
 * period, so small files cost far more than their bytes at the price, and
 * the tabs that reach a settlement's worth are settled on chain at 141 vB.
 */
describe('sim:cost', () => {
  it('counts a contract per file and host, and the per-contract minimum of rent', async () => {
    const files = 500
    const result = await simulateProfile({ name: 'tiny', files, fileSize: 10 * 1024, realFiles: 5 }, { hosts: 10, satPerVb: 10 })
    assert.deepEqual([result.k, result.n], [4, 8])
    assert.equal(result.contracts, files * result.n)
    // a day's rent per contract is rounded up to 1 sat: 30 days of it, at least, on every contract
    assert.ok(result.rentSats >= BigInt(files * result.n * 30), `rent ${result.rentSats} sat`)
    assert.ok(Number(result.rentSats) > 1000 * result.bytesRentSats, `rent ${result.rentSats} sat for bytes worth ${result.bytesRentSats} sat`)
    // about 400 sat a day per host: a settlement's worth (4 x 1,410 sat) every two weeks or so
    assert.ok(result.transactions >= result.hostsPaid && result.hostsPaid >= result.n, `${result.transactions} transactions to ${result.hostsPaid} hosts`)
    assert.ok(result.transactions <= 3 * result.hostsPaid, `${result.transactions} transactions to ${result.hostsPaid} hosts`)
    assert.equal(result.vbytes, 141)
    assert.equal(result.feeSats, BigInt(result.transactions) * 1410n)
  })

  it('converts the anchors\' USD prices to sat per GiB and rounds up to the whole sat the wire carries', () => {
    const storj = satPerGiB(1.5, 90_000)
    assert.ok(Math.abs(storj.exact - 1.79) < 0.01, String(storj.exact))
    assert.equal(storj.wire, 2n)
    assert.equal(satPerGiB(0, 90_000).wire, 0n)
  })
})
