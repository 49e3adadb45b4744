import { setTimeout as sleep } from 'node:timers/promises'
import { connectApi, DaemonNotRunningError, isAlive, type ApiClient } from '../api-client.ts'
import { printJson, UsageError, type Command } from '../command.ts'
import { parseDuration } from '../../utils/duration.ts'
import { CLI } from '../../utils/cli-name.ts'

/** how long `stop` waits for the node to be gone, by default: its upkeep and transfers end first */
const DEFAULT_STOP_WAIT = '2min'

export class StopTimeoutError extends Error {
  override name = 'StopTimeoutError'
}

/**
 * Stop a daemon from another terminal or a script, as Ctrl-C does in its
 * own: transfers and upkeep end, the datastore closes, api.json goes. It is
 * asked through the control API (POST /v1/stop) rather than signalled, so
 * nothing else that reused a stale pid can be hit.
 */
export const stopCommand: Command = {
  name: 'stop',
  summary: 'stop the node running with this data directory, cleanly',
  usage: `${CLI} stop [--wait 2min]`,
  help: `Asks the node running with this data directory (or the one at --api) to
stop, as Ctrl-C in its terminal would, and waits until it has.

  --wait D   how long to wait for it to end, default ${DEFAULT_STOP_WAIT}

When no node is running with the data directory, it says so and succeeds.`,
  options: {
    wait: { type: 'string' }
  },
  run: async ({ values, positionals, json, dataDir, out }) => {
    if (positionals.length > 0) {
      throw new UsageError(`"stop" takes no arguments, not "${positionals.join(' ')}"`)
    }
    let waitMs: number
    try {
      waitMs = parseDuration(values.wait ?? DEFAULT_STOP_WAIT, '--wait')
    } catch (err: any) {
      throw new UsageError(err.message)
    }
    let api: ApiClient
    try {
      api = await connectApi(dataDir, values.api)
    } catch (err) {
      if (!(err instanceof DaemonNotRunningError)) {
        throw err
      }
      if (json) {
        printJson(out, { stopped: false, running: false, dataDir })
      } else {
        out.write(`no node is running with the data directory ${dataDir}\n`)
      }
      return 0
    }
    const { peerId } = await api.post<{ peerId: string }>('/v1/stop')
    const deadline = Date.now() + waitMs
    while (!await gone(api)) {
      if (Date.now() > deadline) {
        throw new StopTimeoutError(`the node ${peerId} is still stopping after ${values.wait ?? DEFAULT_STOP_WAIT}; its log says what it waits for (a transfer or the upkeep ending)`)
      }
      await sleep(200)
    }
    if (json) {
      printJson(out, { stopped: true, peerId, dataDir })
    } else {
      out.write(`stopped ${peerId}\n`)
    }
  }
}

/** The process is gone (when its pid is known), else its API no longer answers */
async function gone (api: ApiClient): Promise<boolean> {
  if (api.pid != null) {
    return !isAlive(api.pid)
  }
  try {
    await api.get('/v1/id')
    return false
  } catch (err) {
    return err instanceof DaemonNotRunningError
  }
}
