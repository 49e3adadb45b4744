import { buffer } from 'node:stream/consumers'
import { describe, it, before, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryDatastore } from 'datastore-core'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Writer } from '../../src/protocols/codec.ts'
import { openCloudSigner, type CredentialSigner } from '../../src/protocols/rpc/credentials.ts'
import { AccessDeniedError, BadRequestError, InsufficientStorageError } from '../../src/protocols/rpc/errors.ts'
import { CONTRACT_VERSION, encodeRevision, encodeTerms, nextRevision, signRevision, signTerms, TIB, transferCost, type ContractTerms } from '../../src/storage/protocol/contract.ts'
import { merkleRoot } from '../../src/storage/protocol/merkle.ts'
import { encodeGrant, encodeGrantBody, signGrant, sortRoots } from '../../src/storage/protocol/share.ts'
import { ShareExpiredError, ShareNotHeldError, ShareRevokedError } from '../../src/storage/errors.ts'
import { MAX_REVOKED_PER_RENTER } from '../../src/storage/host/revocations.ts'
import { StorageHost } from '../../src/storage/host/storage-host.ts'
import type { Datastore } from 'interface-datastore'
import type { HostRequest } from '../../src/storage/host/request.ts'

const KIB = 1024
const DAY = 86_400_000
// years after the machine's clock: a check that read the real clock would see every grant expired or too long
const T0 = Date.parse('2031-03-01T12:00:00Z')

interface Party { id: string, signer: CredentialSigner }

async function party (seed: number): Promise<Party> {
  const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(seed))
  return { id: peerIdFromPrivateKey(key).toString(), signer: openCloudSigner(key) }
}

function request (caller: string, args: string[], body: Uint8Array = new Uint8Array(0)): HostRequest {
  const chunks = async function * (): AsyncGenerator<Uint8Array> {
    if (body.byteLength > 0) {
      yield body
    }
  }
  return { caller, args, signal: new AbortController().signal, body: Object.assign(chunks(), { length: body.byteLength }) }
}

/**
 * The host's side of shares without a network (PROTOCOL.md 8h): what
 * shared-get costs and who pays, what a renter's own grant over another
 * renter's shards gets, unshare's rules and its bound, and revocations
 * across a restart, on a fake clock
 */
describe('shares at the host: price, ownership, unshare', () => {
  let hostKey: Party
  let renter: Party
  let stranger: Party
  let dir: string
  let clock: number
  let datastore: Datastore
  let host: StorageHost
  let contractId: string
  let root: string
  const shard = Uint8Array.from({ length: 16 * KIB }, (_, i) => (i * 7) % 256)

  before(async () => {
    [hostKey, renter, stranger] = await Promise.all([party(1), party(2), party(3)])
  })

  const newHost = async (): Promise<StorageHost> => {
    const h = new StorageHost({ peerId: hostKey.id, signer: hostKey.signer, datastore, prices: () => ({ storage: 0n, upload: 0n, download: 0n }), takesPayments: true, now: () => clock }, { dir, capacity: 1024 * KIB })
    await h.start()
    return h
  }

  const grantBody = (signer: Party, changes: { expires?: number, id?: number } = {}): Uint8Array => {
    const grant = encodeGrant({ renter: signer.id, id: new Uint8Array(16).fill(changes.id ?? 9), expires: changes.expires ?? clock + DAY, roots: sortRoots([Buffer.from(root, 'hex')]) })
    return encodeGrantBody(grant, signGrant(grant, signer.signer))
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oc-share-host-'))
    clock = T0
    datastore = new MemoryDatastore()
    host = await newHost()
    // a version 2 contract whose get price leaves a fraction of a satoshi per byte: one more than a satoshi per byte
    const terms: ContractTerms = { version: CONTRACT_VERSION, renter: renter.id, host: hostKey.id, nonce: new Uint8Array(16).fill(5), start: clock, end: clock + 30 * DAY, maxBytes: 64 * KIB, storagePrice: 0n, uploadPrice: 0n, downloadPrice: BigInt(TIB) + 1n, rentPeriodMs: DAY }
    const encoded = encodeTerms(terms)
    contractId = (await host.contract(request(renter.id, [], new Writer().bytes(encoded).bytes(signTerms(encoded, renter.signer)).finish()))).contract
    root = Buffer.from(merkleRoot(shard)).toString('hex')
    const rev = nextRevision(Buffer.from(contractId, 'hex'), 0, [{ root: Buffer.from(root, 'hex'), length: shard.byteLength }])
    await host.put(request(renter.id, [contractId, root, Buffer.from(signRevision(encodeRevision(rev), renter.signer)).toString('base64')], shard))
  })

  afterEach(async () => {
    await host.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('prices shared-get as get at the renter\'s contract\'s download price, and accrues nothing on the renter\'s contract', async () => {
    const body = grantBody(renter)
    const query = { caller: stranger.id, args: [root, '0', String(shard.byteLength)], bodyLength: body.byteLength }
    assert.equal(host.cost('shared-get', query), transferCost(CONTRACT_VERSION, BigInt(TIB) + 1n, shard.byteLength))
    assert.equal(host.cost('shared-get', query), 16_384n)
    const before = (await host.list(request(renter.id, [contractId]))).rentAccrued
    const served = await buffer((await host.sharedGet(request(stranger.id, query.args, body))).open())
    assert.deepEqual(Uint8Array.from(served), shard)
    assert.equal((await host.list(request(renter.id, [contractId]))).rentAccrued, before, 'the holder\'s download is not the renter\'s to pay')
    // the renter's own get of the same range does accrue the fraction
    await buffer((await host.get(request(renter.id, [contractId, root, '0', String(shard.byteLength)]))).open())
    assert.notEqual((await host.list(request(renter.id, [contractId]))).rentAccrued, before)
    // a root no contract here holds is refused before payment
    assert.throws(() => host.cost('shared-get', { ...query, args: ['00'.repeat(32), '0', '1'] }), ShareNotHeldError)
  })

  it('serves no one on a grant signed by anyone but the renter whose contract holds the root', async () => {
    // the stranger signs its own grant, validly, over the renter's root: it holds no contract with that shard here
    await assert.rejects(host.sharedGet(request(stranger.id, [root, '0', '16'], grantBody(stranger))), ShareNotHeldError)
  })

  it('takes unshare only from a renter of this host, keeps it across a restart until the expiry, and bounds it per renter', async () => {
    await assert.rejects(host.unshare(request(stranger.id, ['09'.repeat(16), String(clock + DAY)])), AccessDeniedError)
    await assert.rejects(host.unshare(request(renter.id, ['09'.repeat(15), String(clock + DAY)])), BadRequestError)
    assert.deepEqual(await host.unshare(request(renter.id, ['07'.repeat(16), String(clock - 1)])), { revoked: '07'.repeat(16), until: null })
    assert.deepEqual(await host.unshare(request(renter.id, ['09'.repeat(16), String(clock + DAY)])), { revoked: '09'.repeat(16), until: new Date(clock + DAY).toISOString() })
    await assert.rejects(host.sharedGet(request(stranger.id, [root, '0', '16'], grantBody(renter))), ShareRevokedError)
    // another grant of the renter's is still served
    await buffer((await host.sharedGet(request(stranger.id, [root, '0', '16'], grantBody(renter, { id: 8 })))).open())
    await host.stop()
    host = await newHost()
    await assert.rejects(host.sharedGet(request(stranger.id, [root, '0', '16'], grantBody(renter))), ShareRevokedError)
    // past its expiry the grant is refused as expired, and the revocation is forgotten at the next start
    clock += DAY
    await assert.rejects(host.sharedGet(request(stranger.id, [root, '0', '16'], grantBody(renter, { expires: T0 + DAY }))), ShareExpiredError)

    // the bound: MAX_REVOKED_PER_RENTER live ones, then the next is refused; one expiring frees a place
    for (let i = 0; i < MAX_REVOKED_PER_RENTER; i++) {
      await host.unshare(request(renter.id, [i.toString(16).padStart(32, '0'), String(i === 0 ? clock + 1000 : clock + DAY)]))
    }
    await assert.rejects(host.unshare(request(renter.id, ['ff'.repeat(16), String(clock + DAY)])), InsufficientStorageError)
    clock += 1000
    await host.unshare(request(renter.id, ['ff'.repeat(16), String(clock + DAY)]))
  })
})
