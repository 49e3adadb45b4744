import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { CONTRACT_VERSION, decodeTerms, encodeTerms, GIB, MONTH_MS, overMaxMoney, RENT_UNITS_PER_SAT, rentCharge, rentPerPeriodV1, TIB, transferCost, type ContractTerms, type RentState } from '../../../src/storage/protocol/contract.ts'

/**
 * Contract terms' versions and the rent rule of PROTOCOL.md 8d ("Contract
 * terms", "Rent"), against the storage vectors of section 11 and against
 * the exact sums written out here with rationals
 */

const fixture = JSON.parse(await readFile(new URL('../../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const DAY = 86_400_000
const KIB = 1024

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

  it('price transfers per TiB in version 2 and per GiB in version 1, rounded up per call', () => {
    assert.equal(transferCost(2, 1000n, TIB), 1000n)
    assert.equal(transferCost(2, 1000n, 1), 1n)
    assert.equal(transferCost(2, 1000n, 0), 0n)
    assert.equal(transferCost(1, 1000n, GIB), 1000n)
    assert.equal(transferCost(2, 1000n, GIB), 1n, '1000 sat per TiB moves a GiB for 0.98 sat, rounded up')
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
