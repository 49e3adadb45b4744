import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { addrOf, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import { runCli, startDaemon, type Daemon } from '../helpers/cli.ts'

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/**
 * The commands a user types to share a file (README, "Storage"): the owner's
 * daemon stores a file on three in-process hosts and `store share --link`
 * prints a share; the holder's daemon, another wallet, `store fetch`es it;
 * `store unshare` revokes it and the holder's next fetch says so.
 */
describe('store share, shares, unshare and fetch from the command line', () => {
  it('shares a file with another daemon, lists the share, revokes it, and the holder is told why', async () => {
    const dir = await tempDir()
    const hosts: OpenCloudNode[] = []
    const daemons: Daemon[] = []
    try {
      for (let i = 0; i < 3; i++) {
        hosts[i] = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: testConfig(), bootstrap: i === 0 ? [] : [addrOf(hosts[0])] })
        await hosts[i].start()
      }
      const bootstrap = hosts.flatMap(h => ['--bootstrap', addrOf(h)])
      const ownerDir = join(dir.path, 'owner')
      const holderDir = join(dir.path, 'holder')
      daemons.push(await startDaemon(ownerDir, bootstrap), await startDaemon(holderDir, bootstrap))
      const cli = async (dataDir: string, args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => runCli(['--data-dir', dataDir, ...args])
      const file = join(dir.path, 'report.pdf')
      const bytes = randomBytes(100_000)
      await writeFile(file, bytes)
      // the owner's daemon hears the hosts' offers as it connects: the put is tried until it knows all three
      let put = { code: -1, stdout: '', stderr: '' }
      await waitFor(async () => { put = await cli(ownerDir, ['store', 'put', file, '--redundancy', '2-of-3']); return put.code === 0 }, 30_000, 'a put on the three hosts')
      assert.match(put.stdout, /^stored report\.pdf/)

      // exactly one of --to and --link
      const neither = await cli(ownerDir, ['store', 'share', 'report.pdf'])
      assert.equal(neither.code, 2)
      assert.match(neither.stderr, /exactly one of --to PEERID .* and --link/)
      const tooLong = await cli(ownerDir, ['store', 'share', 'report.pdf', '--link', '--expires', '400d'])
      assert.equal(tooLong.code, 2)
      assert.match(tooLong.stderr, /--expires "400d" is not a share's life: from a minute to 366 days/)

      const shared = await cli(ownerDir, ['store', 'share', 'report.pdf', '--link', '--expires', '2d'])
      assert.equal(shared.code, 0, shared.stderr)
      assert.match(shared.stderr, /^shared report\.pdf \(1 file\) with anyone holding it, read-only, until .* UTC; share id [0-9a-f]{32}\n/)
      // the text alone on stdout: `store share ... > share.txt` is the file the holder passes
      const text = /^(ocshare1\S+)\n$/.exec(shared.stdout)?.[1]
      assert.ok(text != null, shared.stdout)
      const id = /share id ([0-9a-f]{32})/.exec(shared.stderr)![1]
      await writeFile(join(dir.path, 'share.txt'), shared.stdout)
      // a file holding the whole output, pasted, works as well
      await writeFile(join(dir.path, 'pasted.txt'), shared.stderr.split('\n')[0] + '\n\n' + shared.stdout + '\n' + shared.stderr.split('\n').slice(1).join('\n'))
      const pasted = await cli(holderDir, ['store', 'fetch', `@${join(dir.path, 'pasted.txt')}`, '--out', join(dir.path, 'pasted.pdf')])
      assert.equal(pasted.code, 0, pasted.stderr)
      assert.equal(sha256(await readFile(join(dir.path, 'pasted.pdf'))), sha256(bytes))

      const out = join(dir.path, 'fetched.pdf')
      const fetched = await cli(holderDir, ['store', 'fetch', `@${join(dir.path, 'share.txt')}`, '--out', out])
      assert.equal(fetched.code, 0, fetched.stderr)
      assert.match(fetched.stdout, new RegExp(`^wrote ${out} \\(97\\.7 KiB, SHA-256 ${sha256(bytes)} checked\\)\\n$`))
      assert.equal(sha256(await readFile(out)), sha256(bytes))

      const listed = await cli(ownerDir, ['store', 'shares'])
      assert.match(listed.stdout, new RegExp(`${id}\\s+report\\.pdf\\s+1\\s+anyone with the link\\s+.* UTC\\s+live`))

      const revoked = await cli(ownerDir, ['store', 'unshare', id, '--json'])
      assert.equal(revoked.code, 0, revoked.stderr)
      assert.deepEqual(JSON.parse(revoked.stdout).unreachable, [])
      const again = await cli(holderDir, ['store', 'fetch', text, '--out', join(dir.path, 'again.pdf')])
      assert.equal(again.code, 1)
      assert.match(again.stderr, /^opencloud-node: the owner revoked share [0-9a-f]{32} before its expiry: ask them for a new one/)
      assert.match((await cli(ownerDir, ['store', 'shares'])).stdout, /revoked \d{4}-\d\d-\d\d \d\d:\d\d UTC/)

      // a share cut short when it was copied, and an unshare of nothing, each say what to do
      const cut = await cli(holderDir, ['store', 'fetch', text.slice(0, 60), '--out', join(dir.path, 'cut.pdf')])
      assert.equal(cut.code, 1)
      assert.match(cut.stderr, /^opencloud-node: the share does not read: message ends inside/)
      const none = await cli(ownerDir, ['store', 'unshare', 'no-such-file'])
      assert.equal(none.code, 1)
      assert.match(none.stderr, /no live share has id or names "no-such-file": see store shares\n {2}try: .*store shares\n$/)
    } finally {
      for (const d of daemons) {
        await d.stop()
      }
      for (const h of hosts) {
        await h.stop().catch(() => {})
      }
      await dir.cleanup()
    }
  })
})
