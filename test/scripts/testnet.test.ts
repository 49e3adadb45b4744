import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/nodes.ts'
import { runCli } from '../helpers/cli.ts'

const SCRIPT = fileURLToPath(new URL('../../scripts/testnet/testnet.ts', import.meta.url))

describe('scripts/testnet', () => {
  it('starts N joined nodes that the CLI can use by data directory, and stops them all on Ctrl-C', async () => {
    const dir = await tempDir()
    const child = spawn(process.execPath, [SCRIPT, '--nodes', '4', '--dir', dir.path, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      let stdout = ''
      child.stdout.on('data', d => { stdout += d })
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', () => { if (stdout.trim().endsWith(']')) resolve() })
        child.once('exit', code => { reject(new Error(`testnet exited with ${code}`)) })
      })
      const nodes = JSON.parse(stdout)
      assert.equal(nodes.length, 4)
      assert.deepEqual(nodes.map((n: any) => n.dataDir), [1, 2, 3, 4].map(i => join(dir.path, `node-${i}`)))

      const call = await runCli(['--data-dir', nodes[3].dataDir, 'call', nodes[0].peerId, 'info.node', '--json'])
      assert.equal(call.code, 0, call.stderr)
      assert.equal(JSON.parse(call.stdout).body.peerId, nodes[0].peerId)

      const exited = new Promise<number | null>(resolve => child.once('exit', resolve))
      child.kill('SIGINT')
      assert.equal(await exited, 0)
      for (const node of nodes) {
        await assert.rejects(access(join(node.dataDir, 'api.json')), `${node.dataDir} stopped cleanly`)
      }
    } finally {
      child.kill('SIGKILL')
      await dir.cleanup()
    }
  })
})
