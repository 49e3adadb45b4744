import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { ApiError, connectApi } from '../api-client.ts'
import { formatSize } from '../../utils/size.ts'
import { CLI } from '../../utils/cli-name.ts'
import { parseShareExpiry } from '../../storage/client/shares.ts'
import { HintedError, hintLine, printJson, table, UsageError, type CommandContext } from '../command.ts'
import { Progress } from '../progress.ts'

/**
 * store share, shares, unshare and fetch (PROTOCOL.md 8h): the owner's
 * side makes and revokes shares; fetch is the holder's side, on any node.
 * Fetch is its own command rather than `store get --share`: it reads
 * nothing of this node's records (no name, no version to pick: the share
 * says what it opens), needs none of the owner's words, and this node
 * pays the hosts for it.
 */

export const SHARE_USAGE = `${CLI} store share <name|PREFIX/> (--to PEERID | --link) [--expires 7d] [--version N]
       ${CLI} store shares
       ${CLI} store unshare <share id|name>
       ${CLI} store fetch <share text|@file> [--out FILE|DIR] [--force]`

export const SHARE_HELP = `  store share <name|PREFIX/>
                          let another node fetch a file, or every file under a
                          folder (PREFIX/), read-only: prints a share text
                          (ocshare1...) to give to its holder
    --to PEERID           only that node may use it (its PeerId: the
                          holder's "id" command prints it)
    --link                anyone holding the text may use it (exactly one of
                          --to and --link)
    --expires D           how long it works: 90min, 12h, 7d (default 7d, at
                          most 366d); every host refuses it after that, by
                          its own clock
    --version N           share that version of the file (store versions
                          lists them), not the current one
  store shares            the shares made here: id, what, holder, expiry,
                          and whether revoked
  store unshare <share id|name>
                          revoke a share (by its id, or every live share of a
                          name) before its expiry: every host holding one of
                          its shards refuses it from now on; a host that
                          cannot be reached now is told at the next checks.
                          An id not recorded here (a share made before this
                          node was restored from its words) is revoked at
                          every host this node has a contract with
  store fetch <share text|@file>
                          fetch what a share opens, on any node (no words of
                          the owner's needed): shard by shard from the
                          owner's hosts, checked and decrypted; this node
                          pays its own downloads, at each host's get price
    --out FILE|DIR        where to write (default: here, by the file's name;
                          a folder's files go under DIR by their names in
                          the folder, by default under the folder's name)
    --force               replace files that exist`

export const SHARE_OPTIONS = {
  to: { type: 'string' },
  link: { type: 'boolean' },
  expires: { type: 'string' }
} as const

/** An ISO time to the minute, in UTC */
function minute (iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`
}

/** The share text the user gave: itself, or the contents of @FILE */
async function shareText (arg: string): Promise<string> {
  const text = arg.startsWith('@') ? await readFile(arg.slice(1), 'utf8').catch((err: any) => { throw new UsageError(`cannot read the share from ${arg.slice(1)}: ${err.message as string}`) }) : arg
  // a file may hold more than the text (the whole output of store share, pasted): the text is its one ocshare1 word
  const found = arg.startsWith('@') ? /(?:^|\s)(ocshare1[A-Za-z0-9_-]+)(?:\s|$)/.exec(text)?.[1] : undefined
  if (found == null && !text.trim().startsWith('ocshare1')) {
    throw new UsageError(`a share text starts with "ocshare1" (give the text, or @FILE holding it); "${text.trim().slice(0, 16)}" does not`)
  }
  return found ?? text.trim()
}

function withShareHint (e: unknown, values: Record<string, any>): unknown {
  if (!(e instanceof ApiError)) {
    return e
  }
  switch (e.name) {
    case 'ShareNotFoundError':
    case 'ObjectNotFoundError':
      return new HintedError(e.message, hintLine(values, ['store', e.name === 'ShareNotFoundError' ? 'shares' : 'ls']), e.detail, e.name)
    case 'OutputExistsError':
      return new HintedError(e.message, 'pass --force to replace it, or another --out', e.detail, e.name)
    default:
      return e
  }
}

/** Runs `store share|shares|unshare|fetch` */
export async function runShareCommand (action: 'share' | 'shares' | 'unshare' | 'fetch', ctx: CommandContext): Promise<void> {
  try {
    await run(action, ctx)
  } catch (e) {
    throw withShareHint(e, ctx.values)
  }
}

async function run (action: 'share' | 'shares' | 'unshare' | 'fetch', { values, positionals, json, dataDir, out, err }: CommandContext): Promise<void> {
  const [, target, ...extra] = positionals
  if (extra.length > 0) {
    throw new UsageError(`"store ${action}" takes one argument, not ${positionals.length - 1}; see: ${CLI} store ${action} --help`)
  }
  const allowed: Record<typeof action, string[]> = { share: ['to', 'link', 'expires', 'version'], shares: [], unshare: [], fetch: ['out', 'force'] }
  for (const flag of ['to', 'link', 'expires', 'out', 'force', 'name', 'redundancy', 'duration', 'max-price', 'version', 'recursive', 'wait']) {
    if (values[flag] != null && !allowed[action].includes(flag)) {
      throw new UsageError(`--${flag} does not apply to "store ${action}"; see: ${CLI} store ${action} --help`)
    }
  }
  const needs = (what: string): string => {
    if (target == null) {
      throw new UsageError(`"store ${action}" needs ${what}; see: ${CLI} store ${action} --help`)
    }
    return target
  }
  switch (action) {
    case 'share': {
      const what = needs('a name, or a folder as PREFIX/ (see: store ls)')
      if ((values.to == null) === (values.link !== true)) {
        throw new UsageError('give exactly one of --to PEERID (only that node may use it) and --link (anyone holding it)')
      }
      if (values.expires != null) {
        // said as the user typed it, before the daemon is asked
        try {
          parseShareExpiry(values.expires, '--expires')
        } catch (e: any) {
          throw new UsageError(e.message)
        }
      }
      const api = await connectApi(dataDir, values.api)
      if (values.version != null && !/^[1-9][0-9]*$/.test(values.version)) {
        throw new UsageError(`--version takes a version number from 1 (store versions <name> lists them), not "${String(values.version)}"`)
      }
      const result = await api.post<{ share: Record<string, any>, text: string }>('/v1/store/share', { object: what, to: values.to, link: values.link === true ? true : undefined, expires: values.expires, version: values.version == null ? undefined : Number(values.version) })
      if (json) {
        printJson(out, result)
        return
      }
      const s = result.share
      const who = values.to != null ? `only ${String(values.to)}` : 'anyone holding it'
      // the text alone on stdout, so `store share ... > share.txt` is the file a holder passes as @FILE;
      // what it is and how it is used, on stderr
      err.write(`shared ${String(s.what)} (${s.objects.length === 1 ? '1 file' : `${s.objects.length as number} files`}) with ${who}, read-only, until ${minute(s.expires)}; share id ${String(s.id)}\n`)
      out.write(`${result.text}\n`)
      err.write(
        // a command line's argument is at most 128 KiB on Linux: a long share travels as a file
        (result.text.length > 100_000 ? `the share is ${Math.ceil(result.text.length / 1024)} KiB of text: save it in a file for the holder, who passes it as @FILE\n` : '') +
        `the holder fetches it on their node with: ${CLI} store fetch <the share text> (or @FILE holding it); they pay their own downloads\n` +
        `revoke it before then with: ${hintLine(values, ['store', 'unshare', s.id])}\n`)
      return
    }
    case 'shares': {
      const api = await connectApi(dataDir, values.api)
      const { shares } = await api.get<{ shares: Array<Record<string, any>> }>('/v1/store/shares')
      if (json) {
        printJson(out, { shares })
        return
      }
      if (shares.length === 0) {
        out.write(`no shares made here; share a file with: ${hintLine(values, ['store', 'share', '<name>', '--link'])}\n`)
        return
      }
      out.write(table([['ID', 'WHAT', 'FILES', 'HOLDER', 'EXPIRES', 'STATE'],
        ...shares.map(s => [s.id, s.what, String(s.objects.length), s.holder ?? 'anyone with the link', minute(s.expires), s.state === 'revoked' ? `revoked ${minute(s.revoked)}${s.hostsNotTold.length > 0 ? ` (${s.hostsNotTold.length as number} hosts not told yet)` : ''}` : s.state])]))
      return
    }
    case 'unshare': {
      const which = needs('a share id or a name (see: store shares)')
      const api = await connectApi(dataDir, values.api)
      const result = await api.post<{ revoked: Array<Record<string, any>>, unreachable: string[] }>('/v1/store/unshare', { share: which })
      if (json) {
        printJson(out, result)
        return
      }
      for (const s of result.revoked) {
        out.write(`revoked share ${String(s.id)} of ${String(s.what)}: the hosts holding its shards refuse it from now on\n`)
      }
      if (result.unreachable.length > 0) {
        out.write(`${result.unreachable.length} hosts could not be told now (they still serve it until told):\n  ${result.unreachable.join('\n  ')}\n`)
      }
      return
    }
    case 'fetch': {
      const text = await shareText(needs('a share text (ocshare1...), or @FILE holding it'))
      // the daemon's working directory is not this one: paths go absolute
      const target: { out?: string, dir?: string } = values.out != null ? { out: resolve(values.out) } : { dir: process.cwd() }
      const api = await connectApi(dataDir, values.api)
      let bar: Progress | undefined
      let reported = 0
      const done = await api.events<{ objects: Array<{ name: string, size: number, sha256: string, out: string }> }>('/v1/store/fetch', {
        share: text,
        ...target,
        overwrite: values.force === true
      }, (e) => {
        bar ??= new Progress(err, 'fetching', e.total, !json)
        bar.add(e.done - reported)
        reported = e.done
      })
      bar?.finish()
      if (json) {
        printJson(out, done)
        return
      }
      for (const o of done.objects) {
        out.write(`wrote ${o.out} (${formatSize(o.size)}, SHA-256 ${o.sha256} checked)\n`)
      }
    }
  }
}
