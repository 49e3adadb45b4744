import { ApiError } from './api-client.ts'
import { resolveDataDir } from '../node/data-dir.ts'
import { VERSION } from '../node/version.ts'
import { COMMON_HELP, COMMON_OPTIONS, HintedError, UsageError, parseCommandArgs, subcommandHelp, printJson, type Command } from './command.ts'
import { CLI } from '../utils/cli-name.ts'
import { callCommand } from './commands/call.ts'
import { daemonCommand } from './commands/daemon.ts'
import { idCommand, peersCommand, servicesCommand } from './commands/info.ts'
import { paymentsCommand, walletCommand } from './commands/wallet.ts'
import { marketCommand } from './commands/market.ts'
import { reputationCommand } from './commands/reputation.ts'
import { storeCommand } from './commands/store.ts'
import { ledgerCommand } from './commands/ledger.ts'
import { stopCommand } from './commands/stop.ts'
import { s3Command } from './commands/s3.ts'
import { dashboardCommand, metricsCommand } from './commands/dashboard.ts'

const COMMANDS: Command[] = [daemonCommand, idCommand, peersCommand, servicesCommand, callCommand, walletCommand, paymentsCommand, marketCommand, reputationCommand, storeCommand, ledgerCommand, s3Command, dashboardCommand, metricsCommand, stopCommand]

function overview (): string {
  const width = Math.max(...COMMANDS.map(c => c.name.length))
  return `opencloud-node ${VERSION}: a node of the open cloud marketplace

Usage: opencloud-node [command] [options]

Commands:
${COMMANDS.map(c => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run "${CLI} <command> --help" for a command's options.

${COMMON_HELP}
`
}

function commandHelp (command: Command): string {
  return `Usage: ${command.usage}\n\n${command.help}\n\n${COMMON_HELP}\n`
}

/** Options that take a value, in any command: their value is never the command name */
const VALUE_OPTIONS = new Set(COMMANDS.flatMap(c => Object.entries({ ...COMMON_OPTIONS, ...c.options })
  .filter(([, o]) => o.type === 'string')
  .flatMap(([name, o]) => ['--' + name, ...('short' in o && o.short != null ? ['-' + o.short] : [])])))

/**
 * The command is the first word that is not an option or an option's value,
 * so `opencloud-node --data-dir X call ...` and `opencloud-node call
 * --data-dir X ...` mean the same. With no command the daemon runs.
 */
function splitCommand (argv: string[]): { name: string | undefined, rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]
    if (token === '--') {
      break
    }
    if (token.startsWith('-')) {
      if (VALUE_OPTIONS.has(token)) {
        i++
      }
      continue
    }
    return { name: token, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] }
  }
  return { name: undefined, rest: argv }
}

/**
 * The exit status of a command whose output was closed under it (`store ls
 * | head`): what a shell reports for a program stopped by SIGPIPE (128 + 13),
 * as cat or git end there. Node ignores SIGPIPE and raises EPIPE instead.
 */
export const CLOSED_PIPE_EXIT = 141

function isClosedPipe (e: any): boolean {
  return e?.code === 'EPIPE' || e?.code === 'ERR_STREAM_DESTROYED'
}

/**
 * A closed stdout or stderr ends a command quietly instead of with a stack
 * trace. The daemon goes on (it prints little, and a node must not stop
 * uncleanly because the terminal that started it went away).
 */
function onClosedPipe (stream: NodeJS.WritableStream, daemon: () => boolean): void {
  stream.on('error', (e: any) => {
    if (!isClosedPipe(e)) {
      throw e
    }
    if (!daemon() && (stream === process.stdout || stream === process.stderr)) {
      process.exit(CLOSED_PIPE_EXIT)
    }
  })
}

/**
 * --api of a command other than the daemon: where the running node's control
 * API is, HOST:PORT or a URL
 */
function checkApiFlag (value: string): void {
  let url: URL | undefined
  try {
    url = new URL(value.startsWith('http') ? value : `http://${value}`)
  } catch {}
  if (url == null || url.port === '' || url.pathname !== '/') {
    throw new UsageError(`--api "${value}" is not where a node's control API listens: give HOST:PORT such as 127.0.0.1:4101 (the node's api.json has its URL)`)
  }
}

/** Run the CLI; resolves with the exit code */
export async function main (argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let daemon = false
  onClosedPipe(out, () => daemon)
  onClosedPipe(err, () => daemon)
  if (argv[0] === '--version' || argv[0] === '-v') {
    out.write(`${VERSION}\n`)
    return 0
  }
  const split = splitCommand(argv)
  let name = split.name
  const rest = split.rest
  if (name === 'help') {
    const command = COMMANDS.find(c => c.name === rest.find(t => !t.startsWith('-')))
    out.write(command == null ? overview() : commandHelp(command))
    return 0
  }
  if (name == null) {
    if (rest.includes('--help') || rest.includes('-h')) {
      out.write(overview())
      return 0
    }
    name = 'daemon'
  }
  daemon = name === 'daemon'
  const command = COMMANDS.find(c => c.name === name)
  if (command == null) {
    err.write(`opencloud-node: unknown command "${name}"\n\n${overview()}`)
    return 2
  }
  let json = false
  try {
    const { values, positionals } = parseCommandArgs(command, rest)
    json = values.json === true
    if (values.help === true) {
      out.write((positionals[0] == null ? undefined : subcommandHelp(command, positionals[0])) ?? commandHelp(command))
      return 0
    }
    if (values.api != null && !daemon) {
      checkApiFlag(values.api)
    }
    const dataDir = resolveDataDir(values['data-dir'])
    const code = await command.run({ values, positionals, json, argv, dataDir, out, err })
    return code ?? 0
  } catch (e: any) {
    if (isClosedPipe(e)) {
      // the reader went away (`| head`): nobody is left to tell
      return CLOSED_PIPE_EXIT
    }
    const usage = e instanceof UsageError
    const detail = e instanceof ApiError || e instanceof HintedError ? e.detail : {}
    const hint: string | undefined = e instanceof HintedError || e instanceof UsageError ? e.hint : undefined
    // errors go to stderr in both forms, so a script reading stdout never
    // mistakes an error for an answer; --json makes them machine-readable
    if (json) {
      printJson(err, { error: { name: e.name, message: e.message, ...detail, ...(hint == null ? {} : { hint }) } })
    } else {
      err.write(`opencloud-node: ${detail.status != null ? `${String(detail.status)}: ` : ''}${e.message}\n`)
      if (hint != null) {
        err.write(`  try: ${hint}\n`)
      }
      if (process.env.OPENCLOUD_DEBUG != null && !usage) {
        err.write(`${e.stack}\n`)
      }
    }
    return usage ? 2 : 1
  }
}
