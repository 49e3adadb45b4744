import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../helpers/nodes.ts'
import { REPO } from '../helpers/cli.ts'

/**
 * Every ```sh block of README.md, run as printed, in order, from the
 * checkout, as a newcomer would paste them (issue 7: the README's examples
 * were found broken although every test passed). A comment just before a
 * block says how to run it:
 *
 *   <!-- readme: background REGEX -->  a long-running command: started in
 *                                      the background, ready when its output
 *                                      matches REGEX, stopped with Ctrl-C
 *                                      (SIGINT) at the end
 *   <!-- readme: skip REASON -->       not run, for the reason given
 *
 * The only changes made to a line are the README's own placeholders, filled
 * with real values: <your PeerId>, <PeerId of node N>, <peer>, <address>,
 * bcrt1..., 12D3KooW..., and ~/.opencloud and .testnet/, which point into a
 * temporary directory (through OPENCLOUD_HOME and OPENCLOUD_TESTNET_DIR).
 */

interface Block {
  annotation?: string
  lines: string[]
  at: number
}

function parseReadme (text: string): Block[] {
  const blocks: Block[] = []
  const re = /(?:<!-- readme: ([^\n]*?) -->\s*\n)?```sh\n([\s\S]*?)```/g
  for (const match of text.matchAll(re)) {
    const lines = match[2].replace(/\\\n\s*/g, '').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
    blocks.push({ annotation: match[1], lines, at: text.slice(0, match.index).split('\n').length })
  }
  return blocks
}

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

async function runLine (line: string, env: NodeJS.ProcessEnv): Promise<Ran> {
  const child = spawn('bash', ['-c', line], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', d => { stdout += d })
  child.stderr.on('data', d => { stderr += d })
  const timer = setTimeout(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} }, 120_000)
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

describe('README.md, run as printed', { timeout: 900_000 }, () => {
  const background: ChildProcess[] = []

  it('every command of every example succeeds', async () => {
    const dir = await tempDir('oc-readme-')
    const blocks = parseReadme(await readFile(join(REPO, 'README.md'), 'utf8'))
    assert.ok(blocks.length >= 10, `only ${blocks.length} sh blocks found in README.md`)
    const home = join(dir.path, 'home')
    const testnet = join(dir.path, 'testnet')
    const env: NodeJS.ProcessEnv = { ...process.env, OPENCLOUD_HOME: home, OPENCLOUD_TESTNET_DIR: testnet }
    delete env.NODE_TEST_CONTEXT

    const peerIdIn = async (dataDir: string): Promise<string> => JSON.parse(await readFile(join(dataDir, 'api.json'), 'utf8')).peerId
    const freshAddress = async (): Promise<string> => {
      const ran = await runLine('npx opencloud-node wallet address --new', env)
      assert.equal(ran.code, 0, ran.stderr)
      return ran.stdout.trim()
    }
    const fill = async (line: string): Promise<string> => {
      let out = line.replace(/(^|[\s=])\.testnet\//g, `$1${testnet}/`).replace(/~\/\.opencloud/g, env.OPENCLOUD_HOME as string)
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
        const pools = await runLine(`npx opencloud-node --data-dir ${join(testnet, 'node-1')} ledger pools --json`, env)
        out = out.replaceAll('<pool id>', JSON.parse(pools.stdout)[0].id)
      }
      if (out.includes('<code>')) {
        const mine = await runLine(`npx opencloud-node --data-dir ${join(testnet, 'node-5')} ledger promo mine --json`, env)
        out = out.replaceAll('<code>', JSON.parse(mine.stdout).find((c: any) => c.state === 'valid').code)
      }
      if (/<address>|bcrt1\.\.\./.test(out)) {
        out = out.replace(/<address>|bcrt1\.\.\./g, await freshAddress())
      }
      return out
    }

    let ran = 0
    try {
      for (const block of blocks) {
        const annotation = block.annotation ?? ''
        if (annotation.startsWith('skip')) {
          assert.match(annotation, /^skip \S/, `README.md:${block.at}: a skipped example says why`)
          continue
        }
        for (const raw of block.lines) {
          const line = await fill(raw)
          const where = `README.md:${block.at}: ${raw}`
          const exported = /^export (\w+)=(\S+)$/.exec(line)
          if (exported != null) {
            env[exported[1]] = exported[2].startsWith('/') ? exported[2] : join(REPO, exported[2])
            continue
          }
          if (annotation.startsWith('background ')) {
            const ready = new RegExp(annotation.slice('background '.length))
            const child = spawn('bash', ['-c', line], { cwd: REPO, env: { ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
            background.push(child)
            let output = ''
            await new Promise<void>((resolve, reject) => {
              const timer = setTimeout(() => { reject(new Error(`${where}: not ready within 180 s:\n${output}`)) }, 180_000)
              const check = (d: Buffer): void => {
                output += d
                if (ready.test(output)) {
                  clearTimeout(timer)
                  resolve()
                }
              }
              child.stdout?.on('data', check)
              child.stderr?.on('data', check)
              child.once('exit', code => {
                clearTimeout(timer)
                reject(new Error(`${where}: exited with ${code} before it was ready:\n${output}`))
              })
            })
            child.removeAllListeners('exit')
            ran++
            continue
          }
          const result = await runLine(line, env)
          assert.equal(result.code, 0, `${where}\n  ran: ${line}\n  stdout: ${result.stdout.slice(0, 2000)}\n  stderr: ${result.stderr.slice(0, 2000)}`)
          ran++
        }
      }
      assert.ok(ran >= 30, `only ${ran} README commands ran`)
    } finally {
      for (const child of background.splice(0).reverse()) {
        if (child.exitCode != null || child.pid == null) continue
        const exited = new Promise(resolve => child.once('exit', resolve))
        try { process.kill(-child.pid, 'SIGINT') } catch {}
        const timer = setTimeout(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} }, 20_000)
        await exited
        clearTimeout(timer)
      }
      await dir.cleanup()
    }
  })
})
