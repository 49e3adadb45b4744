import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RegtestServer } from '../../../src/payments/chain/regtest/regtest-server.ts'
import { FrameType } from '../../../src/protocols/rpc/constants.ts'
import { encodeFrame } from '../../../src/protocols/rpc/frames.ts'
import { decodeResponse, type Payment, type ResponseHead } from '../../../src/protocols/rpc/messages.ts'
import { bodyFromBytes } from '../../../src/protocols/rpc/body.ts'
import { Writer } from '../../../src/protocols/codec.ts'
import { Status } from '../../../src/protocols/rpc/status.ts'
import { formatBtc, Units } from '../../../src/protocols/units.ts'
import { merkleRoot } from '../../../src/storage/protocol/merkle.ts'
import { CONTRACT_VERSION, contractIdOf, decodeSigned, decodeTerms, encodeRevision, encodeTerms, nextRevision, signRevision, signTerms, transferCost, transferRemainder, verifyTerms, type ContractTerms } from '../../../src/storage/protocol/contract.ts'
import { withDomain } from '../../../src/protocols/signed.ts'
import { decodeRating, encodeRating, RATING_DOMAIN, signRating } from '../../../src/storage/protocol/rating.ts'
import { startTestNode, tempDir, testConfig, type TestNode } from '../../helpers/nodes.ts'
import { RawRpc } from '../../helpers/raw-rpc.ts'

const KIB = 1024
const MIB = 1024 * KIB
const DAY = 86_400_000
/** the priced host's prices, sat per TiB-month, per TiB up, per TiB down */
const PRICES = { storage: 1000n, upload: 100n, download: 200n }

/** A host seen through raw frames: its own nonce challenge and counter */
class Wire {
  readonly raw: RawRpc
  readonly renter: TestNode
  readonly host: TestNode
  private challenge?: Uint8Array
  private counter = 0

  constructor (renter: TestNode, host: TestNode) {
    this.renter = renter
    this.host = host
    this.raw = new RawRpc(renter.node, host.node)
  }

  private async head (method: string, args: string[], body: Uint8Array, payment: Payment, service = 'storage'): Promise<Uint8Array[]> {
    this.challenge ??= await this.raw.challenge(this.renter.node.signer)
    return RawRpc.request(this.renter.node.signer, {
      nonce: RawRpc.nonce(this.challenge, this.counter++),
      service,
      method,
      args,
      payment,
      body,
      bodyLength: body.byteLength,
      bodySha256: bodyFromBytes(body).sha256
    })
  }

  /**
   * One call. A body over 64 KiB is sent only once the host asks for it
   * with CONTINUE; `continued` says whether it did.
   */
  async call (method: string, args: string[], options: { body?: Uint8Array, payment?: Payment, service?: string } = {}): Promise<{ head: ResponseHead, body: Uint8Array, continued: boolean, json: () => any }> {
    const body = options.body ?? new Uint8Array(0)
    const frames = await this.head(method, args, body, options.payment ?? { type: 'none' }, options.service)
    if (body.byteLength <= 64 * KIB) {
      const { response, body: answer } = await this.raw.exchange(frames)
      return { head: response.head, body: answer, continued: false, json: () => JSON.parse(new TextDecoder().decode(answer)) }
    }
    const { stream, reader } = await this.raw.openStream()
    stream.send(frames[0])
    let frame = await reader.next(AbortSignal.timeout(10_000))
    let continued = false
    if (frame?.type === FrameType.CONTINUE) {
      continued = true
      for (let i = 0; i < body.byteLength; i += 256 * KIB) {
        stream.send(encodeFrame(FrameType.DATA, body.subarray(i, i + 256 * KIB)).subarray())
      }
      frame = await reader.next(AbortSignal.timeout(10_000))
    }
    assert.equal(frame?.type, FrameType.RESPONSE)
    const { head } = decodeResponse(frame.payload)
    const parts: Uint8Array[] = []
    for (let got = 0; got < head.bodyLength;) {
      const data = await reader.next(AbortSignal.timeout(10_000))
      assert.ok(data != null)
      parts.push(data.payload)
      got += data.payload.byteLength
    }
    await stream.close().catch(() => {})
    const answer = Buffer.concat(parts)
    return { head, body: answer, continued, json: () => JSON.parse(new TextDecoder().decode(answer)) }
  }

  terms (changes: Partial<ContractTerms> = {}): ContractTerms {
    const start = Date.now()
    return {
      version: CONTRACT_VERSION,
      renter: this.renter.node.peerId.toString(),
      host: this.host.node.peerId.toString(),
      nonce: randomBytes(16),
      start,
      end: start + 30 * DAY,
      maxBytes: MIB,
      storagePrice: 0n,
      uploadPrice: 0n,
      downloadPrice: 0n,
      rentPeriodMs: DAY,
      ...changes
    }
  }

  proposal (terms: ContractTerms, signature?: Uint8Array): Uint8Array {
    const encoded = encodeTerms(terms)
    return new Writer().bytes(encoded).bytes(signature ?? signTerms(encoded, this.renter.node.signer)).finish()
  }

  /** A contract the host signed, and the renter's view of its shards */
  async contract (changes: Partial<ContractTerms> = {}): Promise<Contract> {
    const terms = this.terms(changes)
    const answer = await this.call('contract', [], { body: this.proposal(terms) })
    assert.equal(answer.head.status, Status.OK, answer.head.message)
    return new Contract(this, terms, answer.json().contract)
  }
}

/** The renter's side of one contract: the shards it expects the host to hold */
class Contract {
  readonly wire: Wire
  readonly terms: ContractTerms
  readonly id: string
  revision = 0
  shards = new Map<string, number>()

  constructor (wire: Wire, terms: ContractTerms, id: string) {
    this.wire = wire
    this.terms = terms
    this.id = id
  }

  /** The renter's signature (base64) of revision `number` holding `shards` */
  sign (shards: Map<string, number>, number: number): string {
    const rev = nextRevision(Buffer.from(this.id, 'hex'), number - 1, [...shards].map(([root, length]) => ({ root: Buffer.from(root, 'hex'), length })))
    return Buffer.from(signRevision(encodeRevision(rev), this.wire.renter.node.signer)).toString('base64')
  }

  /** A deferred payment of what moving `bytes` costs at `price` (nothing on a free contract) */
  pay (price: bigint, bytes: number): Payment {
    const sats = transferCost(this.terms.version, price, bytes)
    return sats === 0n ? { type: 'none' } : { type: 'defer', currency: 'BTC', amount: formatBtc(sats), id: randomBytes(8).toString('hex'), threshold: '' }
  }

  /** Put a new shard, signing the next revision; answers the host's response */
  async put (shard: Uint8Array, options: { signature?: string, payment?: Payment } = {}): ReturnType<Wire['call']> {
    const root = Buffer.from(merkleRoot(shard)).toString('hex')
    const shards = new Map(this.shards).set(root, shard.byteLength)
    const answer = await this.wire.call('put', [this.id, root, options.signature ?? this.sign(shards, this.revision + 1)], { body: shard, payment: options.payment ?? this.pay(this.terms.uploadPrice, shard.byteLength) })
    if (answer.head.status === Status.OK) {
      this.shards = shards
      this.revision++
    }
    return answer
  }

  async get (root: string, offset: number, length: number): ReturnType<Wire['call']> {
    return this.wire.call('get', [this.id, root, String(offset), String(length)], { payment: this.pay(this.terms.downloadPrice, length) })
  }
}

const rootOf = (shard: Uint8Array): string => Buffer.from(merkleRoot(shard)).toString('hex')

/**
 * The storage host against PROTOCOL.md 8d, through raw frames, as an
 * implementation written from the document would speak to it (issue 17):
 * a priced host with payments on, and a free host with payments off.
 */
describe('storage host: what PROTOCOL.md 8d says, byte for byte', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  let renter: TestNode
  let priced: TestNode
  let free: TestNode
  let paid: Wire
  let unpaid: Wire

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: join(dir.path, 'chain'), blockIntervalMs: 0 })
    await regtest.start()
    const storage = (prices: Record<string, string>): unknown => ({ storage: { capacity: '16 MiB', prices } })
    priced = await startTestNode({
      config: testConfig({
        payments: { network: 'regtest', chain: regtest.url },
        services: storage({ rent: `${PRICES.storage} sat`, put: `${PRICES.upload} sat`, get: `${PRICES.download} sat` }),
        policies: { global: { 'max-tab': '0.001 BTC' } }
      })
    })
    free = await startTestNode({ config: testConfig({ services: storage({}) }) })
    renter = await startTestNode()
    paid = new Wire(renter, priced)
    unpaid = new Wire(renter, free)
  })

  after(async () => {
    await Promise.all([renter?.destroy(), priced?.destroy(), free?.destroy()])
    await regtest?.stop()
    await dir?.cleanup()
  })

  const pricedTerms = { storagePrice: PRICES.storage, uploadPrice: PRICES.upload, downloadPrice: PRICES.download }
  const promisesTo = async (host: TestNode): Promise<number> => (await host.node.tabs.promises('receivable', renter.node.peerId.toString())).length

  it('checks a put of a shard the contract holds like a first put, keeps the revision, and repairs a copy corrupt on disk', async () => {
    const c = await paid.contract(pricedTerms)
    const shard = randomBytes(10 * KIB)
    const root = rootOf(shard)
    const first = await c.put(shard)
    assert.equal(first.head.status, Status.OK, first.head.message)
    assert.equal(first.json().revision, 1)
    const current = c.sign(c.shards, 1)
    const again = (body: Uint8Array, signature = current): ReturnType<Wire['call']> => paid.call('put', [c.id, root, signature], { body, payment: c.pay(PRICES.upload, body.byteLength) })

    // the retry after a lost answer: the same bytes and the same signature
    // (of the current revision) get the same answer
    const retry = await again(shard)
    assert.equal(retry.head.status, Status.OK, retry.head.message)
    assert.deepEqual(retry.json(), first.json())

    // other bytes under the held root: refused, and nothing is owed for them
    const owed = await promisesTo(priced)
    for (const [body, pattern] of [
      [randomBytes(10 * KIB), /hash to the Merkle root/],
      [randomBytes(1), /holds shard .* of 10240 bytes; the body is 1/],
      [new Uint8Array(0), /at least one byte/],
      [randomBytes(300 * KIB), /holds shard .* of 10240 bytes; the body is 307200/]
    ] as const) {
      const answer = await again(body)
      assert.equal(answer.head.status, Status.BAD_REQUEST, `${body.byteLength} bytes: ${answer.head.message}`)
      assert.match(answer.head.message, pattern)
      assert.equal(answer.continued, false, 'a body of the wrong length is refused before it is sent')
    }
    assert.equal(await promisesTo(priced), owed, 'no refused put left a debt')

    // a duplicate must sign the current revision, not the next one
    const next = await again(shard, c.sign(c.shards, 2))
    assert.equal(next.head.status, Status.INVALID_SIGNATURE)
    assert.match(next.head.message, /not over revision 1 /)

    // the host's copy rots: it refuses to serve it or prove it, saying the
    // shard is corrupt here (not-found: that copy is lost), and a good
    // re-put repairs it
    const path = join(priced.dataDir, 'storage', c.id, root)
    const bytes = await readFile(path)
    // a byte of each of its three leaves: whichever leaves a challenge picks
    for (const at of [100, 4196, 8292]) {
      bytes[at] ^= 0xff
    }
    await writeFile(path, bytes)
    const rotten = await c.get(root, 0, shard.byteLength)
    assert.equal(rotten.head.status, Status.NOT_FOUND, rotten.head.message)
    assert.match(rotten.head.message, new RegExp(`shard ${root} is corrupt on this host`))
    const unproved = await paid.call('prove', [c.id, root, randomBytes(32).toString('hex'), '4'])
    assert.equal(unproved.head.status, Status.NOT_FOUND, unproved.head.message)
    assert.match(unproved.head.message, /is corrupt on this host/)
    const repair = await again(shard)
    assert.equal(repair.head.status, Status.OK, repair.head.message)
    assert.deepEqual(repair.json(), first.json())
    const healed = await c.get(root, 0, shard.byteLength)
    assert.equal(healed.head.status, Status.OK, healed.head.message)
    assert.deepEqual(Buffer.from(healed.body), shard)
  })

  it('says a shard missing on its disk is not found, and answers a failure that says nothing about the shard with the generic server-error', async () => {
    const c = await paid.contract(pricedTerms)
    const gone = randomBytes(6000)
    const kept = randomBytes(7000)
    assert.equal((await c.put(gone)).head.status, Status.OK)
    assert.equal((await c.put(kept)).head.status, Status.OK)
    const path = join(priced.dataDir, 'storage', c.id, rootOf(gone))
    await rm(path)
    await rm(`${path}.leaves`)
    for (const answer of [await c.get(rootOf(gone), 0, 6000), await paid.call('prove', [c.id, rootOf(gone), randomBytes(32).toString('hex')])]) {
      assert.equal(answer.head.status, Status.NOT_FOUND, answer.head.message)
      assert.match(answer.head.message, new RegExp(`shard ${rootOf(gone)} is missing on this host`))
    }
    // a disk that fails a read (EIO, too many open files) has not lost the
    // shard: the RPC server's server-error, which renters take as transient
    const store = priced.node.storageHost.store
    const range = store.range.bind(store)
    store.range = async () => { throw Object.assign(new Error('i/o error (injected by the test)'), { code: 'EIO' }) }
    try {
      const failed = await c.get(rootOf(kept), 0, 7000)
      assert.equal(failed.head.status, Status.SERVER_ERROR, failed.head.message)
      assert.doesNotMatch(failed.head.message, /corrupt|missing/)
    } finally {
      store.range = range
    }
    assert.deepEqual(Buffer.from((await c.get(rootOf(kept), 0, 7000)).body), kept)
  })

  it('checks the renter\'s revision signature of a large put before payment and before CONTINUE, so a forged one costs and sends nothing', async () => {
    const c = await paid.contract(pricedTerms)
    const shard = randomBytes(300 * KIB)
    const owed = await promisesTo(priced)
    const forged = await c.put(shard, { signature: Buffer.from(randomBytes(64)).toString('base64') })
    assert.equal(forged.head.status, Status.INVALID_SIGNATURE)
    assert.equal(forged.continued, false, 'the host asked for the body of a put it would refuse')
    assert.equal(await promisesTo(priced), owed, 'the refused put left no debt')
    // with no payment at all: refused for its signature, not asked to pay first
    const unpaidForged = await c.put(shard, { signature: Buffer.from(randomBytes(64)).toString('base64'), payment: { type: 'none' } })
    assert.equal(unpaidForged.head.status, Status.INVALID_SIGNATURE, unpaidForged.head.message)
    assert.equal(unpaidForged.head.acceptablePayment, undefined)
    // a revision signature in one of base64's other spellings of the same bytes
    // (the 86th digit is A, Q, g or w, its 4 unused bits zero; the next digit of the alphabet has them at 0001)
    const text = c.sign(new Map(c.shards).set(rootOf(shard), shard.byteLength), 1)
    const other = `${text.slice(0, 85)}${String.fromCharCode(text.charCodeAt(85) + 1)}==`
    assert.deepEqual(Buffer.from(other, 'base64'), Buffer.from(text, 'base64'))
    const respelled = await c.put(shard, { signature: other })
    assert.equal(respelled.head.status, Status.BAD_REQUEST, respelled.head.message)
    assert.match(respelled.head.message, /64-byte signature in standard base64/)
    const good = await c.put(shard)
    assert.equal(good.continued, true)
    assert.equal(good.head.status, Status.OK, good.head.message)
    // over max-bytes: refused before CONTINUE too
    const over = await c.put(randomBytes(MIB))
    assert.equal(over.head.status, Status.BODY_TOO_LARGE)
    assert.equal(over.continued, false)
  })

  it('answers an unknown contract, another renter and malformed args before asking for payment', async () => {
    // a download price a 20 KiB get pays whole satoshis at (20 sat): at PRICES it would be free
    const c = await paid.contract({ ...pricedTerms, downloadPrice: 2n ** 30n })
    const shard = randomBytes(20 * KIB)
    assert.equal((await c.put(shard)).head.status, Status.OK)
    const root = rootOf(shard)
    const unknown = randomBytes(32).toString('hex')
    const refusals: Array<[string, string[], number, RegExp]> = [
      ['get', [unknown, root, '0', '1000000'], Status.NOT_FOUND, /no contract/],
      ['put', [unknown, root, c.sign(c.shards, 2)], Status.NOT_FOUND, /no contract/],
      ['rent', [unknown], Status.NOT_FOUND, /no contract/],
      ['get', [c.id, randomBytes(32).toString('hex'), '0', '1'], Status.NOT_FOUND, /holds no shard/],
      ['get', [c.id, root, 'x', '1'], Status.BAD_REQUEST, /the offset/],
      ['get', [c.id, root], Status.BAD_REQUEST, /takes <contract id> <shard root> <offset> <length>/],
      ['rent', [c.id, '0'], Status.BAD_REQUEST, /number of periods/],
      // the contract before the form of a revision signature (PROTOCOL.md 8d)
      ['renew', [unknown, 'not base64'], Status.NOT_FOUND, /no contract/],
      ['put', [unknown, root, 'not base64'], Status.NOT_FOUND, /no contract/]
    ]
    for (const [method, args, status, pattern] of refusals) {
      const answer = await paid.call(method, args, method === 'put' ? { body: shard } : {})
      assert.equal(answer.head.status, status, `${method} ${args.join(' ')}: ${answer.head.message}`)
      assert.match(answer.head.message, pattern)
      assert.equal(answer.head.acceptablePayment, undefined)
    }
    // a payment offered anyway binds nothing
    const owed = await promisesTo(priced)
    const offered = await paid.call('get', [unknown, root, '0', '1000000'], { payment: { type: 'defer', currency: 'BTC', amount: '0.00002', id: randomBytes(8).toString('hex'), threshold: '' } })
    assert.equal(offered.head.status, Status.NOT_FOUND)
    assert.equal(await promisesTo(priced), owed)
    // another renter's contract: access denied, not a price
    const stranger = await startTestNode()
    try {
      const theirs = new Wire(stranger, priced)
      const answer = await theirs.call('get', [c.id, root, '0', String(shard.byteLength)])
      assert.equal(answer.head.status, Status.ACCESS_DENIED)
      assert.equal(answer.head.acceptablePayment, undefined)
    } finally {
      await stranger.destroy()
    }
    // a known shard is priced at download-price x length, rounded down
    const demand = await paid.call('get', [c.id, root, '0', String(shard.byteLength)])
    assert.equal(demand.head.status, Status.PAYMENT_TOO_LOW)
    assert.equal(demand.head.acceptablePayment?.amount, formatBtc(transferCost(2, 2n ** 30n, shard.byteLength)))
    assert.equal(demand.head.acceptablePayment?.amount, formatBtc(20n))
  })

  it('counts what a contract holds as shards come and go: a deleted shard\'s room is free again, a renewal keeps the count', async () => {
    const c = await unpaid.contract({ maxBytes: 10_000 })
    const first = randomBytes(6000)
    assert.equal((await c.put(first)).head.status, Status.OK)
    const over = await c.put(randomBytes(5000))
    assert.equal(over.head.status, Status.BODY_TOO_LARGE)
    assert.match(over.head.message, /it holds 6000$/)
    const shards = new Map(c.shards)
    shards.delete(rootOf(first))
    const deleted = await unpaid.call('delete', [c.id, rootOf(first), c.sign(shards, 2)])
    assert.equal(deleted.head.status, Status.OK, deleted.head.message)
    c.shards = shards
    c.revision = 2
    const second = randomBytes(9000)
    assert.equal((await c.put(second)).head.status, Status.OK, 'the deleted shard\'s room is free')
    // renewed into terms smaller than what it holds: refused, naming what it holds
    const terms = unpaid.terms({ maxBytes: 8999 })
    const next = Buffer.from(contractIdOf(encodeTerms(terms))).toString('hex')
    const smaller = await unpaid.call('renew', [c.id, new Contract(unpaid, terms, next).sign(c.shards, 1)], { body: unpaid.proposal(terms) })
    assert.equal(smaller.head.status, Status.BAD_REQUEST)
    assert.match(smaller.head.message, /allow 8999 bytes, but contract .* holds 9000$/)
  })

  it('refuses get ranges past the end, answers length 0 with nothing, and refuses extra args and non-canonical numbers', async () => {
    const c = await paid.contract(pricedTerms)
    const shard = randomBytes(5000)
    assert.equal((await c.put(shard)).head.status, Status.OK)
    const root = rootOf(shard)
    for (const [offset, length] of [[0, 5001], [5000, 1], [5001, 0], [4999, 2]]) {
      const answer = await c.get(root, offset, length)
      assert.equal(answer.head.status, Status.BAD_REQUEST, `${offset}+${length}`)
      assert.match(answer.head.message, /past the end of shard .* which is 5000 bytes/)
    }
    for (const offset of [0, 1234, 5000]) {
      const empty = await c.get(root, offset, 0)
      assert.equal(empty.head.status, Status.OK, empty.head.message)
      assert.equal(empty.body.byteLength, 0)
    }
    const tail = await c.get(root, 4000, 1000)
    assert.equal(tail.head.status, Status.OK, tail.head.message)
    assert.deepEqual(Buffer.from(tail.body), shard.subarray(4000))
    for (const [what, offset, length] of [['007', '007', '1'], ['+1', '+1', '1'], ['1e3', '1e3', '1'], [' 1', ' 1', '1'], ['0x10', '0', '0x10'], ['-0', '-0', '1'], ['1.0', '0', '1.0']]) {
      const answer = await paid.call('get', [c.id, root, offset, length])
      assert.equal(answer.head.status, Status.BAD_REQUEST, what)
      assert.match(answer.head.message, /plain decimal digits/)
    }
    for (const [method, args] of [['get', [c.id, root, '0', '1', 'extra']], ['list', [c.id, '']], ['rent', [c.id, '1', '1']]] as const) {
      const answer = await paid.call(method, [...args])
      assert.equal(answer.head.status, Status.BAD_REQUEST, method)
      assert.match(answer.head.message, /takes/)
    }
  })

  it('serves a put and a get of 1 MiB at 2444 sat per TiB with no payment, and the next rent takes their remainders', async () => {
    const market = { ...pricedTerms, uploadPrice: 2444n, downloadPrice: 2444n }
    const c = await paid.contract(market)
    const shard = randomBytes(MIB)
    const owed = await promisesTo(priced)
    // the pipeline takes the agreement check's 0 as free: no payment asked, none bound
    const put = await c.put(shard, { payment: { type: 'none' } })
    assert.equal(put.head.status, Status.OK, put.head.message)
    const get = await c.get(rootOf(shard), 0, MIB)
    assert.equal(get.head.status, Status.OK, get.head.message)
    assert.deepEqual(Buffer.from(get.body), shard)
    assert.equal(await promisesTo(priced), owed)
    // list answers what the host accrued: one remainder each
    const remainder = transferRemainder(2, 2444n, MIB)
    assert.equal((await paid.call('list', [c.id])).json().rentAccrued, String(2n * remainder))
    // at 0.75 sat per MiB downloaded (786,432 sat per TiB) a 1 MiB get is still free, and two of
    // them accrue 1.5 sat: the next rent costs 2 sat, where the day's rent alone is 1
    const dear = await paid.contract({ ...market, downloadPrice: 786_432n })
    assert.equal((await dear.put(shard, { payment: { type: 'none' } })).head.status, Status.OK)
    for (let i = 0; i < 2; i++) {
      assert.equal((await dear.get(rootOf(shard), 0, MIB)).head.status, Status.OK)
    }
    const accrued = remainder + 2n * transferRemainder(2, 786_432n, MIB) + PRICES.storage * BigInt(MIB) * BigInt(DAY)
    const unpaid = await paid.call('rent', [dear.id])
    assert.equal(unpaid.head.status, Status.PAYMENT_TOO_LOW)
    assert.equal(unpaid.head.acceptablePayment?.amount, formatBtc(2n))
    const rent = await paid.call('rent', [dear.id], { payment: { type: 'defer', currency: 'BTC', amount: '0.00000002', id: randomBytes(8).toString('hex'), threshold: '' } })
    assert.equal(rent.head.status, Status.OK, rent.head.message)
    assert.deepEqual([rent.json().rentPaid, rent.json().rentAccrued], ['0.00000002 BTC', String(accrued)])
  })

  it('answers list with the signed terms as bytes terms || bytes renter-signature || bytes host-signature', async () => {
    const c = await unpaid.contract()
    const listed = await unpaid.call('list', [c.id])
    assert.equal(listed.head.status, Status.OK, listed.head.message)
    const signed = decodeSigned(Buffer.from(listed.json().contract, 'base64'))
    assert.deepEqual(Buffer.from(signed.message), Buffer.from(encodeTerms(c.terms)))
    assert.equal(Buffer.from(contractIdOf(signed.message)).toString('hex'), c.id)
    verifyTerms(signed.message, renter.node.peerId.toString(), signed.renterSignature)
    verifyTerms(signed.message, free.node.peerId.toString(), signed.hostSignature)
    assert.deepEqual(decodeTerms(signed.message).maxBytes, MIB)
    assert.equal(listed.json().signedRevision, null, 'revision 0 is never signed')
    assert.deepEqual([listed.json().bytes, listed.json().rentPaidPeriods, listed.json().rentPaid, listed.json().rentAccrued], [0, 0, '0 BTC', '0'])
  })

  it('answers each refused term with the status of its table row', async () => {
    const other = (await startTestNode())
    try {
      // (prices are per TiB: only a TiB at the largest price a varint carries is over all the bitcoin there will be)
      const rows: Array<[string, Wire, Partial<ContractTerms>, number, RegExp, ((t: ContractTerms) => Uint8Array)?]> = [
        ['no byte', paid, { ...pricedTerms, maxBytes: 0 }, Status.BAD_REQUEST, /at least one byte/],
        ['a rent period longer than the contract', paid, { ...pricedTerms, rentPeriodMs: 31 * DAY }, Status.BAD_REQUEST, /longer than the contract/],
        ['rent over 21 million BTC', paid, { ...pricedTerms, maxBytes: 1024 * 1024 * MIB, storagePrice: BigInt(Number.MAX_SAFE_INTEGER) }, Status.BAD_REQUEST, /rent over the whole contract is [0-9.]+ BTC, more than the 21,000,000 BTC/],
        ['an upload price over 21 million BTC', paid, { ...pricedTerms, maxBytes: 1024 * 1024 * MIB, uploadPrice: BigInt(Number.MAX_SAFE_INTEGER) }, Status.BAD_REQUEST, /uploading max-bytes once costs [0-9.]+ BTC, more than the 21,000,000 BTC/],
        ['another host', paid, { ...pricedTerms, host: other.node.peerId.toString() }, Status.BAD_REQUEST, /name host/],
        ['a forged renter signature', paid, pricedTerms, Status.INVALID_SIGNATURE, /./, (t) => paid.proposal(t, randomBytes(64))],
        // the signature before the version: a host's own condition comes after the renter's signature
        ['version 1 terms, forged', paid, { ...pricedTerms, version: 1 }, Status.INVALID_SIGNATURE, /./, (t) => paid.proposal(t, randomBytes(64))],
        ['version 1 terms', paid, { ...pricedTerms, version: 1 }, Status.REQUEST_DECLINED, /signs version 2 terms only \(prices per TiB, rent on the bytes held\), not version 1$/],
        ['a start an hour away', paid, { ...pricedTerms, start: Date.now() + 3600_000, end: Date.now() + 30 * DAY }, Status.REQUEST_DECLINED, /check your clock/],
        ['400 days', paid, { ...pricedTerms, end: Date.now() + 400 * DAY }, Status.REQUEST_DECLINED, /at most 366 days/],
        ['a 1 s rent period', paid, { ...pricedTerms, rentPeriodMs: 1000 }, Status.REQUEST_DECLINED, /at least 60000 ms/],
        ['less than the host\'s prices', paid, { ...pricedTerms, downloadPrice: 1n }, Status.REQUEST_DECLINED, /less than this host's prices: 0\.00001 BTC per TiB-month held, 0\.000001 BTC per TiB uploaded, 0\.000002 BTC per TiB downloaded$/],
        ['a price from a host with payments off', unpaid, { uploadPrice: 1n }, Status.REQUEST_DECLINED, /takes no payments .* prices of 0$/],
        ['more than the host has', paid, { ...pricedTerms, maxBytes: 32 * MIB }, Status.INSUFFICIENT_STORAGE, /this host is full/]
      ]
      for (const [what, wire, changes, status, pattern, body] of rows) {
        const terms = wire.terms(changes)
        const answer = await wire.call('contract', [], { body: body?.(terms) ?? wire.proposal(terms) })
        assert.equal(answer.head.status, status, `${what}: ${answer.head.message}`)
        assert.match(answer.head.message, pattern, what)
      }
    } finally {
      await other.destroy()
    }
  })

  it('with payments off signs only free terms, and answers a priced call with no payment to make', async () => {
    for (const price of ['storagePrice', 'uploadPrice', 'downloadPrice'] as const) {
      const answer = await unpaid.call('contract', [], { body: unpaid.proposal(unpaid.terms({ [price]: 1n })) })
      assert.equal(answer.head.status, Status.REQUEST_DECLINED, price)
    }
    const c = await unpaid.contract()
    const shard = randomBytes(100)
    assert.equal((await c.put(shard)).head.status, Status.OK)
    // a price it could only meet under a contract signed while payments were
    // on: a method of its own with an agreed cost of 1 sat
    free.node.registry.register({
      name: 'priced-probe',
      version: '1.0.0',
      description: 'a method whose agreement costs 1 sat',
      methods: { call: { description: 'costs 1 sat', unit: Units.CALL, cost: () => 1n, handle: async () => ({ json: 'served' }) } }
    })
    for (const payment of [{ type: 'none' }, { type: 'defer', currency: 'BTC', amount: '0.00000001', id: 'p1', threshold: '' }] as Payment[]) {
      const answer = await unpaid.call('call', [], { service: 'priced-probe', payment })
      assert.equal(answer.head.status, Status.PAYMENT_DECLINED, `${payment.type}: ${answer.head.message}`)
      assert.match(answer.head.message, /takes no payments/)
      assert.equal(answer.head.acceptablePayment, undefined, 'nothing the caller could send would be accepted')
    }
  })

  it('refuses a rating whose outcome is not 0 or 1, and keeps the contract; a rating\'s time is the rater\'s own', async () => {
    const c = await unpaid.contract()
    const encoded = (satisfactory: number, at = Date.now()): Uint8Array => {
      const bytes = encodeRating({ contractId: Buffer.from(c.id, 'hex'), rater: renter.node.peerId.toString(), rated: free.node.peerId.toString(), satisfactory: true, reason: 'served as agreed', at })
      // the outcome byte comes before the reason (a length byte and 16 bytes) and the time
      bytes[bytes.byteLength - 18 - new Writer().varint(at).finish().byteLength] = satisfactory
      return bytes
    }
    const signed = (bytes: Uint8Array): Uint8Array => new Writer().bytes(bytes).bytes(renter.node.signer.sign(withDomain(RATING_DOMAIN, bytes))).finish()
    assert.equal(decodeRating(encoded(1)).satisfactory, true)
    assert.equal(decodeRating(encoded(0)).satisfactory, false)
    for (const outcome of [2, 255]) {
      assert.throws(() => decodeRating(encoded(outcome)), /outcome is 1 \(satisfactory\) or 0 \(unsatisfactory\), not/)
      const answer = await unpaid.call('end', [c.id], { body: signed(encoded(outcome)) })
      assert.equal(answer.head.status, Status.BAD_REQUEST, String(outcome))
      assert.match(answer.head.message, new RegExp(`malformed: .*not ${outcome}`))
      assert.equal((await unpaid.call('list', [c.id])).head.status, Status.OK, 'the contract did not end')
    }
    // `at` is what the rater says; 0 is accepted, and a well-formed 0 outcome ends the contract
    const ended = await unpaid.call('end', [c.id], { body: signed(encoded(0, 0)) })
    assert.equal(ended.head.status, Status.OK, ended.head.message)
    assert.equal((await unpaid.call('list', [c.id])).head.status, Status.NOT_FOUND)
    // a valid rating is far under the 1,024-byte cap; a longer reason is refused
    assert.ok(signRating({ contractId: Buffer.alloc(32), rater: renter.node.peerId.toString(), rated: free.node.peerId.toString(), satisfactory: true, reason: 'x'.repeat(256), at: Number.MAX_SAFE_INTEGER }, renter.node.signer).byteLength < 1024)
  })

  it('renews a contract (an empty one too): the shards move, paid rent stays with the old contract, and the old one says where they went', async () => {
    const c = await paid.contract(pricedTerms)
    const shard = randomBytes(3000)
    assert.equal((await c.put(shard)).head.status, Status.OK)
    const rent = await paid.call('rent', [c.id], { payment: { type: 'defer', currency: 'BTC', amount: '0.00000001', id: randomBytes(8).toString('hex'), threshold: '' } })
    assert.equal(rent.head.status, Status.OK, rent.head.message)
    assert.equal(rent.json().rentPaidPeriods, 1)
    // 3000 bytes for a day at 1000 sat per TiB-month, and the put's remainder: a sliver of a satoshi, rounded up once
    assert.deepEqual([rent.json().rentPaid, rent.json().rentAccrued], ['0.00000001 BTC', String(PRICES.storage * 3000n * BigInt(DAY) + transferRemainder(2, PRICES.upload, 3000))])
    const renew = async (old: Contract): Promise<Contract> => {
      const terms = paid.terms(pricedTerms)
      const next = new Contract(paid, terms, Buffer.from(contractIdOf(encodeTerms(terms))).toString('hex'))
      const answer = await paid.call('renew', [old.id, next.sign(old.shards, 1)], { body: paid.proposal(terms) })
      assert.equal(answer.head.status, Status.OK, answer.head.message)
      assert.deepEqual([answer.json().contract, answer.json().revision], [next.id, 1])
      next.shards = new Map(old.shards)
      next.revision = 1
      return next
    }
    const renewed = await renew(c)
    const listed = (await paid.call('list', [renewed.id])).json()
    assert.deepEqual(listed.shards, [{ root: rootOf(shard), bytes: 3000 }])
    assert.equal(listed.rentPaidPeriods, 0, 'the old contract\'s paid rent is not carried over')
    const old = await paid.call('list', [c.id])
    assert.equal(old.head.status, Status.NOT_FOUND)
    assert.equal(old.head.message, `contract ${c.id} was renewed as ${renewed.id}; its shards moved there`)
    assert.deepEqual(Buffer.from((await renewed.get(rootOf(shard), 0, 3000)).body), shard)

    const empty = await paid.contract(pricedTerms)
    const emptyRenewed = await renew(empty)
    const emptyListed = (await paid.call('list', [emptyRenewed.id])).json()
    assert.deepEqual([emptyListed.revision, emptyListed.shards], [1, []])
  })
})
