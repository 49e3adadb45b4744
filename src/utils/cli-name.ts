import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * How the person at the terminal runs this program, for hints they can copy:
 * "npx opencloud-node" inside a checkout (where the bin is not on PATH) or
 * when npx started it, else "opencloud-node" (a global install).
 */
function detect (): string {
  if (process.env.npm_command === 'exec') {
    return 'npx opencloud-node'
  }
  // a checkout has its .git beside src/; an installed package has neither
  const root = fileURLToPath(new URL('../../', import.meta.url))
  return existsSync(`${root}.git`) ? 'npx opencloud-node' : 'opencloud-node'
}

export const CLI = detect()
