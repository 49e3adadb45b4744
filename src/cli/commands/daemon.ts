import { OpenCloudNode } from '../../node/opencloud-node.ts'
import { ApiServer } from '../../node/api/api-server.ts'
import { checkApiAddress, loadConfig, LOG_LEVELS, updateConfigFile, type LogLevel } from '../../node/config.ts'
import { ensureDataDir, loadOrCreateToken, removeApiInfo, writeApiInfo } from '../../node/data-dir.ts'
import { setLogLevel } from '../../node/logging.ts'
import { VERSION } from '../../node/version.ts'
import { UsageError, hintLine, printJson, table, type Command } from '../command.ts'
import { multiaddr } from '@multiformats/multiaddr'
import { parseS3Address } from '../../services/s3/index.ts'
import type { S3Gateway } from '../../gateway/s3/s3-gateway.ts'

export const daemonCommand: Command = {
  name: 'daemon',
  summary: 'start a node and run it until Ctrl-C (the default command)',
  usage: 'opencloud-node [daemon] [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--api HOST:PORT] [--s3 HOST:PORT|off]',
  help: `Starts an OpenCloud node: it listens for peers, joins the network through
its bootstrap peers, serves its services over the OpenCloud protocol and
answers the CLI on its control API. It runs until SIGINT or SIGTERM, then
closes its streams and connections and flushes its datastore.

Options:
  --listen MULTIADDR     listen here (repeatable), e.g. /ip4/0.0.0.0/tcp/4100;
                         saved as config.listen for the next starts
  --bootstrap MULTIADDR  also join through this peer (repeatable), e.g.
                         /ip4/10.0.0.2/tcp/4100/p2p/12D3KooW...; this start only
  --api HOST:PORT        control API address on loopback (default 127.0.0.1:4101;
                         port 0 picks a free port); saved as config.api
  --s3 HOST:PORT         serve the S3 gateway there, e.g. 127.0.0.1:4102 (off
                         by default; "off" turns it off); saved as s3.listen.
                         Keys: opencloud-node s3 keys create
  --exit-with-parent     stop cleanly when the process that started this one
                         ends (for supervisors such as the testnet: a killed
                         supervisor leaves no orphan nodes)`,
  options: {
    listen: { type: 'string', multiple: true },
    bootstrap: { type: 'string', multiple: true },
    'exit-with-parent': { type: 'boolean' },
    s3: { type: 'string' }
  },
  run: async ({ values, json, dataDir, out, err }) => {
    for (const addr of [...(values.listen ?? []), ...(values.bootstrap ?? [])]) {
      try {
        multiaddr(addr)
      } catch (e: any) {
        throw new UsageError(`"${addr}" is not a multiaddr (${e.message})`)
      }
    }
    if (values.api != null) {
      try {
        checkApiAddress(values.api)
      } catch {
        throw new UsageError(`--api "${values.api}" must be a loopback host and port such as 127.0.0.1:4101: the control API is never exposed beyond this machine`)
      }
    }
    if (values.s3 != null && values.s3 !== 'off') {
      try {
        parseS3Address(values.s3)
      } catch {
        throw new UsageError(`--s3 "${values.s3}" is not HOST:PORT, such as 127.0.0.1:4102 (or "off")`)
      }
    }
    if (values['log-level'] != null && !LOG_LEVELS.includes(values['log-level'])) {
      throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not "${values['log-level']}"`)
    }
    // flags are checked before anything is made in the data directory
    const paths = await ensureDataDir(dataDir)
    let config = await loadConfig(paths.config)
    // --listen and --api are settings, not one-off choices: kept in
    // config.json so the next start (and the CLI) finds the node where it was
    if (values.listen != null || values.api != null || values.s3 != null) {
      config = await updateConfigFile(paths.config, raw => {
        if (values.listen != null) raw.listen = values.listen
        if (values.api != null) raw.api = values.api
        if (values.s3 != null) raw.s3 = { ...raw.s3, listen: values.s3 === 'off' ? '' : values.s3 }
      })
    }
    const logLevel: LogLevel = values['log-level'] ?? config.logLevel
    setLogLevel(logLevel)
    const api = checkApiAddress(config.api)
    const token = await loadOrCreateToken(paths.apiToken)

    // a stray rejection inside a dependency must not take the node down with
    // every connection it holds; it is logged for the operator instead
    process.on('unhandledRejection', (reason: any) => {
      err.write(`opencloud-node: unhandled error, the node keeps running: ${reason?.stack ?? reason}\n`)
    })

    // handlers first: a supervisor may signal the moment it reads "started",
    // and a signal that arrives before its handler exists kills the process
    // without a clean shutdown (seen under load in the CLI tests)
    let stopping = false
    let requestStop: (why: string) => void = () => {}
    const stopRequested = new Promise<void>(resolve => {
      const stop = (signal: string): void => {
        if (stopping) {
          err.write('stopping now\n')
          process.exit(130)
        }
        stopping = true
        if (!json) {
          out.write(`${signal}: stopping...\n`)
        }
        resolve()
      }
      requestStop = stop
      process.on('SIGINT', () => { stop('SIGINT') })
      process.on('SIGTERM', () => { stop('SIGTERM') })
      if (values['exit-with-parent'] === true) {
        // an orphan is adopted by another process: its parent id changes
        const parent = process.ppid
        setInterval(() => {
          if (process.ppid !== parent && !stopping) {
            stop('the process that started this node ended')
          }
        }, 1000).unref()
      }
    })

    const node = await OpenCloudNode.create({ dataDir, config, bootstrap: values.bootstrap, persistConfig: true })
    await node.start()
    const apiServer = new ApiServer(node, { ...api, token, onStop: () => { if (!stopping) requestStop('the stop command') } })
    try {
      await apiServer.start()
    } catch (e) {
      await node.stop()
      throw e
    }
    const addrs = node.libp2p.getMultiaddrs().map(a => a.toString())
    const s3 = node.engine<S3Gateway>('s3')?.url
    await writeApiInfo(paths.apiInfo, { url: apiServer.url, peerId: node.peerId.toString(), pid: process.pid, addrs })
    if (json) {
      out.write(JSON.stringify({ event: 'started', peerId: node.peerId.toString(), addrs, api: apiServer.url, ...(s3 != null ? { s3 } : {}), dataDir }) + '\n')
    } else {
      out.write(`opencloud-node ${VERSION}\n` + table([
        ['PeerId', node.peerId.toString()],
        ...addrs.map((a, i) => [i === 0 ? 'listening' : '', a]),
        ['api', apiServer.url],
        // a hint that runs as printed: the data directory tells the command where this node's API is
        ['dashboard', `${apiServer.url}/ (${hintLine({ 'data-dir': values['data-dir'] }, ['dashboard'])} logs a browser in)`],
        ...(s3 != null ? [['s3', s3]] : []),
        ['data dir', dataDir],
        ['services', node.registry.names().join(', ')]
      ]) + 'Press Ctrl-C to stop.\n')
    }

    await stopRequested
    await removeApiInfo(paths.apiInfo)
    await apiServer.stop()
    await node.stop()
    if (json) {
      out.write(JSON.stringify({ event: 'stopped', peerId: node.peerId.toString() }) + '\n')
    } else {
      out.write('stopped\n')
    }
    return 0
  }
}

export { printJson }
