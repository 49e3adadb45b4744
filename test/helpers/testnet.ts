import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const SCRIPT = fileURLToPath(new URL('../../scripts/testnet/testnet.ts', import.meta.url))

/**
 * `npm run testnet -- --json` in its own process group (so a failed test can
 * stop the daemons too), resolved with what it printed once the nodes are up,
 * and what it has written to stderr so far
 */
export async function startTestnet (nodes: number, dir: string, extra: string[] = []): Promise<{ child: ChildProcess, network: any, stderr: () => string }> {
  const child = spawn(process.execPath, [SCRIPT, '--nodes', String(nodes), '--dir', dir, '--json', ...extra], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', d => { stdout += d })
  child.stderr?.on('data', d => { stderr += d })
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', () => { if (stdout.trim().endsWith('}') && stdout.includes('"nodes"')) resolve() })
      child.once('exit', code => { reject(new Error(`testnet exited with ${code}: ${stderr}`)) })
    })
  } catch (err) {
    killGroup(child)
    throw err
  }
  child.removeAllListeners('exit')
  return { child, network: JSON.parse(stdout), stderr: () => stderr }
}

export function killGroup (child: ChildProcess): void {
  if (child.exitCode == null && child.pid != null) {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {}
  }
}

