import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { MemoryDatastore } from 'datastore-core'
import { NotFoundError, ServerError } from '../../../../src/protocols/rpc/errors.ts'
import { auditPath, challengeLeaves, MerkleHasher } from '../../../../src/storage/protocol/merkle.ts'
import { encodeProofs } from '../../../../src/storage/protocol/proofs.ts'
import { StorageSession } from '../../../../src/storage/client/session.ts'
import { auditContract, AuditFailedError } from '../../../../src/storage/client/upkeep/audits.ts'
import { clientOf, FakeHosts } from '../fake-hosts.ts'

const HOUR = 3600_000

/** Audits, with the hosts faked and the clock given */
describe('storage upkeep: audits', () => {
  const setup = async (): Promise<{ fake: FakeHosts, client: Awaited<ReturnType<typeof clientOf>>, rated: string[], byHost: (i: number) => string }> => {
    const fake = await FakeHosts.create(3)
    const rated: string[] = []
    const client = await clientOf(fake, new MemoryDatastore(), { rate: (peer, event, method) => { rated.push(`${fake.hosts.findIndex(h => h.peer === peer)} ${event} ${method}`) } }, { auditIntervalMs: 1, auditGraceMs: HOUR })
    const object = await client.put({ stream: (async function * () { yield randomBytes(20_000) })(), size: 20_000 }, { name: 'f', k: 1, n: 3 })
    const byHost = (i: number): string => Object.entries(object.contracts).find(([, c]) => c.host === fake.hosts[i].peer)![0]
    return { fake, client, rated, byHost }
  }

  it('pass a host that proves its shard, condemn one that says it is gone, and give one that does not answer the grace', async () => {
    const { fake, client, rated, byHost } = await setup()
    fake.hosts[1].failing.set('prove', () => new NotFoundError('holds no such shard'))
    fake.hosts[2].failing.set('prove', () => new Error('the connection was refused'))
    // audits every millisecond: every host is due at every check
    const now = Date.now() + 2 * HOUR
    assert.deepEqual(await client.audit(now), { passed: 1, failed: 1, unreachable: 1 })
    let object = await client.find('f')
    assert.equal(object.contracts[byHost(0)].audit?.passedAt, now)
    assert.equal(object.contracts[byHost(1)].lostFor, 'cheated')
    assert.match(object.contracts[byHost(1)].lostReason ?? '', /no longer has shard/)
    assert.equal(object.contracts[byHost(2)].lost, undefined, 'within the grace')
    assert.equal(object.contracts[byHost(2)].audit?.unreachableSince, now)
    assert.deepEqual(rated, ['1 corrupt prove'])
    // the condemned host is audited no more; the unreachable one at every check
    const proves = (i: number): number => fake.calls('prove').filter(p => p.host === fake.hosts[i].peer).length
    assert.equal(await client.audit(now + HOUR - 1).then(c => c.unreachable), 1)
    assert.equal(proves(1), 1)
    assert.equal(proves(2), 2)
    // past the grace, while another host answers (it is due again 1.5 ms at most after its last audit): condemned for being unreachable
    assert.deepEqual(await client.audit(now + HOUR + 2), { passed: 1, failed: 0, unreachable: 1 })
    object = await client.find('f')
    assert.equal(object.contracts[byHost(2)].lostFor, 'unreachable')
    assert.deepEqual(rated, ['1 corrupt prove', '2 failed prove'])
  })

  it('hold no host to the grace while no host at all answers (this node is the one offline)', async () => {
    const { fake, client, byHost } = await setup()
    for (const host of fake.hosts) {
      host.failing.set('prove', () => new Error('no route to host'))
    }
    const now = Date.now() + 2 * HOUR
    assert.deepEqual(await client.audit(now), { passed: 0, failed: 0, unreachable: 3 })
    await client.audit(now + 2 * HOUR)
    let object = await client.find('f')
    assert.ok(Object.values(object.contracts).every(c => c.lost == null && c.audit?.unreachableSince == null))
    // a server-error is an answer: this node is online, and the grace runs for the others
    fake.hosts[0].failing.set('prove', () => new ServerError('the disk is busy'))
    await client.audit(now + 3 * HOUR)
    object = await client.find('f')
    assert.equal(object.contracts[byHost(1)].audit?.unreachableSince, now + 3 * HOUR)
    assert.equal(object.contracts[byHost(0)].lost, undefined)
  })
})

/** One audit of one shard (PROTOCOL.md section 8d, prove) */
describe('storage audits', () => {
  /** A host holding `shard` that answers prove() by `answer(challenge, count)` */
  const host = (answer: (challenge: Buffer, count: number) => Uint8Array) => async (_peer: string, request: any): Promise<any> => ({ body: { bytes: async () => answer(Buffer.from(request.args[2], 'hex'), Number(request.args[3])) } })
  const shardOf = (size: number): { data: Buffer, hasher: MerkleHasher, root: string } => {
    const data = randomBytes(size)
    const hasher = new MerkleHasher()
    hasher.update(data)
    return { data, hasher, root: Buffer.from(hasher.digest()).toString('hex') }
  }
  const honest = (s: ReturnType<typeof shardOf>) => (challenge: Buffer, count: number): Uint8Array =>
    encodeProofs(challengeLeaves(challenge, s.hasher.leaves.length, count).map(i => ({ index: i, leaf: s.data.subarray(i * 4096, (i + 1) * 4096), path: auditPath(s.hasher.leaves, i) })))

  it('pass a host that holds the shard, and catch one that proves another shard, replays an old proof or picks its own leaves', async () => {
    const shard = shardOf(20 * 4096 + 5)
    const other = shardOf(20 * 4096 + 5)
    const target = { contract: 'c', host: 'h', shards: [[shard.root, shard.data.byteLength]] as Array<[string, number]> }
    const passed = await auditContract(target, new StorageSession(host(honest(shard))))
    assert.equal(passed.root, shard.root)
    assert.equal(passed.leaves.length, 4)
    // the proofs of another shard (the host kept only that one)
    await assert.rejects(auditContract(target, new StorageSession(host(honest(other)))), AuditFailedError)
    // last time's proofs: a fresh challenge picks other leaves
    const old = honest(shard)(randomBytes(32), 4)
    await assert.rejects(auditContract(target, new StorageSession(host(() => old))), AuditFailedError)
    // leaves of its own choosing, with valid paths
    await assert.rejects(auditContract(target, new StorageSession(host((_c, count) => encodeProofs(Array.from({ length: count }, () => ({ index: 0, leaf: shard.data.subarray(0, 4096), path: auditPath(shard.hasher.leaves, 0) })))))), AuditFailedError)
    await assert.rejects(auditContract(target, new StorageSession(host(() => Uint8Array.of(7, 7)))), AuditFailedError)
  })
})
