import { enable } from '@libp2p/logger'
import type { LogLevel } from './config.ts'

/**
 * Map --log-level onto the debug namespaces of @libp2p/logger. Components
 * log under `opencloud:<component>` (errors under `...:error`, detail under
 * `...:trace`). A DEBUG variable in the environment wins, so the usual
 * `DEBUG=libp2p:*` still works.
 */
export function setLogLevel (level: LogLevel, env: NodeJS.ProcessEnv = process.env): void {
  if (env.DEBUG != null && env.DEBUG !== '') {
    return
  }
  switch (level) {
    case 'error':
    case 'warn':
    case 'info':
      enable('opencloud:*:error')
      break
    case 'debug':
      enable('opencloud:*,-opencloud:*:trace')
      break
    case 'trace':
      enable('opencloud:*,libp2p:*:error')
      break
  }
}
