import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { readdir, writeFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { tempDir } from '../helpers/nodes.ts'
import { REPO } from '../helpers/cli.ts'

const run = promisify(execFile)

/** The environment a person's shell has: none of the variables `npm test` sets, no node_modules/.bin on PATH */
function cleanEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && key !== 'NODE_OPTIONS' && key !== 'NODE_TEST_CONTEXT') {
      env[key] = value
    }
  }
  env.PATH = (process.env.PATH ?? '').split(delimiter).filter(p => !p.includes('node_modules')).join(delimiter)
  return env
}

/** The machine's own Node, when it is older than the 22.18 that the sources need */
async function olderSystemNode (env: NodeJS.ProcessEnv): Promise<string | undefined> {
  try {
    const { stdout } = await run('node', ['-p', 'process.versions.node + " " + process.execPath'], { env })
    const [version, path] = stdout.trim().split(' ')
    const [major, minor] = version.split('.').map(Number)
    return major < 22 || (major === 22 && minor < 18) ? path : undefined
  } catch {
    return undefined
  }
}

/**
 * The package as npm publishes it (issue 7, item 11): packed, installed into
 * an empty directory from the tarball, and started with `npx opencloud-node`.
 */
describe('the packed package', { timeout: 600_000 }, () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let app: string
  const env = cleanEnv()

  before(async () => {
    dir = await tempDir('oc-pack-')
    // prepack builds dist/ from src/
    await run('npm', ['pack', '--pack-destination', dir.path], { cwd: REPO, env, maxBuffer: 16 * 1024 * 1024 })
    const tarball = (await readdir(dir.path)).find(f => f.endsWith('.tgz'))
    assert.ok(tarball != null, 'npm pack made no tarball')
    app = join(dir.path, 'app')
    await run('mkdir', ['-p', app])
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }))
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir.path, tarball)], { cwd: app, env, maxBuffer: 16 * 1024 * 1024 })
  })

  after(async () => {
    await dir?.cleanup()
  })

  it('ships JavaScript, not the TypeScript sources', async () => {
    const installed = join(app, 'node_modules', 'opencloud-node')
    const top = await readdir(installed)
    assert.ok(top.includes('dist') && top.includes('bin'), top.join(' '))
    assert.ok(!top.includes('src') && !top.includes('test'), top.join(' '))
  })

  it('starts a node with npx opencloud-node, and stops it cleanly', async () => {
    const dataDir = join(dir.path, 'data')
    // its own process group, so a failed test stops npx and the node it started
    const child = spawn('npx', ['opencloud-node', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--json'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let stderr = ''
    child.stderr.on('data', d => { stderr += d })
    const events: any[] = []
    const lines = createInterface({ input: child.stdout })
    const closed = new Promise<void>(resolve => lines.once('close', resolve))
    try {
      const started = await new Promise<any>((resolve, reject) => {
        child.once('exit', code => { reject(new Error(`npx opencloud-node exited with ${code}: ${stderr}`)) })
        lines.on('line', line => {
          if (!line.startsWith('{')) return
          events.push(JSON.parse(line))
          if (events.at(-1).event === 'started') resolve(events.at(-1))
        })
      })
      assert.match(started.peerId, /^12D3KooW/)
      // the dashboard's page is a file beside the compiled code: the build copies it
      const page = await fetch(`${started.api}/`)
      assert.equal(page.status, 200, 'the installed package serves its dashboard')
      assert.match(await page.text(), /<script type="module" src="\/dashboard\/app.js">/)
      child.removeAllListeners('exit')
      // as a terminal's Ctrl-C or a supervisor's stop reaches npx and the node
      process.kill(-(child.pid as number), 'SIGTERM')
      await closed
      assert.deepEqual(events.map(e => e.event), ['started', 'stopped'], stderr)
    } finally {
      if (child.exitCode == null && child.pid != null) {
        try {
          process.kill(-child.pid, 'SIGKILL')
        } catch {}
      }
    }
  })

  it('runs its bin on the machine\'s older Node by starting the Node it installed', async (t) => {
    const older = await olderSystemNode(env)
    if (older == null) {
      t.skip('this machine\'s node is 22.18 or newer: nothing older to run the bin with')
      return
    }
    const bin = join(app, 'node_modules', 'opencloud-node', 'bin', 'opencloud-node.js')
    const { stdout } = await run(older, [bin, 'id', '--help'], { env })
    assert.match(stdout, /Usage: opencloud-node id/)
    const version = await run(older, [bin, '--version'], { env })
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/)
  })
})
