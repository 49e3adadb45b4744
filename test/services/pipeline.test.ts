import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import type { PeerId } from '@libp2p/interface'
import { Pipeline } from '../../src/services/pipeline.ts'
import type { PaymentCheck } from '../../src/services/interface.ts'
import { ServiceRegistry } from '../../src/services/registry.ts'
import { Policies } from '../../src/services/policy/policy.ts'
import { Units } from '../../src/protocols/units.ts'
import type { ServiceContext } from '../../src/services/interface.ts'
import { RpcServer } from '../../src/protocols/rpc/rpc-server.ts'
import { bitcoinSigner, CredentialVerifier, openCloudSigner, type CredentialSigner } from '../../src/protocols/rpc/credentials.ts'
import { NonceStore, decodeChallenge, makeNonce } from '../../src/protocols/rpc/nonce-store.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { AccessDeniedError, NotFoundError, PaymentTooLowError } from '../../src/protocols/rpc/errors.ts'
import { Status, type StatusCode } from '../../src/protocols/rpc/status.ts'
import type { Payment } from '../../src/protocols/rpc/messages.ts'
import { RawRpc, exchangeOn } from '../helpers/raw-rpc.ts'

/**
 * The pipeline's order of steps (PROTOCOL.md section 8) with its components
 * as stubs where they are hooks (reputation, payment, a service with an
 * agreement check) and real where they are small (credential verifier,
 * nonce store, policies, rate limiter), behind the real RPC server over an
 * in-memory stream pair: no network, the wire's own frames.
 */

const MAX_BODY = 100_000
const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(7))
const caller: CredentialSigner = openCloudSigner(key)
const callerPeer: PeerId = peerIdFromPrivateKey(key)
const serverSigner = openCloudSigner(await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(8)))
// bitcoin credentials whose policies deny, and rate-limit to one call an hour
const denied = bitcoinSigner({ privateKey: new Uint8Array(32).fill(1) })
const limited = bitcoinSigner({ privateKey: new Uint8Array(32).fill(2) })

/** What the hooks and the service were asked, in order */
let asked: string[] = []
/** The deferred promise of the last call, as the payment stub handed it over */
let pending: { committed: number, released: number } | undefined

const registry = new ServiceRegistry()
registry.register({
  name: 'unit',
  version: '1.0.0',
  description: 'a service to test the pipeline with',
  methods: {
    work: {
      description: 'answers ok, or fails when its args say "fail"',
      unit: Units.CALL,
      // the agreement check: the args name a contract this node keeps, at 100 sat a call
      cost: ({ args }) => {
        asked.push('cost')
        if (args.includes('no-contract')) {
          throw new NotFoundError('no contract "no-contract" here')
        }
        return 100n
      },
      handle: async (ctx: ServiceContext) => {
        asked.push('service')
        if (ctx.args.includes('fail')) {
          throw new AccessDeniedError('the service refused')
        }
        return { json: { ok: true } }
      }
    }
  }
})
const nonces = new NonceStore()
const paymentHook = {
  check: async ({ required, ctx }: PaymentCheck) => {
    asked.push(`payment ${required}`)
    if (ctx.payment.type === 'none') {
      throw new PaymentTooLowError(`${required} sat and the call carries no payment`)
    }
    if (ctx.payment.type === 'defer') {
      const promise = { committed: 0, released: 0 }
      pending = promise
      ctx.pending = { commit: async () => { promise.committed++ }, release: () => { promise.released++ } }
    }
  }
}

const pipeline = new Pipeline({
  registry,
  verifier: new CredentialVerifier(),
  nonces,
  policies: new Policies({ credential: { [denied.text]: { deny: true }, [limited.text]: { 'rate-limit': '1/h' } } })
}, {
  reputation: {
    check: async ctx => {
      asked.push('reputation')
      if (ctx.args.includes('distrusted')) {
        throw new AccessDeniedError('the caller\'s trust score is below this node\'s min-trust')
      }
    }
  },
  payments: { none: paymentHook, attached: paymentHook, defer: paymentHook }
})
const server = new RpcServer({ registrar: {} as any }, { signer: serverSigner, handler: pipeline, maxBodyBytes: MAX_BODY })

/** What is wrong with a request; each fault is caught by one step */
interface Faults {
  tooLarge?: boolean
  badSignature?: boolean
  noId?: boolean
  noNonce?: boolean
  service?: string
  method?: string
  /** carries the credential the policies deny */
  denied?: boolean
  /** carries the credential over its rate limit */
  limited?: boolean
  args?: string[]
  payment?: Payment
}

let challenge: Uint8Array
let counter = 0

async function call (f: Faults): Promise<{ status: StatusCode, message: string, body: Uint8Array }> {
  const signers = [...(f.noId === true ? [] : [caller]), ...(f.denied === true ? [denied] : []), ...(f.limited === true ? [limited] : [])]
  const body = new TextEncoder().encode('hello')
  const frames = RawRpc.request(caller, {
    credentials: signers.map(s => s.credential),
    nonce: f.noNonce === true ? new Uint8Array(0) : makeNonce(challenge, BigInt(++counter)),
    service: f.service ?? 'unit',
    method: f.method ?? 'work',
    args: f.args ?? [],
    payment: f.payment ?? { type: 'attached', currency: 'BTC', amount: '0.000001', txn: new Uint8Array([1]) },
    ...(f.tooLarge === true ? { bodyLength: MAX_BODY + 1, bodySha256: new Uint8Array(32) } : { body })
  }, signing => signers.map((s, i) => {
    const signature = s.sign(signing)
    if (f.badSignature === true && i === 0) {
      signature[signature.length - 1] ^= 1
    }
    return signature
  }))
  const [outbound, inbound] = await streamPair({ delay: 0 })
  server.serveLocal(inbound, callerPeer)
  const { response, body: answer } = await exchangeOn(outbound, f.tooLarge === true ? frames.slice(0, 1) : frames)
  return { status: response.head.status as StatusCode, message: response.head.message, body: answer }
}

before(async () => {
  // a fresh caller's first call: no nonce, so a challenge
  const first = await call({ noNonce: true })
  assert.equal(first.status, Status.REFRESH_NONCE)
  challenge = decodeChallenge(first.body).challenge
  // one call with the rate-limited credential uses its one call an hour
  assert.equal((await call({ limited: true })).status, Status.OK)
})

describe('the pipeline answers a request that fails several checks with the first in PROTOCOL.md section 8\'s order', () => {
  it('takes the faults away one by one, each answer the next step\'s', async () => {
    const all: Faults = { tooLarge: true, badSignature: true, noId: true, noNonce: true, service: 'nope', method: 'nope', denied: true, limited: true, args: ['distrusted', 'no-contract'], payment: { type: 'none' } }
    // [the fault taken away next, the answer while it is there]
    const steps: Array<[Partial<Faults>, StatusCode, RegExp, string[]]> = [
      [{ tooLarge: false }, Status.BODY_TOO_LARGE, /the body is 100001 bytes; this node accepts at most 100000/, []],
      [{ badSignature: false }, Status.INVALID_SIGNATURE, /does not verify/, []],
      [{ noId: false }, Status.BAD_REQUEST, /requires an OpenCloud ID credential/, []],
      [{ noNonce: false }, Status.REFRESH_NONCE, /requires a nonce it issued/, []],
      [{ service: 'unit' }, Status.SERVICE_UNSUPPORTED, /does not run a "nope" service/, []],
      [{ method: 'work' }, Status.METHOD_UNSUPPORTED, /no method "nope"/, []],
      [{ denied: false }, Status.ACCESS_DENIED, /denied to .* by the credential btc:/, []],
      [{ limited: false }, Status.RATE_LIMITED, /over the credential btc:\S+ rate limit of 1\/h/, []],
      [{ args: ['no-contract'] }, Status.ACCESS_DENIED, /trust score/, ['reputation']],
      [{ args: [] }, Status.NOT_FOUND, /no contract/, ['reputation', 'cost']],
      [{ payment: undefined }, Status.PAYMENT_TOO_LOW, /100 sat and the call carries no payment/, ['reputation', 'cost', 'payment 100']]
    ]
    let faults = { ...all }
    for (const [fix, status, message, hooks] of steps) {
      asked = []
      const answer = await call(faults)
      assert.deepEqual([answer.status, asked], [status, hooks], `with ${JSON.stringify(faults)}: ${answer.message}`)
      assert.match(answer.message, message)
      faults = { ...faults, ...fix }
    }
    asked = []
    assert.equal((await call(faults)).status, Status.OK)
    assert.deepEqual(asked, ['reputation', 'cost', 'payment 100', 'service'])
  })
})

describe('a deferred promise binds only when the service answered ok', () => {
  const defer: Payment = { type: 'defer', currency: 'BTC', amount: '0.000001', id: 'a1b2c3d4', threshold: 'time:600' }

  it('is committed once after an ok answer', async () => {
    pending = undefined
    const answer = await call({ payment: defer })
    assert.equal(answer.status, Status.OK)
    assert.deepEqual(pending, { committed: 1, released: 0 })
  })

  it('is released, not committed, when the service refuses', async () => {
    pending = undefined
    const answer = await call({ payment: defer, args: ['fail'] })
    assert.equal(answer.status, Status.ACCESS_DENIED)
    assert.match(answer.message, /the service refused/)
    assert.deepEqual(pending, { committed: 0, released: 1 })
  })
})
