import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { NoDeferError, ServerError } from '../../src/protocols/rpc/errors.ts'
import { REPUTATION_TOPIC } from '../../src/protocols/topics.ts'
import { testConfig, tempDir, waitFor } from '../helpers/nodes.ts'

describe('reputation between real nodes', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  const nodes = new Map<string, OpenCloudNode>()
  let payments: Record<string, unknown>

  const start = async (name: string, changes: Record<string, unknown> = {}, bootstrap?: string): Promise<OpenCloudNode> => {
    const node = await OpenCloudNode.create({ dataDir: `${dir.path}/${name}`, config: testConfig({ payments, ...changes }), bootstrap: bootstrap == null ? undefined : [bootstrap] })
    await node.start()
    nodes.set(name, node)
    return node
  }
  const addr = (n: OpenCloudNode): string => n.libp2p.getMultiaddrs()[0].toString()
  const hash = { service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode('work')) }

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: `${dir.path}/chain`, blockIntervalMs: 0 })
    await regtest.start()
    payments = { network: 'regtest', chain: regtest.url, settleIntervalMs: 3_600_000, graceMs: 1_000 }
    const hub = await start('hub')
    const client = await start('client', {}, addr(hub))
    await start('honest', { services: { sha256: { prices: { hash: 1000 } } }, policies: { global: { 'max-tab': '0.0001 BTC' } } }, addr(hub))
    const cheat = await start('cheat', { services: { sha256: { prices: { hash: 1000 } } } }, addr(hub))
    // the observer trusts the client's opinions and never deals with the cheat
    await start('observer', { reputation: { pretrusted: [client.peerId.toString()] } }, addr(hub))
    await regtest.faucet(await client.wallet.newAddress(), 1_000_000n)
    await regtest.chain.mine(1, regtest.faucetAddress)
    // the cheat takes payment for sha256.hash and then fails
    cheat.registry.resolve('sha256', 'hash').method.handle = async () => { throw new Error('the disk is gone') }
    const observer = nodes.get('observer') as OpenCloudNode
    await waitFor(() => observer.libp2p.services.pubsub.getSubscribers(REPUTATION_TOPIC).length > 0 && client.libp2p.services.pubsub.getSubscribers(REPUTATION_TOPIC).length > 0, 15_000, 'reputation subscriptions')
  })

  after(async () => {
    for (const node of nodes.values()) {
      await node.stop()
    }
    await regtest?.stop()
    await dir?.cleanup()
  })

  it('takes trust from a provider that is paid and does not serve, at the payer and through gossip elsewhere', async () => {
    const client = nodes.get('client') as OpenCloudNode
    const honest = nodes.get('honest') as OpenCloudNode
    const cheat = nodes.get('cheat') as OpenCloudNode
    const observer = nodes.get('observer') as OpenCloudNode
    const cheatId = cheat.peerId.toString()

    // first both serve a free call well
    await client.call(addr(honest), { service: 'info', method: 'node' })
    await client.call(addr(cheat), { service: 'info', method: 'node' })
    await waitFor(async () => (await observer.reputation.view(cheatId)).score > 0, 15_000, 'the observer to trust the cheat a little')

    const paid = await client.paidCall(addr(honest), hash, { pay: { kind: 'attached', sats: 1000n } })
    assert.equal(paid.response.statusName, 'ok')
    for (let i = 0; i < 2; i++) {
      await assert.rejects(client.paidCall(addr(cheat), hash, { pay: { kind: 'attached', sats: 1000n } }), ServerError)
    }
    const records = await client.reputation.store.records(cheatId)
    assert.equal(records[0].event, 'paid-not-served')
    assert.equal(records[0].promised, '0.00001 BTC attached')
    assert.equal((await client.reputation.view(cheatId)).trust, 0, 'no trust left at the payer')
    assert.ok((await client.reputation.view(honest.peerId.toString())).trust > 0)

    // the observer never dealt with the cheat, and learns from the client's summary
    await waitFor(async () => (await observer.reputation.view(cheatId)).score === 0, 15_000, 'the observer to stop trusting the cheat')
    assert.ok((await observer.reputation.view(honest.peerId.toString())).score > 0)
    assert.equal((await observer.reputation.store.countsOf(cheatId)).unsatisfactory, 0, 'the observer has no experience of its own')

    // provider selection prefers the trusted provider at the same price
    await honest.market.announce()
    await cheat.market.announce()
    await waitFor(() => client.market.index.query({ service: 'sha256', method: 'hash' }).length === 2, 10_000, 'both offers')
    assert.equal((await client.selectProviders('sha256', 'hash'))[0], honest.peerId.toString())
  })

  it('refuses credit to a caller that does not honor a deferred payment, and rates it', async () => {
    const client = nodes.get('client') as OpenCloudNode
    const honest = nodes.get('honest') as OpenCloudNode
    // this client never settles (its settle task runs hourly): the promise falls due after 1 s, overdue after 1 s more
    await client.paidCall(addr(honest), hash, { pay: { kind: 'defer', sats: 1000n }, threshold: 'time:1' })
    await new Promise(resolve => setTimeout(resolve, 2_500))
    await assert.rejects(client.call(addr(honest), { ...hash, payment: { type: 'defer', currency: 'BTC', amount: '0.00001', id: 'again', threshold: '' } }), (err: any) => {
      assert.ok(err instanceof NoDeferError)
      assert.match(err.message, /overdue/)
      return true
    })
    const counts = await honest.reputation.store.countsOf(client.peerId.toString())
    assert.ok(counts.unsatisfactory >= 1)
  })

  it('keeps trust across a restart', async () => {
    const observer = nodes.get('observer') as OpenCloudNode
    const honestId = (nodes.get('honest') as OpenCloudNode).peerId.toString()
    const before = await observer.reputation.view(honestId)
    assert.ok(before.score > 0)
    await observer.stop()
    const again = await start('observer', { reputation: { pretrusted: [(nodes.get('client') as OpenCloudNode).peerId.toString()] } })
    assert.deepEqual(await again.reputation.view(honestId), before)
  })
})

describe('reputation summaries on disk', () => {
  it('keep no more than the raters held in memory, the newest, and drop the rest at start', async () => {
    const { LevelDatastore } = await import('datastore-level')
    const { generateKeyPair } = await import('@libp2p/crypto/keys')
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
    const { openCloudSigner } = await import('../../src/protocols/rpc/credentials.ts')
    const { encodeSummary } = await import('../../src/reputation/summary.ts')
    const { Reputation } = await import('../../src/reputation/reputation.ts')
    const { ReputationStore } = await import('../../src/reputation/store.ts')
    const dir = await tempDir()
    const datastore = new LevelDatastore(`${dir.path}/datastore`)
    await datastore.open()
    try {
      const store = new ReputationStore(datastore)
      const subject = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
      const now = Date.now()
      // 30 raters' summaries piled up on disk, as an older version kept them
      for (let i = 0; i < 30; i++) {
        const key = await generateKeyPair('Ed25519')
        await store.saveSummary(peerIdFromPrivateKey(key).toString(), encodeSummary({ issuedAt: now - i * 1000, opinions: new Map([[subject, 1]]) }, openCloudSigner(key)))
      }
      const self = await generateKeyPair('Ed25519')
      // gossipsub is not what is tested here: a stand-in that accepts the calls
      const pubsub = { topicValidators: new Map(), addEventListener: () => {}, removeEventListener: () => {}, subscribe: () => {}, unsubscribe: () => {}, publish: async () => ({ recipients: [] }) }
      const reputation = new Reputation({ peerId: peerIdFromPrivateKey(self), pubsub: pubsub as any, signer: openCloudSigner(self), datastore }, { maxRaters: 10 })
      await reputation.start()
      await reputation.stop()
      const kept = await store.summaries()
      assert.equal(kept.length, 10)
    } finally {
      await datastore.close()
      await dir.cleanup()
    }
  })
})
