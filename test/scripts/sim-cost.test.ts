import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { compareStrategies, satPerTiB, simulateProfile, type ProfileResult } from '../../scripts/sim/cost.ts'

/**
 * npm run sim:cost's core on one small profile: fifty real files of 10 KiB
 * on ten real hosts, 30 simulated days. What it must show: every file goes
 * into one contract per host, rent is on the bytes held and accrued
 * exactly (so fifty small files cost a few satoshis a month, not one per
 * file and day), no tab is worth a settlement yet, and each host's
 * payments carry their share of the settlement that will come. Through
 * channels: one funding transaction for the put's hosts and one close each
 * (a refund where a host was paid less than the dust limit), checked by a
 * regtest chain, and the arithmetic of the 2% horizon.
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

  // 1 TB in 100 MB files, one real file standing for them: each host is paid over the dust limit in the month
  const terabyte = { name: '1 TB', files: 10_000, fileSize: 100_000_000, realFiles: 1 }

  it('through channels: one funding transaction for the put\'s hosts, one close each, paying each host exactly what it was paid', async () => {
    const r = await simulateProfile(terabyte, { hosts: 10, satPerVb: 10 }, 'channels')
    const ch = r.channels
    assert.ok(ch != null)
    assert.equal(ch.opened, r.n, 'a channel to each of the put\'s hosts')
    assert.equal(ch.fundingTransactions, 1, 'all in one funding transaction')
    assert.equal(ch.deferredSats, 0n, 'nothing was paid deferred instead')
    assert.equal(ch.paidThroughChannels, r.rentSats + r.uploadSats + r.downloadSats, 'every priced call went through a channel')
    assert.ok(r.rentSats / BigInt(r.n) >= 294n, `each host was paid ${r.rentSats / BigInt(r.n)} sat, over the dust limit`)
    assert.deepEqual([ch.closes, ch.refunds], [r.n, 0], 'each payee closed at its margin')
    assert.equal(ch.paidToHostsOnChain, ch.paidThroughChannels, 'the closes paid the hosts what went through the channels')
    assert.equal(ch.txPerHost, 2, 'a host\'s channel: its funding and its close')
    assert.equal(ch.transactions, 1 + r.n)
    // each close pays the fee fixed at the open: 180 vB at 10 sat/vB
    assert.equal(ch.closeFeeSats, BigInt(r.n) * 1800n)
    assert.equal(ch.feeSats, ch.fundingFeeSats + ch.closeFeeSats)
    assert.ok(ch.fundingFeeSats >= BigInt(Math.ceil(ch.fundingVbytes)) * 10n, `funding fee ${ch.fundingFeeSats} sat for ${ch.fundingVbytes} vB`)
    assert.equal(r.totalSats, r.rentSats + r.uploadSats + r.downloadSats + ch.feeSats + r.amortizedFeeSats)
    assert.equal(r.transactions, 0, 'no deferred settlement')
  })

  it('through channels: a host paid less than the dust limit has nothing to close, and the payer\'s refunds take it all back', async () => {
    const r = await simulateProfile({ name: '1 x 10 MB', files: 1, fileSize: 10_000_000, realFiles: 1 }, { hosts: 10, satPerVb: 10 }, 'channels')
    const ch = r.channels
    assert.ok(ch != null)
    assert.ok(r.rentSats > 0n && r.rentSats / BigInt(r.n) < 294n, `rent ${r.rentSats} sat`)
    assert.deepEqual([ch.closes, ch.refunds], [0, r.n])
    assert.equal(ch.paidToHostsOnChain, 0n)
    assert.equal(ch.forfeitedSats, ch.paidThroughChannels)
    assert.equal(ch.txPerHost, 2, 'a host\'s channel: its funding and the refund')
    // the fees are the same whatever went through: far more than the rent
    assert.ok(ch.feeOverhead > 100, String(ch.feeOverhead))
  })

  it('puts the 2% horizon where a channel\'s fees are 2% of the rent it carries', () => {
    const o = { btcUsd: 90_000, satPerVb: 10, pricePerTbMonth: 1.5, uploadPerTb: 0, downloadPerTb: 2, hosts: 10, days: 30, checkMs: 6 * 3600_000, channelDays: 30 }
    const base = { profile: 'p', files: 1, fileSize: 1, dataBytes: 1e12, k: 4, n: 8, storedBytes: 2e12, contracts: 8, uploadSats: 0n, downloadSats: 0n, transactions: 0, hostsPaid: 0, txPerHostMonth: 0, vbytes: 0, feeSats: 0n, totalSats: 0n, totalUsd: 0, usdPerTbMonth: 0, bytesRentSats: 0, downloadedBytes: 0, bytesDownloadSats: 0 }
    const deferred: ProfileResult = { ...base, rentSats: 4000n, amortizedFeeSats: 1000n, feeOverhead: 0.25 }
    // 8 hosts, 500 sat of rent each a month; 2,000 sat of channel fees each
    const channel: ProfileResult = { ...deferred, amortizedFeeSats: 0n, feeOverhead: 4, channels: { opened: 8, fundingTransactions: 1, closes: 8, refunds: 0, transactions: 9, txPerHost: 2, fundingVbytes: 450, closeVbytes: 150, refundVbytes: 0, fundingFeeSats: 1600n, closeFeeSats: 14_400n, feeSats: 16_000n, feeOverhead: 4, paidThroughChannels: 4000n, paidToHostsOnChain: 4000n, forfeitedSats: 0n, deferredSats: 0n, capacitySats: 400_000n, lifeDays: 31, endedAfterDays: 30, autoOpens: { withCredit: false, withoutCredit: true } } }
    const c = compareStrategies(deferred, channel, o)
    assert.equal(c.rentPerHostMonth, 500)
    assert.equal(c.channels.feePerHostSats, 2000)
    assert.equal(c.channels.overhead30Days, 4)
    // 2,000 sat is 2% of 100,000 sat of rent: 200 months at 500 sat a month, or 200 TB in one month, 200 / (365 / 30) TB in a year
    assert.equal(c.channels.monthsFor2Percent, 200)
    assert.equal(c.channels.dataFor2Percent30Days, 200e12)
    assert.ok(Math.abs(c.channels.dataFor2PercentYear - 200e12 * 30 / 365) < 1)
    assert.ok(Math.abs(c.channels.monthsToDust - 294 / 500) < 1e-9)
    // deferred: a tab settles at four fees of 141 vB at 10 sat/vB, 5,640 sat: 11.28 months of 500 sat
    assert.equal(c.deferred?.creditPerHostSats, 5640n)
    assert.ok(Math.abs((c.deferred?.monthsOfCredit ?? 0) - 11.28) < 1e-9)
  })
})
