import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { agreement, globalTrust } from '../../src/reputation/eigentrust.ts'
import { simulate, THREAT_MODELS } from '../../src/reputation/simulation.ts'

const m = (entries: Record<string, Record<string, number>>): Map<string, Map<string, number>> =>
  new Map(Object.entries(entries).map(([k, v]) => [k, new Map(Object.entries(v))]))

describe('EigenTrust', () => {
  it('gives a collective that only praises itself nothing when no trusted peer vouches for it', () => {
    const { trust } = globalTrust({
      pretrusted: ['a'],
      opinions: m({ a: { b: 5, c: 3 }, b: { c: 2, a: 1 }, c: { b: 1 }, x: { y: 100 }, y: { x: 100 } })
    })
    assert.equal(trust.get('x') ?? 0, 0)
    assert.equal(trust.get('y') ?? 0, 0)
    assert.ok((trust.get('b') as number) > 0.2)
    const sum = [...trust.values()].reduce((s, v) => s + v, 0)
    assert.ok(Math.abs(sum - 1) < 1e-9, 'a distribution')
  })

  it('ignores negative experience and follows the opinions of trusted raters', () => {
    const { trust } = globalTrust({ pretrusted: ['a'], opinions: m({ a: { b: 1, bad: -10 }, b: { c: 4 } }) })
    assert.equal(trust.get('bad') ?? 0, 0)
    assert.ok((trust.get('c') as number) > 0, 'trust flows from a through b to c')
  })

  it('discounts raters whose opinions disagree with ours', () => {
    const opinions = m({ me: { honest: 10, liar: 5, crook: -10 }, liar: { crook: 50, honest: -5 } })
    const credibility = new Map([['liar', agreement(opinions.get('me') as any, opinions.get('liar') as any)]])
    assert.equal(credibility.get('liar'), 0)
    const withCredibility = globalTrust({ pretrusted: ['me'], opinions, credibility }).trust
    const without = globalTrust({ pretrusted: ['me'], opinions }).trust
    assert.equal(withCredibility.get('crook') ?? 0, 0)
    assert.ok((without.get('crook') ?? 0) > 0, 'without credibility the liar passes trust on')
    assert.equal(agreement(new Map([['a', 1]]), new Map([['b', 1]])), 0.5, 'no overlap is neutral')
  })
})

describe('the reputation simulation', () => {
  it('keeps bad service at or under 10% with 40% malicious peers in every threat model, deterministically', () => {
    for (const model of THREAT_MODELS) {
      const r = simulate({ peers: 100, malicious: 0.4, model })
      assert.ok(r.badWithReputation <= 0.10, `${model}: ${(r.badWithReputation * 100).toFixed(1)}% bad`)
      assert.ok(r.badWithRandom > r.badWithReputation * 2, `${model}: random ${r.badWithRandom} vs ${r.badWithReputation}`)
      assert.deepEqual(simulate({ peers: 100, malicious: 0.4, model }), r, 'the same inputs give the same result')
    }
  })

  it('really simulates the collective: its praise of itself pays off against plain EigenTrust, in every seed', () => {
    for (const seed of [1, 2, 3]) {
      const individual = simulate({ peers: 100, malicious: 0.4, model: 'individual', seed })
      const collective = simulate({ peers: 100, malicious: 0.4, model: 'collective', seed })
      assert.ok(collective.badWithPlainEigenTrust > individual.badWithPlainEigenTrust * 1.3, `seed ${seed}: collective ${collective.badWithPlainEigenTrust} vs individual ${individual.badWithPlainEigenTrust}`)
      assert.ok(collective.badWithReputation <= 0.10, `seed ${seed}: the defences hold (${collective.badWithReputation})`)
    }
  })
})
