import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const BIN = fileURLToPath(new URL('../../bin/opencloud-node.js', import.meta.url))

export interface CliResult {
  code: number
  stdout: string
  stdoutBytes: Buffer
  stderr: string
}

/** Run the CLI as a user would, in its own process */
export async function runCli (args: string[], options: { stdin?: string | Uint8Array, env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } })
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  child.stdout.on('data', d => stdout.push(d))
  child.stderr.on('data', d => stderr.push(d))
  child.stdin.end(options.stdin)
  const code = await new Promise<number>(resolve => child.once('close', c => { resolve(c ?? -1) }))
  return { code, stdout: Buffer.concat(stdout).toString('utf8'), stdoutBytes: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString('utf8') }
}

export const REPO = fileURLToPath(new URL('../../', import.meta.url))

/**
 * Run a command line exactly as printed (a hint, a README example) in a
 * shell in the checkout, as a person would paste it
 */
export async function runShell (line: string, stdin?: string, cwd = REPO): Promise<CliResult> {
  const child = spawn('bash', ['-c', line], { cwd, stdio: ['pipe', 'pipe', 'pipe'] })
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  child.stdout.on('data', d => stdout.push(d))
  child.stderr.on('data', d => stderr.push(d))
  child.stdin.end(stdin)
  const code = await new Promise<number>(resolve => child.once('close', c => { resolve(c ?? -1) }))
  return { code, stdout: Buffer.concat(stdout).toString('utf8'), stdoutBytes: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString('utf8') }
}

export interface Daemon {
  child: ChildProcess
  peerId: string
  addrs: string[]
  api: string
  /** SIGTERM, then the exit code, the lines it printed and its stderr */
  stop: () => Promise<{ code: number | null, signal: string | null, lines: any[], stderr: string }>
}

/** Start `opencloud-node daemon --json` and wait for its started event */
export async function startDaemon (dataDir: string, extra: string[] = []): Promise<Daemon> {
  const child = spawn(process.execPath, [BIN, 'daemon', '--json', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: any[] = []
  let stderr = ''
  child.stderr?.on('data', d => { stderr += d })
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const started = await new Promise<any>((resolve, reject) => {
    child.once('exit', code => { reject(new Error(`daemon exited with ${code}: ${stderr}`)) })
    rl.on('line', line => {
      const event = JSON.parse(line)
      lines.push(event)
      if (event.event === 'started') {
        resolve(event)
      }
    })
  })
  child.removeAllListeners('exit')
  return {
    child,
    peerId: started.peerId,
    addrs: started.addrs,
    api: started.api,
    stop: async () => {
      const exited = new Promise<[number | null, string | null]>(resolve => child.once('exit', (code, signal) => { resolve([code, signal]) }))
      child.kill('SIGTERM')
      const [code, signal] = await exited
      return { code, signal, lines, stderr }
    }
  }
}
