import { randomBytes } from 'node:crypto'

/**
 * Server-issued nonces (PROTOCOL.md, "Nonces").
 *
 * A nonce is a 16-byte challenge the server issued to one caller, followed by
 * an 8-byte big-endian counter the caller picks. The server accepts each
 * (challenge, counter) once: counters above the highest seen move a window
 * forward, counters inside the window are checked against a bitmap, older
 * ones are refused. This is IPsec's anti-replay window: one challenge serves
 * many calls in flight at once without a round trip per call, and a replayed
 * request is refused without storing every nonce ever seen.
 *
 * Challenges live in memory only. After a restart every caller is asked to
 * refresh, which also makes every request signed before the restart
 * unreplayable.
 */

export const CHALLENGE_BYTES = 16
export const NONCE_BYTES = CHALLENGE_BYTES + 8

export interface NonceStoreInit {
  /** How long a challenge may be used, default 10 minutes */
  ttlMs?: number
  /** Counters this far below the highest seen are still accepted once, default 1024 */
  window?: number
  /** Live challenges per caller, default 4; a fifth evicts the oldest */
  perCaller?: number
  /** Live challenges in all, default 100,000; beyond it the oldest is evicted */
  maxChallenges?: number
  /**
   * When a nonce is refused because its challenge is unknown or expired, a
   * challenge issued to the same caller this recently is handed out again
   * instead of a new one, default 1 s. After a server restart every call a
   * client has in flight is refused at once; without this each refusal would
   * mint a challenge and evict the one the client just installed. Empty,
   * replayed or stale nonces always get a fresh challenge, so two clients
   * that share a key never share a counter.
   */
  reuseMs?: number
  /** For tests */
  now?: () => number
}

interface Challenge {
  caller: string
  issuedAt: number
  expiresAt: number
  highest: bigint
  /** bit i set: counter (highest - i) was seen */
  seen: Uint32Array
}

export type NonceRefusal = 'missing' | 'malformed' | 'unknown' | 'other-caller' | 'expired' | 'too-old' | 'replay'

export type NonceVerdict =
  | { ok: true }
  | { ok: false, code: NonceRefusal, reason: string }

const REUSABLE: ReadonlySet<NonceRefusal> = new Set(['unknown', 'expired'])

export interface IssuedNonce {
  challenge: Uint8Array
  expiresAt: number
}

export class NonceStore {
  private readonly challenges = new Map<string, Challenge>()
  private readonly byCaller = new Map<string, string[]>()
  private readonly ttlMs: number
  private readonly window: number
  private readonly perCaller: number
  private readonly maxChallenges: number
  private readonly reuseMs: number
  private readonly now: () => number

  constructor (init: NonceStoreInit = {}) {
    this.ttlMs = init.ttlMs ?? 10 * 60_000
    this.window = init.window ?? 1024
    this.perCaller = init.perCaller ?? 4
    this.maxChallenges = init.maxChallenges ?? 100_000
    this.reuseMs = init.reuseMs ?? 1000
    this.now = init.now ?? Date.now
  }

  get size (): number {
    return this.challenges.size
  }

  /** A challenge for the caller; `after` is the refusal that asked for it */
  issue (caller: string, after?: NonceRefusal): IssuedNonce {
    const now = this.now()
    const list = this.byCaller.get(caller) ?? []
    const newestKey = list[list.length - 1]
    const newest = newestKey == null ? undefined : this.challenges.get(newestKey)
    if (after != null && REUSABLE.has(after) && newest != null && now - newest.issuedAt < this.reuseMs) {
      return { challenge: Uint8Array.from(Buffer.from(newestKey, 'hex')), expiresAt: newest.expiresAt }
    }
    const challenge = randomBytes(CHALLENGE_BYTES)
    const key = challenge.toString('hex')
    const expiresAt = now + this.ttlMs
    while (list.length >= this.perCaller) {
      this.challenges.delete(list.shift() as string)
    }
    while (this.challenges.size >= this.maxChallenges) {
      this.evict(this.challenges.keys().next().value as string)
    }
    list.push(key)
    this.byCaller.set(caller, list)
    this.challenges.set(key, { caller, issuedAt: now, expiresAt, highest: -1n, seen: new Uint32Array(Math.ceil(this.window / 32)) })
    return { challenge: Uint8Array.from(challenge), expiresAt }
  }

  private evict (key: string): void {
    const entry = this.challenges.get(key)
    this.challenges.delete(key)
    if (entry == null) {
      return
    }
    const list = this.byCaller.get(entry.caller)?.filter(k => k !== key) ?? []
    if (list.length === 0) {
      this.byCaller.delete(entry.caller)
    } else {
      this.byCaller.set(entry.caller, list)
    }
  }

  /** Check a nonce and, when it is good, mark it used */
  consume (caller: string, nonce: Uint8Array): NonceVerdict {
    if (nonce.byteLength === 0) {
      return { ok: false, code: 'missing', reason: 'this node requires a nonce it issued' }
    }
    if (nonce.byteLength !== NONCE_BYTES) {
      return { ok: false, code: 'malformed', reason: `a nonce is ${NONCE_BYTES} bytes, this one is ${nonce.byteLength}` }
    }
    const key = Buffer.from(nonce.subarray(0, CHALLENGE_BYTES)).toString('hex')
    const entry = this.challenges.get(key)
    if (entry == null) {
      return { ok: false, code: 'unknown', reason: 'the nonce was not issued by this node, or was forgotten' }
    }
    if (entry.caller !== caller) {
      return { ok: false, code: 'other-caller', reason: 'the nonce was issued to another caller' }
    }
    if (entry.expiresAt <= this.now()) {
      this.evict(key)
      return { ok: false, code: 'expired', reason: 'the nonce has expired' }
    }
    const counter = Buffer.from(nonce.subarray(CHALLENGE_BYTES)).readBigUInt64BE(0)
    if (counter > entry.highest) {
      this.shift(entry, counter - entry.highest)
      entry.highest = counter
      entry.seen[0] |= 1
      return { ok: true }
    }
    const age = Number(entry.highest - counter)
    if (age >= this.window) {
      return { ok: false, code: 'too-old', reason: `the nonce counter is ${this.window} or more behind the newest` }
    }
    const word = age >>> 5
    const bit = 1 << (age & 31)
    if ((entry.seen[word] & bit) !== 0) {
      return { ok: false, code: 'replay', reason: 'the nonce was already used: the request is a replay' }
    }
    entry.seen[word] |= bit
    return { ok: true }
  }

  /** Age every seen bit by `by` positions */
  private shift (entry: Challenge, by: bigint): void {
    const seen = entry.seen
    if (by >= BigInt(this.window)) {
      seen.fill(0)
      return
    }
    const n = Number(by)
    const words = n >>> 5
    const bits = n & 31
    for (let i = seen.length - 1; i >= 0; i--) {
      const src = i - words
      let value = src >= 0 ? seen[src] << bits : 0
      if (bits !== 0 && src - 1 >= 0) {
        value |= seen[src - 1] >>> (32 - bits)
      }
      seen[i] = value >>> 0
    }
  }

  /** Forget expired challenges; the server calls this on a timer */
  prune (): void {
    const now = this.now()
    for (const [key, entry] of this.challenges) {
      if (entry.expiresAt <= now) {
        this.evict(key)
      }
    }
  }
}

/** The nonce a client sends: challenge || counter */
export function makeNonce (challenge: Uint8Array, counter: bigint): Uint8Array {
  const out = Buffer.alloc(NONCE_BYTES)
  out.set(challenge, 0)
  out.writeBigUInt64BE(counter, CHALLENGE_BYTES)
  return Uint8Array.from(out)
}

/** The body of a refresh-nonce response: challenge || expiry (8 bytes, ms since the epoch) */
export function encodeChallenge (issued: IssuedNonce): Uint8Array {
  const out = Buffer.alloc(CHALLENGE_BYTES + 8)
  out.set(issued.challenge, 0)
  out.writeBigUInt64BE(BigInt(issued.expiresAt), CHALLENGE_BYTES)
  return Uint8Array.from(out)
}

export function decodeChallenge (body: Uint8Array): IssuedNonce {
  if (body.byteLength !== CHALLENGE_BYTES + 8) {
    throw new Error(`a refresh-nonce body is ${CHALLENGE_BYTES + 8} bytes, this one is ${body.byteLength}`)
  }
  return {
    challenge: body.slice(0, CHALLENGE_BYTES),
    expiresAt: Number(Buffer.from(body).readBigUInt64BE(CHALLENGE_BYTES))
  }
}
