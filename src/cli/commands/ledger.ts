import { connectApi } from '../api-client.ts'
import { CLI } from '../../utils/cli-name.ts'
import { quorum } from '../../ledger/encoding.ts'
import { hintLine, printJson, table, UsageError, type Command, type CommandContext } from '../command.ts'

const USAGE = `${CLI} ledger status
       ${CLI} ledger validators
       ${CLI} ledger pools
       ${CLI} ledger pool create <name> --service S --credit AMOUNT --quantity N [--ttl 30d] [--per-requester N]
       ${CLI} ledger promo request <pool id>
       ${CLI} ledger promo mine
       ${CLI} ledger promo show <code>
       ${CLI} ledger promo transfer <code> <PeerId>
       ${CLI} ledger promo authorize <code> <member cloud PeerId>
       ${CLI} ledger promo redeem <code> --at <member cloud PeerId>
       ${CLI} ledger promo redeem <code> --authorization B64
       ${CLI} ledger candidate <statement>
       ${CLI} ledger vote add <PeerId> [--evidence B64]
       ${CLI} ledger vote remove <PeerId>
       ${CLI} ledger checkpoints`

function when (ms: number): string {
  const s = Math.round(ms / 1000)
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`
}

/** "1 pool", "2 pools" */
function count (n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`
}

function codeTable (c: any): string {
  return table([
    ['code', c.code],
    ['state', c.state === 'valid' ? `valid, ${when(c.remainingMs)} left` : c.state],
    ['worth', `${c.credit} of ${c.service} calls`],
    ['pool', `${c.poolName} (${c.pool})`],
    ['issued by', c.issuer],
    ['owner', c.owner],
    ['expires', c.expiresAt],
    ...(c.redeemed != null ? [['redeemed', `by ${c.redeemed.by} at height ${c.redeemed.height} (${c.redeemed.at})`]] : [])
  ])
}

async function run ({ values, positionals, json, dataDir, out }: CommandContext): Promise<void> {
  const [what, action, ...rest] = positionals
  const api = await connectApi(dataDir, values.api)
  const show = (value: unknown, text: () => string): void => {
    if (json) {
      printJson(out, value)
    } else {
      out.write(text())
    }
  }
  switch (what) {
    case 'status': {
      const s = await api.get<any>('/v1/ledger')
      show(s, () => table([
        ['ledger', `${s.chain} (${s.ledger.slice(0, 16)})`],
        ['height', `${s.height}, last block ${s.height === 0 ? 'none yet' : s.lastBlockAt}`],
        ['validators', `${s.validators.length}${s.validator ? ' (this node is one)' : ''}; a block needs ${quorum(s.validators.length)}`],
        ['now', `round ${s.round} (${s.step}), ${s.nextProposer}'s turn`],
        ['slot', `${s.slotMs} ms; checkpoint every ${s.checkpointEvery === 1 ? 'block' : `${s.checkpointEvery} blocks`}`],
        ['waiting', count(s.pending, 'transaction')],
        ['promo', `${count(s.pools, 'pool')}, ${count(s.codes, 'code')}`],
        ...(s.equivocations > 0 ? [['evidence', `${count(s.equivocations, 'equivocation')} on record (${hintLine(values, ['ledger', 'validators'])})`]] : []),
        ...(s.problem != null ? [['PROBLEM', s.problem]] : [])
      ]))
      return
    }
    case 'validators': {
      const v = await api.get<any>('/v1/ledger/validators')
      show(v, () => v.validators.join('\n') + '\n' +
        (v.votes.length > 0 ? '\n' + table([['VOTE', 'CANDIDATE', 'VOTES', 'NEEDED'], ...v.votes.map((x: any) => [x.action, x.candidate, String(x.voters.length), String(x.needed)])]) : '') +
        (v.equivocations.length > 0 ? '\n' + table([['EQUIVOCATION', 'HEIGHT', 'ROUND', 'WHAT'], ...v.equivocations.map((e: any) => [e.validator, String(e.height), String(e.round), e.what])]) : ''))
      return
    }
    case 'pools': {
      const pools = await api.get<any[]>('/v1/ledger/pools')
      show(pools, () => pools.length === 0 ? 'no pools yet\n' : table([['ID', 'NAME', 'SERVICE', 'CREDIT', 'LEFT', 'TTL', 'ISSUER'], ...pools.map(p => [p.id, p.name, p.service, p.credit, `${p.left}/${p.quantity}`, when(p.ttlMs), p.issuer])]))
      return
    }
    case 'pool': {
      if (action !== 'create' || rest.length !== 1) {
        throw new UsageError(`usage: ${CLI} ledger pool create <name> --service S --credit AMOUNT --quantity N [--ttl 30d] [--per-requester N]`)
      }
      if (values.service == null || values.credit == null || values.quantity == null) {
        throw new UsageError('a pool needs --service (what the codes pay for), --credit (what each is worth, e.g. "1000 sat") and --quantity (how many codes)')
      }
      const r = await api.post<any>('/v1/ledger/pools', { name: rest[0], service: values.service, credit: values.credit, quantity: values.quantity, ttl: values.ttl ?? '30d', perRequester: values['per-requester'] ?? '1' })
      show(r, () => `pool ${rest[0]} created: ${r.pool} (final at height ${r.height})\n`)
      return
    }
    case 'promo': {
      const code = rest[0]
      switch (action) {
        case 'request': {
          if (code == null) {
            throw new UsageError(`usage: ${CLI} ledger promo request <pool id> (\`${hintLine(values, ['ledger', 'pools'])}\` lists them)`)
          }
          const c = await api.post<any>('/v1/ledger/promo/request', { pool: code })
          show(c, () => codeTable(c))
          return
        }
        case 'mine': {
          const mine = await api.get<any[]>('/v1/ledger/promo/mine')
          show(mine, () => mine.length === 0 ? 'this node owns no codes\n' : table([['CODE', 'STATE', 'WORTH', 'EXPIRES'], ...mine.map(c => [c.code, c.state, `${c.credit} of ${c.service}`, c.expiresAt])]))
          return
        }
        case 'show': {
          const c = await api.get<any>(`/v1/ledger/promo?code=${encodeURIComponent(code ?? '')}`)
          show(c, () => codeTable(c))
          return
        }
        case 'transfer': {
          const c = await api.post<any>('/v1/ledger/promo/transfer', { code, to: rest[1] })
          show(c, () => `code ${c.code} now belongs to ${c.owner}\n`)
          return
        }
        case 'authorize': {
          const a = await api.post<any>('/v1/ledger/promo/authorize', { code, redeemer: rest[1] })
          show(a, () => `authorization for ${a.redeemer} to redeem code ${a.code}, signed by this node (its owner), in base64:\n` +
            `${a.authorization}\n` +
            'Give it to that member cloud, which redeems the code with:\n' +
            `  ${CLI} ledger promo redeem ${a.code} --authorization ${a.authorization}\n` +
            `(or let this node hand it over: ${CLI} ledger promo redeem ${a.code} --at ${a.redeemer})\n`)
          return
        }
        case 'redeem': {
          if (values.at == null && values.authorization == null) {
            throw new UsageError(`as the code's owner: ${hintLine(values, ['ledger', 'promo', 'redeem', '<code>', '--at', '<member cloud PeerId>'])}; as a member cloud: --authorization <what the owner's \`ledger promo authorize\` printed>`)
          }
          const c = await api.post<any>('/v1/ledger/promo/redeem', { code, at: values.at, authorization: values.authorization })
          show(c, () => `redeemed: ${c.credit} of ${c.service} calls (height ${c.redeemed?.height})\n`)
          return
        }
      }
      throw new UsageError(`usage: ${CLI} ledger promo request|show|transfer|authorize|redeem ...`)
    }
    case 'candidate': {
      if (action == null) {
        throw new UsageError(`usage: ${CLI} ledger candidate "<who runs this node>"`)
      }
      const e = await api.post<any>('/v1/ledger/candidate', { statement: [action, ...rest].join(' ') })
      show(e, () => `${e.candidate} stands as a validator candidate with the statement ${JSON.stringify(e.statement)}.\n` +
        `A majority of the ${count(e.validators, 'validator')} (${e.votesNeeded}) adds it, each on its own node with:\n` +
        `  ${CLI} ledger vote add ${e.candidate}\n` +
        'which fetches the signed statement from this node. If this node is out of their reach, they attach\n' +
        'the statement, signed by this node\'s key (in base64), themselves:\n' +
        `  ${CLI} ledger vote add ${e.candidate} --evidence ${e.evidence}\n`)
      return
    }
    case 'vote': {
      if ((action !== 'add' && action !== 'remove') || rest.length !== 1) {
        throw new UsageError(`usage: ${CLI} ledger vote add <PeerId> --evidence B64 | ${CLI} ledger vote remove <PeerId>`)
      }
      const v = await api.post<any>('/v1/ledger/vote', { action, candidate: rest[0], evidence: values.evidence })
      const pending = v.votes.find((x: any) => x.candidate === rest[0] && x.action === action)
      show(v, () => pending != null
        ? `vote recorded: ${pending.voters.length} of the ${pending.needed} votes needed to ${action} ${rest[0]}\n`
        : `carried: the validators are now\n${v.validators.join('\n')}\n`)
      return
    }
    case 'checkpoints': {
      const cps = await api.get<any[]>('/v1/ledger/checkpoints')
      show(cps, () => cps.length === 0 ? 'no checkpoints yet\n' : table([['HEIGHT', 'STATUS', 'CONFIRMATIONS', 'BITCOIN TX', 'PROBLEM'], ...cps.map(c => [String(c.height), c.status, String(c.confirmations ?? ''), c.btcTxid, c.problem ?? ''])]))
      return
    }
  }
  throw new UsageError(`usage: ${USAGE}`)
}

export const ledgerCommand: Command = {
  name: 'ledger',
  summary: 'the Cloud Ledger: promo codes every member cloud accepts',
  usage: USAGE,
  help: `The Cloud Ledger is a proof-of-authority ledger run by the member clouds
(its validators): they take turns proposing blocks, and a block signed by
more than two thirds of them is final. Member clouds put pools of promo codes
on it; anyone requests a code (the code is the request's transaction id);
any node checks one; a member cloud redeems it exactly once, with the
owner's authorization. The state is anchored in bitcoin every few blocks.

  status                 height, validators, whose turn it is
  validators             the validators, open votes and evidence of cheating
  pools                  the promo code pools
  pool create <name>     (a validator) a pool: --service, --credit "1000 sat",
                         --quantity, --ttl (how long each code lives, 30d),
                         --per-requester (codes one identity may get, 1)
  promo request <pool>   get a code from a pool
  promo mine             the codes this node owns
  promo show <code>      valid (and for how long), redeemed or expired
  promo transfer <code> <PeerId>    give an unredeemed code away
  promo authorize <code> <PeerId>   (the owner) let that member cloud redeem it
  promo redeem <code> --at <PeerId>          (the owner) have that member
                         cloud redeem it, signing the authorization for it
  promo redeem <code> --authorization B64   (a member cloud) redeem it
  candidate "<who runs this node>"  stand as a validator with a signed
                         statement (validators voting fetch it from here)
  vote add <PeerId>      (a validator) vote to add a validator; the
                         candidate's statement is fetched and attached
  vote remove <PeerId>              (a validator) vote to remove one
  checkpoints            every anchor in bitcoin, checked against this node

A vote carries with a majority of the current validators. Every command
waits until its transaction is final and prints why the ledger refused it.`,
  options: {
    service: { type: 'string' },
    credit: { type: 'string' },
    quantity: { type: 'string' },
    ttl: { type: 'string' },
    'per-requester': { type: 'string' },
    authorization: { type: 'string' },
    at: { type: 'string' },
    evidence: { type: 'string' }
  },
  run
}
