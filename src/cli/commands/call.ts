import { createWriteStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { ApiError, connectApi, type ApiBody } from '../api-client.ts'
import { parseAmount } from '../../protocols/units.ts'
import { parsePayRequest } from '../../payments/pay-options.ts'
import { CLI } from '../../utils/cli-name.ts'
import { bodyFromFile } from '../../protocols/rpc/body.ts'
import { parsePeer } from '../../node/opencloud-node.ts'
import { HintedError, printJson, shellWord, UsageError, type Command } from '../command.ts'
import { Progress } from '../progress.ts'
import { checkOutputFile } from '../arguments.ts'

/** Answers larger than this are not put in --json output: use --out */
const JSON_BODY_LIMIT = 1024 * 1024

/** Bodies from this size up show progress on a terminal */
const PROGRESS_FROM = 8 * 1024 * 1024

function sending (err: NodeJS.WritableStream, size: number, json: boolean): (chunk: Uint8Array) => void {
  const progress = new Progress(err, 'sending', size, !json)
  let sent = 0
  return (chunk) => {
    sent += chunk.byteLength
    progress.add(chunk.byteLength)
    if (sent >= size) {
      progress.finish()
    }
  }
}

function isPrintable (text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text)
}

/**
 * A call refused for its payment says what to type to pay: the same command
 * line with --pay auto and a --max-price of what the server asked, which
 * the node's bidding strategy can then meet.
 */
function withPaymentHint (e: any, argv: string[]): Error {
  if (!(e instanceof ApiError)) {
    return e
  }
  const acceptable = e.detail.acceptablePayment
  const asked: string | undefined = e.detail.asked ?? (acceptable?.currency === 'BTC' ? `${String(acceptable.amount)} BTC` : undefined)
  if (asked == null) {
    return e
  }
  let sats: bigint
  try {
    sats = parseAmount(asked)
  } catch {
    return e
  }
  const kept: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i].split('=')[0]
    if (PAY_FLAGS.has(flag)) {
      if (!argv[i].includes('=')) {
        i++
      }
      continue
    }
    kept.push(argv[i])
  }
  const hint = `${CLI} ${[...kept, '--pay', 'auto', '--max-price', `${sats}sat`].map(shellWord).join(' ')}`
  return new HintedError(e.message, hint, e.detail, e.name)
}

const PAY_FLAGS = new Set(['--pay', '--max-price', '--threshold'])

export const callCommand: Command = {
  name: 'call',
  summary: 'make an OpenCloud call to a peer (the "wget" of the protocol)',
  usage: `${CLI} call <peer> <service>.<method> [args...] [--body FILE|-] [--out FILE]`,
  help: `Calls a method on a peer through the running node, which signs the request
with its OpenCloud ID. <peer> is a PeerId the node can reach (found through the
DHT if it is not connected), a multiaddr ending in /p2p/<PeerId>, or "auto"
for the cheapest provider of the method the market knows.

Examples:
  ${CLI} call 12D3KooW... sha256.hash --body photo.jpg
  echo hello | ${CLI} call 12D3KooW... sha256.hash --body -
  ${CLI} call 12D3KooW... sha256.methods
  ${CLI} call 12D3KooW... sha256.quote hash 100
  ${CLI} call 12D3KooW... peers.find sha256

The answer goes to --out FILE, or to standard output: raw when it is a pipe or
a file, and as text or hex on a terminal. A refused call prints its status and
reason and exits with code 1.

Paying (the node's wallet pays; see "opencloud-node wallet"):
  ${CLI} call <peer> sha256.hash --body big.iso --pay attached:10000sat
  ${CLI} call <peer> sha256.hash --body big.iso --pay auto --max-price 20000sat
  ${CLI} call <peer> sha256.hash --body big.iso --pay auto --max-price "0.0002 BTC"
  ${CLI} call <peer> sha256.hash --body big.iso --pay channel:1000sat
With --pay auto the call first asks for free, then offers what the server
asks (through an open channel with the server that has room, else deferred
where it gives credit, else attached) up to --max-price. With --pay
channel:<amount> it pays the amount through this node's payment channel with
the server, and opens one first when none has room: one funding transaction
of "channels.capacity" in config.json (at least the amount), after which
each payment is a signed state kept off chain; the payee closes it (a
second transaction) however many calls it paid (\`payments channels\` lists
them). The strategy says on stderr what it did and why; with --json the
answer's "payment" says what was paid (its type, amount and id: the
channel's, for a channel payment) and "decisions" the same lines.

Amounts name their unit: 500sat, "500 sat", "0.000005 BTC". A number without
a unit is whole satoshis; a bare decimal such as 0.0001 is refused.

Options:
  --body FILE|-          send this file (or standard input) as the request body
  --out FILE             write the response body to FILE
  --pay MODE             attached:<amount>, defer:<amount>,
                         channel:<amount>, auto or none (default none); or
                         promo:<code>, a Cloud Ledger promo code this node
                         owns (\`ledger promo mine\`): the server, a member
                         cloud, redeems it before it serves
  --max-price AMOUNT     the most this call may pay (default: the --pay amount);
                         "market" means the market median for the call times
                         1.5, "market:2" twice it
  --threshold T          when a deferred payment falls due: time:<seconds>,
                         amount:<amount> or completion (default: once the
                         tab is worth a settlement, amount:<four of its fees>)
  --btc-credential       also prove the wallet's first address (for servers
                         with a min-balance policy)`,
  options: {
    body: { type: 'string' },
    out: { type: 'string' },
    pay: { type: 'string' },
    'max-price': { type: 'string' },
    threshold: { type: 'string' },
    'btc-credential': { type: 'boolean' }
  },
  run: async ({ values, positionals, json, argv, dataDir, out, err }) => {
    const [peer, target, ...args] = positionals
    if (peer == null || target == null) {
      throw new UsageError(`usage: ${CLI} call <peer> <service>.<method> [args...]`)
    }
    const match = /^([a-z][a-z0-9-]*)\.([a-z][a-z0-9-]*)$/.exec(target)
    if (match == null) {
      throw new UsageError(`"${target}" is not <service>.<method>, e.g. sha256.hash`)
    }
    const [, service, method] = match
    if (peer !== 'auto') {
      try {
        parsePeer(peer)
      } catch {
        throw new UsageError(`"${peer}" is not a peer: give a PeerId (they look like 12D3KooW...), a multiaddr ending in /p2p/<PeerId>, or auto`)
      }
    }
    if (values.out != null) {
      await checkOutputFile(resolve(values.out), values.out)
    }
    try {
      // checked here too, so a mistake is a usage error before anything is sent
      parsePayRequest({ pay: values.pay, maxPrice: values['max-price'], threshold: values.threshold })
    } catch (e: any) {
      throw new UsageError(e.message)
    }
    let body: ApiBody | undefined
    if (values.body === '-') {
      body = { kind: 'stream', stream: process.stdin }
    } else if (values.body != null) {
      let kind
      try {
        kind = await stat(values.body)
      } catch {
        throw new UsageError(`cannot read the body file ${values.body}`)
      }
      if (!kind.isFile()) {
        throw new UsageError(`--body ${values.body} is not a file: give a file, or - for standard input`)
      }
      const size = kind.size
      const hashing = new Progress(err, 'hashing', size, !json && size >= PROGRESS_FROM)
      const file = await bodyFromFile(values.body, undefined, chunk => { hashing.add(chunk.byteLength) })
      hashing.finish()
      body = { kind: 'file', path: values.body, length: file.length, sha256: file.sha256, onChunk: size >= PROGRESS_FROM ? sending(err, size, json) : undefined }
    }
    const api = await connectApi(dataDir, values.api)
    let result
    try {
      result = await api.call(peer, service, method, args, body, undefined, {
        pay: values.pay,
        maxPrice: values['max-price'],
        threshold: values.threshold,
        credential: values['btc-credential'] === true ? 'btc' : undefined
      })
    } catch (e: any) {
      throw withPaymentHint(e, argv)
    }
    if (!json) {
      for (const decision of result.payment?.decisions ?? []) {
        err.write(`payment: ${decision}\n`)
      }
    }
    const stream = result.body == null ? Readable.from([]) : Readable.fromWeb(result.body as any)

    if (values.out != null) {
      await pipeline(stream, createWriteStream(values.out))
      if (json) {
        printJson(out, { status: result.status, message: result.message, server: result.server, bodyLength: result.length, bodySha256: result.bodySha256, out: values.out, payment: result.payment, proof: result.proof })
      }
      return
    }
    if (json) {
      if (result.length > JSON_BODY_LIMIT) {
        stream.destroy()
        throw new UsageError(`the answer is ${result.length} bytes: write it to a file with --out`)
      }
      const bytes = Buffer.concat(await stream.toArray())
      const text = bytes.toString('utf8')
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {}
      printJson(out, {
        status: result.status,
        message: result.message,
        server: result.server,
        bodyLength: bytes.length,
        bodySha256: result.bodySha256,
        ...(parsed !== undefined ? { body: parsed } : isPrintable(text) ? { bodyText: text } : { bodyHex: bytes.toString('hex') }),
        payment: result.payment,
        proof: result.proof
      })
      return
    }
    if ((out as any).isTTY !== true) {
      await pipeline(stream, out, { end: false })
      return
    }
    const bytes = Buffer.concat(await stream.toArray())
    const text = bytes.toString('utf8')
    if (isPrintable(text)) {
      let pretty = text
      try {
        pretty = JSON.stringify(JSON.parse(text), null, 2)
      } catch {}
      out.write(pretty.endsWith('\n') ? pretty : pretty + '\n')
    } else {
      out.write(bytes.toString('hex') + '\n')
    }
  }
}
