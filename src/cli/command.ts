import { parseArgs, type ParseArgsConfig } from 'node:util'
import { CLI } from '../utils/cli-name.ts'

/** What every command gets: parsed flags, positionals and where to write */
export interface CommandContext {
  values: Record<string, any>
  positionals: string[]
  json: boolean
  /** the command line as given, for hints that repeat it */
  argv: string[]
  dataDir: string
  out: NodeJS.WritableStream
  err: NodeJS.WritableStream
}

export interface Command {
  name: string
  summary: string
  usage: string
  /** the --help text after the usage line */
  help: string
  options: NonNullable<ParseArgsConfig['options']>
  run: (ctx: CommandContext) => Promise<number | undefined | void>
}

/**
 * A mistake in the command line, seen before the daemon is asked: exit code
 * 2, with a command line that would do instead when there is one
 */
export class UsageError extends Error {
  override name = 'UsageError'
  readonly hint?: string
  constructor (message: string, hint?: string) {
    super(message)
    this.hint = hint
  }
}

/** An error with a command line that would succeed, printed under the message */
export class HintedError extends Error {
  readonly hint: string
  readonly detail: Record<string, unknown>
  constructor (message: string, hint: string, detail: Record<string, unknown> = {}, name = 'HintedError') {
    super(message)
    this.name = name
    this.hint = hint
    this.detail = detail
  }
}

/** Quote a word for a POSIX shell when it needs it */
export function shellWord (word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`
}

/**
 * A command line to print as a hint, with the --data-dir and --api the user
 * gave (a hint without them would talk to another node, or to none).
 * Placeholders such as <file> are printed as they are; every other word is
 * quoted for the shell where it needs it.
 */
export function hintLine (values: Record<string, any>, words: string[]): string {
  const node = [...(values['data-dir'] != null ? ['--data-dir', values['data-dir']] : []), ...(values.api != null ? ['--api', values.api] : [])]
  return `${CLI} ${[...node, ...words].map(w => /^<[^<>]+>$/.test(w) ? w : shellWord(w)).join(' ')}`
}

/** Flags every command takes */
export const COMMON_OPTIONS = {
  'data-dir': { type: 'string' },
  api: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'log-level': { type: 'string' }
} as const satisfies NonNullable<ParseArgsConfig['options']>

export const COMMON_HELP = `Common options:
  --data-dir DIR     the node's data directory (default $OPENCLOUD_HOME or ~/.opencloud)
  --api HOST:PORT    the control API of the running node (default: read from the data directory)
  --json             print JSON for scripts
  --log-level LEVEL  error, warn, info, debug or trace (default info)
  -h, --help         show this help`

/**
 * The part of a command's help about one subcommand, for "store put
 * --help": its usage lines and its lines of the help (the subcommand's line
 * and those indented under it), or undefined when the help has none. A
 * newcomer asking "store put --help" got the whole store page
 */
export function subcommandHelp (command: Command, sub: string): string | undefined {
  const lines = command.help.split('\n')
  const prefix = `  ${command.name} ${sub}`
  const start = lines.findIndex(l => l === prefix || l.startsWith(`${prefix} `))
  if (start < 0) {
    return undefined
  }
  let end = start + 1
  while (end < lines.length && (lines[end].startsWith('   ') || lines[end] === prefix || lines[end].startsWith(`${prefix} `))) {
    end++
  }
  const usage = command.usage.split('\n').map(l => l.trim()).filter(l => l.startsWith(`${CLI} ${command.name} ${sub} `) || l === `${CLI} ${command.name} ${sub}`)
  return `${usage.length === 0 ? '' : `Usage: ${usage.join('\n       ')}\n\n`}${lines.slice(start, end).join('\n')}\n\nAll of "${command.name}": ${CLI} ${command.name} --help\n\n${COMMON_HELP}\n`
}

export function parseCommandArgs (command: Command, argv: string[]): { values: Record<string, any>, positionals: string[] } {
  try {
    // "-3" is a (negative) amount the command will refuse with a sentence,
    // not an unknown option: hide it from the option parser
    const NEGATIVE = '\u0000negative:'
    const { values, positionals } = parseArgs({
      args: argv.map(a => /^-[0-9.]/.test(a) ? NEGATIVE + a : a),
      options: { ...COMMON_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true
    })
    // and give it back as typed, to an option's value as to a positional
    const unmask = (v: unknown): any => typeof v === 'string' && v.startsWith(NEGATIVE) ? v.slice(NEGATIVE.length) : Array.isArray(v) ? v.map(unmask) : v
    return { values: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, unmask(v)])), positionals: positionals.map(unmask) }
  } catch (err: any) {
    throw new UsageError(`${err.message.replace(/\. To specify a positional.*$/, '')}; see: ${CLI} ${command.name} --help`)
  }
}

export function printJson (out: NodeJS.WritableStream, value: unknown): void {
  out.write(JSON.stringify(value, (_k, v) => typeof v === 'bigint' ? v.toString() : v, 2) + '\n')
}

/** Fixed-width rows for human output */
export function table (rows: string[][]): string {
  if (rows.length === 0) {
    return ''
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length)))
  return rows.map(r => r.map((cell, i) => i === r.length - 1 ? cell : cell.padEnd(widths[i])).join('  ')).join('\n') + '\n'
}
