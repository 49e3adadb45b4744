#!/usr/bin/env node
// The entry point of `npx opencloud-node`. It must run on whatever Node the
// machine has, so it is plain JavaScript that Node 20 understands.
//
// libp2p 3 needs Node 22 or newer. The package depends on the npm package
// "node", which installs a Node 24 binary beside it: on an older Node this
// script runs itself again under that binary, with the same arguments,
// standard streams and signals.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const [major, minor] = process.versions.node.split('.').map(Number)
const modern = major > 22 || (major === 22 && minor >= 18)

if (!modern) {
  let bundled
  try {
    bundled = join(dirname(createRequire(import.meta.url).resolve('node/package.json')), 'bin', 'node')
  } catch {}
  if (bundled == null || !existsSync(bundled) || process.env.OPENCLOUD_REEXEC === '1') {
    process.stderr.write(`opencloud-node needs Node.js 22.18 or newer, this is ${process.version}, and the Node it installs (the npm package "node") is missing.\n` +
      'Reinstall it (npm install opencloud-node), or run it with a newer Node.\n')
    process.exit(1)
  }
  const child = spawn(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, OPENCLOUD_REEXEC: '1' } })
  // Ctrl-C reaches the child from the terminal, as to every process of the
  // foreground group: forwarding it too would be a second Ctrl-C, which
  // stops a daemon at once instead of cleanly. A supervisor's SIGTERM or
  // SIGHUP goes to this process alone and is passed on.
  process.on('SIGINT', () => {})
  for (const signal of ['SIGTERM', 'SIGHUP']) {
    process.on(signal, () => { child.kill(signal) })
  }
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal == null ? 1 : 128)
  })
} else {
  // in a checkout the TypeScript sources run as they are (Node strips the
  // types); an installed package runs the JavaScript built when it was packed
  const source = join(here, '..', 'src', 'cli', 'main.ts')
  const entry = existsSync(source) ? source : join(here, '..', 'dist', 'cli', 'main.js')
  const { main } = await import(pathToFileURL(entry).href)
  process.exitCode = await main(process.argv.slice(2))
}
