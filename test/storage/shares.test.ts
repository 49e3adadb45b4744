import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Key } from 'interface-datastore'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { decodeGrant, decodeShareText, encodeGrant, encodeGrantBody, encodeShareText, signGrant } from '../../src/storage/protocol/share.ts'
import { shareRefusalOf, ShareExpiredError, ShareHolderError, ShareRevokedError, ShareScopeError, ShareSignatureError } from '../../src/storage/errors.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'

const KIB = 1024
const HOSTS = 3

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/**
 * Shares between real nodes over TCP (PROTOCOL.md 8h): an owner stores two
 * files 2-of-3 on three free hosts; a holder that has none of the owner's
 * words fetches the shared one from the share text alone; every host
 * refuses the share for the other object's shards, after unshare, after
 * its expiry, from a peer it is not for, and when the grant was altered.
 */
describe('shares: a file fetched by a node that holds none of the owner\'s words, and every refusal, over TCP', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  const hosts: OpenCloudNode[] = []
  let owner: OpenCloudNode
  let holder: OpenCloudNode
  let stranger: OpenCloudNode
  const data: Record<string, Buffer> = {}

  /** one host's answer to a shared-get of `root` with this grant body, as the error class the holder's node reads it into */
  const askHost = async (from: OpenCloudNode, host: string, root: string, body: Uint8Array): Promise<unknown> => {
    try {
      const response = await from.call(host, { service: 'storage', method: 'shared-get', args: [root, '0', '16'], body: bodyFromBytes(body) })
      await response.body.bytes()
      return 'served'
    } catch (err) {
      return shareRefusalOf(err)
    }
  }
  /** every host of the object, asked for its first shard of the first segment */
  const askEveryHost = async (from: OpenCloudNode, name: string, body: Uint8Array): Promise<unknown[]> => {
    const object = await owner.storage.find(name)
    return Promise.all(object.segments[0].shards.map(async s => askHost(from, s.host, s.root, body)))
  }
  const bodyOf = (text: string): Uint8Array => {
    const share = decodeShareText(text)
    return encodeGrantBody(share.grant, share.signature)
  }

  before(async () => {
    dir = await tempDir()
    const config = testConfig()
    for (let i = 0; i < HOSTS; i++) {
      hosts[i] = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config, bootstrap: i === 0 ? [] : [addrOf(hosts[0])] })
      await hosts[i].start()
    }
    const start = async (name: string): Promise<OpenCloudNode> => {
      const node = await OpenCloudNode.create({ dataDir: join(dir.path, name), config: testConfig({ services: { storage: { enabled: false } } }), bootstrap: [addrOf(hosts[0])], storage: { segmentSize: 64 * KIB } })
      await node.start()
      for (const h of hosts) {
        await connect(node, h)
      }
      return node
    }
    owner = await start('owner')
    holder = await start('holder')
    stranger = await start('stranger')
    await waitFor(async () => (await owner.storageHosts()).length === HOSTS, 30_000, 'storage offers from every host')
    for (const name of ['shared.bin', 'private.bin']) {
      data[name] = randomBytes(200 * KIB + 123)
      await writeFile(join(dir.path, name), data[name])
      await owner.storage.put(join(dir.path, name), { name, k: 2, n: 3 })
    }
  })

  after(async () => {
    for (const node of [owner, holder, stranger, ...hosts]) {
      await node?.stop().catch(() => {})
    }
    await dir?.cleanup()
  })

  it('lets a node with none of the owner\'s words fetch the shared file byte-identical, and nothing else', async () => {
    const { share, text } = await owner.storage.share('shared.bin', { expiresInMs: 3600_000 })
    assert.match(text, /^ocshare1[A-Za-z0-9_-]+$/)
    assert.equal(share.holder, null)
    assert.deepEqual(share.objects.map(o => o.name), ['shared.bin'])
    // the holder is another wallet: its storage key opens none of the owner's files
    assert.notDeepEqual(holder.wallet.storageKey(), owner.wallet.storageKey())
    const [fetched] = await holder.storage.fetchShared(text, { out: join(dir.path, 'fetched.bin') })
    assert.equal(fetched.sha256, sha256(data['shared.bin']))
    assert.equal(sha256(await readFile(join(dir.path, 'fetched.bin'))), sha256(data['shared.bin']))
    // a node that joined through one host only finds the others from their PeerIds in the share
    const newcomer = await OpenCloudNode.create({ dataDir: join(dir.path, 'newcomer'), config: testConfig({ services: { storage: { enabled: false } } }), bootstrap: [addrOf(hosts[0])] })
    await newcomer.start()
    try {
      await waitFor(() => newcomer.libp2p.getConnections().length > 0, 10_000, 'the newcomer to join through its bootstrap host')
      const [again] = await newcomer.storage.fetchShared(text, { out: join(dir.path, 'newcomer.bin') })
      assert.equal(again.sha256, sha256(data['shared.bin']))
    } finally {
      await newcomer.stop()
    }
    // the owner's key for the object is in the share; the storage key is not
    assert.equal(Buffer.from(text.slice(8), 'base64url').indexOf(Buffer.from(owner.wallet.storageKey())), -1)

    // the same grant over the other object's shards: each host refuses it as out of scope
    const body = bodyOf(text)
    for (const answer of await askEveryHost(holder, 'private.bin', body)) {
      assert.ok(answer instanceof ShareScopeError, `a host answered ${String(answer)}`)
    }
    // and a share text pointing the grant at the other object fetches nothing
    const other = decodeShareText((await owner.storage.share('private.bin', { expiresInMs: 3600_000 })).text)
    const swapped = encodeShareText({ ...decodeShareText(text), objects: other.objects })
    await assert.rejects(holder.storage.fetchShared(swapped, { out: join(dir.path, 'swapped.bin') }), ShareScopeError)
  })

  it('shares a folder: every object under PREFIX/, fetched as a tree under the holder\'s directory', async () => {
    const files: Record<string, Buffer> = { 'docs/a.txt': randomBytes(3000), 'docs/sub/b.bin': randomBytes(70 * KIB) }
    for (const [name, bytes] of Object.entries(files)) {
      const path = join(dir.path, name.replace(/\//g, '_'))
      await writeFile(path, bytes)
      await owner.storage.put(path, { name, k: 2, n: 3 })
    }
    const { share, text } = await owner.storage.share('docs/', { expiresInMs: 3600_000 })
    assert.deepEqual(share.objects.map(o => o.name).sort(), Object.keys(files))
    // by default under the folder's name in the directory given; with --out, under that directory (as store get PREFIX/ --out DIR)
    const here = join(dir.path, 'here')
    const fetched = await holder.storage.fetchShared(text, { dir: here })
    assert.deepEqual(fetched.map(f => f.out).sort(), [join(here, 'docs', 'a.txt'), join(here, 'docs', 'sub', 'b.bin')])
    const tree = join(dir.path, 'tree')
    await holder.storage.fetchShared(text, { out: tree })
    for (const [name, bytes] of Object.entries(files)) {
      assert.equal(sha256(await readFile(join(here, name))), sha256(bytes))
      assert.equal(sha256(await readFile(join(tree, name.slice('docs/'.length)))), sha256(bytes))
    }
    // the folder's share opens nothing outside it
    for (const answer of await askEveryHost(holder, 'shared.bin', bodyOf(text))) {
      assert.ok(answer instanceof ShareScopeError, `a host answered ${String(answer)}`)
    }
    // nothing of a folder is fetched over files that are there, unless forced
    await assert.rejects(holder.storage.fetchShared(text, { out: tree }), (err: any) => err.name === 'OutputExistsError' && /nothing is fetched: 2 of the 2 files exist already/.test(err.message))
    await holder.storage.fetchShared(text, { out: tree }, { overwrite: true })
    // and a folder is not written over a file
    await assert.rejects(holder.storage.fetchShared(text, { out: join(dir.path, 'fetched.bin') }), /is a file: give a directory/)
  })

  it('shares an older version by --version, and the current one by its name', async () => {
    const first = randomBytes(50 * KIB)
    const second = randomBytes(60 * KIB)
    for (const bytes of [first, second]) {
      await writeFile(join(dir.path, 'v.bin'), bytes)
      await owner.storage.put(join(dir.path, 'v.bin'), { name: 'v.bin', k: 2, n: 3 })
    }
    const old = await owner.storage.share('v.bin', { version: 1, expiresInMs: 3600_000 })
    assert.equal(old.share.what, 'v.bin (version 1)')
    const [a] = await holder.storage.fetchShared(old.text, { out: join(dir.path, 'v1.bin') })
    assert.equal(a.sha256, sha256(first))
    const [b] = await holder.storage.fetchShared((await owner.storage.share('v.bin', { expiresInMs: 3600_000 })).text, { out: join(dir.path, 'v2.bin') })
    assert.equal(b.sha256, sha256(second))
    // the old version's share opens none of the current one's shards
    for (const answer of await askEveryHost(holder, 'v.bin', bodyOf(old.text))) {
      assert.ok(answer instanceof ShareScopeError, `a host answered ${String(answer)}`)
    }
  })

  it('is refused by every host after unshare, with the reason', async () => {
    const { share, text } = await owner.storage.share('shared.bin', { expiresInMs: 3600_000 })
    const body = bodyOf(text)
    assert.deepEqual(await askEveryHost(holder, 'shared.bin', body), ['served', 'served', 'served'])
    // one host is down when the owner revokes: it is said, and told at a later check
    const down = hosts[2].peerId.toString()
    await hosts[2].stop()
    const { revoked, unreachable } = await owner.storage.unshare(share.id)
    assert.deepEqual(revoked.map(s => s.id), [share.id])
    assert.equal(unreachable.length, 1)
    assert.ok(unreachable[0].startsWith(down), unreachable[0])
    assert.deepEqual((await owner.storage.shares()).find(s => s.id === share.id)?.untold, [down])
    hosts[2] = await OpenCloudNode.create({ dataDir: join(dir.path, 'host2'), config: testConfig(), bootstrap: [addrOf(hosts[0])] })
    await hosts[2].start()
    await connect(owner, hosts[2])
    await connect(holder, hosts[2])
    // until then it still serves the share: a revocation is only as good as the hosts told
    const object = await owner.storage.find('shared.bin')
    const onDown = object.segments[0].shards.find(s => s.host === down)!
    assert.equal(await askHost(holder, down, onDown.root, body), 'served')
    assert.equal(await owner.storage.tellRevocations(), 1)
    assert.deepEqual((await owner.storage.shares()).find(s => s.id === share.id)?.untold, [])
    for (const answer of await askEveryHost(holder, 'shared.bin', body)) {
      assert.ok(answer instanceof ShareRevokedError, `a host answered ${String(answer)}`)
    }
    await assert.rejects(holder.storage.fetchShared(text, { out: join(dir.path, 'revoked.bin') }), (err: any) => {
      assert.ok(err instanceof ShareRevokedError, String(err))
      assert.match(err.message, /revoked/)
      return true
    })
    const listed = (await owner.storage.shares()).find(s => s.id === share.id)
    assert.ok(listed?.revokedAt != null)

    // a share the owner's node has no record of (made before its data directory was lost): revoked by id at every host it has a contract with
    const lost = await owner.storage.share('shared.bin', { expiresInMs: 3600_000 })
    await owner['datastore'].delete(new Key(`/storage/shares/${lost.share.id}`))
    const byId = await owner.storage.unshare(lost.share.id)
    assert.deepEqual(byId.revoked[0].hosts, hosts.map(h => h.peerId.toString()).sort())
    assert.deepEqual(byId.unreachable, [])
    for (const answer of await askEveryHost(holder, 'shared.bin', bodyOf(lost.text))) {
      assert.ok(answer instanceof ShareRevokedError, `a host answered ${String(answer)}`)
    }
    // a host that restarts still refuses it
    await hosts[1].stop()
    hosts[1] = await OpenCloudNode.create({ dataDir: join(dir.path, 'host1'), config: testConfig(), bootstrap: [addrOf(hosts[0])] })
    await hosts[1].start()
    await connect(holder, hosts[1])
    await connect(owner, hosts[1])
    const shard = object.segments[0].shards.find(s => s.host === hosts[1].peerId.toString())!
    assert.ok(await askHost(holder, shard.host, shard.root, body) instanceof ShareRevokedError)
  })

  it('still opens its shards after the owner\'s contracts are renewed under new ids (the grant names roots, not contracts)', async () => {
    const { text } = await owner.storage.share('shared.bin', { expiresInMs: 3600_000 })
    const before = new Set(Object.keys((await owner.storage.find('shared.bin')).contracts))
    // as the upkeep does a week before they end
    assert.ok(await owner.storage.renewAll(Date.now() + 29 * 86_400_000) >= HOSTS)
    const after = new Set(Object.keys((await owner.storage.find('shared.bin')).contracts).filter(id => !before.has(id)))
    assert.ok(after.size >= HOSTS, 'the object is under new contracts')
    const [fetched] = await holder.storage.fetchShared(text, { out: join(dir.path, 'after-renewal.bin') })
    assert.equal(fetched.sha256, sha256(data['shared.bin']))
  })

  it('refuses an expired grant, one for another peer, and an altered or forged one', async () => {
    // a short expiry: the hosts refuse it by their own clocks once it passes
    const short = await owner.storage.share('shared.bin', { expiresInMs: 1500 })
    const shortBody = bodyOf(short.text)
    await new Promise(resolve => setTimeout(resolve, 1600))
    for (const answer of await askEveryHost(holder, 'shared.bin', shortBody)) {
      assert.ok(answer instanceof ShareExpiredError, `a host answered ${String(answer)}`)
    }
    await assert.rejects(holder.storage.fetchShared(short.text, { out: join(dir.path, 'expired.bin') }), ShareExpiredError)

    // --to the holder: the holder is served, a stranger is refused
    const to = await owner.storage.share('shared.bin', { to: holder.peerId.toString(), expiresInMs: 3600_000 })
    assert.equal(to.share.holder, holder.peerId.toString())
    const toBody = bodyOf(to.text)
    assert.deepEqual(await askEveryHost(holder, 'shared.bin', toBody), ['served', 'served', 'served'])
    for (const answer of await askEveryHost(stranger, 'shared.bin', toBody)) {
      assert.ok(answer instanceof ShareHolderError, `a host answered ${String(answer)}`)
    }
    await assert.rejects(stranger.storage.fetchShared(to.text, { out: join(dir.path, 'stranger.bin') }), ShareHolderError)

    // altered: the holder widened the expiry and dropped the holder; the signature no longer covers it
    const share = decodeShareText(to.text)
    const grant = decodeGrant(share.grant)
    const altered = encodeGrant({ ...grant, holder: undefined, expires: grant.expires + 3600_000 })
    for (const answer of await askEveryHost(stranger, 'shared.bin', encodeGrantBody(altered, share.signature))) {
      assert.ok(answer instanceof ShareSignatureError, `a host answered ${String(answer)}`)
    }
    // forged: a grant in the owner's name signed by another node's key
    const forged = encodeGrant({ ...grant, holder: undefined })
    const forgedBody = encodeGrantBody(forged, signGrant(forged, stranger.signer))
    for (const answer of await askEveryHost(stranger, 'shared.bin', forgedBody)) {
      assert.ok(answer instanceof ShareSignatureError, `a host answered ${String(answer)}`)
    }
  })
})
