import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { access, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateMnemonic } from '@scure/bip39'
import { wordlist } from '@scure/bip39/wordlists/english.js'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { CLI } from '../../src/utils/cli-name.ts'
import { addrOf, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import { runCli, startDaemon } from '../helpers/cli.ts'

const HOSTS = 3

/**
 * The newcomer's walk (issue 21): store a file from the command line, keep
 * only the words `wallet backup` prints, restore them into a fresh data
 * directory, start the daemon, and `store ls` lists the file again; `store
 * recover` says what it found; `store get` gives the bytes back.
 */
describe('recovery from the words, from the command line', () => {
  it('wallet backup, wallet restore on a fresh directory, then store ls, store recover and store get', async () => {
    const dir = await tempDir()
    const hosts: OpenCloudNode[] = []
    const stops: Array<() => Promise<unknown>> = []
    try {
      for (let i = 0; i < HOSTS; i++) {
        hosts[i] = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: testConfig(), bootstrap: i === 0 ? [] : [addrOf(hosts[0])] })
        await hosts[i].start()
        stops.push(async () => hosts[i].stop())
      }
      const join0 = ['--bootstrap', addrOf(hosts[0])]
      const old = join(dir.path, 'old')
      const first = await startDaemon(old, join0)
      stops.push(first.stop)
      const file = join(dir.path, 'report.pdf')
      const bytes = randomBytes(100_000)
      await writeFile(file, bytes)
      // the market needs a moment to list the hosts
      await waitFor(async () => (await runCli(['store', 'put', file, '--data-dir', old])).code === 0, 30_000, 'store put')
      const backup = await runCli(['wallet', 'backup', '--data-dir', old])
      assert.equal(backup.code, 0, backup.stderr)
      assert.match(backup.stderr, new RegExp(`^Anyone who has these words can spend this wallet\\. .*\\nThe words bring back this node's identity \\(${first.peerId}\\) and its files: on a new machine, wallet restore, then start the node\\.\\n$`))
      const words = backup.stdout
      await first.stop()
      stops.pop()

      const fresh = join(dir.path, 'fresh')
      const restore = await runCli(['wallet', 'restore', '--data-dir', fresh], { stdin: words })
      assert.equal(restore.code, 0, restore.stderr)
      assert.match(restore.stdout, new RegExp(`^restored the regtest wallet \\S+ and the identity ${first.peerId}; at its next start the node scans the chain for the addresses it used, and asks the storage hosts for its files; start it with: ${CLI} --data-dir ${fresh}\\nthen \`${CLI} --data-dir ${fresh} store ls\` shows them coming back\\n$`))
      await access(join(fresh, 'recover-pending.json'))
      const second = await startDaemon(fresh, join0)
      stops.push(second.stop)
      assert.equal(second.peerId, first.peerId)
      // the first start recovers by itself
      let ls = await runCli(['store', 'ls', '--data-dir', fresh])
      await waitFor(async () => { ls = await runCli(['store', 'ls', '--data-dir', fresh]); return ls.stdout.includes('report.pdf') }, 60_000, 'store ls to list the file')
      assert.match(ls.stdout, /^NAME\s+SIZE\s+REDUNDANCY.*\nreport\.pdf\s+/)
      await waitFor(async () => access(join(fresh, 'recover-pending.json')).then(() => false, () => true), 10_000, 'the marker to go')
      const recovered = await runCli(['store', 'recover', '--json', '--wait', '10s', '--data-dir', fresh])
      assert.equal(recovered.code, 0, recovered.stderr)
      const report = JSON.parse(recovered.stdout)
      assert.deepEqual([report.objectsAdded, report.objectsKnown, report.notesUnopened], [0, 1, 0])
      const text = await runCli(['store', 'recover', '--data-dir', fresh])
      assert.match(text.stdout, /^recovered 0 objects \(1 known already\) and 0 contracts \(\d+ found\) from \d+ of \d+ storage hosts\nlist them with: .*store ls\n$/)
      const lsJson = JSON.parse((await runCli(['store', 'ls', '--json', '--data-dir', fresh])).stdout)
      assert.equal(lsJson.recovery, null, 'no recovery under way')
      const out = join(dir.path, 'back.pdf')
      const got = await runCli(['store', 'get', 'report.pdf', '--out', out, '--data-dir', fresh])
      assert.equal(got.code, 0, got.stderr)
      assert.ok((await readFile(out)).equals(bytes))
      const bad = await runCli(['store', 'recover', '--wait', '1m', '--data-dir', fresh])
      assert.equal(bad.code, 2)
      assert.match(bad.stderr, /could be minutes or months/)

      // other words: the same hosts hold nothing of theirs
      const other = join(dir.path, 'other')
      assert.equal((await runCli(['wallet', 'restore', '--data-dir', other], { stdin: generateMnemonic(wordlist, 256) })).code, 0)
      const third = await startDaemon(other, join0)
      stops.push(third.stop)
      await waitFor(async () => JSON.parse((await runCli(['store', 'ls', '--json', '--data-dir', other])).stdout).recovery === null, 60_000, 'the first start\'s recovery to end')
      const wrong = await runCli(['store', 'recover', '--wait', '10s', '--data-dir', other])
      assert.equal(wrong.code, 1)
      assert.match(wrong.stderr, new RegExp(`^opencloud-node: no index found for these words: none of the \\d+ storage host\\(s\\) asked \\(\\d+ answered\\) holds notes for ${third.peerId}; nothing was created\\. Check the words .*\\n  try: ${CLI} --data-dir ${other} store recover --wait 5min\\n$`))
      assert.equal((await runCli(['store', 'ls', '--data-dir', other])).stdout.startsWith('nothing stored yet'), true)
    } finally {
      for (const stop of stops.reverse()) {
        await stop().catch(() => {})
      }
      await dir.cleanup()
    }
  })

  it('store ls shows a recovery under way, as text and as JSON', async () => {
    const dir = await tempDir()
    try {
      const root = join(dir.path, 'restored')
      const restore = await runCli(['wallet', 'restore', '--data-dir', root], { stdin: generateMnemonic(wordlist, 256) })
      assert.equal(restore.code, 0, restore.stderr)
      // no network to join: the recovery waits for the market to list hosts
      const daemon = await startDaemon(root)
      try {
        const ls = await runCli(['store', 'ls', '--data-dir', root])
        assert.match(ls.stdout, /^recovering this wallet's files from the hosts since \d{4}-\d\d-\d\d \d\d:\d\d UTC \(waiting for the market to list storage hosts\): the list below grows when it is done\nnothing stored yet/)
        const json = JSON.parse((await runCli(['store', 'ls', '--json', '--data-dir', root])).stdout)
        assert.equal(typeof json.recovery.startedAt, 'number')
        assert.equal(json.recovery.progress.phase, 'hosts')
        // a second recovery waits for the one under way (then asks again) instead of refusing
        const again = runCli(['store', 'recover', '--data-dir', root])
        const first = await Promise.race([again.then(() => 'ended'), new Promise(resolve => setTimeout(resolve, 2000, 'waiting'))])
        assert.equal(first, 'waiting')
        await daemon.stop()
        assert.equal((await again).code, 1, 'it ends when the node stops')
      } finally {
        if (daemon.child.exitCode == null) {
          await daemon.stop()
        }
      }
    } finally {
      await dir.cleanup()
    }
  })
})
