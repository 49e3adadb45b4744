import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** A storage host (or the byte sink) running bench/storage/hosts.ts in a process of its own */
export interface HostProcess { process: ChildProcess, addr: string, peer: string }

/**
 * Starts host processes with their data under `dir`, each pushed onto
 * `processes` (for the bench to stop at its end): `spawnHost(name, role)`
 * resolves once the host printed its address. `role` is "--sink" or the
 * multiaddr of the peer it bootstraps from (bench/storage and bench/s3)
 */
export function hostSpawner (dir: string, processes: ChildProcess[]): (name: string, role: string) => Promise<HostProcess> {
  return async (name, role) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./hosts.ts', import.meta.url)), join(dir, name), role], { stdio: ['ignore', 'pipe', 'inherit'] })
    processes.push(child)
    const { addr, peer } = await new Promise<{ addr: string, peer: string }>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', line => { resolve(JSON.parse(line)) })
      child.once('exit', code => { reject(new Error(`host ${name} exited with ${code}`)) })
    })
    return { process: child, addr, peer }
  }
}
