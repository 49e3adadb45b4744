import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import { DEFAULT_RECOVER_WAIT_MS, RECOVERY_MARKER } from '../../storage/constants.ts'
import { IndexWriteError, NoIndexFoundError } from '../../storage/errors.ts'
import { streamEvents } from './routes.ts'
import type { Progress, StorageClient } from '../../storage/client/storage-client.ts'
import type { ErrorStatus, RouteTable } from '../module.ts'

const log = logger('opencloud:storage:recovery')

/** The recovery's errors, and the HTTP status each gets in the control API */
export const RECOVERY_ERRORS: ErrorStatus[] = [
  [NoIndexFoundError, 404],
  [IndexWriteError, 502]
]

/** The most a recovery may wait for the market to list hosts: 10 minutes (an answer streams, so no HTTP timeout ends it) */
const MAX_WAIT_MS = 600_000

/**
 * The control API's recovery routes (PROTOCOL.md 8g): POST
 * /v1/store/recover runs one (NDJSON progress, then the report) and GET
 * /v1/store/recovery says whether one is under way
 */
export function recoveryRoutes (client: StorageClient): RouteTable {
  return {
    'POST /v1/store/recover': async (ctx) => {
      const usage = 'send JSON: {"waitMs": 60000} (how long to wait for the market to list storage hosts, at most 600000)'
      const body = await readJsonBody(ctx.req, usage)
      const waitMs = body.waitMs ?? DEFAULT_RECOVER_WAIT_MS
      if (typeof waitMs !== 'number' || !Number.isInteger(waitMs) || waitMs < 0 || waitMs > MAX_WAIT_MS) {
        throw new HttpError(400, usage)
      }
      await streamEvents(ctx, async (onProgress, signal) => {
        const report = await client.recover({ waitMs, signal, onProgress: (p) => { onProgress(p as unknown as Progress) } })
        return { report }
      })
    },
    'GET /v1/store/recovery': async ({ json }) => {
      json(200, { recovery: client.recoveryStatus() ?? null })
    }
  }
}

/**
 * The one recovery at the first start after `wallet restore` (its marker
 * file in the data directory): in the background, so the node starts at
 * once; the marker goes when the index was found, or hosts answered that
 * there is none, and stays for the next start when none could be asked
 */
export async function recoverAfterRestore (client: StorageClient, dataDir: string, waitMs = DEFAULT_RECOVER_WAIT_MS): Promise<void> {
  const marker = join(dataDir, RECOVERY_MARKER)
  try {
    const report = await client.recover({ waitMs })
    log('recovered after the wallet restore: %d objects, %d contracts', report.objectsAdded, report.contractsAdded)
    await rm(marker, { force: true })
  } catch (err: any) {
    if (err instanceof NoIndexFoundError && err.hostsAnswered > 0) {
      log('no index for these words at the hosts: nothing to recover')
      await rm(marker, { force: true })
      return
    }
    log.error('the recovery after the wallet restore failed; tried again at the next start (or run store recover) - %s', err.message)
  }
}
