import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../helpers/nodes.ts'
import { REPO } from '../helpers/cli.ts'
import { parseReadme, runLine, runReadme } from './runner.ts'

/**
 * Every ```sh block of README.md, run as printed, in order, from the
 * checkout, as a newcomer would paste them (test/readme/runner.ts says how a
 * block is annotated, and what happens when a background command dies).
 *
 * The only changes made to a line are the README's own placeholders, filled
 * with real values: <your PeerId>, <PeerId of node N>, <peer>, <address>,
 * bcrt1..., 12D3KooW..., and ~/.opencloud and .testnet/ (also as @.testnet/...), which point into a
 * temporary directory (through OPENCLOUD_HOME and OPENCLOUD_TESTNET_DIR).
 */

describe('README.md, run as printed', { timeout: 900_000 }, () => {
  it('every command of every example succeeds', async () => {
    const dir = await tempDir('oc-readme-')
    const readme = join(REPO, 'README.md')
    const blocks = parseReadme(await readFile(readme, 'utf8'))
    assert.ok(blocks.length >= 10, `only ${blocks.length} sh blocks found in README.md`)
    const home = join(dir.path, 'home')
    const testnet = join(dir.path, 'testnet')
    const env: NodeJS.ProcessEnv = { ...process.env, OPENCLOUD_HOME: home, OPENCLOUD_TESTNET_DIR: testnet }
    delete env.NODE_TEST_CONTEXT

    const peerIdIn = async (dataDir: string): Promise<string> => JSON.parse(await readFile(join(dataDir, 'api.json'), 'utf8')).peerId
    const freshAddress = async (): Promise<string> => {
      const ran = await runLine('npx opencloud-node wallet address --new', { cwd: REPO, env })
      assert.equal(ran.code, 0, ran.stderr)
      return ran.stdout.trim()
    }
    const fill = async (line: string): Promise<string> => {
      let out = line.replace(/(^|[\s=@])\.testnet\//g, `$1${testnet}/`).replace(/~\/\.opencloud/g, env.OPENCLOUD_HOME as string)
      for (const m of [...out.matchAll(/<PeerId of node (\d+)>/g)]) {
        out = out.replace(m[0], await peerIdIn(join(testnet, `node-${m[1]}`)))
      }
      if (out.includes('<your PeerId>')) {
        out = out.replaceAll('<your PeerId>', await peerIdIn(env.OPENCLOUD_HOME as string))
      }
      if (/<peer>|<PeerId>|12D3KooW\.\.\./.test(out)) {
        out = out.replace(/<peer>|<PeerId>|12D3KooW\.\.\./g, await peerIdIn(join(testnet, 'node-2')))
      }
      if (out.includes('<pool id>')) {
        const pools = await runLine(`npx opencloud-node --data-dir ${join(testnet, 'node-1')} ledger pools --json`, { cwd: REPO, env })
        out = out.replaceAll('<pool id>', JSON.parse(pools.stdout)[0].id)
      }
      if (out.includes('<code>')) {
        const mine = await runLine(`npx opencloud-node --data-dir ${join(testnet, 'node-5')} ledger promo mine --json`, { cwd: REPO, env })
        out = out.replaceAll('<code>', JSON.parse(mine.stdout).find((c: any) => c.state === 'valid').code)
      }
      if (/<address>|bcrt1\.\.\./.test(out)) {
        out = out.replace(/<address>|bcrt1\.\.\./g, await freshAddress())
      }
      return out
    }

    try {
      const ran = await runReadme(readme, { cwd: REPO, env, fill })
      assert.ok(ran >= 30, `only ${ran} README commands ran`)
    } finally {
      await dir.cleanup()
    }
  })
})
