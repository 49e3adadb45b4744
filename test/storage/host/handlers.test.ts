import { buffer } from 'node:stream/consumers'
import { describe, it, before, beforeEach, afterEach, mock } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryDatastore } from 'datastore-core'
import { Key, type Datastore } from 'interface-datastore'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Writer } from '../../../src/protocols/codec.ts'
import { openCloudSigner, type CredentialSigner } from '../../../src/protocols/rpc/credentials.ts'
import { AccessDeniedError, BadRequestError, BodyTooLargeError, InsufficientStorageError, InvalidSignatureError, NotFoundError, RequestDeclinedError } from '../../../src/protocols/rpc/errors.ts'
import { CONTRACT_VERSION, contractIdOf, decodeRevision, decodeSigned, encodeRevision, encodeSigned, encodeTerms, MONTH_MS, nextRevision, RENT_UNITS_PER_SAT, rentCharge, rentPerPeriodV1, signRevision, signTerms, transferCost, transferRemainder, verifyRevision, verifyTerms, type ContractTerms } from '../../../src/storage/protocol/contract.ts'
import { LEAF_SIZE, leafCount, merkleRoot, verifyPath } from '../../../src/storage/protocol/merkle.ts'
import { decodeProofs } from '../../../src/storage/protocol/proofs.ts'
import { openRating, signRating } from '../../../src/storage/protocol/rating.ts'
import { formatAmount } from '../../../src/protocols/units.ts'
import { StorageHost } from '../../../src/storage/host/storage-host.ts'
import { CONTRACTS_PREFIX } from '../../../src/storage/host/constants.ts'
import { ContractBook } from '../../../src/storage/host/contract-book.ts'
import { ShardStore } from '../../../src/storage/host/shard-store.ts'
import { TermsCheck, type HostPrices } from '../../../src/storage/host/terms.ts'
import { contract as contractHandler } from '../../../src/storage/host/handlers/contract.ts'
import { put as putHandler } from '../../../src/storage/host/handlers/put.ts'
import { list as listHandler } from '../../../src/storage/host/handlers/list.ts'
import type { HostRequest } from '../../../src/storage/host/request.ts'

/**
 * The storage host's handlers without a network: a StorageHost over an
 * in-memory datastore and a temporary shard directory, on a fake clock,
 * with keys from fixed seeds and requests built by hand as the pipeline
 * would hand them over. test/storage/host/host.test.ts checks the same
 * host through raw frames between real nodes.
 */

const KIB = 1024
const MIB = 1024 * KIB
const DAY = 86_400_000
const GRACE = 7 * DAY
// years after the machine's clock: a handler that read the real clock would see no contract started
const T0 = Date.parse('2031-03-01T12:00:00Z')
const FREE: HostPrices = { storage: 0n, upload: 0n, download: 0n }

interface Party {
  id: string
  signer: CredentialSigner
}

async function party (seed: number): Promise<Party> {
  const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(seed))
  return { id: peerIdFromPrivateKey(key).toString(), signer: openCloudSigner(key) }
}

/** A request as the pipeline hands it to the host: the body arrives in 64 KiB pieces */
function request (caller: string, args: string[], body: Uint8Array = new Uint8Array(0), signal = new AbortController().signal): HostRequest {
  const chunks = async function * (): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < body.byteLength; i += 64 * KIB) {
      yield body.subarray(i, i + 64 * KIB)
    }
  }
  return { caller, args, signal, body: Object.assign(chunks(), { length: body.byteLength }) }
}

/** Bytes that differ from one call to the next but not from one run to the next */
let filled = 0
function bytes (length: number): Uint8Array {
  const out = new Uint8Array(length)
  let seed = ++filled
  for (let i = 0; i < length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    out[i] = seed >>> 24
  }
  return out
}

const rootOf = (shard: Uint8Array): string => Buffer.from(merkleRoot(shard)).toString('hex')
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')

describe('storage host handlers', () => {
  let hostKey: Party
  let renter: Party
  let stranger: Party
  let dir: string
  let clock: number
  let prices: HostPrices
  let takesPayments: boolean
  let host: StorageHost
  /** reputation records the host made: [renter, outcome, event] */
  let records: string[][]

  before(async () => {
    [hostKey, renter, stranger] = await Promise.all([party(1), party(2), party(3)])
  })

  const newHost = async (init: { capacity?: number, checkMs?: number, datastore?: Datastore } = {}): Promise<StorageHost> => {
    const h = new StorageHost({
      peerId: hostKey.id,
      signer: hostKey.signer,
      datastore: init.datastore ?? new MemoryDatastore(),
      prices: () => prices,
      takesPayments,
      now: () => clock,
      recordRenter: (who, outcome, event) => { records.push([who, outcome, event]) },
      rateRenter: (who, event) => { records.push([who, 'unsatisfactory', event]) }
    }, { dir, capacity: init.capacity ?? 64 * KIB, rentGraceMs: GRACE, checkMs: init.checkMs })
    await h.start()
    return h
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oc-host-'))
    clock = T0
    prices = FREE
    takesPayments = true
    records = []
    host = await newHost()
  })

  afterEach(async () => {
    await host.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const termsOf = (changes: Partial<ContractTerms> = {}): ContractTerms => ({
    version: CONTRACT_VERSION,
    renter: renter.id,
    host: hostKey.id,
    nonce: new Uint8Array(16).fill(++filled),
    start: clock,
    end: clock + 30 * DAY,
    maxBytes: 32 * KIB,
    storagePrice: 0n,
    uploadPrice: 0n,
    downloadPrice: 0n,
    rentPeriodMs: DAY,
    ...changes
  })

  const proposal = (terms: ContractTerms, signer = renter.signer): Uint8Array => {
    const encoded = encodeTerms(terms)
    return new Writer().bytes(encoded).bytes(signTerms(encoded, signer)).finish()
  }

  /** The renter's side of one contract */
  class Renter {
    readonly id: string
    readonly terms: ContractTerms
    revision = 0
    shards = new Map<string, number>()

    constructor (id: string, terms: ContractTerms) {
      this.id = id
      this.terms = terms
    }

    /** The renter's signature (base64) of revision `number` holding `shards`, under contract `id` */
    sign (shards: Map<string, number>, number: number, id = this.id): string {
      const rev = nextRevision(Buffer.from(id, 'hex'), number - 1, [...shards].map(([root, length]) => ({ root: Buffer.from(root, 'hex'), length })))
      return b64(signRevision(encodeRevision(rev), renter.signer))
    }

    async put (shard: Uint8Array): Promise<string> {
      const root = rootOf(shard)
      const shards = new Map(this.shards).set(root, shard.byteLength)
      const answer = await host.put(request(renter.id, [this.id, root, this.sign(shards, this.revision + 1)], shard))
      assert.equal(answer.revision, this.revision + 1)
      this.shards = shards
      this.revision++
      return root
    }
  }

  const contract = async (changes: Partial<ContractTerms> = {}): Promise<Renter> => {
    const terms = termsOf(changes)
    const answer = await host.contract(request(renter.id, [], proposal(terms)))
    return new Renter(answer.contract, terms)
  }

  describe('contract', () => {
    it('signs terms it accepts: the id is the terms\' hash and the host\'s signature verifies over them', async () => {
      const terms = termsOf()
      const encoded = encodeTerms(terms)
      const answer = await host.contract(request(renter.id, [], proposal(terms)))
      assert.equal(answer.contract, Buffer.from(contractIdOf(encoded)).toString('hex'))
      verifyTerms(encoded, hostKey.id, Buffer.from(answer.hostSignature, 'base64'))
      assert.throws(() => { verifyTerms(encoded, renter.id, Buffer.from(answer.hostSignature, 'base64')) }, 'the host signed, not the renter')
      assert.equal(host.contractsHeld(), 1)
      assert.equal(host.reserved(), 32 * KIB)
      // the answer was lost: the same proposal gets the same answer, and no second contract
      assert.deepEqual(await host.contract(request(renter.id, [], proposal(terms))), answer)
      assert.equal(host.contractsHeld(), 1)
      // what list answers is the contract both signed
      const listed = decodeSigned(Buffer.from((await host.list(request(renter.id, [answer.contract]))).contract, 'base64'))
      assert.deepEqual(Buffer.from(listed.message), Buffer.from(encoded))
      verifyTerms(listed.message, renter.id, listed.renterSignature)
      verifyTerms(listed.message, hostKey.id, listed.hostSignature)
    })

    it('refuses terms another renter signed, terms naming others, and terms it does not sign, signing nothing', async () => {
      const forged = termsOf()
      await assert.rejects(host.contract(request(renter.id, [], proposal(forged, stranger.signer))), InvalidSignatureError)
      await assert.rejects(host.contract(request(renter.id, [], proposal(termsOf({ host: stranger.id })))), (err: any) => err instanceof BadRequestError && /the terms name host/.test(err.message))
      await assert.rejects(host.contract(request(stranger.id, [], proposal(termsOf()))), (err: any) => err instanceof BadRequestError && /the terms name renter .* but the caller is/.test(err.message))
      await assert.rejects(host.contract(request(renter.id, [], proposal(termsOf({ start: clock - DAY })))), (err: any) => err instanceof RequestDeclinedError && /check your clock/.test(err.message))
      prices = { storage: 1000n, upload: 0n, download: 0n }
      await assert.rejects(host.contract(request(renter.id, [], proposal(termsOf({ storagePrice: 999n })))), (err: any) => err instanceof RequestDeclinedError && /less than this host's prices/.test(err.message))
      await assert.rejects(host.contract(request(renter.id, [], proposal(termsOf({ storagePrice: 1000n, maxBytes: 64 * KIB + 1 })))), InsufficientStorageError)
      assert.equal(host.contractsHeld(), 0)
      assert.ok(host.cost('contract', { caller: renter.id, args: [], bodyLength: 200 }) === undefined, 'a contract is priced at the list price')
      assert.throws(() => host.cost('contract', { caller: renter.id, args: [], bodyLength: 4097 }), BodyTooLargeError)
    })

    it('a host that takes no payments signs only free terms', async () => {
      await host.stop()
      takesPayments = false
      host = await newHost()
      await assert.rejects(host.contract(request(renter.id, [], proposal(termsOf({ downloadPrice: 1n })))), (err: any) => err instanceof RequestDeclinedError && /takes no payments/.test(err.message))
      await contract()
    })
  })

  describe('put', () => {
    it('stores a shard under the renter\'s signed revision and answers the host\'s signature of it', async () => {
      const c = await contract({ uploadPrice: 100n })
      const shard = bytes(10 * KIB)
      const root = rootOf(shard)
      const shards = new Map([[root, shard.byteLength]])
      const signature = c.sign(shards, 1)
      assert.equal(host.cost('put', { caller: renter.id, args: [c.id, root, signature], bodyLength: shard.byteLength }), transferCost(2, 100n, shard.byteLength))
      const answer = await host.put(request(renter.id, [c.id, root, signature], shard))
      assert.equal(answer.revision, 1)
      const listed = await host.list(request(renter.id, [c.id]))
      const signed = decodeSigned(Buffer.from(listed.signedRevision!, 'base64'))
      verifyRevision(signed.message, hostKey.id, Buffer.from(answer.hostSignature, 'base64'))
      assert.equal(decodeRevision(signed.message).bytes, shard.byteLength)
      assert.equal(await host.store.has(c.id, root), true)
      assert.equal(host.used(), shard.byteLength)
    })

    it('refuses a body that does not hash to the root it names, and keeps nothing of it', async () => {
      const c = await contract()
      const shard = bytes(10 * KIB)
      const other = bytes(10 * KIB)
      const root = rootOf(shard)
      const signature = c.sign(new Map([[root, other.byteLength]]), 1)
      await assert.rejects(host.put(request(renter.id, [c.id, root, signature], other)), (err: any) => err instanceof BadRequestError && /hash to the Merkle root .*, not [0-9a-f]{64} as named/.test(err.message))
      assert.equal(await host.store.has(c.id, root), false)
      assert.deepEqual(await readdir(join(dir, c.id)), [], 'no temporary file is left')
      const listed = await host.list(request(renter.id, [c.id]))
      assert.equal(listed.revision, 0)
      assert.deepEqual(listed.shards, [])
      assert.equal(host.used(), 0)
    })

    it('refuses a shard over the contract\'s maximum before payment, and a signature of another revision', async () => {
      const c = await contract({ maxBytes: 16 * KIB })
      await c.put(bytes(10 * KIB))
      const big = bytes(6 * KIB + 1)
      const root = rootOf(big)
      const signature = c.sign(new Map(c.shards).set(root, big.byteLength), 2)
      const query = { caller: renter.id, args: [c.id, root, signature], bodyLength: big.byteLength }
      assert.throws(() => host.cost('put', query), (err: any) => err instanceof BodyTooLargeError && /over contract .* maximum of 16384 bytes: it holds 10240/.test(err.message))
      await assert.rejects(host.put(request(renter.id, query.args, big)), BodyTooLargeError)
      assert.equal(await host.store.has(c.id, root), false)
      // a shard that fits is taken
      await c.put(bytes(6 * KIB - 1))
      const fits = bytes(1)
      await assert.rejects(host.put(request(renter.id, [c.id, rootOf(fits), c.sign(new Map(c.shards).set(rootOf(fits), 1), 4)], fits)), (err: any) => err instanceof InvalidSignatureError && /not over revision 3 /.test(err.message))
    })

    it('refuses a put under another renter\'s contract and one under a contract it does not have', async () => {
      const c = await contract()
      const shard = bytes(KIB)
      const args = [c.id, rootOf(shard), c.sign(new Map([[rootOf(shard), KIB]]), 1)]
      await assert.rejects(host.put(request(stranger.id, args, shard)), AccessDeniedError)
      await assert.rejects(host.put(request(renter.id, ['0'.repeat(64), ...args.slice(1)], shard)), (err: any) => err instanceof NotFoundError && /no contract 0{64}/.test(err.message))
    })
  })

  describe('get and prove', () => {
    it('answers a range of a shard, with the SHA-256 of what it sends', async () => {
      const c = await contract({ downloadPrice: 200n })
      const shard = bytes(3 * LEAF_SIZE + 100)
      const root = await c.put(shard)
      const args = [c.id, root, String(LEAF_SIZE - 10), String(LEAF_SIZE + 20)]
      assert.equal(host.cost('get', { caller: renter.id, args, bodyLength: 0 }), transferCost(2, 200n, LEAF_SIZE + 20))
      const body = await host.get(request(renter.id, args))
      const got = await buffer(body.open())
      assert.deepEqual(got, Buffer.from(shard.subarray(LEAF_SIZE - 10, 2 * LEAF_SIZE + 10)))
      assert.equal(body.length, LEAF_SIZE + 20)
      assert.deepEqual(Buffer.from(body.sha256), createHash('sha256').update(got).digest())
      await assert.rejects(host.get(request(renter.id, [c.id, root, String(shard.byteLength - 1), '2'])), (err: any) => err instanceof BadRequestError && /past the end of shard/.test(err.message))
    })

    it('answers not-found for a shard it does not hold and for one missing on its disk', async () => {
      const c = await contract()
      const shard = bytes(5000)
      const root = await c.put(shard)
      await assert.rejects(host.get(request(renter.id, [c.id, 'ab'.repeat(32), '0', '1'])), (err: any) => err instanceof NotFoundError && /holds no shard abab/.test(err.message))
      await rm(join(dir, c.id, root))
      await rm(join(dir, c.id, `${root}.leaves`))
      await assert.rejects(host.get(request(renter.id, [c.id, root, '0', '5000'])), (err: any) => err instanceof NotFoundError && /is missing on this host/.test(err.message))
      await assert.rejects(host.prove(request(renter.id, [c.id, root, 'cd'.repeat(32)])), (err: any) => err instanceof NotFoundError && /is missing on this host/.test(err.message))
    })

    it('proves the leaves a challenge picks with paths that verify against the shard\'s root', async () => {
      const c = await contract({ maxBytes: 48 * KIB })
      const shard = bytes(9 * LEAF_SIZE + 123)
      const root = await c.put(shard)
      const proofs = decodeProofs(await host.prove(request(renter.id, [c.id, root, 'ef'.repeat(32), '8'])))
      assert.equal(proofs.length, 8)
      const count = leafCount(shard.byteLength)
      for (const p of proofs) {
        assert.deepEqual(Buffer.from(p.leaf), Buffer.from(shard.subarray(p.index * LEAF_SIZE, (p.index + 1) * LEAF_SIZE)))
        verifyPath(Buffer.from(root, 'hex'), count, p.index, p.leaf, p.path)
      }
      // a proof checked against another root fails: the check above can fail
      assert.throws(() => { verifyPath(merkleRoot(bytes(9 * LEAF_SIZE + 123)), count, proofs[0].index, proofs[0].leaf, proofs[0].path) })
      await assert.rejects(host.prove(request(renter.id, [c.id, root, 'ef'.repeat(32), '65'])), BadRequestError)
    })
  })

  describe('delete and list', () => {
    it('deletes a shard under the next revision and lists what the contract holds at each revision', async () => {
      const c = await contract()
      const a = await c.put(bytes(2000))
      const b = await c.put(bytes(3000))
      let listed = await host.list(request(renter.id, [c.id]))
      assert.equal(listed.revision, 2)
      assert.deepEqual(listed.shards, [{ root: a, bytes: 2000 }, { root: b, bytes: 3000 }])
      const without = new Map(c.shards)
      without.delete(a)
      await assert.rejects(host.delete(request(renter.id, [c.id, a, c.sign(without, 2)])), InvalidSignatureError)
      const answer = await host.delete(request(renter.id, [c.id, a, c.sign(without, 3)]))
      assert.equal(answer.revision, 3)
      listed = await host.list(request(renter.id, [c.id]))
      assert.equal(listed.revision, 3)
      assert.deepEqual(listed.shards, [{ root: b, bytes: 3000 }])
      const signed = decodeSigned(Buffer.from(listed.signedRevision!, 'base64'))
      verifyRevision(signed.message, renter.id, signed.renterSignature)
      verifyRevision(signed.message, hostKey.id, Buffer.from(answer.hostSignature, 'base64'))
      assert.deepEqual(decodeRevision(signed.message).bytes, 3000)
      assert.equal(await host.store.has(c.id, a), false)
      assert.equal(await host.store.has(c.id, b), true)
      assert.equal(host.used(), 3000)
      await assert.rejects(host.delete(request(renter.id, [c.id, a, c.sign(without, 4)])), NotFoundError)
    })
  })

  describe('rent', () => {
    /** What `rent` costs now, as the pipeline asks it before payment */
    const rentCost = (c: Renter, periods = 1): bigint | undefined => host.cost('rent', { caller: renter.id, args: [c.id, String(periods)], bodyLength: 0 })

    it('extends the time paid for by the periods paid, at the contract\'s rent, up to its end', async () => {
      const c = await contract({ storagePrice: 3000n, rentPeriodMs: 10 * DAY })
      await c.put(bytes(10 * KIB))
      let listed = await host.list(request(renter.id, [c.id]))
      assert.equal(listed.paidThrough, new Date(T0).toISOString())
      const { accrued, price } = rentCharge(c.terms, { accrued: 0n, paid: 0n }, 10 * KIB, 2)
      assert.equal(rentCost(c, 2), price)
      assert.equal(price, 1n)
      const answer = await host.rent(request(renter.id, [c.id, '2']))
      assert.deepEqual(answer, { rentPaidPeriods: 2, paidThrough: new Date(T0 + 20 * DAY).toISOString(), rentPaid: '0.00000001 BTC', rentAccrued: String(accrued) })
      listed = await host.list(request(renter.id, [c.id]))
      assert.equal(listed.paidThrough, new Date(T0 + 20 * DAY).toISOString())
      // one period is left of the three: two more would buy nothing
      await assert.rejects(host.rent(request(renter.id, [c.id, '2'])), (err: any) => err instanceof BadRequestError && /from 1 to 1 /.test(err.message))
      assert.equal((await host.rent(request(renter.id, [c.id]))).rentPaidPeriods, 3)
      await assert.rejects(host.rent(request(renter.id, [c.id])), (err: any) => err instanceof BadRequestError && /paid through its end/.test(err.message))
    })

    it('accrues a small contract\'s rent exactly: 0 sat for the periods the satoshi paid covers, 1 when the exact sum passes it, within 1 sat of exact in all', async () => {
      // 10 KiB at 10 BTC per TiB-month: 0.31 sat a day
      const c = await contract({ storagePrice: 1_000_000_000n })
      await c.put(bytes(10 * KIB))
      const perPeriod = 1_000_000_000n * BigInt(10 * KIB) * BigInt(DAY)
      const prices: bigint[] = []
      let paid = 0n
      for (let period = 1; period <= 30; period++) {
        const price = rentCost(c)!
        const answer = await host.rent(request(renter.id, [c.id]))
        paid += price
        prices.push(price)
        assert.equal(answer.rentAccrued, String(perPeriod * BigInt(period)))
        assert.equal(answer.rentPaid, formatAmount(paid))
      }
      // the first period pays the satoshi that covers it and the next two
      // (0.31 sat each); the fourth passes 1 sat
      assert.deepEqual(prices.slice(0, 7), [1n, 0n, 0n, 1n, 0n, 0n, 1n])
      const exact = perPeriod * 30n
      assert.equal(paid, 10n, '9.31 sat of rent is 10 sat paid, not 30 (one per period)')
      assert.ok(paid * RENT_UNITS_PER_SAT >= exact && paid * RENT_UNITS_PER_SAT - exact < RENT_UNITS_PER_SAT, 'within 1 sat over the exact sum')
      const listed = await host.list(request(renter.id, [c.id]))
      assert.deepEqual([listed.bytes, listed.rentPaidPeriods, listed.rentPaid, listed.rentAccrued], [10 * KIB, 30, '0.0000001 BTC', String(exact)])
    })

    it('charges the bytes held when it is paid: nothing for an empty contract, more after a put, less after a delete', async () => {
      // 3 x 2^30 sat per TiB-month over 10-day periods: 1 sat per KiB per period
      const c = await contract({ storagePrice: 3n * 2n ** 30n, rentPeriodMs: 10 * DAY, end: T0 + 60 * DAY })
      const rentNow = async (): Promise<{ price: bigint | undefined, listed: Awaited<ReturnType<StorageHost['list']>> }> => {
        const price = rentCost(c)
        await host.rent(request(renter.id, [c.id]))
        return { price, listed: await host.list(request(renter.id, [c.id])) }
      }
      // a price of 0 is 0n, free, not undefined (the list price): the period is paid all the same
      const empty = await rentNow()
      assert.equal(empty.price, 0n)
      assert.deepEqual([empty.listed.rentPaidPeriods, empty.listed.bytes, empty.listed.rentPaid], [1, 0, '0 BTC'])
      const big = await c.put(bytes(4 * KIB))
      assert.equal((await rentNow()).price, 4n)
      await c.put(bytes(2 * KIB))
      const both = await rentNow()
      assert.equal(both.price, 6n)
      assert.equal(both.listed.bytes, 6 * KIB)
      const without = new Map(c.shards)
      without.delete(big)
      await host.delete(request(renter.id, [c.id, big, c.sign(without, 3)]))
      const after = await rentNow()
      assert.equal(after.price, 2n, 'a deleted shard is not charged for again, nor refunded')
      assert.deepEqual([after.listed.bytes, after.listed.rentPaid, after.listed.rentPaidPeriods], [2 * KIB, formatAmount(12n), 4])
    })

    it('keeps the rent accrued and paid across a restart', async () => {
      await host.stop()
      const datastore = new MemoryDatastore()
      host = await newHost({ datastore })
      const c = await contract({ storagePrice: 1_000_000_000n })
      await c.put(bytes(10 * KIB))
      await host.rent(request(renter.id, [c.id, '4']))
      const before = await host.list(request(renter.id, [c.id]))
      assert.equal(before.rentPaid, '0.00000002 BTC')
      await host.stop()
      host = await newHost({ datastore })
      assert.deepEqual(await host.list(request(renter.id, [c.id])), before)
      // the next period is charged from what was kept: 1.24 sat accrued and 2 paid cover it
      assert.equal(rentCost(c), 0n)
      const book = new ContractBook({ datastore })
      await book.load()
      assert.deepEqual([book.get(c.id)?.rentAccrued, book.get(c.id)?.rentPaid], [BigInt(before.rentAccrued), 2n])
    })
  })

  describe('transfer remainders (PROTOCOL.md 8d, "Contract terms" and "Rent")', () => {
    /** The market's prices: a 1 MiB shard moves for 2444 / 2^20 sat, 0 with the call */
    const MARKET = { storagePrice: 1500n, uploadPrice: 2444n, downloadPrice: 2444n, maxBytes: 2 * MIB }
    /** What a 1 MiB transfer at 2444 sat per TiB leaves, in rent units, written out: 2444 x 2^20 is under 2^40 */
    const R = 2444n * BigInt(MIB) * BigInt(MONTH_MS)
    /** A day's rent on 1 MiB at 1500 sat per TiB-month, in rent units */
    const DAY_OF_1_MIB = 1500n * BigInt(MIB) * BigInt(DAY)
    const ceilSat = (units: bigint): bigint => (units + RENT_UNITS_PER_SAT - 1n) / RENT_UNITS_PER_SAT
    const getArgs = (c: Renter, root: string, length = MIB): string[] => [c.id, root, '0', String(length)]
    const getAll = async (c: Renter, root: string, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        await host.get(request(renter.id, getArgs(c, root)))
      }
    }
    const accruedOf = async (c: Renter): Promise<bigint> => BigInt((await host.list(request(renter.id, [c.id]))).rentAccrued)
    const savedAccrued = async (datastore: Datastore, c: Renter): Promise<bigint> =>
      BigInt(JSON.parse(new TextDecoder().decode(await datastore.get(new Key(`${CONTRACTS_PREFIX}/${c.id}`)))).rentAccrued)
    /** A host of its own on a datastore the test reads, with a contract at the market's prices */
    const hostWithContract = async (): Promise<{ datastore: Datastore, c: Renter }> => {
      const datastore = new MemoryDatastore()
      await host.stop()
      host = await newHost({ capacity: 4 * MIB, datastore })
      return { datastore, c: await contract(MARKET) }
    }
    /** The datastore as a crash leaves it: what was written, nothing more */
    const crashCopy = async (datastore: Datastore): Promise<Datastore> => {
      const copy = new MemoryDatastore()
      for await (const { key, value } of datastore.query({})) {
        await copy.put(key, value)
      }
      return copy
    }

    beforeEach(async () => {
      await host.stop()
      host = await newHost({ capacity: 4 * MIB })
    })

    it('prices a get of a 1 MiB shard at 2444 sat per TiB at 0 (free), and the next rent pays the 500 gets\' remainders: 1 sat more', async () => {
      assert.equal(R, transferRemainder(2, 2444n, MIB))
      const c = await contract(MARKET)
      const root = await c.put(bytes(MIB))
      assert.equal(host.cost('get', { caller: renter.id, args: getArgs(c, root), bodyLength: 0 }), 0n, 'free: 0n, not undefined (the list price)')
      assert.equal(await accruedOf(c), R, 'the put\'s remainder')
      await getAll(c, root, 500)
      assert.equal(await accruedOf(c), 501n * R)
      // the exact sums: 501 x 2444 / 2^20 = 1.1677 sat of transfers, and 0.0000477 sat of a day's rent
      const price = host.cost('rent', { caller: renter.id, args: [c.id], bodyLength: 0 })
      assert.equal(price, ceilSat(501n * R + DAY_OF_1_MIB))
      assert.equal(price, 2n)
      assert.equal(ceilSat(R + DAY_OF_1_MIB), 1n, 'without the gets the period costs 1 sat')
      const answer = await host.rent(request(renter.id, [c.id]))
      assert.deepEqual([answer.rentPaid, answer.rentAccrued], [formatAmount(2n), String(501n * R + DAY_OF_1_MIB)])
      // a get of length 0 adds nothing; a range refused adds nothing
      await host.get(request(renter.id, [c.id, root, '5', '0']))
      await assert.rejects(host.get(request(renter.id, [c.id, root, '1', String(MIB)])), BadRequestError)
      assert.equal(await accruedOf(c), 501n * R + DAY_OF_1_MIB)
    })

    it('prices a put of a 1 MiB shard at 0 and saves its remainder with the contract, for a shard held already too', async () => {
      const { datastore, c } = await hostWithContract()
      const shard = bytes(MIB)
      const root = rootOf(shard)
      const signature = c.sign(new Map([[root, MIB]]), 1)
      assert.equal(host.cost('put', { caller: renter.id, args: [c.id, root, signature], bodyLength: MIB }), 0n)
      await host.put(request(renter.id, [c.id, root, signature], shard))
      assert.equal(await savedAccrued(datastore, c), R)
      // sent again (a retry): the same revision, and the bytes moved all the same
      const again = await host.put(request(renter.id, [c.id, root, signature], shard))
      assert.equal(again.revision, 1)
      assert.equal(await savedAccrued(datastore, c), 2n * R)
      // a put refused (the body does not hash to its root) adds nothing
      await assert.rejects(host.put(request(renter.id, [c.id, root, signature], bytes(MIB))), BadRequestError)
      assert.equal(await accruedOf(c), 2n * R)
    })

    it('accrues gets in memory only, saved by the next save of the contract, by the sweeper\'s interval and on stop', async () => {
      const { datastore, c } = await hostWithContract()
      const root = await c.put(bytes(MIB))
      const writes = mock.method(datastore, 'put')
      await getAll(c, root, 10)
      assert.equal(writes.mock.callCount(), 0, 'a get writes no record')
      assert.equal(await savedAccrued(datastore, c), R)
      // a rent saves the contract: the gets go with it
      await host.rent(request(renter.id, [c.id]))
      assert.equal(await savedAccrued(datastore, c), 11n * R + DAY_OF_1_MIB)
      writes.mock.restore()
      await getAll(c, root, 3)
      await host.stop()
      assert.equal(await savedAccrued(datastore, c), 14n * R + DAY_OF_1_MIB, 'stop saves them')
      // restarted: the same sums, and stopping again adds nothing
      host = await newHost({ capacity: 4 * MIB, datastore })
      assert.equal(await accruedOf(c), 14n * R + DAY_OF_1_MIB)
      await host.stop()
      host = await newHost({ capacity: 4 * MIB, datastore, checkMs: 10 })
      assert.equal(await accruedOf(c), 14n * R + DAY_OF_1_MIB)
      // the sweeper saves what gets accrued at its interval
      await getAll(c, root, 2)
      const deadline = Date.now() + 5000
      while (await savedAccrued(datastore, c) !== 16n * R + DAY_OF_1_MIB) {
        assert.ok(Date.now() < deadline, 'the sweeper never saved the gets\' remainders')
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    })

    it('loses the remainders of the gets since the last save in a crash, never counting one twice', async () => {
      const { datastore, c } = await hostWithContract()
      const root = await c.put(bytes(MIB))
      await host.rent(request(renter.id, [c.id]))
      await getAll(c, root, 7)
      const saved = R + DAY_OF_1_MIB
      const crashed = host
      host = await newHost({ capacity: 4 * MIB, datastore: await crashCopy(datastore) })
      await crashed.stop()
      assert.equal(await accruedOf(c), saved, 'the 7 gets since the rent are lost')
      // the host restarted from the crash charges from what it kept
      await getAll(c, root, 1)
      await host.rent(request(renter.id, [c.id]))
      assert.equal(await accruedOf(c), saved + R + DAY_OF_1_MIB)
    })

    it('keeps version 1 transfers rounded up per call, accruing nothing', async () => {
      await host.stop()
      const datastore = new MemoryDatastore()
      const terms = termsOf({ version: 1, storagePrice: 0n, uploadPrice: 2444n, downloadPrice: 2444n })
      const encoded = encodeTerms(terms)
      const id = Buffer.from(contractIdOf(encoded)).toString('hex')
      const record = { id, signed: b64(encodeSigned(encoded, signTerms(encoded, renter.signer), signTerms(encoded, hostKey.signer))), revision: 0, signedRevision: null, shards: [], rentPaidPeriods: 0, endedAt: null, endedReason: null, ratings: null }
      await datastore.put(new Key(`${CONTRACTS_PREFIX}/${id}`), new TextEncoder().encode(JSON.stringify(record)))
      host = await newHost({ datastore })
      const c = new Renter(id, terms)
      const shard = bytes(5 * KIB)
      const root = rootOf(shard)
      // 2444 sat per GiB moves 5 KiB for 0.0117 sat: 1 sat per call
      assert.equal(host.cost('put', { caller: renter.id, args: [id, root, c.sign(new Map([[root, shard.byteLength]]), 1)], bodyLength: shard.byteLength }), 1n)
      await c.put(shard)
      assert.equal(host.cost('get', { caller: renter.id, args: getArgs(c, root, 5 * KIB), bodyLength: 0 }), 1n)
      await host.get(request(renter.id, getArgs(c, root, 5 * KIB)))
      assert.equal(await accruedOf(c), 0n)
      await host.stop()
      assert.equal(await savedAccrued(datastore, c), 0n)
      host = await newHost({ datastore })
    })
  })

  describe('version 1 terms', () => {
    it('are refused for a new contract and for a renewal, with request-declined saying what the host signs', async () => {
      const declined = (err: any): boolean => err instanceof RequestDeclinedError && /signs version 2 terms only \(prices per TiB, rent on the bytes held\), not version 1$/.test(err.message)
      await assert.rejects(host.contract(request(renter.id, [], proposal(termsOf({ version: 1 })))), declined)
      assert.equal(host.contractsHeld(), 0)
      const c = await contract()
      const terms = termsOf({ version: 1 })
      const newId = Buffer.from(contractIdOf(encodeTerms(terms))).toString('hex')
      await assert.rejects(host.renew(request(renter.id, [c.id, c.sign(c.shards, 1, newId)], proposal(terms))), declined)
      assert.equal(host.contractsHeld(), 1)
    })

    it('of a contract already in the datastore (a record from before rentAccrued) run on by version 1\'s rules', async () => {
      await host.stop()
      const datastore = new MemoryDatastore()
      // a satoshi per byte up, two down: per GiB that is 2^30 and 2^31
      const terms = termsOf({ version: 1, storagePrice: 3000n, uploadPrice: 2n ** 30n, downloadPrice: 2n ** 31n })
      const encoded = encodeTerms(terms)
      const id = Buffer.from(contractIdOf(encoded)).toString('hex')
      // the record as a host wrote it before version 2
      const record = { id, signed: b64(encodeSigned(encoded, signTerms(encoded, renter.signer), signTerms(encoded, hostKey.signer))), revision: 0, signedRevision: null, shards: [], rentPaidPeriods: 0, endedAt: null, endedReason: null, ratings: null }
      await datastore.put(new Key(`${CONTRACTS_PREFIX}/${id}`), new TextEncoder().encode(JSON.stringify(record)))
      host = await newHost({ datastore })
      const c = new Renter(id, terms)
      // rent on max-bytes, each period rounded up, whatever is held
      const v1Rent = rentPerPeriodV1(terms)
      assert.ok(v1Rent > 0n)
      assert.equal(host.cost('rent', { caller: renter.id, args: [id, '2'], bodyLength: 0 }), v1Rent * 2n)
      const shard = bytes(5 * KIB)
      const root = rootOf(shard)
      // per GiB moved, not per TiB
      assert.equal(host.cost('put', { caller: renter.id, args: [id, root, c.sign(new Map([[root, shard.byteLength]]), 1)], bodyLength: shard.byteLength }), 5n * 1024n)
      await c.put(shard)
      assert.equal(host.cost('get', { caller: renter.id, args: [id, root, '0', '5000'], bodyLength: 0 }), 10_000n)
      const answer = await host.rent(request(renter.id, [id, '2']))
      assert.deepEqual([answer.rentPaidPeriods, answer.rentPaid, answer.rentAccrued], [2, formatAmount(v1Rent * 2n), '0'])
      assert.equal(host.cost('rent', { caller: renter.id, args: [id], bodyLength: 0 }), v1Rent, 'still v1\'s rent per period with 5 KiB held')
    })
  })

  describe('end', () => {
    it('deletes the shards and answers the host\'s signed rating of the renter, keeping the renter\'s', async () => {
      const c = await contract({ rentPeriodMs: 10 * DAY })
      const root = await c.put(bytes(4000))
      await host.rent(request(renter.id, [c.id]))
      clock += DAY
      const theirs = signRating({ contractId: Buffer.from(c.id, 'hex'), rater: renter.id, rated: hostKey.id, satisfactory: true, reason: 'audits passed', at: clock }, renter.signer)
      const answer = await host.end(request(renter.id, [c.id], theirs))
      assert.equal(answer.contract, c.id)
      assert.equal(answer.ended, new Date(clock).toISOString())
      const rating = openRating(Buffer.from(answer.rating, 'base64'))
      assert.equal(rating.rater, hostKey.id)
      assert.equal(rating.rated, renter.id)
      assert.equal(rating.satisfactory, true)
      assert.equal(rating.reason, 'rent paid as agreed')
      assert.equal(await host.store.has(c.id, root), false)
      assert.equal(host.contractsHeld(), 0)
      assert.equal(host.used(), 0, 'an ended contract holds no bytes')
      assert.equal(host.reserved(), 0)
      assert.deepEqual(records, [[renter.id, 'satisfactory', 'contract-rated-by-renter'], [renter.id, 'satisfactory', 'contract-ended']])
      await assert.rejects(host.list(request(renter.id, [c.id])), (err: any) => err instanceof NotFoundError && /has ended \(by its renter\)/.test(err.message))
    })

    it('rates a renter that did not pay its rent unsatisfactory, and refuses a rating of another contract', async () => {
      const c = await contract()
      clock += 2 * DAY
      const wrong = signRating({ contractId: new Uint8Array(32), rater: renter.id, rated: hostKey.id, satisfactory: false, reason: 'x', at: clock }, renter.signer)
      await assert.rejects(host.end(request(renter.id, [c.id], wrong)), (err: any) => err instanceof BadRequestError && /not the renter's rating of this host/.test(err.message))
      assert.equal(host.contractsHeld(), 1, 'a refused end keeps the contract')
      const rating = openRating(Buffer.from((await host.end(request(renter.id, [c.id]))).rating, 'base64'))
      assert.equal(rating.satisfactory, false)
      assert.equal(rating.reason, 'rent unpaid')
    })
  })

  describe('renew', () => {
    it('carries the shards over to the new contract at revision 1, and the old one says where they went', async () => {
      const c = await contract()
      const shard = bytes(6000)
      const root = await c.put(shard)
      await host.rent(request(renter.id, [c.id]))
      const terms = termsOf({ end: clock + 60 * DAY })
      const newId = Buffer.from(contractIdOf(encodeTerms(terms))).toString('hex')
      const args = [c.id, c.sign(c.shards, 1, newId)]
      const answer = await host.renew(request(renter.id, args, proposal(terms)))
      assert.equal(answer.contract, newId)
      assert.equal(answer.revision, 1)
      const listed = await host.list(request(renter.id, [newId]))
      assert.deepEqual(listed.shards, [{ root, bytes: 6000 }])
      assert.equal(listed.rentPaidPeriods, 0, 'rent paid stays with the old contract')
      verifyRevision(decodeSigned(Buffer.from(listed.signedRevision!, 'base64')).message, hostKey.id, Buffer.from(answer.revisionSignature, 'base64'))
      assert.deepEqual(await buffer((await host.get(request(renter.id, [newId, root, '0', '6000']))).open()), Buffer.from(shard))
      await assert.rejects(host.list(request(renter.id, [c.id])), (err: any) => err instanceof NotFoundError && err.message.includes(`was renewed as ${newId}`))
      assert.equal(host.contractsHeld(), 1)
      assert.equal(host.used(), 6000)
      // the answer was lost: the same renewal gets the same answer
      assert.deepEqual(await host.renew(request(renter.id, args, proposal(terms))), answer)
    })

    it('refuses a renewal whose revision 1 does not hold what the old contract held', async () => {
      const c = await contract()
      await c.put(bytes(6000))
      const terms = termsOf()
      const newId = Buffer.from(contractIdOf(encodeTerms(terms))).toString('hex')
      await assert.rejects(host.renew(request(renter.id, [c.id, c.sign(new Map(), 1, newId)], proposal(terms))), InvalidSignatureError)
      assert.equal((await host.list(request(renter.id, [c.id]))).shards.length, 1, 'the old contract keeps its shards')
      await assert.rejects(host.list(request(renter.id, [newId])), NotFoundError)
    })
  })

  it('each handler works on the parts of the host it names, without a StorageHost', async () => {
    const datastore = new MemoryDatastore()
    const book = new ContractBook({ datastore, now: () => clock })
    const store = new ShardStore(join(dir, 'bare'))
    await store.start()
    const terms = new TermsCheck(book, { dir, capacity: 64 * KIB, maxDurationMs: 31 * DAY, minRentPeriodMs: DAY, clockSkewMs: 0, prices: () => FREE, takesPayments: false })
    const proposed = termsOf()
    const { contract: id } = await contractHandler({ peerId: hostKey.id, signer: hostKey.signer, book, terms }, request(renter.id, [], proposal(proposed)))
    const c = new Renter(id, proposed)
    const shard = bytes(2000)
    const shards = new Map([[rootOf(shard), 2000]])
    await putHandler({ signer: hostKey.signer, book, store }, request(renter.id, [id, rootOf(shard), c.sign(shards, 1)], shard))
    assert.deepEqual((await listHandler({ book }, request(renter.id, [id]))).shards, [{ root: rootOf(shard), bytes: 2000 }])
    // the book is in the datastore: another book over it knows the contract
    const again = new ContractBook({ datastore, now: () => clock })
    await again.load()
    assert.equal((await listHandler({ book: again }, request(renter.id, [id]))).revision, 1)
    assert.equal(again.used(), 2000)
  })

  describe('the sweeper', () => {
    /** A put to `c` whose body stalls until `release`, holding the contract's lock meanwhile */
    const holdLock = (c: Renter): { putting: ReturnType<StorageHost['put']>, release: () => void } => {
      const shard = bytes(5000)
      let release = (): void => {}
      const gate = new Promise<void>(resolve => { release = resolve })
      const stalled = async function * (): AsyncGenerator<Uint8Array> {
        await gate
        yield shard
      }
      const root = rootOf(shard)
      const putting = host.put({ caller: renter.id, args: [c.id, root, c.sign(new Map([[root, 5000]]), 1)], signal: new AbortController().signal, body: Object.assign(stalled(), { length: 5000 }) })
      return { putting, release }
    }

    it('ends a contract whose rent is unpaid past the grace, deleting its shards and rating the renter', async () => {
      const c = await contract({ rentPeriodMs: DAY })
      const root = await c.put(bytes(3000))
      await host.rent(request(renter.id, [c.id, '2']))
      // paid through T0 + 2 days: ended once 7 days more have passed
      assert.deepEqual(await host.endUnpaid(T0 + 9 * DAY), [])
      assert.equal(await host.store.has(c.id, root), true)
      assert.deepEqual(await host.endOverdue(T0 + 9 * DAY + 1), [c.id])
      assert.equal(await host.store.has(c.id, root), false)
      assert.deepEqual(records, [[renter.id, 'unsatisfactory', 'rent-unpaid']])
      await assert.rejects(host.list(request(renter.id, [c.id])), (err: any) => err instanceof NotFoundError && /has ended \(rent unpaid\)/.test(err.message))
      assert.deepEqual(await host.endOverdue(T0 + 20 * DAY), [], 'once')
    })

    it('ends a contract past its end by the grace, rated by whether it paid every period', async () => {
      const c = await contract({ end: T0 + 2 * DAY, rentPeriodMs: DAY })
      const root = await c.put(bytes(3000))
      await host.rent(request(renter.id, [c.id, '2']))
      clock = T0 + 3 * DAY
      // past its end: read-only until the grace is over
      assert.equal((await host.list(request(renter.id, [c.id]))).shards.length, 1)
      await assert.rejects(host.rent(request(renter.id, [c.id])), (err: any) => err instanceof NotFoundError && /expired at/.test(err.message))
      assert.deepEqual(await host.endOverdue(T0 + 9 * DAY), [])
      assert.deepEqual(await host.endExpired(T0 + 9 * DAY + 1), [c.id])
      assert.equal(await host.store.has(c.id, root), false)
      assert.deepEqual(records, [[renter.id, 'satisfactory', 'contract-expired']])
    })

    it('does not end a contract whose rent was paid while the sweep waited for its lock', async () => {
      const c = await contract({ rentPeriodMs: DAY })
      const { putting, release } = holdLock(c)
      try {
        // unpaid past the grace when the sweep looks; a rent call is
        // queued before it behind the put, and pays 30 periods
        const now = T0 + GRACE + DAY + 1
        const paying = host.rent(request(renter.id, [c.id, '30']))
        const sweeping = host.endUnpaid(now)
        release()
        assert.equal((await putting).revision, 1)
        assert.equal((await paying).rentPaidPeriods, 30)
        assert.deepEqual(await sweeping, [], 'paid by the time the sweep held the lock')
        assert.equal(host.contractsHeld(), 1)
        assert.deepEqual(records, [])
      } finally {
        release()
      }
    })

    it('stop() signals a sweep waiting for a contract\'s lock to give up, and does not wait for the call holding it', async () => {
      await host.stop()
      let release = (): void => {}
      mock.timers.enable({ apis: ['setInterval'] })
      try {
        host = await newHost({ checkMs: 1000 })
        const c = await contract({ rentPeriodMs: DAY })
        const held = holdLock(c)
        release = held.release
        const putting = held.putting
        clock = T0 + GRACE + 1
        mock.timers.tick(1000)
        const hung = new Promise(resolve => { setTimeout(() => { resolve('hung') }, 5000).unref() })
        assert.equal(await Promise.race([host.stop().then(() => 'stopped'), hung]), 'stopped')
        release()
        assert.equal((await putting).revision, 1)
        assert.equal(host.contractsHeld(), 1, 'the sweep gave up')
      } finally {
        // a failed run lets the put finish, so the host stops after it
        release()
        mock.timers.reset()
      }
    })

    it('runs on its timer, on the host\'s clock, and not after stop', async () => {
      await host.stop()
      mock.timers.enable({ apis: ['setInterval'] })
      try {
        host = await newHost({ checkMs: 1000 })
        const c = await contract({ rentPeriodMs: DAY })
        clock = T0 + GRACE + 1
        mock.timers.tick(1000)
        // the sweep runs on real I/O (the shard directory) once the timer fires
        for (const deadline = Date.now() + 10_000; records.length === 0 && Date.now() < deadline;) {
          await new Promise(resolve => setTimeout(resolve, 5))
        }
        assert.equal(host.contractsHeld(), 0, 'the timer ended the unpaid contract')
        assert.deepEqual(records, [[renter.id, 'unsatisfactory', 'rent-unpaid']])
        await host.stop()
        host = await newHost({ checkMs: 1000 })
        const d = await contract({ rentPeriodMs: DAY })
        await host.stop()
        clock += GRACE + 1
        mock.timers.tick(5000)
        // time for a sweep to end it, were one started (the first took a few ms)
        await new Promise(resolve => setTimeout(resolve, 100))
        assert.equal(host.contractsHeld(), 1, 'a stopped host ends nothing')
        assert.notEqual(c.id, d.id)
      } finally {
        mock.timers.reset()
      }
    })
  })
})
