import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { NonceStore, makeNonce, encodeChallenge, decodeChallenge } from '../../../src/protocols/rpc/nonce-store.ts'

describe('nonce store', () => {
  it('accepts each counter of an issued challenge once, in any order inside the window', () => {
    const store = new NonceStore({ window: 64 })
    const { challenge } = store.issue('alice')
    for (const counter of [5n, 3n, 9n, 4n, 70n, 7n]) {
      assert.deepEqual(store.consume('alice', makeNonce(challenge, counter)), { ok: true }, `counter ${counter}`)
    }
    assert.equal((store.consume('alice', makeNonce(challenge, 9n)) as any).code, 'replay')
    assert.equal((store.consume('alice', makeNonce(challenge, 70n)) as any).code, 'replay')
    // 70 - 6 = 64: just out of the window
    assert.equal((store.consume('alice', makeNonce(challenge, 6n)) as any).code, 'too-old')
    assert.deepEqual(store.consume('alice', makeNonce(challenge, 8n)), { ok: true })
  })

  it('remembers seen counters across window shifts of every size', () => {
    const store = new NonceStore({ window: 1024 })
    const { challenge } = store.issue('a')
    const seen = new Set<bigint>()
    let counter = 0n
    for (const step of [1n, 31n, 32n, 33n, 100n, 500n, 1n, 64n]) {
      counter += step
      assert.deepEqual(store.consume('a', makeNonce(challenge, counter)), { ok: true })
      seen.add(counter)
      for (const s of seen) {
        const verdict = store.consume('a', makeNonce(challenge, s)) as any
        assert.ok(verdict.code === 'replay' || verdict.code === 'too-old', `counter ${s} after ${counter}: ${JSON.stringify(verdict)}`)
      }
    }
  })

  it('keeps the window PROTOCOL.md states: 1,023 below the highest is accepted once, 1,024 below is refused', () => {
    const store = new NonceStore()
    const { challenge } = store.issue('alice')
    assert.equal(store.consume('alice', makeNonce(challenge, 2000n)).ok, true)
    assert.equal(store.consume('alice', makeNonce(challenge, 977n)).ok, true)
    assert.deepEqual(store.consume('alice', makeNonce(challenge, 977n)), { ok: false, code: 'replay', reason: 'the nonce was already used: the request is a replay' })
    const old = store.consume('alice', makeNonce(challenge, 976n))
    assert.equal(old.ok, false)
    assert.equal(!old.ok && old.code, 'too-old')
    assert.match(!old.ok ? old.reason : '', /1024 or more behind/)
  })

  it('binds a challenge to its caller and lets it expire', () => {
    let now = 1_000
    const store = new NonceStore({ ttlMs: 100, now: () => now })
    const { challenge } = store.issue('alice')
    assert.equal((store.consume('bob', makeNonce(challenge, 1n)) as any).code, 'other-caller')
    now += 100
    assert.equal((store.consume('alice', makeNonce(challenge, 1n)) as any).code, 'expired')
    assert.equal((store.consume('alice', makeNonce(new Uint8Array(16), 1n)) as any).code, 'unknown')
    assert.equal((store.consume('alice', new Uint8Array(0)) as any).code, 'missing')
    assert.equal((store.consume('alice', new Uint8Array(5)) as any).code, 'malformed')
  })

  it('hands a recent challenge out again only after an unknown or expired nonce', () => {
    let now = 0
    const store = new NonceStore({ reuseMs: 1000, now: () => now })
    const first = store.issue('a')
    assert.deepEqual(store.issue('a', 'unknown').challenge, first.challenge)
    assert.notDeepEqual(store.issue('a', 'replay').challenge, first.challenge)
    const fresh = store.issue('a', 'missing')
    now += 1000
    assert.notDeepEqual(store.issue('a', 'unknown').challenge, fresh.challenge)
  })

  it('bounds the challenges it keeps, per caller and in all', () => {
    const store = new NonceStore({ perCaller: 2, maxChallenges: 5 })
    const first = store.issue('a')
    store.issue('a')
    store.issue('a')
    assert.equal((store.consume('a', makeNonce(first.challenge, 0n)) as any).code, 'unknown', 'the oldest of a caller is evicted')
    for (let i = 0; i < 20; i++) {
      store.issue(`caller-${i}`)
    }
    assert.equal(store.size, 5)
  })

  it('encodes a challenge with its expiry for the refresh-nonce body', () => {
    const issued = { challenge: Uint8Array.from({ length: 16 }, (_, i) => i), expiresAt: 1_700_000_000_000 }
    assert.deepEqual(decodeChallenge(encodeChallenge(issued)), issued)
    assert.throws(() => decodeChallenge(new Uint8Array(3)), /24 bytes/)
  })
})
