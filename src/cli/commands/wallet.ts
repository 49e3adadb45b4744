import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { ApiError, connectApi, type ApiClient } from '../api-client.ts'
import { ensureDataDir } from '../../node/data-dir.ts'
import { loadConfig } from '../../node/config.ts'
import { Wallet } from '../../payments/wallet/wallet.ts'
import { HintedError, hintLine, printJson, table, UsageError, type Command } from '../command.ts'
import { formatAmount, parseAmount } from '../../protocols/units.ts'
import { parseDuration } from '../../utils/duration.ts'
import { CLI } from '../../utils/cli-name.ts'

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
                         offline; anyone who has it can spend the wallet
  wallet restore         make wallet.json from a mnemonic read on standard
                         input (only where there is none); the node then scans
                         the chain for the addresses the wallet used, e.g.
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
        err.write('Anyone who has these words can spend this wallet. Write them down, keep them offline, and never type them into a website.\n')
        if (json) {
          printJson(out, { network, mnemonic: wallet.backupPhrase(), identityAddress: wallet.identityAddress })
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
      if (json) {
        printJson(out, { network, identityAddress: wallet.identityAddress, scanNeeded: true })
      } else {
        out.write(`restored the ${network} wallet ${wallet.identityAddress}; at its next start the node scans the chain for the addresses it used\n`)
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
          // not a usage error (exit 1): the command is right, the node's config is not yet
          throw new Error(`payments are off on this node: set "payments": {"chain": "<Esplora API URL>"} in ${join(dataDir, 'config.json')} (for a local regtest chain, run npm run chain in a checkout and use http://127.0.0.1:3002), then restart the node`)
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

export const paymentsCommand: Command = {
  name: 'payments',
  summary: 'what this node earned and spent, tabs (owed, per peer) and payment history',
  usage: 'opencloud-node payments <summary [--since WHEN] | tabs | history>',
  help: `  payments summary  what this node earned and spent, per peer and per call,
                    counting attached payments and deferred ones (with what
                    is still unpaid), for calls made since --since; then per
                    peer what its transactions paid on chain and their fees
  payments tabs     deferred payments per peer: what callers owe this node
                    (receivable) and what this node owes servers (payable),
                    and for a tab not being paid, why and what to do
  payments history  attached payments received and sent

Options:
  --since WHEN      with "summary": a period back from now (90min, 24h, 7d) or a
                    date (2026-11-01); default: since the first payment`,
  options: { since: { type: 'string' } },
  run: async ({ values, positionals, json, dataDir, out }) => {
    let since: number | undefined
    if (values.since != null) {
      since = parseSince(values.since)
    }
    const api = await connectApi(dataDir, values.api)
    if (positionals[0] === 'summary') {
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
    if (positionals[0] === 'tabs') {
      const tabs = await api.get<{ receivable: any[], payable: any[] }>('/v1/payments/tabs')
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
      return
    }
    if (positionals[0] === 'history') {
      const history = await api.get<any[]>('/v1/payments/history')
      if (json) {
        printJson(out, history)
        return
      }
      out.write(history.length === 0 ? 'no payments yet\n' : table([['WHEN', 'DIRECTION', 'PEER', 'AMOUNT', 'FOR', 'TXID'], ...history.map(p => [p.at, p.direction, p.peer, p.amount, `${p.service}.${p.method}`, p.txid])]))
      return
    }
    throw new UsageError('usage: opencloud-node payments <summary [--since WHEN] | tabs | history>')
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
