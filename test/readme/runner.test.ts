import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../helpers/nodes.ts'
import { runReadme } from './runner.ts'

type Block = { annotation?: string, lines: string[] }

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }

/**
 * The runner behind test/readme/readme.test.ts, on small READMEs of its
 * own (the real one needs fixed ports and minutes). The timeouts are what
 * fail a runner that waits for a line instead of failing fast.
 */
describe('the README runner', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  before(async () => { dir = await tempDir() })
  after(async () => { await dir?.cleanup() })

  /** Run a README of these blocks (each with an optional annotation), in the test's directory */
  const run = async (...blocks: Block[]): Promise<number> => {
    const path = join(dir.path, 'README.md')
    await writeFile(path, blocks.map(b => `${b.annotation == null ? '' : `<!-- readme: ${b.annotation} -->\n`}\`\`\`sh\n${b.lines.join('\n')}\n\`\`\`\n`).join('\ntext\n\n'))
    return runReadme(path, { cwd: dir.path, env: { ...process.env } })
  }

  it('runs every line, and stops its background commands with Ctrl-C at the end', { timeout: 20_000 }, async () => {
    assert.equal(await run(
      { annotation: 'background serving', lines: [`bash -c 'echo $$ > ${dir.path}/pid; trap "echo stopped > ${dir.path}/stopped; exit 0" INT; echo serving; while true; do sleep 0.1; done'`] },
      { lines: ['true', '# a comment', 'test -f pid'] },
      { annotation: 'skip not run: it would fail', lines: ['false'] }
    ), 3)
    assert.equal((await readFile(join(dir.path, 'stopped'), 'utf8')).trim(), 'stopped')
    assert.equal(alive(Number(await readFile(join(dir.path, 'pid'), 'utf8'))), false)

    await assert.rejects(run({ lines: ['true', 'echo why >&2; exit 5'] }), /README\.md:1: echo why >&2; exit 5\n {2}ran: .*\n {2}exit code: 5\n(.|\n)*stderr: why/)
  })

  it('fails at once, with its output, when a background command dies under a line waiting on it', { timeout: 20_000 }, async () => {
    // a daemon that starts, then dies; the next line would wait for it for ever
    await assert.rejects(run(
      { annotation: 'background Press Ctrl-C', lines: ['echo "Press Ctrl-C to stop."; sleep 1; echo "out of memory" >&2; exit 3'] },
      { lines: ['sleep 600'] }
    ), /README\.md:8: sleep 600\n {2}was stopped: the background command README\.md:1: .* exited with code 3; its output:\nPress Ctrl-C to stop\.\nout of memory/)
  })

  it('fails at the next line when a background command died before it', { timeout: 20_000 }, async () => {
    await assert.rejects(run(
      { annotation: 'background ready', lines: ['echo ready; kill -9 $$'] },
      { lines: ['sleep 2', 'true'] }
    ), /was stopped: the background command .* was killed by SIGKILL; its output:\nready/)
  })

  it('says so when a background command ends before it is ready', { timeout: 20_000 }, async () => {
    await assert.rejects(run({ annotation: 'background never', lines: ['echo "address in use"; exit 1'] }), /README\.md:1: .* exited with code 1 before it was ready:\naddress in use/)
  })
})
