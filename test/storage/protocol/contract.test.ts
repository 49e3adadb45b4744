import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { CONTRACT_VERSION, decodeTerms, encodeTerms, GIB, MONTH_MS, overMaxMoney, RENT_UNITS_PER_SAT, rentCharge, rentPerPeriodV1, TIB, transferCost, transferRemainder, type ContractTerms, type RentState } from '../../../src/storage/protocol/contract.ts'

/**
 * Contract terms' versions and the rent rule of PROTOCOL.md 8d ("Contract
 * terms", "Rent"), against the storage vectors of section 11 and against
 * the exact sums written out here with rationals
 */

const fixture = JSON.parse(await readFile(new URL('../../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const DAY = 86_400_000
const KIB = 1024
const MIB = 1024 * KIB

/** The vectors' terms: 2000 sat per TiB-month, one-day periods */
const terms = decodeTerms(Uint8Array.from(Buffer.from(fixture.storage.terms, 'hex')))

/** Pay `steps` of [bytes held, periods] one rent call each; answers each call's price and the state after */
function payAll (t: ContractTerms, steps: Array<[number, number]>): { prices: bigint[], state: RentState } {
  let state: RentState = { accrued: 0n, paid: 0n }
  const prices = steps.map(([bytes, periods]) => {
    const { accrued, price } = rentCharge(t, state, bytes, periods)
    state = { accrued, paid: state.paid + price }
    return price
  })
  return { prices, state }
}

describe('contract terms versions', () => {
  it('encode the version as the first byte and decode both 1 and 2, refusing others', () => {
    assert.equal(CONTRACT_VERSION, 2)
    assert.equal(terms.version, 2)
    const v1 = { ...terms, version: 1 as const }
    const encoded = encodeTerms(v1)
    assert.equal(encoded[0], 1)
    assert.deepEqual(decodeTerms(encoded), v1)
    encoded[0] = 3
    assert.throws(() => decodeTerms(encoded), /unsupported contract version 3/)
  })

  it('price transfers per TiB in version 2, the whole satoshis with the call and the fraction in rent units', () => {
    assert.deepEqual([transferCost(2, 1000n, TIB), transferRemainder(2, 1000n, TIB)], [1000n, 0n])
    assert.deepEqual([transferCost(2, 1000n, 0), transferRemainder(2, 1000n, 0)], [0n, 0n])
    // 1000 sat per TiB moves a GiB for 0.977 sat: 0 with the call, 1000/1024 sat accrued
    assert.equal(transferCost(2, 1000n, GIB), 0n)
    assert.equal(transferRemainder(2, 1000n, GIB), 1000n * BigInt(GIB) * BigInt(MONTH_MS))
    assert.equal(transferRemainder(2, 1000n, GIB) * 1024n, 1000n * RENT_UNITS_PER_SAT)
    // a byte over 3 TiB: 3000 sat, and 1000 bytes' worth (1000 / 2^40 sat) accrued
    assert.deepEqual([transferCost(2, 1000n, 3 * TIB + 1), transferRemainder(2, 1000n, 3 * TIB + 1)], [3000n, 1000n * BigInt(MONTH_MS)])
  })

  it('make the price and the remainder of any transfer its exact cost, the remainder under a satoshi', () => {
    for (const [price, bytes] of [[2444n, MIB], [2444n, 3 * TIB + 12345], [1n, 1], [999_999_999n, 7 * GIB + 3], [2n ** 40n, 5]] as const) {
      const cost = transferCost(2, price, bytes)
      const remainder = transferRemainder(2, price, bytes)
      assert.equal(cost * RENT_UNITS_PER_SAT + remainder, price * BigInt(bytes) * BigInt(MONTH_MS), `${price} sat per TiB, ${bytes} bytes`)
      assert.ok(remainder >= 0n && remainder < RENT_UNITS_PER_SAT)
    }
  })

  it('price a 1 MiB shard at the market\'s 2444 sat per TiB at 0 sat, its 2444 / 2^20 sat accrued', () => {
    assert.equal(transferCost(2, 2444n, MIB), 0n)
    assert.equal(transferRemainder(2, 2444n, MIB), 2444n * BigInt(MIB) * BigInt(MONTH_MS))
    // 100 GB read in 1 MiB shards: 95,367 calls of 0 sat each (rounded up per call they cost
    // 95,367 sat), and 222.28 sat accrued over them, paid with rent as 223 at most
    const calls = 95_367n
    assert.equal((calls * transferRemainder(2, 2444n, MIB) + RENT_UNITS_PER_SAT - 1n) / RENT_UNITS_PER_SAT, 223n)
  })

  it('keep version 1 transfers rounded up per call, per GiB, with nothing left to accrue', () => {
    assert.equal(transferCost(1, 1000n, GIB), 1000n)
    assert.equal(transferCost(1, 1000n, 1), 1n)
    assert.equal(transferCost(1, 2444n, MIB), 3n, '2444 sat per GiB moves a MiB for 2.39 sat, rounded up')
    assert.equal(transferRemainder(1, 1000n, 1), 0n)
    assert.equal(transferRemainder(1, 2444n, MIB), 0n)
  })
})

describe('rent (PROTOCOL.md 8d, "Rent")', () => {
  it('follows the steps of the section 11 vectors: bytes held, accrued exactly, paid in whole satoshis', () => {
    const steps: Array<[number, number]> = [[0, 1], [10 * KIB, 1], [10 * KIB, 1], [10 * KIB, 1], [GIB, 1], [GIB, 29]]
    let state: RentState = { accrued: 0n, paid: 0n }
    steps.forEach(([bytes, periods], i) => {
      const { accrued, price } = rentCharge(terms, state, bytes, periods)
      assert.deepEqual({ accrued: String(accrued), price: String(price) }, fixture.storage.rentSteps[i], `step ${i + 1}`)
      state = { accrued, paid: state.paid + price }
    })
    assert.equal(state.paid, 2n)
  })

  it('follows the transfer vectors of section 11: the whole satoshis with the call, the remainder settled by the next rent', () => {
    const v = fixture.storage
    assert.deepEqual([transferCost(2, 1000n, 3 * TIB + 1), transferRemainder(2, 1000n, 3 * TIB + 1)].map(String), [v.uploadCostOf3TiBAnd1Byte, v.uploadRemainderOf3TiBAnd1Byte])
    assert.deepEqual([transferCost(2, 2444n, MIB), transferRemainder(2, 2444n, MIB)].map(String), [v.getCostOf1MiBAt2444, v.getRemainderOf1MiBAt2444])
    const get = [transferCost(2, terms.downloadPrice, MIB), transferRemainder(2, terms.downloadPrice, MIB)]
    assert.deepEqual(get.map(String), [v.rentAfterGets.getCost, v.rentAfterGets.getRemainder])
    // step 5's state, 1000 gets, one period at 1 GiB
    const after5 = payAll(terms, [[0, 1], [10 * KIB, 1], [10 * KIB, 1], [10 * KIB, 1], [GIB, 1]]).state
    const { accrued, price } = rentCharge(terms, { ...after5, accrued: after5.accrued + 1000n * get[1] }, GIB, 1)
    assert.deepEqual({ accrued: String(accrued), price: String(price) }, { accrued: v.rentAfterGets.accrued, price: v.rentAfterGets.price })
    assert.equal(rentCharge(terms, after5, GIB, 1).price, 0n, 'without the gets the period costs 0')
  })

  it('charges a 10 KiB contract 0 sat for each period its last satoshi still covers, then 1 when the exact sum passes it', () => {
    // 10 BTC per TiB-month: 10 KiB accrues 0.31 sat a day
    const t: ContractTerms = { ...terms, storagePrice: 1_000_000_000n }
    const { prices } = payAll(t, Array.from({ length: 10 }, () => [10 * KIB, 1]))
    // the exact sums: 0.31, 0.62, 0.93, 1.24, 1.55, 1.86, 2.17, 2.48, 2.79, 3.10
    assert.deepEqual(prices, [1n, 0n, 0n, 1n, 0n, 0n, 1n, 0n, 0n, 1n])
  })

  it('stays within 1 sat of the exact sum over a year of daily periods as the bytes held change, whatever their size', () => {
    let bytes = 0
    const steps: Array<[number, number]> = []
    let exact = 0n
    for (let day = 0; day < 366; day++) {
      // shards come and go: from nothing to a few MiB, and small ones
      bytes = Math.max(0, bytes + ((day * 7919) % 13 - 6) * 333_333 + (day % 5 === 0 ? 4097 : 0))
      steps.push([bytes, 1])
      exact += terms.storagePrice * BigInt(bytes) * BigInt(DAY)
    }
    const { prices, state } = payAll(terms, steps)
    assert.equal(state.accrued, exact)
    assert.ok(prices.every(p => p >= 0n))
    assert.ok(state.paid * RENT_UNITS_PER_SAT >= exact, 'never less than the exact sum')
    assert.ok(state.paid * RENT_UNITS_PER_SAT - exact < RENT_UNITS_PER_SAT, `paid ${state.paid} sat for an exact ${Number(exact) / Number(RENT_UNITS_PER_SAT)}`)
    assert.ok(prices.filter(p => p === 0n).length > 300, 'most days cost a fraction of a satoshi, paid once it adds up')
  })

  it('charges periods paid at once as the same periods paid one by one', () => {
    const t: ContractTerms = { ...terms, storagePrice: 123_456_789n }
    const once = payAll(t, [[7777, 12]])
    const oneByOne = payAll(t, Array.from({ length: 12 }, () => [7777, 1]))
    assert.deepEqual(once.state, oneByOne.state)
  })

  it('keeps version 1 rent: each period on max-bytes, rounded up on its own, nothing accrued', () => {
    const t: ContractTerms = { ...terms, version: 1 }
    // 2000 x 64 / 30 = 4266.67 sat a day, rounded up
    assert.equal(rentPerPeriodV1(t), 4267n)
    assert.deepEqual(rentCharge(t, { accrued: 0n, paid: 0n }, 0, 3), { accrued: 0n, price: 3n * 4267n })
    assert.deepEqual(rentCharge(t, { accrued: 0n, paid: 5n }, 10 * KIB, 1), { accrued: 0n, price: 4267n })
  })

  it('bounds the rent of the whole contract at max-bytes held against all the bitcoin there will ever be', () => {
    assert.equal(overMaxMoney(terms), undefined)
    // 9 x 10^15 sat per TiB-month (the largest price a varint carries) on 1 TiB for a month: over the 2.1 x 10^15 sat there will ever be
    const t: ContractTerms = { ...terms, maxBytes: TIB, storagePrice: BigInt(Number.MAX_SAFE_INTEGER), end: terms.start + MONTH_MS }
    assert.match(overMaxMoney(t) ?? '', /rent over the whole contract is [0-9.]+ BTC/)
  })
})
