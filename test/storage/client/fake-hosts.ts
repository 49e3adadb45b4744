import { createHash } from 'node:crypto'
import { buffer } from 'node:stream/consumers'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openCloudSigner, type CredentialSigner } from '../../../src/protocols/rpc/credentials.ts'
import { Reader } from '../../../src/protocols/codec.ts'
import { InsufficientStorageError, NotFoundError } from '../../../src/protocols/rpc/errors.ts'
import { contractIdOf, decodeTerms, encodeRevision, nextRevision, signRevision, signTerms } from '../../../src/storage/protocol/contract.ts'
import { auditPath, challengeLeaves, LEAF_SIZE, MerkleHasher } from '../../../src/storage/protocol/merkle.ts'
import { encodeProofs } from '../../../src/storage/protocol/proofs.ts'
import { StorageClient, type ContractRecord, type HostOffer, type StorageClientComponents, type StorageClientInit, type StoredObject } from '../../../src/storage/client/storage-client.ts'
import type { CallRequest, CallResponse } from '../../../src/protocols/rpc/rpc-client.ts'

/**
 * Storage hosts without a network: a `call` that answers the storage
 * protocol as a host would (real signatures of terms and revisions, shards
 * kept in memory), and records every request it was asked with what it
 * paid. A test makes a host fail a method with `failing`.
 */

export const DAY = 86_400_000

export interface Asked {
  host: string
  method: string
  args: string[]
  sats: bigint
}

export interface FakeHost {
  peer: string
  signer: CredentialSigner
  offer: HostOffer
  /** contract id -> its shards, root hex -> bytes */
  contracts: Map<string, { shards: Array<{ root: Uint8Array, length: number }>, bytes: Map<string, Uint8Array>, revision: number }>
  /** methods this host refuses, with the error it throws */
  failing: Map<string, () => Error>
  /**
   * methods this host answers only after this many ms (Infinity: never, a
   * frozen host), until the call's signal aborts; a function is asked at
   * each call (a host that freezes after its first answer)
   */
  delays: Map<string, number | (() => number)>
  /** the most max-bytes this host signs for (insufficient-storage above it), default no limit */
  capacity?: number
  /** the max-bytes of every contract it signed, in order */
  signed: number[]
  /** what `rent` answers (default {}: a host that says nothing of its sums) */
  rentAnswer?: () => unknown
}

/** `ms` of waiting, or for ever, cut short by `signal` */
async function wait (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = Number.isFinite(ms) ? setTimeout(resolve, ms) : undefined
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason) }, { once: true })
  })
}

async function bodyOf (request: CallRequest): Promise<Uint8Array> {
  return request.body == null ? new Uint8Array(0) : buffer(request.body.open())
}

/** an answer's body as the RPC client gives it: its length and digest, read whole or frame by frame */
const answer = (value: unknown): CallResponse => {
  const bytes = value instanceof Uint8Array ? value : new TextEncoder().encode(JSON.stringify(value))
  return { body: { length: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest(), bytes: async () => bytes, [Symbol.asyncIterator]: async function * () { yield bytes } } } as unknown as CallResponse
}
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

export class FakeHosts {
  readonly hosts: FakeHost[] = []
  readonly asked: Asked[] = []

  static async create (count: number, storagePrice = 1000n): Promise<FakeHosts> {
    const fake = new FakeHosts()
    for (let i = 0; i < count; i++) {
      const key = await generateKeyPair('Ed25519')
      const peer = peerIdFromPrivateKey(key).toString()
      fake.hosts.push({ peer, signer: openCloudSigner(key), offer: { peer, storage: storagePrice, upload: 0n, download: 0n }, contracts: new Map(), failing: new Map(), delays: new Map(), signed: [] })
    }
    return fake
  }

  host (peer: string): FakeHost {
    const host = this.hosts.find(h => h.peer === peer)
    if (host == null) {
      throw new Error(`no such host ${peer}`)
    }
    return host
  }

  /** what the client asked, method by method (`rent`, `renew`, ...) */
  calls (method: string): Asked[] {
    return this.asked.filter(a => a.method === method)
  }

  readonly call = async (peer: string, request: CallRequest, sats: bigint): Promise<CallResponse> => {
    request.signal?.throwIfAborted()
    const args = request.args ?? []
    this.asked.push({ host: peer, method: request.method, args, sats })
    const host = this.host(peer)
    const delay = host.delays.get(request.method)
    if (delay != null) {
      await wait(typeof delay === 'function' ? delay() : delay, request.signal)
    }
    const fail = host.failing.get(request.method)
    if (fail != null) {
      throw fail()
    }
    switch (request.method) {
      case 'contract': {
        const reader = new Reader(await bodyOf(request))
        const terms = reader.bytes(4096, 'terms')
        const { maxBytes } = decodeTerms(terms)
        if (host.capacity != null && maxBytes > host.capacity) {
          throw new InsufficientStorageError(`this host is full: ${maxBytes} bytes asked, ${host.capacity} free`)
        }
        host.signed.push(maxBytes)
        const id = hex(contractIdOf(terms))
        host.contracts.set(id, { shards: [], bytes: new Map(), revision: 0 })
        return answer({ contract: id, hostSignature: b64(signTerms(terms, host.signer)) })
      }
      case 'renew': {
        const reader = new Reader(await bodyOf(request))
        const terms = reader.bytes(4096, 'terms')
        const id = contractIdOf(terms)
        const old = host.contracts.get(args[0])
        if (old == null) {
          throw new NotFoundError(`no contract ${args[0]}`)
        }
        host.contracts.set(hex(id), { shards: [...old.shards], bytes: new Map(old.bytes), revision: 1 })
        const revision = encodeRevision(nextRevision(id, 0, old.shards))
        return answer({ contract: hex(id), revision: 1, hostSignature: b64(signTerms(terms, host.signer)), revisionSignature: b64(signRevision(revision, host.signer)) })
      }
      case 'rent':
        return answer(host.rentAnswer?.() ?? {})
      case 'put': {
        const c = host.contracts.get(args[0])
        if (c == null) {
          throw new NotFoundError(`no contract ${args[0]}`)
        }
        const shard = await bodyOf(request)
        if (c.bytes.has(args[1])) {
          // held already: the revision stays
          const revision = nextRevision(Buffer.from(args[0], 'hex'), c.revision - 1, c.shards)
          return answer({ revision: revision.number, hostSignature: b64(signRevision(encodeRevision(revision), host.signer)) })
        }
        const shards = [...c.shards, { root: Buffer.from(args[1], 'hex'), length: shard.byteLength }]
        const revision = nextRevision(Buffer.from(args[0], 'hex'), c.revision, shards)
        c.shards = shards
        c.revision = revision.number
        c.bytes.set(args[1], shard)
        return answer({ revision: revision.number, hostSignature: b64(signRevision(encodeRevision(revision), host.signer)) })
      }
      case 'get': {
        const bytes = host.contracts.get(args[0])?.bytes.get(args[1])
        if (bytes == null) {
          throw new NotFoundError(`holds no shard ${args[1]}`)
        }
        return answer(bytes.subarray(Number(args[2]), Number(args[2]) + Number(args[3])))
      }
      case 'prove': {
        // honest proofs of the leaves the challenge picks
        const bytes = host.contracts.get(args[0])?.bytes.get(args[1])
        if (bytes == null) {
          throw new NotFoundError(`holds no shard ${args[1]}`)
        }
        const hasher = new MerkleHasher()
        hasher.update(bytes)
        hasher.digest()
        const picked = challengeLeaves(Buffer.from(args[2], 'hex'), hasher.leaves.length, Number(args[3]))
        return answer(encodeProofs(picked.map(i => ({ index: i, leaf: bytes.subarray(i * LEAF_SIZE, (i + 1) * LEAF_SIZE), path: auditPath(hasher.leaves, i) }))))
      }
      case 'delete': {
        const c = host.contracts.get(args[0])
        if (c == null || !c.bytes.has(args[1])) {
          throw new NotFoundError(`holds no shard ${args[1]}`)
        }
        const shards = c.shards.filter(s => hex(s.root) !== args[1])
        const revision = nextRevision(Buffer.from(args[0], 'hex'), c.revision, shards)
        c.shards = shards
        c.revision = revision.number
        c.bytes.delete(args[1])
        return answer({ revision: revision.number, hostSignature: b64(signRevision(encodeRevision(revision), host.signer)) })
      }
      case 'list': {
        // what a host holds, without a signed revision to resynchronise from
        const c = host.contracts.get(args[0])
        if (c == null) {
          throw new NotFoundError(`no contract ${args[0]}`)
        }
        return answer({ contract: '', revision: c.revision, signedRevision: null, shards: c.shards.map(s => ({ root: hex(s.root), bytes: s.length })), rentPaidPeriods: 0, paidThrough: new Date(0).toISOString() })
      }
      case 'end':
        host.contracts.delete(args[0])
        return answer({})
      default:
        throw new Error(`the fake host does not answer ${request.method}`)
    }
  }
}

/** A client of its own key on `datastore`, calling `fake`'s hosts */
export async function clientOf (fake: FakeHosts, datastore = new MemoryDatastore(), components: Partial<StorageClientComponents> = {}, init: StorageClientInit = {}): Promise<StorageClient> {
  const key = await generateKeyPair('Ed25519')
  return new StorageClient({
    peerId: peerIdFromPrivateKey(key).toString(),
    signer: openCloudSigner(key),
    datastore,
    storageKey: () => new Uint8Array(32).fill(7),
    hosts: async () => fake.hosts.map(h => h.offer),
    call: fake.call,
    ...components
  }, init)
}

/** A contract record as a put leaves it, for records written straight into the datastore */
export function contractRecord (host: string, changes: Partial<ContractRecord> = {}): ContractRecord {
  const start = changes.start ?? Date.now()
  return {
    host, signed: '', start, end: start + 30 * DAY, maxBytes: 1000, storagePrice: '1000', uploadPrice: '0', downloadPrice: '0',
    rentPeriodMs: DAY, rentPaidPeriods: 1, revision: 1, shards: [['00'.repeat(32), 17]], spent: { upload: '0', download: '0', rent: '0' },
    ...changes
  }
}

/** An object of one segment, one shard per contract, written straight into the records */
export async function storeObject (datastore: MemoryDatastore, contracts: Record<string, ContractRecord>, changes: Partial<StoredObject> = {}): Promise<StoredObject> {
  const ids = Object.keys(contracts)
  const object: StoredObject = {
    id: '11'.repeat(16), name: 'f', size: 1, sha256: '', createdAt: Date.now(), k: 1, n: ids.length, segmentSize: 4096,
    segments: [{ plainLength: 1, shardSize: 17, shards: ids.map(id => ({ host: contracts[id].host, contract: id, root: '00'.repeat(32) })) }],
    contracts,
    ...changes
  }
  const batch = datastore.batch()
  batch.put(new Key(`/storage/objects/${object.id}`), new TextEncoder().encode(JSON.stringify(object)))
  batch.put(new Key(`/storage/names/${encodeURIComponent(object.name)}`), new TextEncoder().encode(JSON.stringify(object.id)))
  await batch.commit()
  return object
}
