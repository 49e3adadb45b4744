import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { checkName, InvalidNameError, OutputExistsError, TreeIncompleteError, TreeRefusedError, walkTree, type StoredObject } from '../../src/storage/client/storage-client.ts'
import { nodeTreeFs, putTree } from '../../src/storage/client/tree.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import { runCli, startDaemon, type Daemon } from '../helpers/cli.ts'

const KIB = 1024
const HOSTS = 3

/**
 * Folders (issue 21): a directory stored as one object per file, named by
 * its path, listed, fetched back as a tree and removed, on real nodes over
 * TCP; then the same through the command line against a daemon
 */
describe('storage folders: a directory stored, listed, fetched and removed, on real nodes over TCP', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  const hosts: OpenCloudNode[] = []
  let client: OpenCloudNode
  /** the tree: photos/a.txt, photos/sub/b.bin, photos/sub/deeper/c.bin, a symlink and a name that is not UTF-8 */
  let photos: string
  const contents = new Map<string, Buffer>()

  before(async () => {
    dir = await tempDir()
    for (let i = 0; i < HOSTS; i++) {
      hosts[i] = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: testConfig(), bootstrap: i === 0 ? [] : [addrOf(hosts[0])] })
      await hosts[i].start()
    }
    client = await OpenCloudNode.create({ dataDir: join(dir.path, 'client'), config: testConfig(), bootstrap: [addrOf(hosts[0])], storage: { segmentSize: 16 * KIB, rentCheckMs: 86_400_000 } })
    await client.start()
    for (const host of hosts) {
      await connect(client, host)
    }
    await waitFor(async () => (await client.storageHosts()).length === HOSTS, 60_000, 'storage offers from every host')

    photos = join(dir.path, 'in', 'photos')
    await mkdir(join(photos, 'sub', 'deeper'), { recursive: true })
    for (const [rel, bytes] of [['a.txt', 3 * KIB], ['sub/b.bin', 40 * KIB], ['sub/deeper/c.bin', 1]] as const) {
      const data = randomBytes(bytes)
      contents.set(`photos/${rel}`, data)
      await writeFile(join(photos, rel), data)
    }
    await symlink(join(photos, 'a.txt'), join(photos, 'link-to-a'))
    // a name that is not valid UTF-8 (Linux takes any bytes but '/' and NUL)
    await writeFile(Buffer.concat([Buffer.from(join(photos, 'sub') + '/bad-'), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]), 'x')
  })

  after(async () => {
    await client?.stop()
    for (const host of hosts) {
      await host?.stop()
    }
    await dir?.cleanup()
  })

  it('stores a folder recursively by relative path, skipping and saying a symlink and a name that is not UTF-8', { timeout: 60_000 }, async () => {
    let lastProgress = { done: 0, total: 0 }
    const { files } = await client.storage.putTree([photos], { k: 1, n: 2, onProgress: p => { lastProgress = p } })
    const stored = files.filter(f => f.status === 'stored').map(f => f.name).sort()
    assert.deepEqual(stored, ['photos/a.txt', 'photos/sub/b.bin', 'photos/sub/deeper/c.bin'])
    const skipped = files.filter(f => f.status === 'skipped')
    assert.equal(skipped.length, 2)
    assert.ok(skipped.some(s => s.path.endsWith('link-to-a') && /symbolic link/.test(s.why ?? '')), JSON.stringify(skipped))
    assert.ok(skipped.some(s => /not valid UTF-8/.test(s.why ?? '')), JSON.stringify(skipped))
    // one progress over the whole tree's bytes
    assert.deepEqual(lastProgress, { phase: 'upload', done: 43 * KIB + 1, total: 43 * KIB + 1 })

    // the same folder again: nothing changed, nothing stored
    const again = await client.storage.putTree([photos], { k: 1, n: 2 })
    assert.deepEqual(again.files.filter(f => f.status !== 'skipped').map(f => f.status), ['unchanged', 'unchanged', 'unchanged'])
    // one file changed: it alone is stored, as version 2
    const changed = randomBytes(41 * KIB)
    await writeFile(join(photos, 'sub', 'b.bin'), changed)
    contents.set('photos/sub/b.bin', changed)
    const third = await client.storage.putTree([photos], { k: 1, n: 2 })
    assert.deepEqual(third.files.filter(f => f.status === 'stored').map(f => [f.name, f.object?.version]), [['photos/sub/b.bin', 2]])
  })

  it('lists a folder: its files and its sub-folders with their counts and sizes', async () => {
    const top = await client.storage.listFolder('photos/')
    assert.deepEqual(top.objects.map(o => o.object.name), ['photos/a.txt'])
    assert.deepEqual(top.folders, [{ name: 'photos/sub/', objects: 2, size: 41 * KIB + 1 }])
    const sub = await client.storage.listFolder('photos/sub/')
    assert.deepEqual(sub.objects.map(o => [o.object.name, o.versions]), [['photos/sub/b.bin', 2]])
    assert.deepEqual(sub.folders.map(f => f.name), ['photos/sub/deeper/'])
  })

  it('fetches a folder into a directory byte for byte, and replaces nothing there unasked', { timeout: 60_000 }, async () => {
    const out = join(dir.path, 'restored')
    const { files } = await client.storage.getTree('photos/', out)
    assert.equal(files.length, 3)
    for (const [name, data] of contents) {
      assert.deepEqual(await readFile(join(out, name.slice('photos/'.length))), data, name)
    }
    await writeFile(join(out, 'a.txt'), 'edited here')
    await assert.rejects(client.storage.getTree('photos/', out), (err: any) => err instanceof OutputExistsError && /nothing is fetched: 3 of the 3 files exist already/.test(err.message))
    assert.equal(await readFile(join(out, 'a.txt'), 'utf8'), 'edited here')
    await client.storage.getTree('photos/', out, { overwrite: true })
    assert.deepEqual(await readFile(join(out, 'a.txt')), contents.get('photos/a.txt'))
  })

  it('refuses a name that would lead out of the output directory, before fetching anything', async () => {
    // a record from elsewhere (the network index) is not checked as a put checks names
    const evil: StoredObject = { ...(await client.storage.find('photos/a.txt')), id: 'ee'.repeat(16), name: 'evil/../../escaped', version: 1 }
    await (client.storage as any).records.importObject(evil)
    const out = join(dir.path, 'evil-out')
    await assert.rejects(client.storage.getTree('evil/', out), (err: any) => err instanceof TreeRefusedError && /"evil\/\.\.\/\.\.\/escaped" cannot be written under/.test(err.message))
    await assert.rejects(readFile(join(dir.path, 'escaped')))
    await (client.storage as any).records.commitRemoved(await client.storage.find(evil.id), Date.now())
  })

  it('refuses the whole put, storing nothing, when a file cannot be read', { timeout: 60_000 }, async () => {
    // root reads any file whatever its mode: the refusal is injected at the file system calls
    await writeFile(join(photos, 'new.txt'), 'not stored')
    const before = (await client.storage.list()).length
    const fs = { ...nodeTreeFs, probe: async (path: string) => { if (path.endsWith('c.bin')) { throw Object.assign(new Error('permission denied'), { code: 'EACCES' }) } return nodeTreeFs.probe(path) } }
    await assert.rejects(client.storage.putTree([photos], { k: 1, n: 2, fs }), (err: any) => {
      assert.ok(err instanceof TreeRefusedError, err.message)
      assert.match(err.message, /^nothing is stored: 1 file or folder cannot be read by the daemon's user:\n {2}.*sub\/deeper\/c\.bin \(EACCES\)/)
      return true
    })
    assert.equal((await client.storage.list()).length, before)
    // an unreadable folder the same way
    const dirFs = { ...nodeTreeFs, readdir: async (path: string) => { if (path.endsWith('deeper')) { throw Object.assign(new Error('no'), { code: 'EACCES' }) } return nodeTreeFs.readdir(path) } }
    await assert.rejects(walkTree([photos], undefined, dirFs), /deeper\/ \(EACCES\)/)
  })

  it('says what was stored and what was not when a file fails part way, and a rerun skips what is unchanged', { timeout: 60_000 }, async () => {
    const storage = client.storage
    const failing = {
      put: async (path: string, options: any) => {
        if (path.endsWith('new.txt')) {
          throw new Error('the hosts went away (injected)')
        }
        return storage.put(path, options)
      },
      current: async (prefix?: string) => storage.current(prefix),
      get: async (n: string, o: string, opts: any) => storage.get(n, o, opts)
    }
    await writeFile(join(photos, 'sub', 'z-after.txt'), 'after the failure')
    await assert.rejects(putTree(failing, [photos], { k: 1, n: 2 }), (err: any) => {
      assert.ok(err instanceof TreeIncompleteError, err.message)
      assert.match(err.message, /^photos\/new\.txt failed: the hosts went away \(injected\)\nstored or unchanged \(1\): photos\/a\.txt\nnot stored \(4\): photos\/new\.txt, photos\/sub\/b\.bin, photos\/sub\/deeper\/c\.bin, photos\/sub\/z-after\.txt\n/)
      return true
    })
    const rerun = await storage.putTree([photos], { k: 1, n: 2 })
    assert.deepEqual(rerun.files.filter(f => f.status !== 'skipped').map(f => [f.name, f.status]), [
      ['photos/a.txt', 'unchanged'], ['photos/new.txt', 'stored'], ['photos/sub/b.bin', 'unchanged'], ['photos/sub/deeper/c.bin', 'unchanged'], ['photos/sub/z-after.txt', 'stored']
    ])
  })

  it('names a folder\'s files by --name: the folder\'s own name, another, or a folder it goes under', async () => {
    const names = async (paths: string[], name?: string): Promise<string[]> => (await walkTree(paths, name)).files.filter(f => f.path.endsWith('/a.txt')).map(f => f.name)
    assert.deepEqual(await names([photos]), ['photos/a.txt'])
    assert.deepEqual(await names([photos], 'pics'), ['pics/a.txt'])
    assert.deepEqual(await names([photos], 'backup/'), ['backup/photos/a.txt'])
    const a = join(photos, 'a.txt')
    assert.deepEqual(await names([a], 'renamed.txt'), ['renamed.txt'])
    assert.deepEqual(await names([a], 'docs/'), ['docs/a.txt'])
    assert.deepEqual((await walkTree([a, join(photos, 'sub', 'deeper')], 'both')).files.map(f => f.name), ['both/a.txt', 'both/deeper/c.bin'])
  })

  it('refuses names with ".." or empty parts, a leading "/" or control characters', async () => {
    for (const bad of ['../x', 'a/../b', 'a//b', '/abs', 'dir/', 'a\u0001b', 'a\\b', '.', '']) {
      assert.throws(() => checkName(bad), InvalidNameError, JSON.stringify(bad))
    }
    assert.equal(checkName('photos/2024/ok.jpg'), 'photos/2024/ok.jpg')
    const file = join(dir.path, 'plain.txt')
    await writeFile(file, 'x')
    await assert.rejects(client.storage.put(file, { name: 'up/../and-out', k: 1, n: 2 }), (err: any) => err instanceof InvalidNameError && /"up\/\.\.\/and-out" is not a usable name: it has a "\.\." part/.test(err.message))
  })

  it('removes a folder with every version of everything in it', { timeout: 60_000 }, async () => {
    const { removed } = await client.storage.removeTree('photos/')
    assert.equal(removed.length, 6, removed.map(o => `${o.name} ${o.version}`).join(', '))
    assert.deepEqual((await client.storage.list()).filter(o => o.name.startsWith('photos/')), [])
  })

  it('from the command line: store put DIR, ls DIR/, get DIR/ --out, versions, rm DIR/ refused without --recursive', { timeout: 60_000 }, async () => {
    const dataDir = join(dir.path, 'cli-client')
    await mkdir(dataDir, { recursive: true })
    await writeFile(join(dataDir, 'config.json'), JSON.stringify({ dht: { addresses: 'private' }, storage: { checkIntervalMs: 3_600_000 } }))
    let daemon: Daemon | undefined
    try {
      daemon = await startDaemon(dataDir, ['--bootstrap', addrOf(hosts[0])])
      const cli = async (...args: string[]): Promise<ReturnType<typeof runCli>> => runCli(['--data-dir', dataDir, ...args])
      await waitFor(async () => {
        const offers = JSON.parse((await cli('market', 'prices', '--service', 'storage', '--json')).stdout)
        return new Set(offers.filter((o: any) => o.method === 'rent').map((o: any) => o.provider)).size >= HOSTS
      }, 30_000, 'the storage offers of the hosts')
      const tree = join(dir.path, 'cli-in', 'docs')
      await mkdir(join(tree, 'notes'), { recursive: true })
      await writeFile(join(tree, 'readme.md'), 'hello')
      await writeFile(join(tree, 'notes', 'one.txt'), 'first')
      const put = await cli('store', 'put', tree, '--redundancy', '1-of-2')
      assert.equal(put.code, 0, put.stderr)
      assert.match(put.stdout, /^stored docs\/notes\/one\.txt \(5 bytes, version 1\)$/m)
      assert.match(put.stdout, /^stored docs\/readme\.md \(5 bytes, version 1\)$/m)
      assert.match(put.stdout, /^2 stored, 0 unchanged, 0 skipped; list them: .* store ls docs\/$/m)
      const again = JSON.parse((await cli('store', 'put', tree, '--redundancy', '1-of-2', '--json')).stdout)
      assert.deepEqual(again.files.map((f: any) => f.status), ['unchanged', 'unchanged'])

      // several paths at once, under one folder
      await writeFile(join(dir.path, 'cli-in', 'x.txt'), 'x')
      await writeFile(join(dir.path, 'cli-in', 'y.txt'), 'y')
      const several = JSON.parse((await cli('store', 'put', join(dir.path, 'cli-in', 'x.txt'), join(dir.path, 'cli-in', 'y.txt'), '--name', 'loose', '--redundancy', '1-of-2', '--json')).stdout)
      assert.deepEqual(several.files.map((f: any) => [f.name, f.status]), [['loose/x.txt', 'stored'], ['loose/y.txt', 'stored']])
      assert.equal((await cli('store', 'rm', 'loose/', '--recursive')).code, 0)

      const ls = await cli('store', 'ls', 'docs/')
      assert.equal(ls.code, 0, ls.stderr)
      assert.match(ls.stdout, /^docs\/notes\/\s+5 bytes in 1 file\s*$/m)
      assert.match(ls.stdout, /^docs\/readme\.md\s+5 bytes\s+1\s/m)

      await writeFile(join(tree, 'readme.md'), 'hello again')
      assert.equal((await cli('store', 'put', join(tree, 'readme.md'), '--name', 'docs/readme.md', '--redundancy', '1-of-2')).code, 0)
      const versions = await cli('store', 'versions', 'docs/readme.md')
      assert.equal(versions.code, 0, versions.stderr)
      assert.match(versions.stdout, /^1\s+5 bytes\s+.*replaced/m)
      assert.match(versions.stdout, /^2\s+11 bytes\s+.*current/m)
      const old = join(dir.path, 'readme-v1.md')
      const got = await cli('store', 'get', 'docs/readme.md', '--version', '1', '--out', old)
      assert.equal(got.code, 0, got.stderr)
      assert.equal(await readFile(old, 'utf8'), 'hello')

      const out = join(dir.path, 'cli-out')
      const tree2 = await cli('store', 'get', 'docs/', '--out', out)
      assert.equal(tree2.code, 0, tree2.stderr)
      assert.equal(await readFile(join(out, 'readme.md'), 'utf8'), 'hello again')
      assert.equal(await readFile(join(out, 'notes', 'one.txt'), 'utf8'), 'first')

      const refused = await cli('store', 'rm', 'docs/')
      assert.equal(refused.code, 1)
      assert.match(refused.stderr, /"docs\/" is a folder of 2 objects \(3 versions with the older ones\)/)
      assert.match(refused.stderr, /try: .* store rm docs\/ --recursive$/m)
      const removed = await cli('store', 'rm', 'docs/', '--recursive')
      assert.equal(removed.code, 0, removed.stderr)
      assert.match(removed.stdout, /^removed docs\/: 2 files \(3 versions\)/m)
      assert.deepEqual(JSON.parse((await cli('store', 'ls', '--json')).stdout).objects, [])
    } finally {
      await daemon?.stop()
      await rm(join(dir.path, 'cli-out'), { recursive: true, force: true })
    }
  })
})
