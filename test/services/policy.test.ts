import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Policies } from '../../src/services/policy/policy.ts'
import { RateLimiter, parseRateLimit } from '../../src/utils/rate-limiter.ts'

const alice = 'oc:12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB'
const bob = 'oc:12D3KooWCd3eX8r5ihRvzK7P1yPq5aakaBJhG5GNj18YTztPhoCa'
const wallet = 'btc:bc1q0xcqpzrky6eff2g52qdye53xkk9jxkvrh6yhyw'

describe('policies', () => {
  const policies = new Policies({
    global: { deny: true, 'min-payment': '100 sat', 'rate-limit': '100/s' },
    service: { sha256: { allow: true, 'min-payment': '0.000002 BTC' } },
    method: { 'sha256.hash': { 'min-payment': 50, 'rate-limit': '5/s' } },
    credential: { [alice]: { deny: true }, [bob]: { 'min-payment': '1 sat', 'rate-limit': '1/m' }, [wallet]: { allow: true, 'min-payment': '0.00001 BTC' } }
  })

  it('lets the most specific scope win, command by command', () => {
    const d = policies.decide({ service: 'sha256', method: 'hash', credentials: [] })
    assert.equal(d.access, 'allow')
    assert.equal(d.accessScope, 'service sha256')
    assert.equal(d.minPayment, 50n)
    assert.deepEqual(d.rateLimits.map(r => r.scope), ['method sha256.hash'])

    const other = policies.decide({ service: 'peers', method: 'list', credentials: [] })
    assert.equal(other.access, 'deny')
    assert.equal(other.accessScope, 'global')
    assert.equal(other.minPayment, 100n)

    const info = policies.decide({ service: 'sha256', method: 'info', credentials: [] })
    assert.equal(info.minPayment, 200n, 'service scope over global')
  })

  it('puts credential scopes above all, with deny beating allow among them', () => {
    assert.equal(policies.decide({ service: 'sha256', method: 'hash', credentials: [alice] }).access, 'deny')
    const both = policies.decide({ service: 'sha256', method: 'hash', credentials: [wallet, alice] })
    assert.equal(both.access, 'deny')
    assert.equal(both.accessScope, `credential ${alice}`)
    const bobs = policies.decide({ service: 'peers', method: 'list', credentials: [bob, wallet] })
    assert.equal(bobs.access, 'allow', 'the wallet credential allows what global denies')
    assert.equal(bobs.minPayment, 1000n, 'the highest credential min-payment')
    assert.deepEqual(bobs.rateLimits.map(r => r.limit.text), ['1/m'])
  })

  it('names the field of a policy that is wrong', () => {
    assert.throws(() => new Policies({ global: { allow: true, deny: true } }), /policies.global both allows and denies/)
    assert.throws(() => new Policies({ method: { sha256: {} } }), /written service.method/)
    assert.throws(() => new Policies({ credential: { alice: {} } }), /oc:<PeerId> or btc:<address>/)
    assert.throws(() => new Policies({ service: { x: { 'max-debt': 1 } as any } }), /unknown command "max-debt"/)
    assert.throws(() => new Policies({ global: { confirmations: -1 } }), /confirmations must be a whole number/)
    assert.throws(() => new Policies({ global: { 'no-defer': 'yes' as any } }), /no-defer must be true or false/)
    assert.throws(() => new Policies({ global: { 'min-payment': '1.5 sat' } }), /min-payment/)
    assert.throws(() => new Policies({ region: {} } as any), /unknown scope "region"/)
  })
})

describe('rate limiter', () => {
  it('parses counts per period with an optional burst', () => {
    assert.deepEqual(parseRateLimit('10/s'), { perSecond: 10, burst: 10, text: '10/s' })
    assert.deepEqual(parseRateLimit('600/m burst 20'), { perSecond: 10, burst: 20, text: '600/m burst 20' })
    assert.throws(() => parseRateLimit('fast'), /not a rate limit/)
    assert.throws(() => parseRateLimit('0/s'), /not a rate limit/)
  })

  it('refuses a caller over its budget and refills with time, without touching other callers', () => {
    let now = 0
    const limiter = new RateLimiter({ now: () => now })
    const limit = parseRateLimit('2/s')
    assert.equal(limiter.take('a', limit), 0)
    assert.equal(limiter.take('a', limit), 0)
    assert.equal(limiter.take('a', limit), 500)
    assert.equal(limiter.take('b', limit), 0)
    now += 500
    assert.equal(limiter.take('a', limit), 0)
    assert.ok(limiter.take('a', limit) > 0)
  })
})

describe('payment policies', () => {
  it('resolve max-tab, no-defer, confirmations, min-balance and min-holding-age by scope', () => {
    const policies = new Policies({
      global: { 'max-tab': '0.001 BTC', confirmations: 1 },
      service: { sha256: { 'no-defer': true } },
      credential: { [alice]: { 'max-tab': '10000 sat', 'min-balance': '1 BTC', 'min-holding-age': 6 } }
    })
    assert.deepEqual(policies.decide({ service: 'sha256', method: 'hash', credentials: [] }).payment,
      { maxTab: 100_000n, noDefer: true, confirmations: 1, minBalance: 0n, minHoldingAge: 0, minTrust: 0, deferMinTrust: 0 })
    assert.deepEqual(policies.decide({ service: 'peers', method: 'list', credentials: [alice] }).payment,
      { maxTab: 10_000n, noDefer: false, confirmations: 1, minBalance: 100_000_000n, minHoldingAge: 6, minTrust: 0, deferMinTrust: 0 })
    assert.deepEqual(new Policies({}).decide({ service: 'a', method: 'b', credentials: [] }).payment,
      { maxTab: 0n, noDefer: false, confirmations: undefined, minBalance: 0n, minHoldingAge: 0, minTrust: 0, deferMinTrust: 0 }, 'no credit unless configured')
    const byTrust = new Policies({ global: { 'min-trust': 0.2, 'defer-min-trust': 1.5 } }).decide({ service: 'a', method: 'b', credentials: [] }).payment
    assert.deepEqual([byTrust.minTrust, byTrust.deferMinTrust], [0.2, 1.5])
    assert.throws(() => new Policies({ global: { 'min-trust': -1 } }), /min-trust must be a trust score/)
  })
})
