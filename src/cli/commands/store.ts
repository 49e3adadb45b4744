import { basename, resolve } from 'node:path'
import { ApiError, connectApi } from '../api-client.ts'
import { formatSize } from '../../utils/size.ts'
import { CLI } from '../../utils/cli-name.ts'
import { HintedError, hintLine, printJson, shellWord, table, UsageError, type Command, type CommandContext } from '../command.ts'
import { Progress } from '../progress.ts'
import { checkOutputFile, checkPutArguments } from '../arguments.ts'
import { settlementLine } from './wallet.ts'
import { runShareCommand, SHARE_HELP, SHARE_OPTIONS, SHARE_USAGE } from './store-share.ts'
import { RECOVER_HELP, RECOVER_USAGE, runRecover } from './store-recover.ts'

const USAGE = `${CLI} store put <file|folder>... [--name N] [--redundancy K-of-N] [--duration D] [--max-price AMOUNT] [--force]
       ${CLI} store get <name|id|folder/> [--out FILE|DIR] [--version N] [--force]
       ${CLI} store ls [folder/]
       ${CLI} store versions <name>
       ${CLI} store status
       ${CLI} store info <name|id> [--version N]
       ${CLI} store rm <name|id|folder/> [--version N] [--recursive]
       ${CLI} ${RECOVER_USAGE}
       ${SHARE_USAGE}`
/** The usage lines under an error, each indented the same */
const USAGE_BLOCK = USAGE.split('\n').map(line => `  ${line.trim()}`).join('\n')

/**
 * Progress of a put or get on a terminal: the contract count while hosts are
 * signed up, then bytes. Silent when stderr is not a terminal or with --json.
 */
function progressReporter (err: NodeJS.WritableStream, label: string, enabled: boolean): { onEvent: (e: Record<string, any>) => void, finish: () => void } {
  let bar: Progress | undefined
  let reported = 0
  const tty = enabled && (err as any).isTTY === true
  return {
    onEvent: (e) => {
      if (e.phase === 'contracts') {
        if (tty) {
          err.write(`\rforming contracts with hosts ${e.done}/${e.total} `)
        }
        return
      }
      if (bar == null) {
        if (tty) {
          err.write('\n')
        }
        bar = new Progress(err, label, e.total, enabled)
      }
      bar.add(e.done - reported)
      reported = e.done
    },
    finish: () => { bar?.finish() }
  }
}

/**
 * The daemon's refusals name the next step; this gives it as a command line
 * that runs as printed, with this command's --data-dir and --api
 */
function withHint (e: unknown, values: Record<string, any>, argv: string[], name: string | undefined): unknown {
  if (!(e instanceof ApiError)) {
    return e
  }
  switch (e.name) {
    case 'OutputExistsError':
      // argv carries the user's own --data-dir and --api already
      return new HintedError(e.message, hintLine({}, [...argv, '--force']), e.detail, e.name)
    case 'ObjectBeingStoredError':
      // store rm would fail while that put runs, and remove its file after
      return new HintedError(e.message, hintLine(values, ['store', 'ls']), e.detail, e.name)
    case 'NotEnoughHostsError':
      return new HintedError(e.message, hintLine(values, ['market', 'prices', '--service', 'storage']), e.detail, e.name)
    case 'ObjectNotFoundError':
      return new HintedError(e.message, hintLine(values, ['store', 'ls']), e.detail, e.name)
    case 'VersionPrunedError':
      return new HintedError(e.message, hintLine(values, ['store', 'versions', name ?? '']), e.detail, e.name)
    case 'FolderNotEmptyError':
      return new HintedError(e.message, hintLine(values, ['store', 'rm', name ?? '', '--recursive']), e.detail, e.name)
    case 'PaymentRefusedError':
      return new HintedError(e.message, hintLine(values, ['payments', 'tabs']), e.detail, e.name)
    default:
      return e
  }
}

/**
 * What storage took from the wallet, below `store ls`: on chain (paid to
 * hosts, and the fees of those transactions), beside what the calls cost
 * (the SPENT column, removed files included) and how much of that is not
 * settled yet. Nothing when storage has cost nothing.
 */
function costsLine (costs: Record<string, string>, values: Record<string, any>): string {
  if (costs.calls === '0 BTC' && costs.onChain === '0 BTC') {
    return ''
  }
  const unpaid = costs.unpaid === '0 BTC' ? 'all of it settled' : `${costs.unpaid} of it not settled yet (${hintLine(values, ['payments', 'tabs'])})`
  return `\non chain, storage has taken ${costs.onChain} from the wallet: ${costs.paidOnChain} paid to hosts and ${costs.fees} in fees; its calls cost ${costs.calls}, ${unpaid}\n`
}

/** An ISO time to the minute, in UTC: "2027-01-01 12:00 UTC" */
function minute (iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`
}

function printObject (out: NodeJS.WritableStream, o: Record<string, any>): void {
  out.write(table([
    ['name', o.name],
    ['version', o.current === false ? `${String(o.version)} (superseded ${minute(o.supersededAt)})` : `${String(o.version ?? 1)} (current)`],
    ['id', o.id],
    ['size', o.sizeText === `${o.size} bytes` ? o.sizeText : `${o.sizeText} (${o.size} bytes)`],
    ['sha256', o.sha256],
    // what the S3 gateway kept (ETag, Content-Type, metadata), one line
    ...(o.meta == null ? [] : [['metadata', Object.entries(o.meta as Record<string, string>).map(([k, v]) => `${k}: ${v}`).join(', ')]]),
    ['redundancy', o.redundancyText],
    ['segments', String(o.segments)],
    ['stored', o.storedAt],
    // the date a contract ends is not the date the file goes: the upkeep
    // renews each one while this node runs (a newcomer read it as a deletion date)
    o.removed == null ? ['contracts end', `${minute(o.expires)}, each renewed before then while this node runs`] : ['removed', minute(o.removed)],
    ['rent', `${o.rentPerMonth} per month`],
    ['spent', `${o.spent.total} (upload ${o.spent.upload}, download ${o.spent.download}, rent ${o.spent.rent})`]
  ]))
}

export const storeCommand: Command = {
  name: 'store',
  summary: 'store files and folders on paid hosts, encrypted and erasure-coded, with versions and shares: put, get, ls, versions, info, rm, share, fetch',
  usage: USAGE,
  help: `Files are encrypted on this node (AES-256-GCM, with a key derived from the
wallet's seed: the mnemonic alone decrypts them), cut into segments of 4 MiB,
and each segment is coded into N shards of which any K rebuild it. Each shard
goes to a different host from the market, chosen by price and trust, under
a contract both sides sign: one contract per host holds every file this node
stores there. Uploads and downloads are paid per TiB as shards are sent (each
host's put and get prices: a call pays its whole satoshis, and its fraction
of a satoshi goes with the next rent); rent, per TiB-month of the bytes
held, is paid per period (a day) by the running node, accrued exactly and
paid in whole satoshis, so a small file costs its share and no more (at $1.50 per TB-month a 10 KiB file stored 4-of-8 accrues
under a ten-thousandth of a satoshi a month).

  store put <file|folder>...
                          store files; a folder is stored recursively, each
                          file named <folder name>/<path in it> (symlinks and
                          names that are not UTF-8 are skipped and said; a
                          file the daemon cannot read refuses the whole put
                          before anything is stored). A name stored already
                          gets a new version; the one before stays (see
                          store versions) until storage.versionsKeptFor in
                          config.json (default 30d) after it was replaced.
                          A file identical to the current version is not
                          stored again, so putting a folder again stores
                          only what changed
    --name N              the name to store it under (default: the file's
                          name); for a folder or several paths, the folder
                          they go under
    --force               store a file even if it is unchanged
    --redundancy K-of-N   e.g. 4-of-8 (default: fits the hosts the market
                          knows and leaves some spare for repairs: 4 hosts ->
                          1-of-3, 8 -> 3-of-6, 10 -> 4-of-8, 40 -> 10-of-30)
    --duration D          how long a new contract runs: 90min, 12h, 30d (default
                          30d, at most 366d); contracts are renewed while they
                          hold files
    --max-price AMOUNT    the most a host may ask for storage, per TiB-month,
                          e.g. "2000 sat" or "0.00002 BTC" (default: any)
  store get <name|id>     fetch, check and decrypt a file
    --out FILE            where to write it (default: its name, here)
    --version N           an older version (store versions lists them)
    --force               replace FILE if it exists
  store get <folder/>     fetch every file under a folder (current versions)
    --out DIR             where (default: the folder's name, here); no name
                          can lead out of DIR, and no file there is replaced
                          without --force
  store ls [folder/]      the stored files (the current version of each, with
                          how many versions are kept); a folder: its files
                          and sub-folders
  store versions <name>   every version kept: number, size, date, SHA-256,
                          rent, which is current
  store status            their health: healthy shards of the weakest segment
                          against the K needed and N stored, hosts audits
                          cannot reach now, hosts caught, the last audit
                          passed, rent paid through, and why a repair is
                          stuck when it is
  store info <name|id>    one file: contracts, hosts, prices, what it costs
                          (after rm too: its contracts and their ratings)
    --version N           an older version
  store rm <name|id>      delete its shards from the hosts, every version of
                          it (a contract that holds nothing else is ended)
    --version N           only that version (the current one: the highest
                          left becomes current)
  store rm <folder/> --recursive
                          every file under the folder, every version
${RECOVER_HELP}
${SHARE_HELP}

Prices are set by each host: see them with "${CLI} market prices --service storage".`,
  options: {
    name: { type: 'string' },
    redundancy: { type: 'string' },
    duration: { type: 'string' },
    'max-price': { type: 'string' },
    out: { type: 'string', short: 'o' },
    force: { type: 'boolean' },
    version: { type: 'string' },
    recursive: { type: 'boolean' },
    wait: { type: 'string' },
    ...SHARE_OPTIONS
  },
  run: async (ctx) => {
    try {
      await run(ctx)
    } catch (e) {
      const [action, target] = ctx.positionals
      throw withHint(e, ctx.values, ctx.argv, ctx.values.name ?? (action === 'put' && target != null ? basename(target) : target))
    }
  }
}

async function run ({ values, positionals, json, dataDir, out, err }: CommandContext): Promise<void> {
  const [action, target, ...extra] = positionals
  if (extra.length > 0 && action !== 'put') {
    throw new UsageError(`"store ${action}" takes one file or object, not ${positionals.length - 1}; usage:\n${USAGE_BLOCK}`)
  }
  const needs = (what: string): string => {
    if (target == null) {
      throw new UsageError(`"store ${action}" needs ${what}; usage:\n${USAGE_BLOCK}`)
    }
    return target
  }
  const only = (allowed: string[]): void => {
    // the share commands' own (SHARE_OPTIONS) too: a flag is never dropped in silence
    for (const flag of ['name', 'redundancy', 'duration', 'max-price', 'out', 'force', 'version', 'recursive', 'wait', 'to', 'link', 'expires']) {
      if (values[flag] != null && !allowed.includes(flag)) {
        throw new UsageError(`--${flag} does not apply to "store ${action}"; see: ${CLI} store --help`)
      }
    }
  }
  const version = (): number | undefined => {
    if (values.version == null) {
      return undefined
    }
    const n = Number(values.version)
    if (!/^[0-9]+$/.test(values.version) || n < 1) {
      throw new UsageError(`--version takes a version number from 1 (store versions <name> lists them), not "${String(values.version)}"`)
    }
    return n
  }
  switch (action) {
    case 'put': {
      only(['name', 'redundancy', 'duration', 'max-price', 'force'])
      needs('a file or folder')
      const given = [target, ...extra]
      const paths = given.map(p => resolve(p))
      const kinds: string[] = []
      for (let i = 0; i < given.length; i++) {
        kinds.push(await checkPutArguments(given[i], paths[i], values))
      }
      if (given.length > 1 || kinds[0] === 'folder') {
        await putTree({ values, json, dataDir, out, err }, paths)
        return
      }
      const file = paths[0]
      const api = await connectApi(dataDir, values.api)
      const progress = progressReporter(err, 'storing', !json)
      const controller = new AbortController()
      const onSignal = (): void => { controller.abort() }
      process.once('SIGINT', onSignal)
      try {
        const done = await api.events<{ object: Record<string, any>, unchanged?: boolean, message?: string }>('/v1/store/put', {
          path: file,
          name: values.name,
          redundancy: values.redundancy,
          duration: values.duration,
          maxPrice: values['max-price'],
          force: values.force === true
        }, progress.onEvent, controller.signal)
        progress.finish()
        if (json) {
          printJson(out, { ...done.object, unchanged: done.unchanged === true })
        } else if (done.unchanged === true) {
          out.write(`${String(done.message)}\n`)
        } else {
          out.write(`stored ${done.object.name} (${done.object.sizeText}) as ${done.object.redundancy}${done.object.version > 1 ? `, version ${String(done.object.version)} (the one before is kept: store versions ${shellWord(done.object.name)})` : ''}\n`)
          printObject(out, done.object)
        }
      } finally {
        process.removeListener('SIGINT', onSignal)
      }
      return
    }
    case 'get': {
      only(['out', 'force', 'version'])
      const name = needs('a name or id (see: store ls)')
      if (name.endsWith('/')) {
        if (values.version != null) {
          throw new UsageError('--version takes one file: a folder is fetched as the current version of each')
        }
        await getTree({ values, json, dataDir, out, err }, name)
        return
      }
      const v = version()
      if (values.out != null) {
        await checkOutputFile(resolve(values.out), values.out)
      }
      const api = await connectApi(dataDir, values.api)
      // the default file is the stored name in this directory, never a
      // path the name may carry
      const outFile = values.out != null
        ? resolve(values.out)
        : resolve(basename((await api.get<{ name: string }>(`/v1/store/info?object=${encodeURIComponent(name)}${v == null ? '' : `&version=${v}`}`)).name))
      const progress = progressReporter(err, 'fetching', !json)
      const done = await api.events<{ object: Record<string, any>, out: string }>('/v1/store/get', {
        object: name,
        out: outFile,
        version: v,
        overwrite: values.force === true
      }, progress.onEvent)
      progress.finish()
      if (json) {
        printJson(out, { ...done.object, out: done.out })
      } else {
        out.write(`wrote ${done.out} (${done.object.sizeText}, SHA-256 ${done.object.sha256} checked)${v == null ? '' : `, version ${v} of ${String(done.object.name)}`}\n`)
      }
      return
    }
    case 'ls': {
      only([])
      if (target != null) {
        if (!target.endsWith('/')) {
          throw new UsageError(`"store ls" takes a folder, which ends with '/' (${shellWord(`${target}/`)}); one file is shown by: ${hintLine(values, ['store', 'info', target])}`)
        }
        await listFolder({ values, json, dataDir, out, err }, target)
        return
      }
      const api = await connectApi(dataDir, values.api)
      const stored = await api.get<{ objects: Array<Record<string, any>>, costs: Record<string, string>, recovery?: Record<string, any> | null }>('/v1/store')
      const { objects } = stored
      if (json) {
        printJson(out, stored)
        return
      }
      if (stored.recovery != null) {
        // a recovery from the words is under way (store recover, or the first start after wallet restore)
        const p = stored.recovery.progress
        const doing = p == null ? '' : p.total === 0 ? ` (${String(p.message)})` : ` (${p.phase === 'import' ? 'importing objects' : 'asking hosts'} ${String(p.done)}/${String(p.total)})`
        out.write(`recovering this wallet's files from the hosts since ${minute(new Date(stored.recovery.startedAt).toISOString())}${doing}: the list below grows when it is done\n`)
      }
      if (objects.length === 0) {
        out.write(`nothing stored yet; store a file with: ${hintLine(values, ['store', 'put', '<file>'])}\n`)
      } else {
        out.write(table([['NAME', 'SIZE', 'REDUNDANCY', 'HOSTS', 'RENT/MONTH', 'SPENT', 'RENEWS BY', 'VERSIONS', 'ID'],
          ...objects.map(o => [o.name, o.sizeText, o.redundancy, String(o.hosts), o.rentPerMonth, o.spent.total, minute(o.expires), String(o.versions ?? 1), o.id])]))
      }
      out.write(costsLine(stored.costs, values))
      return
    }
    case 'status': {
      only([])
      const api = await connectApi(dataDir, values.api)
      const { objects } = await api.get<{ objects: Array<Record<string, any>> }>('/v1/store')
      if (json) {
        // hosts end contracts whose rent goes unpaid: the same line as the text
        printJson(out, { objects: objects.map(o => ({ id: o.id, name: o.name, redundancy: o.redundancy, ...o.health })), paymentProblem: await settlementLine(api, values) ?? null })
      } else if (objects.length === 0) {
        out.write(`nothing stored yet; store a file with: ${hintLine(values, ['store', 'put', '<file>'])}\n`)
      } else {
        // SHARDS counts what is not lost yet; UNREACHABLE, the hosts of
        // those shards that audits cannot reach right now (within their
        // grace: a restart is not a loss), and how many shards remain without them
        out.write(table([['NAME', 'STATE', 'SHARDS', 'NEEDED', 'UNREACHABLE', 'LOST HOSTS', 'LOST SHARDS', 'LAST AUDIT PASSED', 'RENT PAID THROUGH'],
          ...objects.map(o => [o.name, o.health.state, `${o.health.healthyShards}/${o.health.totalShards}`, String(o.health.neededShards),
            o.health.unreachableHosts > 0 ? `${o.health.unreachableHosts} hosts (${o.health.reachableShards}/${o.health.totalShards} shards reachable)` : '0',
            String(o.health.lostContracts), String(o.health.lostShards), o.health.lastAudit ?? 'not yet', o.health.rentPaidThrough ?? '-'])]))
        for (const o of objects.filter(o => o.health.repairProblem != null)) {
          out.write(`\nrepair of ${o.name} is stuck (since ${String(o.health.repairProblemSince)}):\n  ${String(o.health.repairProblem).split('\n').join('\n  ')}\n`)
        }
        // hosts end contracts whose rent goes unpaid: say when it cannot be paid
        const owed = await settlementLine(api, values)
        out.write(owed == null ? '' : `${owed}\n`)
      }
      return
    }
    case 'versions': {
      only([])
      const name = needs('a name (see: store ls)')
      const api = await connectApi(dataDir, values.api)
      const answer = await api.get<{ name: string, versions: Array<Record<string, any>> }>(`/v1/store/versions?object=${encodeURIComponent(name)}`)
      if (json) {
        printJson(out, answer)
        return
      }
      out.write(table([['VERSION', 'SIZE', 'STORED', 'SHA256', 'RENT/MONTH', 'STATE', 'ID'],
        ...answer.versions.map(v => [String(v.version), v.sizeText, minute(v.storedAt), `${String(v.sha256).slice(0, 12)}...`, v.rentPerMonth, v.current === true ? 'current' : `replaced ${minute(v.supersededAt)}`, v.id])]))
      out.write(`an older one: ${hintLine(values, ['store', 'get', answer.name, '--version', '<N>', '--out', '<file>'])}\n`)
      return
    }
    case 'info': {
      only(['version'])
      const name = needs('a name or id (see: store ls)')
      const v = version()
      const api = await connectApi(dataDir, values.api)
      const info = await api.get<Record<string, any>>(`/v1/store/info?object=${encodeURIComponent(name)}${v == null ? '' : `&version=${v}`}`)
      if (json) {
        printJson(out, info)
        return
      }
      printObject(out, info)
      // a contract holds the shards of every object on its host: THIS OBJECT is its part, and what its rent is on
      out.write('\n' + table([['HOST', 'CONTRACT', 'SHARDS', 'HELD', 'THIS OBJECT', 'STORAGE', 'UPLOAD', 'DOWNLOAD', 'OBJECT RENT/MONTH', 'PAID THROUGH', 'ENDS', 'RATED (YOU/HOST)'],
        ...info.contracts.map((c: any) => [c.host, c.id.slice(0, 16), String(c.shards), formatSize(c.bytesHeld), `${formatSize(c.objectBytes)} (${String(c.objectShare)})`, c.storagePrice, c.uploadPrice, c.downloadPrice, c.objectRentPerMonth, c.rentPaidThrough, c.ended == null ? c.end : `ended ${c.ended}`, c.ratings == null ? '' : `${c.ratings.byYou}/${c.ratings.byHost ?? '-'}`])]))
      return
    }
    case 'rm': {
      only(['version', 'recursive'])
      const name = needs('a name or id (see: store ls)')
      const v = version()
      if (values.recursive === true && !name.endsWith('/')) {
        throw new UsageError(`--recursive takes a folder, which ends with '/': ${hintLine(values, ['store', 'rm', `${name}/`, '--recursive'])}`)
      }
      const api = await connectApi(dataDir, values.api)
      if (name.endsWith('/')) {
        if (v != null) {
          throw new UsageError('--version takes one file: a folder is removed with every version of each file')
        }
        const result = await api.post<{ folder: string, removed: Array<Record<string, any>>, unreachable: string[] }>('/v1/store/rm', { object: name, recursive: values.recursive === true })
        if (json) {
          printJson(out, result)
        } else {
          const names = new Set(result.removed.map(o => o.name)).size
          out.write(`removed ${result.folder}: ${names} file${names === 1 ? '' : 's'} (${result.removed.length} version${result.removed.length === 1 ? '' : 's'}), their shards deleted from the hosts${result.unreachable.length > 0 ? `; ${result.unreachable.length} hosts could not be told now:\n  ${result.unreachable.join('\n  ')}` : ''}\n`)
        }
        return
      }
      const result = await api.post<{ removed: Record<string, any>, versions: number[], unreachable: string[] }>('/v1/store/rm', { object: name, version: v })
      if (json) {
        printJson(out, result)
      } else {
        const which = v != null ? `version ${v} of ${String(result.removed.name)}` : result.versions.length > 1 ? `${String(result.removed.name)} (versions ${result.versions.join(', ')})` : String(result.removed.name)
        // one contract per host holds the other files too: only one that held nothing else is ended (and rated)
        out.write(`removed ${which}: its shards are deleted from its ${result.removed.contracts} contracts, and a contract that held nothing else is ended${result.unreachable.length > 0 ? `; ${result.unreachable.length} hosts could not be told now:\n  ${result.unreachable.join('\n  ')}` : ''}\n` +
          `its contracts, and the ratings both sides signed when one ended: ${hintLine(values, ['store', 'info', result.removed.id])}\n`)
      }
      return
    }
    case 'share':
    case 'shares':
    case 'unshare':
    case 'fetch':
      return runShareCommand(action, { values, positionals, json, dataDir, out, err, argv: [] })
    case 'recover':
      only(['wait'])
      return runRecover({ values, positionals, json, dataDir, out, err, argv: [] })
    default:
      throw new UsageError(action == null ? `store what? usage:\n${USAGE_BLOCK}` : `"store ${action}" is not a store command; usage:\n${USAGE_BLOCK}`)
  }
}

/** What the folder commands use of the command's context */
type FolderContext = Pick<CommandContext, 'values' | 'json' | 'dataDir' | 'out' | 'err'>

/**
 * `store put <folder>` or several paths: the daemon walks them (so the API
 * stores a folder the same way); one bar over the whole tree's bytes, a
 * line per file as it is done
 */
async function putTree ({ values, json, dataDir, out, err }: FolderContext, paths: string[]): Promise<void> {
  const api = await connectApi(dataDir, values.api)
  const progress = progressReporter(err, 'storing', !json)
  const controller = new AbortController()
  const onSignal = (): void => { controller.abort() }
  process.once('SIGINT', onSignal)
  const lineOf = (f: Record<string, any>): string => f.status === 'skipped'
    ? `skipped ${String(f.path)}: ${String(f.why)}`
    : f.status === 'unchanged'
      ? `unchanged ${String(f.name)} (version ${String(f.version)})`
      : `stored ${String(f.name)} (${formatSize(f.size)}, version ${String(f.version)})`
  try {
    const done = await api.events<{ files: Array<Record<string, any>> }>('/v1/store/put', {
      paths,
      name: values.name,
      redundancy: values.redundancy,
      duration: values.duration,
      maxPrice: values['max-price'],
      force: values.force === true
    }, (e) => {
      if (e.event === 'file') {
        if (!json) {
          out.write(`${lineOf(e)}\n`)
        }
        return
      }
      progress.onEvent(e)
    }, controller.signal)
    progress.finish()
    if (json) {
      printJson(out, done)
      return
    }
    const count = (status: string): number => done.files.filter(f => f.status === status).length
    // files with no folder in common are listed by plain `store ls` (`store ls ''` is refused)
    const folder = commonFolder(done.files.filter(f => f.status !== 'skipped').map(f => String(f.name)))
    out.write(`${count('stored')} stored, ${count('unchanged')} unchanged, ${count('skipped')} skipped; list them: ${hintLine(values, ['store', 'ls', ...(folder === '' ? [] : [folder])])}\n`)
  } finally {
    process.removeListener('SIGINT', onSignal)
  }
}

/** The folder every name is under ("docs/"), or the top ("") */
function commonFolder (names: string[]): string {
  if (names.length === 0) {
    return ''
  }
  let prefix = names[0].slice(0, names[0].lastIndexOf('/') + 1)
  for (const name of names) {
    while (!name.startsWith(prefix)) {
      prefix = prefix.slice(0, prefix.slice(0, -1).lastIndexOf('/') + 1)
    }
  }
  return prefix
}

/** `store get <folder/>`: every file under it, into --out DIR (default the folder's own name, here) */
async function getTree ({ values, json, dataDir, out, err }: FolderContext, prefix: string): Promise<void> {
  const dir = resolve(values.out ?? basename(prefix.slice(0, -1)))
  const api = await connectApi(dataDir, values.api)
  const progress = progressReporter(err, 'fetching', !json)
  const done = await api.events<{ folder: string, out: string, files: Array<Record<string, any>> }>('/v1/store/get', {
    object: prefix,
    out: dir,
    overwrite: values.force === true
  }, (e) => {
    if (e.event === 'file') {
      if (!json) {
        out.write(`wrote ${String(e.out)} (${formatSize(e.size)})\n`)
      }
      return
    }
    progress.onEvent(e)
  })
  progress.finish()
  if (json) {
    printJson(out, done)
  } else {
    out.write(`${done.files.length} files of ${done.folder} written under ${done.out}, each SHA-256 checked\n`)
  }
}

/** `store ls <folder/>`: its sub-folders, then its files */
async function listFolder ({ values, json, dataDir, out }: FolderContext, prefix: string): Promise<void> {
  const api = await connectApi(dataDir, values.api)
  const listing = await api.get<{ prefix: string, objects: Array<Record<string, any>>, folders: Array<Record<string, any>> }>(`/v1/store?prefix=${encodeURIComponent(prefix)}`)
  if (json) {
    printJson(out, listing)
    return
  }
  if (listing.objects.length === 0 && listing.folders.length === 0) {
    out.write(`nothing is stored under ${prefix}; ${hintLine(values, ['store', 'ls'])} lists everything\n`)
    return
  }
  out.write(table([['NAME', 'SIZE', 'VERSIONS', 'RENT/MONTH', 'STORED'],
    ...listing.folders.map(f => [f.name, `${String(f.sizeText)} in ${String(f.objects)} file${f.objects === 1 ? '' : 's'}`, '', '', '']),
    ...listing.objects.map(o => [o.name, o.sizeText, String(o.versions ?? 1), o.rentPerMonth, minute(o.storedAt)])]))
}
