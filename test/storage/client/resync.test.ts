import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { buffer } from 'node:stream/consumers'
import { join } from 'node:path'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openCloudSigner } from '../../../src/protocols/rpc/credentials.ts'
import { PaymentTooLowError } from '../../../src/protocols/rpc/errors.ts'
import { formatAmount } from '../../../src/protocols/units.ts'
import { EMPTY_BODY, type OutgoingBody } from '../../../src/protocols/rpc/body.ts'
import { StorageClient } from '../../../src/storage/client/storage-client.ts'
import { StorageHost } from '../../../src/storage/host/storage-host.ts'
import type { StorageMethod } from '../../../src/storage/host/args.ts'
import type { CallRequest, CallResponse } from '../../../src/protocols/rpc/rpc-client.ts'
import { tempDir } from '../../helpers/nodes.ts'

const answer = (bytes: Uint8Array): CallResponse => ({ body: { length: bytes.byteLength, bytes: async () => bytes, [Symbol.asyncIterator]: async function * () { yield bytes } } }) as unknown as CallResponse
const json = (value: unknown): CallResponse => answer(new TextEncoder().encode(JSON.stringify(value)))

/**
 * Real StorageHost engines in this process, the client's calls routed to
 * their handlers (as the storage module's service does): what a crash
 * between a host's countersigned revision and this node's record leaves,
 * and how the next put and check put it right from the host's signed
 * revision.
 */
/** Hosts and a client on them, the client's calls routed to the hosts' handlers, each payment checked against the host's price as its payment desk would */
async function network (dir: string, prices: { storage: bigint, upload: bigint, download: bigint }, count = 2): Promise<{ hosts: Array<{ peer: string, engine: StorageHost }>, client: StorageClient, datastore: MemoryDatastore, renter: string, paid: Array<{ method: string, sats: bigint }> }> {
  const hosts: Array<{ peer: string, engine: StorageHost }> = []
  for (let i = 0; i < count; i++) {
    const key = await generateKeyPair('Ed25519')
    const peer = peerIdFromPrivateKey(key).toString()
    const engine = new StorageHost({ peerId: peer, signer: openCloudSigner(key), datastore: new MemoryDatastore(), prices: () => prices, takesPayments: true }, { dir: join(dir, `host-${i}`), capacity: 1024 ** 3 })
    await engine.start()
    hosts.push({ peer, engine })
  }
  const key = await generateKeyPair('Ed25519')
  const renter = peerIdFromPrivateKey(key).toString()
  const paid: Array<{ method: string, sats: bigint }> = []
  const call = async (target: string, request: CallRequest, sats: bigint): Promise<CallResponse> => {
    const { engine } = hosts.find(h => h.peer === target)!
    const body = request.body ?? EMPTY_BODY
    const req = { caller: renter, args: request.args ?? [], signal: request.signal ?? new AbortController().signal, body: Object.assign(body.open(request.signal), { length: body.length }) }
    const price = engine.cost(request.method as StorageMethod, { caller: renter, args: req.args, bodyLength: body.length }) ?? 0n
    if (sats < price) {
      paid.push({ method: `${request.method} refused`, sats })
      throw new PaymentTooLowError(`storage.${request.method} costs ${price} sat; the payment offers ${sats}`)
    }
    paid.push({ method: request.method, sats })
    switch (request.method as StorageMethod) {
      case 'get': return answer(await buffer((await engine.get(req) as OutgoingBody).open()))
      case 'prove': return answer(await engine.prove(req))
      default: return json(await (engine as any)[request.method](req))
    }
  }
  const datastore = new MemoryDatastore()
  const client = new StorageClient({ peerId: renter, signer: openCloudSigner(key), datastore, storageKey: () => new Uint8Array(32).fill(7), hosts: async () => hosts.map(h => ({ peer: h.peer, ...prices })), call })
  return { hosts, client, datastore, renter, paid }
}

const listOf = async (engine: StorageHost, renter: string, id: string): Promise<any> => engine.list({ caller: renter, args: [id], signal: new AbortController().signal, body: Object.assign(EMPTY_BODY.open(), { length: 0 }) } as any)

describe('storage client on real host engines: transfers\' fractions, and a crash between the host\'s revision and the record', () => {
  it('pays each get\'s whole satoshis with it, accrues its fraction with the rent, agrees with the host to the unit, and catches up when a crash lost its count', async () => {
    const dir = await tempDir()
    try {
      // downloads priced so that a 100 KB shard's get is 0.4 sat: its fractions add up to satoshis
      const { hosts, client, renter, paid } = await network(dir.path, { storage: 1833n, upload: 0n, download: 4_400_000n })
      const bytes = randomBytes(100_000)
      await client.put({ stream: (async function * () { yield bytes })(), size: bytes.byteLength }, { name: 'a', k: 1, n: 2 })
      const read = async (times: number): Promise<void> => {
        for (let i = 0; i < times; i++) {
          assert.ok((await buffer((await client.getStream('a')).stream)).equals(bytes))
        }
      }
      await read(20)
      assert.ok(paid.filter(p => p.method === 'get').every(p => p.sats === 0n), 'each get pays its whole satoshis (0) with the call')
      const day = 86_400_000
      assert.equal(await client.payRent(Date.now() + 1.5 * day), 4)
      const refused = (): number => paid.filter(p => p.method === 'rent refused').length
      assert.equal(refused(), 0, 'this node counted the gets as the hosts did: no rent payment refused')
      const rents = (): bigint[] => paid.filter(p => p.method === 'rent').map(p => p.sats)
      // 20 gets of 0.4 sat, on whichever host answered first: their 8 sat are paid with the rent
      assert.equal(rents().reduce((a, b) => a + b, 0n) >= 8n, true, `rent paid ${rents().join(', ')}`)
      for (const [id, c] of client.contractList()) {
        const host = hosts.find(h => h.peer === c.host)!
        const listed = await listOf(host.engine, renter, id)
        assert.deepEqual([listed.rentAccrued, listed.rentPaid], [c.rentAccrued, formatAmount(BigInt(c.rentPaid ?? '0'))], 'host and client count the same, to the unit')
      }
      // 20 more gets, and then a crash loses this node's count of them
      const counted = new Map(client.contractList().map(([id, c]) => [id, c.rentAccrued]))
      await read(20)
      for (const [id, c] of client.contractList()) {
        c.rentAccrued = counted.get(id)
      }
      // the next period: the host's price is over what this node computes, so it is refused; this node takes the host's sums and pays
      const before = rents().length
      assert.equal(await client.payRent(Date.now() + 2.5 * day), 2)
      assert.ok(refused() >= 1, 'the host refused the payment that left the lost gets out')
      assert.ok(rents().slice(before).reduce((a, b) => a + b, 0n) >= 7n, `the lost gets are paid: ${rents().slice(before).join(', ')}`)
      for (const [id, c] of client.contractList()) {
        const host = hosts.find(h => h.peer === c.host)!
        const listed = await listOf(host.engine, renter, id)
        assert.deepEqual([listed.rentAccrued, listed.rentPaidPeriods], [c.rentAccrued, c.rentPaidPeriods])
      }
      await client.stop()
      for (const h of hosts) {
        await h.engine.stop()
      }
    } finally {
      await dir.cleanup()
    }
  })

  it('takes the host\'s signed revision when it is ahead, goes on under it, and deletes the shards no object names', async () => {
    const dir = await tempDir()
    try {
      const { hosts, client, datastore, renter } = await network(dir.path, { storage: 0n, upload: 0n, download: 0n })
      const put = async (name: string, bytes: Uint8Array): Promise<void> => { await client.put({ stream: (async function * () { yield bytes })(), size: bytes.byteLength }, { name, k: 1, n: 2 }) }

      const a = randomBytes(5000)
      await put('a', a)
      // what this node had on record after a: kept aside
      const records = (client as any).records
      const saved = new Map(client.contractList().map(([id, c]) => [id, { revision: c.revision, shards: [...c.shards], signedRevision: c.signedRevision }]))
      // b is stored, and then this node "crashes" before its record of b's revisions and of b itself are kept
      await put('b', randomBytes(7000))
      const b = await client.find('b')
      for (const [id, was] of saved) {
        Object.assign(client.contractList().find(([x]) => x === id)![1], was)
        await records.contracts.save(id)
      }
      await datastore.delete(new Key(`/storage/objects/${b.id}`))
      await datastore.delete(new Key('/storage/names/b'))
      for (const { engine } of hosts) {
        assert.equal(engine.used(), 5016 + 7016, 'the hosts hold a and b')
      }

      // the next put signs the revision after the one on record: the host refuses it, the client resynchronises and goes on
      const c = randomBytes(3000)
      await put('c', c)
      for (const [id, record] of client.contractList()) {
        const host = hosts.find(h => h.peer === record.host)!
        const listed = await listOf(host.engine, renter, id)
        assert.deepEqual([listed.revision, listed.shards.length], [record.revision, 3], 'the host\'s revision: a, b\'s orphan and c')
        assert.equal(record.revision, 3)
      }
      // the next check deletes b's shards, which no object names
      assert.deepEqual(await client.collectGarbage(), { deleted: 2, ended: 0 })
      for (const { engine } of hosts) {
        assert.equal(engine.used(), 5016 + 3016)
      }
      assert.ok((await buffer((await client.getStream('a')).stream)).equals(a))
      assert.ok((await buffer((await client.getStream('c')).stream)).equals(c))
      await client.stop()
      for (const { engine } of hosts) {
        await engine.stop()
      }
    } finally {
      await dir.cleanup()
    }
  })
})
