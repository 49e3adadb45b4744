import { spawn } from 'node:child_process'
import { connectApi } from '../api-client.ts'
import { printJson, UsageError, type Command } from '../command.ts'
import { CLI } from '../../utils/cli-name.ts'

/**
 * Open the operator's dashboard: ask the running node for a one-time login
 * link (valid two minutes, good for one login) and open it in the
 * desktop's browser where there is one; print it either way, so it can be
 * opened on a machine whose browser reaches the node (an SSH tunnel).
 */
export const dashboardCommand: Command = {
  name: 'dashboard',
  summary: 'open the node\'s dashboard in a browser (a one-time login link)',
  usage: `${CLI} dashboard [--no-open]`,
  help: `Prints a one-time link that logs a browser into the dashboard of the node
running with this data directory, and opens it in the desktop's browser
when there is one (xdg-open or open). The link works once, within 2 minutes;
run the command again for another. The dashboard is at the control API's
address (http://127.0.0.1:4101/ by default): its login page also takes the
token in api.token in the data directory.

  --no-open   only print the link

The pages: overview (identity, peers, warnings), money, hosting, my files,
market, reputation, ledger. Prometheus metrics are at /metrics (npx opencloud-node metrics; README,
"Dashboard and metrics").`,
  options: {
    'no-open': { type: 'boolean' }
  },
  run: async ({ values, positionals, json, dataDir, out }) => {
    if (positionals.length > 0) {
      throw new UsageError(`"dashboard" takes no arguments, not "${positionals.join(' ')}"`)
    }
    const api = await connectApi(dataDir, values.api)
    const link = await api.post<{ path: string, expiresInSeconds: number }>('/v1/dashboard/link')
    const url = `${api.url}${link.path}`
    const opened = values['no-open'] === true ? false : await openBrowser(url)
    if (json) {
      printJson(out, { url, expiresInSeconds: link.expiresInSeconds, opened })
      return
    }
    out.write(`${opened ? 'opened' : 'open'} this link to log in (it works once, within ${link.expiresInSeconds / 60} minutes):\n  ${url}\n`)
  }
}

/** The desktop's browser, when there is a desktop: whether one was started */
async function openBrowser (url: string): Promise<boolean> {
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? undefined : 'xdg-open'
  const desktop = process.platform === 'darwin' || process.env.DISPLAY != null || process.env.WAYLAND_DISPLAY != null
  if (opener == null || !desktop) {
    return false
  }
  return new Promise(resolve => {
    const child = spawn(opener, [url], { stdio: 'ignore', detached: true })
    child.once('error', () => { resolve(false) })
    child.once('spawn', () => { child.unref(); resolve(true) })
  })
}

/**
 * The node's Prometheus metrics as a scraper reads them (GET /metrics),
 * for a look from the terminal or a script without Prometheus
 */
export const metricsCommand: Command = {
  name: 'metrics',
  summary: 'print the node\'s Prometheus metrics (GET /metrics)',
  usage: `${CLI} metrics`,
  help: `Prints what Prometheus scrapes from the node running with this data
directory: libp2p's figures (connections, streams, bytes per protocol) and
the node's (RPC calls by service, method and status with their latency,
payments, tabs and channels, stored and hosted bytes, audits, repairs, the
ledger). The output is Prometheus text, with or without --json; amounts are
BTC, sizes bytes, times seconds. README, "Dashboard and metrics", has a
scrape config.`,
  options: {},
  run: async ({ positionals, dataDir, values, out }) => {
    if (positionals.length > 0) {
      throw new UsageError(`"metrics" takes no arguments, not "${positionals.join(' ')}"`)
    }
    const api = await connectApi(dataDir, values.api)
    out.write(await api.getText('/metrics'))
  }
}
