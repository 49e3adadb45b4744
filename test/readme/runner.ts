import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * Runs every ```sh block of a README, as printed, in order, as a newcomer
 * would paste them (issue 7: the README's examples were found broken
 * although every test passed). A comment just before a block says how to
 * run it:
 *
 *   <!-- readme: background REGEX -->  a long-running command: started in
 *                                      the background, ready when its output
 *                                      matches REGEX, stopped with Ctrl-C
 *                                      (SIGINT) at the end
 *   <!-- readme: skip REASON -->       not run, for the reason given
 *
 * A background command must run until the end: one that exits earlier
 * fails the run at once with its output, and the line running then is
 * stopped (it used to wait its 120 s out, or for ever on a line waiting for
 * the dead daemon).
 */

export interface Block {
  annotation?: string
  lines: string[]
  /** the line of the README the block starts at */
  at: number
}

export function parseReadme (text: string): Block[] {
  const blocks: Block[] = []
  const re = /(?:<!-- readme: ([^\n]*?) -->\s*\n)?```sh\n([\s\S]*?)```/g
  for (const match of text.matchAll(re)) {
    const lines = match[2].replace(/\\\n\s*/g, '').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
    blocks.push({ annotation: match[1], lines, at: text.slice(0, match.index).split('\n').length })
  }
  return blocks
}

export interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

export interface RunInit {
  /** the directory every line runs in */
  cwd: string
  /** the environment of every line; `export X=Y` lines change it */
  env: NodeJS.ProcessEnv
  /** the README's placeholders filled with real values; default: the line as it is */
  fill?: (line: string) => Promise<string>
  /** how long one line may run, default 120 s */
  lineTimeoutMs?: number
  /** how long a background command may take to be ready, default 180 s */
  readyTimeoutMs?: number
}

/** A background command that ended before the run did */
class BackgroundEndedError extends Error {
  override name = 'BackgroundEndedError'
  readonly how: string
  constructor (where: string, how: string, output: string) {
    super(`the background command ${where} ${how}; its output:\n${output.slice(-4000)}`)
    this.how = how
  }
}

interface Background {
  child: ChildProcess
}

function killGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-(child.pid as number), signal)
  } catch {}
}

const ended = (child: ChildProcess): boolean => child.exitCode != null || child.signalCode != null

function describeExit (code: number | null, signal: NodeJS.Signals | null): string {
  return signal != null ? `was killed by ${signal}` : `exited with code ${code}`
}

/** Run `line` in bash, in its own process group; stopped when `abort` settles first */
export async function runLine (line: string, init: RunInit, abort: Promise<never> = new Promise<never>(() => {})): Promise<Ran> {
  const child = spawn('bash', ['-c', line], { cwd: init.cwd, env: init.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', d => { stdout += d })
  child.stderr.on('data', d => { stderr += d })
  const timer = setTimeout(() => { killGroup(child, 'SIGKILL') }, init.lineTimeoutMs ?? 120_000)
  const closed = new Promise<number | null>(resolve => child.once('close', resolve))
  try {
    const code = await Promise.race([closed, abort])
    return { code, stdout, stderr }
  } finally {
    clearTimeout(timer)
    if (!ended(child)) {
      killGroup(child, 'SIGKILL')
      await closed
    }
  }
}

/** Resolves with the number of commands run; rejects at the first that fails */
export async function runReadme (path: string, init: RunInit): Promise<number> {
  const blocks = parseReadme(await readFile(path, 'utf8'))
  const fill = init.fill ?? (async (line: string) => line)
  const name = path.replace(/^.*\//, '')
  const background: Background[] = []
  // settles (rejects) when any background command ends: a line running then
  // is stopped, and the run fails with that command's output
  let died: (err: Error) => void = () => {}
  const anyEnded = new Promise<never>((_resolve, reject) => { died = reject })
  anyEnded.catch(() => {})
  let ran = 0
  try {
    for (const block of blocks) {
      const annotation = block.annotation ?? ''
      if (annotation.startsWith('skip')) {
        if (!/^skip \S/.test(annotation)) {
          throw new Error(`${name}:${block.at}: a skipped example says why`)
        }
        continue
      }
      for (const raw of block.lines) {
        const line = await fill(raw)
        const where = `${name}:${block.at}: ${raw}`
        const exported = /^export (\w+)=(\S+)$/.exec(line)
        if (exported != null) {
          init.env[exported[1]] = exported[2].startsWith('/') ? exported[2] : join(init.cwd, exported[2])
          continue
        }
        if (annotation.startsWith('background ')) {
          background.push(await startBackground(line, where, new RegExp(annotation.slice('background '.length)), init, died))
          ran++
          continue
        }
        const result = await runLine(line, init, anyEnded).catch((err: Error) => {
          throw err instanceof BackgroundEndedError ? new Error(`${where}\n  was stopped: ${err.message}`) : err
        })
        if (result.code !== 0) {
          throw new Error(`${where}\n  ran: ${line}\n  exit code: ${result.code}\n  stdout: ${result.stdout.slice(0, 2000)}\n  stderr: ${result.stderr.slice(0, 2000)}`)
        }
        ran++
      }
    }
    return ran
  } finally {
    await stopBackground(background)
  }
}

async function startBackground (line: string, where: string, ready: RegExp, init: RunInit, died: (err: Error) => void): Promise<Background> {
  const child = spawn('bash', ['-c', line], { cwd: init.cwd, env: { ...init.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  child.stdout?.on('data', d => { output += d })
  child.stderr?.on('data', d => { output += d })
  const ended = new Promise<never>((_resolve, reject) => {
    child.once('exit', (code, signal) => {
      // its last words may still be in the pipes: wait for them a little
      // (a process it started may hold them open for ever)
      const timer = setTimeout(done, 1000)
      child.once('close', done)
      function done (): void {
        clearTimeout(timer)
        reject(new BackgroundEndedError(where, describeExit(code, signal), output))
      }
    })
  })
  ended.catch(() => {})
  const readyMs = init.readyTimeoutMs ?? 180_000
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([ended, new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`${where}: not ready within ${readyMs / 1000} s:\n${output}`)) }, readyMs)
      const check = (): void => { if (ready.test(output)) resolve() }
      child.stdout?.on('data', check)
      child.stderr?.on('data', check)
    })])
  } catch (err: any) {
    killGroup(child, 'SIGKILL')
    throw err instanceof BackgroundEndedError ? new Error(`${where}: ${err.how} before it was ready:\n${output}`) : err
  } finally {
    clearTimeout(timer)
  }
  // from now on its end fails the run
  ended.catch(died)
  return { child }
}

/** Ctrl-C to each background command, newest first; SIGKILL to one still running 20 s later */
async function stopBackground (background: Background[]): Promise<void> {
  for (const { child } of background.splice(0).reverse()) {
    if (ended(child) || child.pid == null) {
      continue
    }
    const exited = new Promise(resolve => child.once('exit', resolve))
    killGroup(child, 'SIGINT')
    const timer = setTimeout(() => { killGroup(child, 'SIGKILL') }, 20_000)
    await exited
    clearTimeout(timer)
  }
}
