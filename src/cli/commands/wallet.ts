import { access, readFile } from 'node:fs/promises'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { identityKeyFromSeed } from '../../node/data-dir.ts'
import { writeFileAtomic } from '../../utils/files.ts'
import { RECOVERY_MARKER } from '../../storage/constants.ts'
import { join } from 'node:path'
import { ApiError, connectApi, type ApiClient } from '../api-client.ts'
import { ensureDataDir } from '../../node/data-dir.ts'
import { loadConfig } from '../../node/config.ts'
import { Wallet } from '../../payments/wallet/wallet.ts'
import { HintedError, hintLine, printJson, table, UsageError, type Command } from '../command.ts'
import { formatAmount, parseAmount } from '../../protocols/units.ts'
import { parseDuration } from '../../utils/duration.ts'
import { CLI } from '../../utils/cli-name.ts'
import { parsePeer, serverOf } from '../../node/opencloud-node.ts'

export const walletCommand: Command = {
  name: 'wallet',
  summary: "the node's bitcoin wallet: address, balance, send, history",
  usage: `${CLI} wallet <address [--new] | balance | send <address> <amount> | history | backup | restore>`,
  help: `The node's HD wallet (BIP39 mnemonic, BIP84 native segwit), kept in
wallet.json in the data directory with mode 0600. Set
OPENCLOUD_WALLET_PASSPHRASE before the node's first start to encrypt it.
Balances and sending need a chain: payments.chain in config.json.

  wallet address         the wallet's identity address (its bitcoin credential)
  wallet address --new   a fresh receive address
  wallet balance         confirmed and unconfirmed balance
  wallet send <address> <amount>
                         e.g. wallet send bcrt1q... "0.001 BTC" (or 100000sat;
                         a number without a unit is satoshis); it pays the fee
                         the chain needs (its estimate for 6 blocks), and says it
  wallet history         transactions in and out of the wallet
  wallet backup          print the wallet's mnemonic: write it down and keep it
                         offline; anyone who has it can spend the wallet. The
                         words also make the node's identity, so they bring
                         back its stored files (it says so, or says to back
                         up identity.key too for a node older than that)
  wallet restore         make wallet.json from a mnemonic read on standard
                         input (only where there is none); the node then scans
                         the chain for the addresses the wallet used, and
                         asks the storage hosts for the files (once), e.g.
                         ${CLI} wallet restore < words.txt
backup and restore work without a running node.

Options:
  --new  with "address": hand out a new address`,
  options: { new: { type: 'boolean' } },
  run: async ({ values, positionals, json, dataDir, out, err }) => {
    const [sub, ...rest] = positionals
    if (sub === 'backup' || sub === 'restore') {
      const paths = await ensureDataDir(dataDir)
      const { network } = (await loadConfig(paths.config)).payments
      const path = join(paths.root, 'wallet.json')
      const passphrase = process.env.OPENCLOUD_WALLET_PASSPHRASE
      if (sub === 'backup') {
        try {
          await access(path)
        } catch {
          throw new UsageError(`there is no wallet in ${dataDir} yet: it is made at the node's first start`)
        }
        const wallet = await Wallet.open({ path, network, passphrase })
        const derived = peerIdFromPrivateKey(await identityKeyFromSeed(wallet.seed())).toString()
        const current = await identityIn(paths.identity)
        const fromWords = current == null || current === derived
        err.write('Anyone who has these words can spend this wallet. Write them down, keep them offline, and never type them into a website.\n')
        err.write(fromWords
          ? `The words bring back this node's identity (${derived}) and its files: on a new machine, wallet restore, then start the node.\n`
          : `This node's identity (${current}) was made before identities came from the words: back up ${paths.identity} too, or the files this node stored cannot come back from the words alone.\n`)
        if (json) {
          printJson(out, { network, mnemonic: wallet.backupPhrase(), identityAddress: wallet.identityAddress, peerId: current ?? derived, identityFromWords: fromWords })
        } else {
          out.write(wallet.backupPhrase() + '\n')
        }
        return
      }
      const words = Buffer.concat(await process.stdin.toArray()).toString('utf8').trim()
      if (words === '') {
        throw new UsageError(`give the mnemonic on standard input, e.g.: ${hintLine(values, ['wallet', 'restore'])} < words.txt`)
      }
      const wallet = await Wallet.restore({ path, network, passphrase, mnemonic: words })
      const derived = peerIdFromPrivateKey(await identityKeyFromSeed(wallet.seed())).toString()
      const current = await identityIn(paths.identity)
      // the next start asks the hosts for this identity's files (store recover, once)
      await writeFileAtomic(join(paths.root, RECOVERY_MARKER), JSON.stringify({ restoredAt: new Date().toISOString(), peerId: derived }) + '\n', 0o600)
      if (current != null && current !== derived) {
        err.write(`warning: ${paths.identity} holds the identity ${current}, not ${derived} that these words make, so the node would not find the files these words stored: to get them back, move identity.key, datastore/ and datastore.id out of ${paths.root} before the next start\n`)
      }
      if (json) {
        printJson(out, { network, identityAddress: wallet.identityAddress, scanNeeded: true, peerId: derived, identityFromWords: current == null || current === derived, recoveryAtStart: true })
      } else {
        out.write(`restored the ${network} wallet ${wallet.identityAddress} and the identity ${derived}; at its next start the node scans the chain for the addresses it used, and asks the storage hosts for its files; start it with: ${hintLine(values, [])}\nthen \`${hintLine(values, ['store', 'ls'])}\` shows them coming back\n`)
      }
      return
    }
    const api = await connectApi(dataDir, values.api)
    switch (sub) {
      case 'address': {
        const info = values.new === true
          ? await api.post<{ address: string }>('/v1/wallet/address')
          : { address: (await api.get<{ identityAddress: string }>('/v1/wallet')).identityAddress }
        if (json) {
          printJson(out, info)
        } else {
          out.write(`${info.address}\n`)
        }
        return
      }
      case 'balance': {
        const info = await api.get<any>('/v1/wallet')
        if (info.balance == null) {
          throw paymentsOff(dataDir)
        }
        if (json) {
          printJson(out, { network: info.network, ...info.balance })
        } else {
          out.write(table([['confirmed', info.balance.confirmed], ['unconfirmed', info.balance.unconfirmed], ['network', info.network]]))
        }
        return
      }
      case 'send': {
        const [address, amount] = rest
        if (address == null || amount == null || rest.length > 2) {
          throw new UsageError('usage: opencloud-node wallet send <address> <amount>, e.g. "0.001 BTC" or 100000sat')
        }
        let sats: bigint
        try {
          sats = parseAmount(amount, 'the amount to send')
        } catch (e: any) {
          throw new UsageError(e.message)
        }
        let sent: { txid: string, fee: string }
        try {
          sent = await api.post<{ txid: string, fee: string }>('/v1/wallet/send', { address, amount: formatAmount(sats) })
        } catch (e: any) {
          // too little in the wallet: where to fund it (a send pays the fee
          // the chain needs, so no other refusal is about funds)
          if (e instanceof ApiError && e.name === 'InsufficientFundsError') {
            throw new HintedError(e.message, hintLine(values, ['wallet', 'address']), e.detail, e.name)
          }
          throw e
        }
        if (json) {
          printJson(out, { ...sent, amount: formatAmount(sats), address })
        } else {
          out.write(`sent ${formatAmount(sats)} to ${address} in ${sent.txid} (fee ${sent.fee})\n`)
        }
        return
      }
      case 'history': {
        const history = await api.get<any[]>('/v1/wallet/history')
        if (json) {
          printJson(out, history)
        } else if (history.length === 0) {
          out.write('no transactions yet\n')
        } else {
          out.write(table([['TXID', 'AMOUNT', 'FEE', 'CONFIRMED'], ...history.map(h => [h.txid, h.delta, h.fee, h.confirmed ? `block ${h.blockHeight}` : 'no'])]))
        }
        return
      }
      default:
        throw new UsageError(`usage: ${CLI} wallet <address [--new] | balance | send <address> <amount> | history | backup | restore>`)
    }
  }
}

/** The PeerId of the key in identity.key, if there is one that reads */
async function identityIn (path: string): Promise<string | undefined> {
  try {
    return peerIdFromPrivateKey(privateKeyFromProtobuf(await readFile(path))).toString()
  } catch {
    return undefined
  }
}

const PAYMENTS_USAGE = `${CLI} payments summary [--since WHEN]
       ${CLI} payments tabs
       ${CLI} payments history
       ${CLI} payments channels [--all]
       ${CLI} payments channel close <peer>`
/** The usage lines under an error, each indented the same */
const PAYMENTS_USAGE_BLOCK = PAYMENTS_USAGE.split('\n').map(line => `  ${line.trim()}`).join('\n')

/** A channel as GET /v1/payments/channels gives it (ChannelView): amounts say their unit */
interface ChannelJson {
  id: string
  role: 'payer' | 'payee'
  peer: string
  state: string
  capacity: string
  paid: string
  remaining: string
  expiry: number
  blocksLeft?: number
  fundingTxid: string
  closeTxid?: string
  note?: string
}

/** One entry of POST /v1/payments/channels/close */
interface ClosedJson {
  id: string
  role: 'payer' | 'payee'
  txid?: string
  error?: string
}

/** Which way the money goes, from this node's side */
function roleWord (role: string): string {
  return role === 'payee' ? 'pays me' : 'I pay'
}

/** "block 5012 (4320 left)"; the blocks left are counted at the tip the node last saw */
function expiryText (ch: ChannelJson): string {
  // a spent channel's expiry no longer matters
  if (ch.blocksLeft == null || !['funding', 'open', 'closing'].includes(ch.state)) {
    return `block ${ch.expiry}`
  }
  return `block ${ch.expiry} (${ch.blocksLeft > 0 ? `${ch.blocksLeft} left` : 'reached'})`
}

function channelTable (channels: ChannelJson[]): string {
  return table([['PEER', 'ROLE', 'CAPACITY', 'PAID', 'REMAINING', 'EXPIRY', 'FUNDING TXID', 'STATE'],
    ...channels.map(c => [c.peer, roleWord(c.role), c.capacity, c.paid, c.remaining, expiryText(c), c.fundingTxid, c.state])])
}

const SPENT_WORDS: Record<string, string> = { closing: 'closing', closed: 'closed', refunded: 'refunded' }

/** Below the table: what closed a channel, and why one is in an unusual state */
function channelNotes (channels: ChannelJson[]): string {
  return channels.filter(c => c.closeTxid != null || c.note != null)
    .map(c => `channel ${c.id}: ${c.closeTxid == null ? '' : `${SPENT_WORDS[c.state] ?? 'spent'} in ${c.closeTxid}`}${c.closeTxid != null && c.note != null ? '; ' : ''}${c.note ?? ''}\n`)
    .join('')
}

function paymentsOff (dataDir: string): Error {
  // not a usage error (exit 1): the command is right, the node's config is not yet
  return new Error(`payments are off on this node: set "payments": {"chain": "<Esplora API URL>"} in ${join(dataDir, 'config.json')} (for a local regtest chain, run npm run chain in a checkout and use http://127.0.0.1:3002), then restart the node`)
}

/**
 * A channels route of the control API; its 409 when payments are off
 * becomes the sentence `wallet balance` gives, naming this node's
 * config.json (the route cannot know where that is)
 */
async function channelsRoute<T> (api: ApiClient, dataDir: string, ask: () => Promise<T>): Promise<T> {
  try {
    return await ask()
  } catch (e: any) {
    if (e instanceof ApiError && e.httpStatus === 409 && (await api.get<{ chain: string | null }>('/v1/wallet')).chain == null) {
      throw paymentsOff(dataDir)
    }
    throw e
  }
}

/** `payments channel close <peer>` takes a PeerId, or a multiaddr ending in /p2p/<PeerId> */
function channelPeer (text: string, values: Record<string, any>): string {
  let peer: string | undefined
  try {
    peer = serverOf(parsePeer(text))
  } catch {}
  if (peer == null) {
    throw new UsageError(`"${text}" is not a peer: give the PeerId of the channel's other side (they look like 12D3KooW...; ${hintLine(values, ['payments', 'channels'])} lists them)`)
  }
  return peer
}

export const paymentsCommand: Command = {
  name: 'payments',
  summary: 'what this node earned and spent, tabs (owed, per peer), payment channels and payment history',
  usage: PAYMENTS_USAGE,
  help: `  payments summary   what this node earned and spent, per peer and per call,
                     counting attached payments, deferred ones (with what is
                     still unpaid) and those through channels, for calls
                     made since --since; then per peer what its
                     transactions paid on chain and their fees
    --since WHEN     a period back from now (90min, 24h, 7d) or a date
                     (2026-11-01); default: since the first payment
  payments tabs      deferred payments per peer: what callers owe this node
                     (receivable) and what this node owes servers (payable),
                     and for a tab not being paid, why and what to do; below
                     them the balances of open channels (paid, not owed)
  payments history   payments received and sent: attached ones,
                     settlements, and each payment through a channel
  payments channels  the open payment channels, both ways: the peer,
                     whether it pays this node or this node pays it, the
                     capacity, what was paid through it and what is left,
                     the expiry (its block, and the blocks left), the
                     funding transaction and the state (funding, open,
                     closing)
    --all            also the closed, refunded and abandoned ones
  payments channel close <peer>
                     close the open channels with <peer> (its PeerId): one
                     that pays this node is closed now, its latest state
                     broadcast, claiming what it paid; for one this node
                     pays, the payee is asked to close it (a payee that
                     does not is refunded after the expiry, by the running
                     node); exits with 1 when none could be closed

A payment channel is one funding transaction on chain, paying into an
output that this node and one peer spend together (or the payer alone after
an expiry block). Each payment through it is a new state signed by the
payer and kept off chain; the payee closes it with the latest state (one
more transaction), however many payments it carried. A call opens one to
its server with --pay channel:<amount> (\`call --help\`); a store put opens
them to its hosts in one funding transaction where "channels.use" in
config.json says: auto (where a channel costs less on chain than paying
deferred or attached), always, or never.`,
  options: { since: { type: 'string' }, all: { type: 'boolean' } },
  run: async ({ values, positionals, json, dataDir, out }) => {
    const [sub, ...rest] = positionals
    const only = (name: string, allowed: string[]): void => {
      for (const flag of ['since', 'all']) {
        if (values[flag] != null && !allowed.includes(flag)) {
          throw new UsageError(`--${flag} does not apply to "payments ${name}"; see: ${CLI} payments --help`)
        }
      }
    }
    const takes = (name: string, count: number): void => {
      if (rest.length !== count) {
        throw new UsageError(`"payments ${name}" takes ${count === 0 ? 'no arguments' : count === 1 ? 'one argument' : `${count} arguments`}, not ${rest.length}; usage:\n${PAYMENTS_USAGE_BLOCK}`)
      }
    }
    switch (sub) {
      case 'summary': {
        only(sub, ['since'])
        takes(sub, 0)
        const since = values.since == null ? undefined : parseSince(values.since)
        const api = await connectApi(dataDir, values.api)
        const summary = await api.get<any>(`/v1/payments/summary${since == null ? '' : `?since=${since}`}`)
        if (json) {
          printJson(out, summary)
          return
        }
        if (summary.since == null) {
          out.write('no payments yet\n')
          return
        }
        out.write(since == null ? `since the first payment, ${summary.since}, to ${summary.until}\n` : `from ${summary.since} to ${summary.until}\n`)
        if (summary.rows.length === 0 && summary.total.transactions === 0) {
          out.write('no paid calls in that period\n')
          return
        }
        const line = (name: string, t: any): string[] => [name, t.earned, t.earnedUnpaid, t.spent, t.spentUnpaid, String(t.calls)]
        if (summary.rows.length > 0) {
          out.write(table([['PEER', 'CALL', 'EARNED', 'UNPAID TO ME', 'SPENT', 'UNPAID BY ME', 'CALLS'], ...summary.rows.map((r: any) => [r.peer, ...line(r.call, r)])]))
          out.write('\n' + table([['PER CALL', 'EARNED', 'UNPAID TO ME', 'SPENT', 'UNPAID BY ME', 'CALLS'], ...summary.byCall.map((c: any) => line(c.call, c)), line('total', summary.total)]))
        }
        // what the calls cost is above; what paying for them moved on chain is here
        const chain = (name: string, t: any): string[] => [name, t.paidOnChain, t.fees, t.paidWithFees, t.receivedOnChain]
        out.write('\n' + table([['ON CHAIN', 'PAID', 'FEES', 'PAID WITH FEES', 'RECEIVED'],
          ...summary.byPeer.filter((p: any) => p.transactions > 0 || p.receivedOnChain !== '0 BTC').map((p: any) => chain(p.peer, p)), chain('total', summary.total)]))
        return
      }
      case 'tabs': {
        only(sub, [])
        takes(sub, 0)
        const api = await connectApi(dataDir, values.api)
        const tabs = await api.get<{ receivable: any[], payable: any[], channels?: ChannelJson[] }>('/v1/payments/tabs')
        if (json) {
          printJson(out, tabs)
          return
        }
        const rows = [...tabs.receivable, ...tabs.payable].map(t => [t.peer, t.role === 'receivable' ? 'owes me' : 'I owe', t.outstanding, t.due, t.overdue, t.paid, settlementWord(t.settlement)])
        out.write(rows.length === 0 ? 'no tabs yet\n' : table([['PEER', 'DIRECTION', 'OUTSTANDING', 'DUE', 'OVERDUE', 'PAID', 'SETTLEMENT'], ...rows]))
        for (const t of tabs.payable.filter(t => t.settlement != null)) {
          out.write(`\n${t.peer}: ${settlementWord(t.settlement)}: ${t.settlement.reason}\n`)
          if (t.settlement.hint != null) {
            out.write(`  ${t.settlement.hint.text}${t.settlement.hint.command == null ? '' : `: ${hintLine(values, t.settlement.hint.command)}`}\n`)
          }
        }
        // what went through a channel is paid, not owed: beside the tabs, not in them
        const channels = tabs.channels ?? []
        if (channels.length > 0) {
          out.write(`\nchannels (paid through them, not owed; ${hintLine(values, ['payments', 'channels'])} has more):\n`)
          out.write(table([['PEER', 'ROLE', 'CAPACITY', 'PAID', 'REMAINING', 'STATE'], ...channels.map(c => [c.peer, roleWord(c.role), c.capacity, c.paid, c.remaining, c.state])]))
        }
        return
      }
      case 'history': {
        only(sub, [])
        takes(sub, 0)
        const api = await connectApi(dataDir, values.api)
        const history = await api.get<any[]>('/v1/payments/history')
        if (json) {
          printJson(out, history)
          return
        }
        out.write(history.length === 0 ? 'no payments yet\n' : table([['WHEN', 'DIRECTION', 'PEER', 'AMOUNT', 'FOR', 'TXID'], ...history.map(p => [p.at, p.direction, p.peer, p.amount, `${p.service}.${p.method}`, p.txid])]))
        return
      }
      case 'channels': {
        only(sub, ['all'])
        takes(sub, 0)
        const api = await connectApi(dataDir, values.api)
        const answer = await channelsRoute(api, dataDir, async () => api.get<{ channels: ChannelJson[] }>(`/v1/payments/channels${values.all === true ? '?all=true' : ''}`))
        if (json) {
          printJson(out, answer)
          return
        }
        const { channels } = answer
        if (channels.length === 0) {
          out.write(`${values.all === true ? 'no channels yet' : `no open channels (closed ones too: ${hintLine(values, ['payments', 'channels', '--all'])})`}\n` +
            'a call opens one to its server and pays through it with --pay channel:<amount>, e.g.\n' +
            `  ${hintLine(values, ['call', '<peer>', 'sha256.hash', '--body', '<file>', '--pay', 'channel:1000sat'])}\n` +
            'and a store put opens them to its hosts where "channels.use" in config.json says so\n')
          return
        }
        out.write(channelTable(channels))
        const notes = channelNotes(channels)
        out.write(notes === '' ? '' : '\n' + notes)
        return
      }
      case 'channel': {
        only(sub, [])
        if (rest[0] !== 'close' || rest.length !== 2) {
          throw new UsageError(rest[0] === 'close'
            ? `"payments channel close" takes the PeerId of the channel's other side; usage:\n${PAYMENTS_USAGE_BLOCK}`
            : `${rest[0] == null ? '"payments channel" needs what to do' : `"payments channel ${rest[0]}" is not a channel command`}: close <peer>; usage:\n${PAYMENTS_USAGE_BLOCK}`)
        }
        const peer = channelPeer(rest[1], values)
        const api = await connectApi(dataDir, values.api)
        // the channels as they stood: what each close claims (the close answer has the txids)
        const before = await channelsRoute(api, dataDir, async () => api.get<{ channels: ChannelJson[] }>('/v1/payments/channels'))
        let closed: ClosedJson[]
        try {
          closed = (await api.post<{ closed: ClosedJson[] }>('/v1/payments/channels/close', { peer })).closed
        } catch (e: any) {
          if (e instanceof ApiError && e.name === 'NoChannelError') {
            throw new HintedError(`${e.message}: nothing to close`, hintLine(values, ['payments', 'channels']), e.detail, e.name)
          }
          throw e
        }
        const failed = closed.filter(c => c.txid == null).length
        if (json) {
          printJson(out, { closed })
        } else {
          for (const c of closed) {
            const was = before.channels.find(b => b.id === c.id)
            if (c.txid == null) {
              out.write(`channel ${c.id} (${roleWord(c.role)}): not closed: ${c.error ?? 'no reason given'}\n`)
            } else if (c.role === 'payee') {
              out.write(`closed channel ${c.id} (pays me): broadcast ${c.txid}${was == null ? '' : `, claiming ${was.paid} of its ${was.capacity}`}\n`)
            } else {
              out.write(`asked ${peer} to close channel ${c.id} (I pay): its close is ${c.txid}${was == null ? '' : `; it pays the payee ${was.paid} and this wallet ${was.remaining}`}\n`)
            }
          }
        }
        // none closed: the command failed, whatever it printed
        return failed === closed.length ? 1 : 0
      }
      default:
        throw new UsageError(`${sub == null ? 'payments what?' : `"payments ${sub}" is not a payments command;`} usage:\n${PAYMENTS_USAGE_BLOCK}`)
    }
  }
}

function settlementWord (settlement: { state: string } | null): string {
  return settlement == null ? '' : settlement.state === 'failing' ? 'cannot settle' : 'waiting'
}

/**
 * The line `store status` prints when this node cannot pay what it owes
 * servers (storage hosts end contracts whose rent goes unpaid); undefined
 * while every tab can be paid.
 */
export async function settlementLine (api: ApiClient, values: Record<string, any>): Promise<string | undefined> {
  const { payable } = await api.get<{ payable: any[] }>('/v1/payments/tabs')
  const failing = payable.filter(t => t.settlement?.state === 'failing')
  if (failing.length === 0) {
    return undefined
  }
  const what = failing.length === 1 ? `the tab with ${failing[0].peer}` : `the tabs with ${failing.length} servers`
  return `payments: ${what} cannot be settled: ${failing[0].settlement.reason}; see: ${hintLine(values, ['payments', 'tabs'])}`
}

/** "90min", "24h", "7d" back from now (parseDuration's periods), or a date: milliseconds since the epoch */
export function parseSince (text: string, now = Date.now()): number {
  if (/^[0-9]+\s*[a-z]+$/.test(text.trim())) {
    try {
      return now - parseDuration(text, '--since')
    } catch (err: any) {
      throw new UsageError(`${err.message}; or a date (2026-11-01)`)
    }
  }
  const at = Date.parse(text)
  if (!/^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(text.trim()) || Number.isNaN(at)) {
    throw new UsageError(`--since takes a period back from now (90min, 24h, 7d) or a date (2026-11-01), not "${text}"`)
  }
  return at
}
