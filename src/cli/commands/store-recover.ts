import { connectApi } from '../api-client.ts'
import { HintedError, hintLine, printJson, UsageError, type CommandContext } from '../command.ts'
import { ApiError } from '../api-client.ts'
import { parseDuration } from '../../utils/duration.ts'
import type { RecoveryReport } from '../../storage/client/recovery/recover.ts'

/** The usage and help lines `store` shows for recover (store.ts carries them) */
export const RECOVER_USAGE = 'store recover [--wait 60s]'
export const RECOVER_HELP = `  store recover           find this wallet's files at the hosts again (after
                          "wallet restore" on a fresh machine: the node does
                          it once by itself at its first start) and list them
    --wait D              how long to wait for the market to list storage
                          hosts: 30s, 5min (default 60s, at most 10min)`

/** "60s", "5min", "1h": ms (parseDuration, and seconds) */
function waitOf (text: string): number {
  const seconds = /^([0-9]+)\s*s$/.exec(text.trim())
  const ms = seconds != null ? Number(seconds[1]) * 1000 : parseDuration(text, '--wait')
  if (ms > 600_000) {
    throw new UsageError(`--wait is at most 10min, not "${text}"`)
  }
  return ms
}

/**
 * `store recover`: the object index from the hosts (PROTOCOL.md 8g), through
 * the daemon's POST /v1/store/recover; progress on a terminal, then what
 * was found
 */
export async function runRecover ({ values, json, dataDir, out, err }: CommandContext): Promise<void> {
  let waitMs: number
  try {
    waitMs = values.wait == null ? 60_000 : waitOf(String(values.wait))
  } catch (e: any) {
    throw new UsageError(e.message)
  }
  const api = await connectApi(dataDir, values.api)
  const tty = !json && (err as any).isTTY === true
  let done: { report: RecoveryReport }
  try {
    done = await api.events<{ report: RecoveryReport }>('/v1/store/recover', { waitMs }, (e) => {
      if (tty) {
        err.write(e.phase === 'hosts' && e.total === 0 ? `\r${String(e.message)} ` : `\r${e.phase === 'import' ? 'importing objects' : 'asking hosts'} ${e.done}/${e.total} `)
      }
    })
  } catch (e) {
    if (e instanceof ApiError && e.name === 'NoIndexFoundError') {
      throw new HintedError(e.message, hintLine(values, ['store', 'recover', '--wait', '5min']), e.detail, e.name)
    }
    throw e
  } finally {
    if (tty) {
      err.write('\n')
    }
  }
  const r = done.report
  if (json) {
    printJson(out, r)
    return
  }
  out.write(`recovered ${r.objectsAdded} objects (${r.objectsKnown} known already) and ${r.contractsAdded} contracts (${r.contracts} found) from ${r.hostsAnswered} of ${r.hostsAsked} storage hosts` +
    (r.notesUnopened > 0 ? `; ${r.notesUnopened} notes did not open with this wallet's key` : '') + '\n' +
    `list them with: ${hintLine(values, ['store', 'ls'])}\n`)
}
