/**
 * bench/payments: paid calls per second through a payment channel, beside
 * attached payments measured in the same run, between two nodes in separate
 * processes over TCP on 127.0.0.1 and a local regtest chain.
 *
 *   npm run bench:channels [-- --calls 1000 --attached 200 --in-flight 8 --price 3 --json]
 *
 * A channel payment is the payer's signature on the channel's next state,
 * written to its datastore before it is sent, and the payee's check of it
 * (exactly the latest plus the price, the payer's key) written to its
 * datastore before it serves the call. An attached payment is a real
 * transaction per call: the payer asks the payee's address, builds and signs
 * it from its coins; the payee checks it, broadcasts it to the chain and
 * serves. Baseline, measured in the same run: attached payments, one call at
 * a time (two built at once from one wallet could pick the same coin: the
 * wallet reserves none). Target (issue 20): 1,000 paid calls make two transactions on chain,
 * the funding and the close; the ratio says what a channel buys in speed.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { DUST } from '../../src/payments/wallet/tx-builder.ts'
import { channelOutput, payoutScript } from '../../src/payments/channels/channel-script.ts'
import { bitcoinNetwork } from '../../src/protocols/bitcoin-networks.ts'
import type { Channels } from '../../src/payments/channels/channels.ts'
import { payerConfig } from './config.ts'

const HELP = `Usage: npm run bench:channels -- [options]

Paid calls per second between two nodes (separate processes, TCP on
127.0.0.1, a local regtest chain): through a payment channel, one call at a
time and several in flight, beside attached payments (a transaction per
call) measured in the same run; and the transactions each put on chain.

Options:
  --calls N       channel payments per run, after the open, default 1000
  --attached M    attached payments, default 200
  --in-flight K   channel calls in flight in the concurrent run, default 8
  --price SAT     the payee's price of a call, default 3
  --json          print the results as JSON
  -h, --help      show this help`

let values: Record<string, any>
try {
  values = parseArgs({
    options: {
      calls: { type: 'string', default: '1000' },
      attached: { type: 'string', default: '200' },
      'in-flight': { type: 'string', default: '8' },
      price: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    }
  }).values
} catch (err: any) {
  process.stderr.write(`bench:channels: ${err.message}\n\n${HELP}\n`)
  process.exit(2)
}
if (values.help === true) {
  process.stdout.write(`${HELP}\n`)
  process.exit(0)
}
const whole = (name: string, min: number): number => {
  const x = Number(values[name])
  if (!Number.isSafeInteger(x) || x < min) {
    process.stderr.write(`bench:channels: --${name} must be a whole number of at least ${min}\n\n${HELP}\n`)
    process.exit(2)
  }
  return x
}
const CALLS = whole('calls', 1)
const ATTACHED = whole('attached', 1)
const IN_FLIGHT = whole('in-flight', 1)
const PRICE = BigInt(whole('price', 1))
/** an attached payment pays at least the dust limit: an output below it is not relayed */
const ATTACHED_SATS = PRICE > DUST ? PRICE : DUST
/** a coin per attached payment and a few for the channels' funding */
const COINS = ATTACHED + 10
const COIN = 200_000n
const progress = (s: string): void => { if (values.json !== true) process.stderr.write(s) }

interface Rate { calls: number, inFlight: number, seconds: number, callsPerSecond: number, medianMs: number, p95Ms: number, firstTenthMs: number, lastTenthMs: number }

async function measure (fn: (i: number) => Promise<void>, total: number, inFlight: number): Promise<Rate> {
  const latencies: number[] = []
  let next = 0
  const start = performance.now()
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, async () => {
    while (next < total) {
      const i = next++
      const t = performance.now()
      await fn(i)
      latencies[i] = performance.now() - t
    }
  }))
  const seconds = (performance.now() - start) / 1000
  // the mean latency of the first and the last tenth of the calls: whether a run slows as it goes
  const tenth = Math.max(1, Math.floor(total / 10))
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
  const firstTenthMs = mean(latencies.slice(0, tenth))
  const lastTenthMs = mean(latencies.slice(-tenth))
  latencies.sort((a, b) => a - b)
  return { calls: total, inFlight, seconds, callsPerSecond: total / seconds, medianMs: latencies[Math.floor(latencies.length / 2)], p95Ms: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.95))], firstTenthMs, lastTenthMs }
}

const dir = await mkdtemp(join(tmpdir(), 'oc-bench-payments-'))
const regtest = new RegtestServer({ dir: join(dir, 'chain'), blockIntervalMs: 0 })
await regtest.start()
const payee = spawn(process.execPath, [fileURLToPath(new URL('./payee.ts', import.meta.url)), join(dir, 'payee'), regtest.url, String(PRICE)], { stdio: ['ignore', 'pipe', 'inherit'] })
let client: OpenCloudNode | undefined
try {
  const { addr } = await new Promise<{ addr: string }>((resolve, reject) => {
    createInterface({ input: payee.stdout as NodeJS.ReadableStream }).once('line', line => { resolve(JSON.parse(line)) })
    payee.once('exit', code => { reject(new Error(`the payee exited with ${code}`)) })
  })
  const target = multiaddr(addr)
  const payeePeer = target.getComponents().find(c => c.name === 'p2p')?.value as string
  // room for every payment of a run (and the open's), at least the default capacity
  const needed = (BigInt(CALLS) + 1n) * PRICE
  client = await OpenCloudNode.create({ dataDir: join(dir, 'payer'), config: payerConfig(regtest.url, needed > 50_000n ? needed : 50_000n) })
  await client.start()
  const node = client
  const channels = node.channels as Channels
  const mine = async (): Promise<void> => { await regtest.chain.mine(1, regtest.faucetAddress) }

  progress(`funding the payer with ${COINS} coins of ${COIN} sat\n`)
  const fundTo = await node.wallet.newAddress()
  for (let i = 0; i < COINS; i++) {
    await regtest.faucet(fundTo, COIN)
  }
  await mine()
  await node.libp2p.dial(target)

  const hash = (i: number | string) => ({ service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode(`bench call ${i}`)) })
  const channelCall = async (i: number | string): Promise<void> => {
    const r = await node.paidCall(target, hash(i), { pay: { kind: 'channel', sats: PRICE } })
    if (r.response.statusName !== 'ok' || r.payment?.type !== 'channel') {
      throw new Error(`call ${i}: ${r.response.statusName}, paid ${r.payment?.type ?? 'nothing'}`)
    }
  }

  /** One channel: opened by its first paid call (timed apart), `CALLS` payments through it, closed by the payee; what reached the chain */
  const channelRun = async (inFlight: number, calls = CALLS): Promise<Rate & { openMs: number, transactions: number, paidToPayee: bigint, expected: bigint, channel: string }> => {
    const before = regtest.chain.mempoolSize
    const t = performance.now()
    const first = await node.paidCall(target, hash(`open ${inFlight}`), { pay: { kind: 'channel', sats: PRICE } })
    const openMs = performance.now() - t
    if (!first.decisions.some(d => d.startsWith('opened channel '))) {
      throw new Error(`the first call opened no channel: ${first.decisions.join('; ')}`)
    }
    const id = first.payment?.id as string
    const rate = await measure(async i => channelCall(`${inFlight}/${i}`), calls, inFlight)
    const closed = await channels.closeWith(payeePeer)
    const close = closed.find(c => c.id === id)
    if (close?.txid == null) {
      throw new Error(`channel ${id} did not close: ${close?.error ?? 'not found'}`)
    }
    const transactions = regtest.chain.mempoolSize - before
    const ch = channels.store.get('payer', id)
    if (ch == null) {
      throw new Error(`no record of channel ${id}`)
    }
    // the funding and the close are all that touch the channel's output
    const touching = regtest.chain.transactionsOf(channelOutput(ch, bitcoinNetwork('regtest')).address).length
    const payeeScript = Buffer.from(payoutScript(ch.payeeKey)).toString('hex')
    const paidToPayee = regtest.chain.transaction(close.txid).outputs.find(o => o.scriptPubKey === payeeScript)?.value ?? 0n
    await mine()
    if (touching !== 2) {
      throw new Error(`${touching} transactions touch channel ${id}, not 2`)
    }
    return { ...rate, openMs, transactions, paidToPayee, expected: (BigInt(calls) + 1n) * PRICE, channel: id }
  }

  // the floor: the same service's unpriced method, signed and verified both ways, no payment
  const unpaidCall = async (): Promise<void> => {
    const r = await node.call(target, { service: 'sha256', method: 'info' })
    await r.body.bytes()
  }
  progress('warming up\n')
  await measure(unpaidCall, 300, IN_FLIGHT)
  await channelRun(IN_FLIGHT, Math.min(CALLS, 300))
  progress(`unpaid: ${CALLS} calls, 1 and ${IN_FLIGHT} in flight\n`)
  const unpaidSequential = await measure(unpaidCall, CALLS, 1)
  const unpaidConcurrent = await measure(unpaidCall, CALLS, IN_FLIGHT)
  progress(`channel: ${CALLS} payments, 1 in flight\n`)
  const sequential = await channelRun(1)
  progress(`channel: ${CALLS} payments, ${IN_FLIGHT} in flight\n`)
  const concurrent = await channelRun(IN_FLIGHT)

  progress(`attached: ${ATTACHED} payments, 1 in flight\n`)
  const before = regtest.chain.mempoolSize
  const txids = new Set<string>()
  const addressesBefore = node.wallet.addresses().length
  const attached = await measure(async i => {
    const r = await node.paidCall(target, hash(`attached ${i}`), { pay: { kind: 'attached', sats: ATTACHED_SATS } })
    if (r.response.statusName !== 'ok' || r.payment?.txid == null) {
      throw new Error(`attached call ${i}: ${r.response.statusName}`)
    }
    txids.add(r.payment.txid)
  }, ATTACHED, 1)
  const attachedTransactions = regtest.chain.mempoolSize - before
  const walletAddresses = node.wallet.addresses().length - addressesBefore
  await mine()

  const ratio = sequential.callsPerSecond / attached.callsPerSecond
  const concurrentRatio = concurrent.callsPerSecond / attached.callsPerSecond
  const results = {
    price: { channelSats: Number(PRICE), attachedSats: Number(ATTACHED_SATS) },
    unpaidSequential,
    unpaidConcurrent,
    channelSequential: { ...sequential, paidToPayee: Number(sequential.paidToPayee), expected: Number(sequential.expected), transactionsPerChannel: sequential.transactions },
    channelConcurrent: { ...concurrent, paidToPayee: Number(concurrent.paidToPayee), expected: Number(concurrent.expected), transactionsPerChannel: concurrent.transactions },
    attached: { ...attached, transactions: attachedTransactions, distinctTxids: txids.size, coins: COINS, newWalletAddresses: walletAddresses },
    ratio,
    concurrentRatio,
    target: 'each channel: 2 transactions on chain (funding and close), the close paying the payee exactly what it was paid'
  }
  if (values.json === true) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n')
  } else {
    const f = (n: number, d = 0): string => n.toFixed(d)
    const row = (name: string, r: Rate, txs: string, extra = ''): string =>
      `${name.padEnd(24)}${f(r.callsPerSecond).padStart(8)}  ${f(r.medianMs, 2).padStart(9)}  ${f(r.p95Ms, 2).padStart(9)}  ${txs.padStart(26)}${extra}`
    const paid = (r: typeof sequential): string => r.paidToPayee === r.expected ? `, close pays the payee ${r.paidToPayee} sat: exact` : `, close pays ${r.paidToPayee} sat of ${r.expected}: WRONG`
    process.stdout.write(`
bench/payments: two nodes, separate processes, TCP + noise + yamux on 127.0.0.1, a local regtest chain;
sha256.hash of a small body at ${PRICE} sat; every call signed and verified both ways, every payment persisted on both sides

                         calls/s  median ms     p95 ms       transactions on chain
${row('unpaid (sha256.info), 1', unpaidSequential, 'none')}
${row(`unpaid, ${IN_FLIGHT} in flight`, unpaidConcurrent, 'none')}
${row(`channel, 1 in flight`, sequential, `${sequential.transactions} for ${CALLS + 1} payments`, paid(sequential))}
${row(`channel, ${IN_FLIGHT} in flight`, concurrent, `${concurrent.transactions} for ${CALLS + 1} payments`, paid(concurrent))}
${row('attached, 1 in flight', attached, `${attachedTransactions} for ${ATTACHED} payments`, ` (${ATTACHED_SATS} sat each, the dust limit)`)}
  the channel's open (terms, funding built, the payee's agreement, broadcast) and its first payment: ${f(sequential.openMs, 1)} ms; the close is not timed
  a channel carries one state at a time (the payee takes only the latest plus the price): calls in flight wait their turn
  attached: each payment built from the wallet's coins (${COINS} of ${COIN} sat to start with), broadcast and checked by the payee; the wallet
    asks the chain for the coins of every address it has, and each payment adds a change address (${walletAddresses} in this run):
    ${f(attached.firstTenthMs, 1)} ms a call in the first tenth, ${f(attached.lastTenthMs, 1)} ms in the last

channel payments are ${f(ratio, 1)}x attached payments per second (${f(concurrentRatio, 1)}x with ${IN_FLIGHT} in flight)
`)
  }
} finally {
  await client?.stop().catch(() => {})
  payee.kill('SIGTERM')
  await new Promise(resolve => payee.once('exit', resolve))
  await regtest.stop()
  await rm(dir, { recursive: true, force: true })
}
