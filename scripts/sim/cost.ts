/**
 * npm run sim:cost -- [--btc-usd 90000] [--sat-per-vb 10] [--price-per-tb-month 1.5] [--hosts 10]
 *   [--days 30] [--channel-days 30] [--strategy both] [--profile NAME ...] [--json]
 *
 * What storage costs today, counted by the node's own code: a real
 * StorageClient stores each profile's data on real StorageHost engines in
 * this process, its `call` routed straight to the hosts' handlers (as the
 * storage module does, src/services/storage/methods.ts) through the real
 * PaymentAgent, which pays every priced call as a deferred promise kept in a
 * real TabBook and settles each host's tab by its own rule (README,
 * "Payments") with real transactions from the wallet's builder. The clock is
 * simulated: 30 days pass with the upkeep the daemon runs (rent, audits,
 * renewals, repairs) and the agent's settlement check. What each host was
 * paid is what the client passed to `call`; the on-chain transactions and
 * their fees are the settlements the agent built. What is scaled: a 100 MB
 * profile stores one real 100 MB file standing for all the profile's files:
 * the hosts' prices are multiplied by their number (by the files read, for
 * downloads). One contract per host holds every file, rent is on the bytes
 * held, and each transfer pays its whole satoshis with the call and accrues
 * the fraction with the rent, all exactly, so what one file pays at those
 * prices is what all of them would; the small-files profile stores every
 * file.
 *
 * Then the same profiles paid through payment channels (simulateProfile's
 * strategy `channels`): the real Channels engine on both sides over a
 * regtest chain in this process, and when a channel's two transactions fall
 * under 2% of the rent they carry (compareStrategies).
 */
import { buffer } from 'node:stream/consumers'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { MemoryDatastore } from 'datastore-core'
import { Transaction, payments as btcPayments } from 'bitcoinjs-lib'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { openCloudSigner } from '../../src/protocols/rpc/credentials.ts'
import { bitcoinNetwork } from '../../src/protocols/bitcoin-networks.ts'
import { Status } from '../../src/protocols/rpc/status.ts'
import { parseBtc } from '../../src/protocols/units.ts'
import { EMPTY_BODY, type OutgoingBody } from '../../src/protocols/rpc/body.ts'
import { StorageClient, defaultRedundancy, type HostOffer } from '../../src/storage/client/storage-client.ts'
import { TIB } from '../../src/storage/protocol/contract.ts'
import { StorageHost } from '../../src/storage/host/storage-host.ts'
import type { StorageMethod } from '../../src/storage/host/args.ts'
import { PaymentAgent, worthSettling } from '../../src/payments/payment-agent.ts'
import { paymentFee } from '../../src/payments/wallet/tx-builder.ts'
import { TabBook } from '../../src/payments/tab-book.ts'
import { Wallet } from '../../src/payments/wallet/wallet.ts'
import { signerFor } from '../../src/payments/wallet/tx-builder.ts'
import type { ChainBackend } from '../../src/payments/chain/interface.ts'
import { RegtestChain, COINBASE_MATURITY } from '../../src/payments/chain/regtest/chain.ts'
import { Channels, channelIsCheaper } from '../../src/payments/channels/channels.ts'
import { CLOSE_VBYTES, payoutScript } from '../../src/payments/channels/channel-script.ts'
import type { ChannelRecord } from '../../src/payments/channels/channel-store.ts'
import { DUST } from '../../src/payments/wallet/tx-builder.ts'
import { entropyToMnemonic } from '@scure/bip39'
import { wordlist } from '@scure/bip39/wordlists/english.js'
import type { Payment } from '../../src/protocols/rpc/messages.ts'
import type { CallRequest, CallResponse } from '../../src/protocols/rpc/rpc-client.ts'

const DAY = 86_400_000
/** a decimal terabyte, as the anchors' prices count it */
const TB = 1e12
const MB = 1e6
const KIB = 1024
const SAT_PER_BTC = 100_000_000
/** the simulated clock starts here (a fixed moment: the same arguments print the same figures) */
const T0 = Date.parse('2031-01-05T00:00:00Z')
/**
 * The credit a host gives: the testnet's policy (scripts/testnet/network.ts,
 * 'max-tab' 0.001 BTC); a node's default is none (README, "Policies"), and
 * a storage call that pays deferred is then refused
 */
const MAX_TAB = 100_000n
const MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about'

/** The anchors' published prices (/work/shared/ANCHORS.md; README, "Storage"), USD per month */
export const ANCHORS: Array<{ who: string, usdPerTbMonth: number, note: string }> = [
  { who: 'Dropbox Plus', usdPerTbMonth: 11.99 / 2, note: '2 TB for $11.99, transfer included' },
  { who: 'Storj', usdPerTbMonth: 7, note: '$7 per TB, egress $7 per TB' },
  { who: 'Sia renters', usdPerTbMonth: 3, note: 'about $3 per TB with 3x redundancy' },
  { who: 'Backblaze B2', usdPerTbMonth: 6, note: '$6 per TB, egress $0.01 per GB' },
  { who: 'AWS S3', usdPerTbMonth: 23, note: 'about $23 per TB, egress $0.09 per GB' }
]

export interface CostProfile {
  name: string
  /** files the user holds */
  files: number
  /** bytes per file */
  fileSize: number
  /**
   * files actually stored by the simulation; each stands for files /
   * realFiles identical files put at the same moment, its calls' prices
   * multiplied so: rent is on the bytes held, accrued exactly, so the one
   * contract per host pays what it would for all of them
   */
  realFiles: number
  /** files read back once in the month (on day 15) */
  filesRead?: number
  /**
   * whether `npm run sim:cost` pays it through channels too, default true.
   * The 1,000 small files are not: their calls are the 10 MB file's (one
   * contract per host, rent on the bytes held), and storing them takes most
   * of the run
   */
  channels?: boolean
}

/** `bytes` in 100 MB files, one real file standing for them all; `readShare` of them read back on day 15 */
function of100MB (name: string, bytes: number, readShare = 0): CostProfile {
  const files = Math.round(bytes / (100 * MB))
  return { name, files, fileSize: 100 * MB, realFiles: 1, filesRead: Math.round(files * readShare) }
}

/** A default profile by its name, or a size in 100 MB files ("25 TB", "500 GB"); undefined for neither */
export function profileNamed (name: string): CostProfile | undefined {
  const known = defaultProfiles().find(p => p.name === name)
  if (known != null) {
    return known
  }
  const size = /^([0-9]+(?:\.[0-9]+)?) ?(GB|TB)$/.exec(name.trim())
  if (size == null || Number(size[1]) * (size[2] === 'TB' ? TB : 1e9) < 100 * MB) {
    return undefined
  }
  return of100MB(`${size[1]} ${size[2]}`, Number(size[1]) * (size[2] === 'TB' ? TB : 1e9))
}

/** The profiles of the cost figure: 100 MB files; 1,000 small files beside one file of their size; 1 TB with 10% read back */
export function defaultProfiles (): CostProfile[] {
  return [
    of100MB('10 GB', 10e9),
    of100MB('100 GB', 100e9),
    of100MB('1 TB', TB),
    of100MB('2 TB', 2 * TB),
    // every one of them stored: a thousand objects in one contract per host
    { name: '1,000 x 10 KiB', files: 1000, fileSize: 10 * KIB, realFiles: 1000, channels: false },
    // what the thousand small files should cost about as much as (issue: "within 2x of one 10 MB file")
    { name: '1 x 10 MB', files: 1, fileSize: 10 * MB, realFiles: 1 },
    of100MB('1 TB, 10% read', TB, 0.1)
  ]
}

export interface CostOptions {
  /** USD per bitcoin, default 90,000 */
  btcUsd?: number
  /** the fee rate the chain answers, default 10 sat/vB */
  satPerVb?: number
  /** hosts' storage price in USD per TB-month, default $1.50 (what Storj pays its hosts) */
  pricePerTbMonth?: number
  /** hosts' upload price in USD per TB, default 0 (Storj pays its hosts nothing for ingress) */
  uploadPerTb?: number
  /** hosts' download price in USD per TB, default $2 (what Storj pays its hosts for egress) */
  downloadPerTb?: number
  /** hosts on the market, default 10 (defaultRedundancy: 4-of-8) */
  hosts?: number
  /** days simulated, default 30 */
  days?: number
  /**
   * simulated time between the daemon's checks, default 6 hours (the
   * daemon: 60 s). Every paid event falls on a multiple of 6 hours from the
   * put (rent half a day before each whole day, renewal 7 days before the
   * end, the read on day 15), so these checks pay the same periods at the
   * same moments; audits (unpaid) run at most once a check
   */
  checkMs?: number
  /**
   * how long a channel lives, days past its payee's close margin
   * (channels.lifeBlocks), default 30 (the node's 4,320 blocks); a payee
   * takes up to a year (maxExpiryBlocks). The payer's channels.capacity is
   * set to hold the rent of that long, and at least the node's 50,000 sat
   */
  channelDays?: number
}

export interface Prices {
  /** sat per TiB-month as the wire carries it (whole sat, rounded up), sat per TiB up and down */
  storage: bigint
  upload: bigint
  download: bigint
  /** the exact figures before rounding */
  exact: { storage: number, upload: number, download: number }
}

/** USD per TB (decimal) as sat per TiB, exact and rounded up to the whole sat the wire carries */
export function satPerTiB (usdPerTb: number, btcUsd: number): { exact: number, wire: bigint } {
  const exact = usdPerTb / TB * TIB / btcUsd * SAT_PER_BTC
  return { exact, wire: BigInt(Math.ceil(exact - 1e-9)) }
}

export function pricesOf (o: Required<CostOptions>): Prices {
  const s = satPerTiB(o.pricePerTbMonth, o.btcUsd)
  const u = satPerTiB(o.uploadPerTb, o.btcUsd)
  const d = satPerTiB(o.downloadPerTb, o.btcUsd)
  return { storage: s.wire, upload: u.wire, download: d.wire, exact: { storage: s.exact, upload: u.exact, download: d.exact } }
}

export interface ProfileResult {
  profile: string
  files: number
  fileSize: number
  dataBytes: number
  k: number
  n: number
  /** shard bytes the hosts hold for all the files */
  storedBytes: number
  /** contracts formed (renewals not counted) */
  contracts: number
  /** sat paid over the days simulated, by kind (what the client passed to `call`) */
  rentSats: bigint
  uploadSats: bigint
  downloadSats: bigint
  /** settlement transactions the payment agent built and sent, all hosts */
  transactions: number
  /** hosts paid */
  hostsPaid: number
  txPerHostMonth: number
  /** the mean virtual size of those transactions */
  vbytes: number
  feeSats: bigint
  /**
   * the fees of the month's payments once they are settled: a tab is
   * settled when it is worth a settlement (worthSettling: four times the
   * fee), so a host paid less than that in a month is settled once in
   * several months, and each month's payments carry their share of that
   * fee (at least the fees the month's own settlements paid)
   */
  amortizedFeeSats: bigint
  /** amortized fees over rent */
  feeOverhead: number
  totalSats: bigint
  totalUsd: number
  usdPerTbMonth: number
  /** what the rent of the bytes held would be at the price with no rounding, sat per month */
  bytesRentSats: number
  /** shard bytes downloaded, and what they would cost at the download price with no rounding */
  downloadedBytes: number
  bytesDownloadSats: number
  /** paid through channels (Strategy 'channels'): what the channels put on chain */
  channels?: ChannelFigures
}

/** How a profile's storage calls are paid: deferred promises settled on chain, or payment channels */
export type Strategy = 'deferred' | 'channels'

/**
 * A profile paid through channels: what the payer's Channels engine opened
 * for the put's hosts (one funding transaction), what went through them,
 * and what the chain saw until every channel had ended (the payee's close
 * at its margin, or the payer's refund after the expiry)
 */
export interface ChannelFigures {
  /** channels opened, and the funding transactions that opened them */
  opened: number
  fundingTransactions: number
  /** how the channels ended: the payee's close, the payer's refund (the payee was paid less than the dust limit: nothing to claim) */
  closes: number
  refunds: number
  /** every transaction the channels put on chain: fundings, closes and refunds */
  transactions: number
  /** the most transactions that touch one host's channels (its funding and its close or refund) */
  txPerHost: number
  /** mean virtual sizes, vB (0 where there was none) */
  fundingVbytes: number
  closeVbytes: number
  refundVbytes: number
  /** fees, sat: the funding transactions' and the closes' and refunds' (fixed at the open: 180 vB at the fee rate) */
  fundingFeeSats: bigint
  closeFeeSats: bigint
  feeSats: bigint
  /** feeSats over the rent paid */
  feeOverhead: number
  /** what the payer paid through channels, what the hosts got on chain from the closes, and what they never got (channels refunded) */
  paidThroughChannels: bigint
  paidToHostsOnChain: bigint
  forfeitedSats: bigint
  /** paid deferred instead (no channel with room, or the payee refused the state) */
  deferredSats: bigint
  /** the capacity locked in the channels, sat */
  capacitySats: bigint
  /** days from the open to the expiry height, and to the last channel's end on chain */
  lifeDays: number
  endedAfterDays: number
  /** whether the agent's own strategy (channels.use auto) would open these channels: with the testnet's credit, and with a node's default of none */
  autoOpens: { withCredit: boolean, withoutCredit: boolean }
}

interface Host {
  peer: string
  engine: StorageHost
  address: string
  /** the deferred promises it was made and not yet settled, oldest first */
  unpaid: string[]
  /** what they add up to */
  owed: bigint
}

const answer = (server: string, bytes: Uint8Array): CallResponse => ({
  status: Status.OK,
  statusName: 'ok',
  message: '',
  server,
  head: {} as any,
  proof: new Uint8Array(),
  body: { length: bytes.byteLength, sha256: new Uint8Array(32), bytes: async () => bytes, [Symbol.asyncIterator]: async function * () { yield bytes } }
})
const json = (server: string, value: unknown): CallResponse => answer(server, new TextEncoder().encode(JSON.stringify(value)))

/** A stream of `size` zero bytes (the client encrypts them: the shards are as random as any file's) */
async function * zeros (size: number): AsyncGenerator<Uint8Array> {
  const chunk = new Uint8Array(1024 * KIB)
  for (let left = size; left > 0; left -= chunk.byteLength) {
    yield left >= chunk.byteLength ? chunk : chunk.subarray(0, left)
  }
}

function options (o: CostOptions): Required<CostOptions> {
  return {
    btcUsd: o.btcUsd ?? 90_000,
    satPerVb: o.satPerVb ?? 10,
    pricePerTbMonth: o.pricePerTbMonth ?? 1.5,
    uploadPerTb: o.uploadPerTb ?? 0,
    downloadPerTb: o.downloadPerTb ?? 2,
    hosts: o.hosts ?? 10,
    days: o.days ?? 30,
    checkMs: o.checkMs ?? 6 * 3600_000,
    channelDays: o.channelDays ?? 30
  }
}

/** A block every ten minutes of the simulated clock (the channels' expiries and close margins are in blocks) */
const BLOCK_MS = 600_000

/**
 * The ChainBackend a node has, over a regtest chain in this process: it
 * checks what the channels send it as the network would (scripts,
 * signatures, lock times), and answers the fee rate the simulation runs at
 */
function inProcessChain (chain: RegtestChain, feeRate: number): ChainBackend {
  return {
    tipHeight: async () => chain.height,
    balance: async (address: string) => chain.balanceOf(address),
    utxos: async (address: string) => chain.utxosOf(address),
    transactions: async (address: string) => chain.transactionsOf(address),
    transaction: async (txid: string) => chain.transaction(txid),
    confirmations: async (txid: string) => chain.confirmations(txid),
    outspend: async (txid: string, vout: number) => chain.outspend(txid, vout),
    broadcast: async (hex: string) => chain.submit(hex),
    feeRate: async () => feeRate
  }
}

/** The longest the clock runs on after the days simulated for the channels to end */
const WIND_DOWN_MS = 90 * DAY

/**
 * Run the clock on (no more calls, the chain and both sides' channel upkeep
 * only) until every channel has ended on chain, then count what the chain
 * saw of them: the funding transactions, the closes and refunds, their
 * sizes and fees, what the closes paid the hosts
 */
async function channelsToTheirEnd (s: {
  regtest: RegtestChain
  payer: Channels
  payees: Map<string, Channels>
  hosts: number
  received: { channel: bigint, defer: bigint }
  paidTo: Map<string, bigint>
  callsTo: Map<string, number>
  satPerVb: number
  rentSats: bigint
  heightAt: (t: number) => number
  advance: () => Promise<void>
}): Promise<ChannelFigures> {
  const ended = (ch: ChannelRecord): boolean => ch.state === 'closed' || ch.state === 'refunded' || ch.state === 'abandoned'
  const open = (): boolean => s.payer.store.all().some(ch => !ended(ch)) || [...s.payees.values()].some(p => p.store.all().some(ch => !ended(ch)))
  const stopAt = Date.now() + WIND_DOWN_MS
  while (open() && Date.now() < stopAt) {
    await s.advance()
  }
  if (open()) {
    throw new Error(`channels still open ${WIND_DOWN_MS / DAY} days after the last call: ${s.payer.store.all().filter(ch => !ended(ch)).map(ch => `${ch.id} ${ch.state}`).join(', ')}`)
  }
  const mine = s.payer.store.all('payer')
  const vsize = (txid: string): number => Transaction.fromHex(s.regtest.transaction(txid).hex as string).virtualSize()
  const fundings = [...new Set(mine.map(ch => ch.txid))]
  const fundingFeeSats = fundings.reduce((sum, txid) => sum + s.regtest.transaction(txid).fee, 0n)
  const touching = new Map<string, Set<string>>()
  let closes = 0
  let refunds = 0
  let closeFeeSats = 0n
  let closeVbytes = 0
  let refundVbytes = 0
  let paidToHostsOnChain = 0n
  let forfeitedSats = 0n
  let endHeight = 0
  for (const ch of mine) {
    const spend = s.regtest.outspend(ch.txid, ch.vout)
    if (spend.spent !== true || spend.txid == null) {
      throw new Error(`channel ${ch.id} is ${ch.state} and its output is not spent`)
    }
    const tx = s.regtest.transaction(spend.txid)
    const txs = touching.get(ch.peer) ?? new Set<string>()
    txs.add(ch.txid).add(spend.txid)
    touching.set(ch.peer, txs)
    closeFeeSats += tx.fee
    endHeight = Math.max(endHeight, tx.status.blockHeight ?? 0)
    const toPayee = tx.outputs.find(out => out.scriptPubKey === Buffer.from(payoutScript(ch.payeeKey)).toString('hex'))?.value ?? 0n
    paidToHostsOnChain += toPayee
    if (ch.state === 'refunded') {
      refunds++
      refundVbytes += vsize(spend.txid)
      forfeitedSats += ch.total
    } else {
      closes++
      closeVbytes += vsize(spend.txid)
      if (toPayee !== ch.total) {
        throw new Error(`the close of channel ${ch.id} paid its payee ${toPayee} sat; it was paid ${ch.total} through it`)
      }
    }
  }
  const openedAt = Math.min(...mine.map(ch => ch.openedAt))
  const openHeight = s.heightAt(openedAt)
  const blocksToDays = (blocks: number): number => blocks * BLOCK_MS / DAY
  // what the agent's own strategy (channels.use auto) would decide for these payees: their mean payments over the month
  const peers = [...s.paidTo.keys()]
  const expected = peers.length === 0 ? 0n : peers.reduce((sum, p) => sum + (s.paidTo.get(p) ?? 0n), 0n) / BigInt(peers.length)
  const calls = peers.length === 0 ? 0 : Math.round(peers.reduce((sum, p) => sum + (s.callsTo.get(p) ?? 0), 0) / peers.length)
  const auto = (credit: boolean): boolean => channelIsCheaper({ expected, calls, feeRate: s.satPerVb, credit, outputs: s.hosts }).cheaper
  const feeSats = fundingFeeSats + closeFeeSats
  return {
    opened: mine.length,
    fundingTransactions: fundings.length,
    closes,
    refunds,
    transactions: fundings.length + closes + refunds,
    txPerHost: Math.max(0, ...[...touching.values()].map(t => t.size)),
    fundingVbytes: fundings.length === 0 ? 0 : fundings.reduce((sum, txid) => sum + vsize(txid), 0) / fundings.length,
    closeVbytes: closes === 0 ? 0 : closeVbytes / closes,
    refundVbytes: refunds === 0 ? 0 : refundVbytes / refunds,
    fundingFeeSats,
    closeFeeSats,
    feeSats,
    feeOverhead: s.rentSats === 0n ? 0 : Number(feeSats) / Number(s.rentSats),
    paidThroughChannels: mine.reduce((sum, ch) => sum + ch.total, 0n),
    paidToHostsOnChain,
    forfeitedSats,
    deferredSats: s.received.defer,
    capacitySats: mine.reduce((sum, ch) => sum + ch.capacity, 0n),
    lifeDays: mine.length === 0 ? 0 : blocksToDays(Math.max(...mine.map(ch => ch.expiry)) - openHeight),
    endedAfterDays: blocksToDays(endHeight - openHeight),
    autoOpens: { withCredit: auto(true), withoutCredit: auto(false) }
  }
}

/**
 * One profile over `days` simulated days: real client, hosts, payment
 * agent, tab book and wallet; Date.now is the simulated clock meanwhile
 * (the client and the agent read it; the hosts and the tab book are given
 * it too), and is given back at the end.
 *
 * `channels`: the same, paid through payment channels instead. The agent
 * pays storage calls through the real Channels engine (channels.use
 * always), which opens channels to the put's hosts in one funding
 * transaction (PaymentAgent.prepay) on a regtest chain in this process, one
 * block per ten simulated minutes; each host's payments service is a real
 * Channels engine with its own wallet, which checks and keeps every state
 * as a node does. Both sides' channel upkeep (watch) runs at every check.
 * After the days simulated the clock runs on, with no more calls, until
 * every channel has ended on chain: the payee's close at its margin, or the
 * payer's refund after the expiry.
 */
export async function simulateProfile (profile: CostProfile, init: CostOptions = {}, strategy: Strategy = 'deferred'): Promise<ProfileResult> {
  const o = options(init)
  const prices = pricesOf(o)
  const dir = await mkdtemp(join(tmpdir(), 'oc-sim-cost-'))
  const realNow = Date.now
  let clock = T0
  Date.now = () => clock
  let closeChain: (() => Promise<void>) | undefined
  try {
    const network = bitcoinNetwork('regtest')
    // what one real file stands for. Rent is on the bytes held and every
    // transfer's fraction of a satoshi is accrued with it, exactly, so the
    // hosts' prices are multiplied instead of the calls' (whose prices round
    // once per call): one contract per host then pays what it would for all
    // the files. Downloads by the files read, the rest by the files held.
    const filesPer = BigInt(Math.round(profile.files / profile.realFiles))
    const readsPer = BigInt(profile.filesRead ?? 0) > 0n ? BigInt(profile.filesRead ?? 0) : filesPer
    const hostPrices = { storage: prices.storage * filesPer, upload: prices.upload * filesPer, download: prices.download * readsPer }
    const hosts: Host[] = []
    for (let i = 0; i < o.hosts; i++) {
      const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(i + 1))
      const peer = peerIdFromPrivateKey(key).toString()
      const engine = new StorageHost({
        peerId: peer,
        signer: openCloudSigner(key),
        datastore: new MemoryDatastore(),
        prices: () => hostPrices,
        takesPayments: true,
        now: () => clock
      }, { dir: join(dir, `host-${i}`), capacity: Number.MAX_SAFE_INTEGER, checkMs: 3600_000 })
      await engine.start()
      const address = btcPayments.p2wpkh({ pubkey: signerFor(new Uint8Array(32).fill(100 + i)).publicKey, network }).address as string
      hosts.push({ peer, engine, address, unpaid: [], owed: 0n })
    }
    const hostOf = (peer: string): Host => {
      const h = hosts.find(h => h.peer === peer)
      if (h == null) {
        throw new Error(`no host ${peer}`)
      }
      return h
    }
    const renterKey = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(99))
    const renter = peerIdFromPrivateKey(renterKey).toString()


    const paid = { rent: 0n, put: 0n, get: 0n }
    const viaChannels = strategy === 'channels'
    /** each host's payee side of the channels (strategy channels) */
    const payees = new Map<string, Channels>()
    const payeeOf = (host: Host): Channels => {
      const p = payees.get(host.peer)
      if (p == null) {
        throw new Error(`payments.channel-* is not simulated without channels (${host.peer})`)
      }
      return p
    }
    /** what the hosts took, by kind of payment, and each host's deferred promises */
    const received = { channel: 0n, defer: 0n }
    const deferredTo = new Map<string, bigint>()
    /** priced calls to each host */
    const callsTo = new Map<string, number>()
    /** sat promised to each host over the month */
    const paidTo = new Map<string, bigint>()
    let contracts = 0
    /** shard bytes the hosts sent, all the files read counted */
    let downloaded = 0
    /** whether a promise was made since the agent last looked at the tabs */
    let promised = false
    const vsizes: number[] = []

    /** A call as the host's RPC service answers it: payment checked against the host's price, then its handler */
    const route = async (target: string, request: CallRequest): Promise<CallResponse> => {
      const host = hostOf(target)
      if (request.service === 'payments') {
        switch (request.method) {
          case 'address': return json(host.peer, { address: host.address, network: 'regtest' })
          case 'settle': {
            const payment = request.payment
            if (payment?.type !== 'attached') {
              throw new Error('a settlement without a transaction')
            }
            vsizes.push(Transaction.fromBuffer(payment.txn).virtualSize())
            const settled = host.unpaid
            host.unpaid = []
            host.owed = 0n
            return json(host.peer, { settled })
          }
          case 'tab': return json(host.peer, { outstanding: '0 sat' })
          // the payee's side of channels, as the payments service answers them (src/services/payments/index.ts)
          case 'channel-terms': return json(host.peer, await payeeOf(host).offer(renter))
          case 'channel-open': {
            const funding = await buffer((request.body ?? EMPTY_BODY).open(request.signal))
            return json(host.peer, payeeOf(host).view(await payeeOf(host).acceptOpen(renter, request.args ?? [], funding)))
          }
          case 'channel': return json(host.peer, payeeOf(host).status(renter, (request.args ?? [])[0]))
          case 'channel-close': {
            const closed = await payeeOf(host).close((request.args ?? [])[0], renter)
            return json(host.peer, { txid: closed.txid, paid: `${closed.paid} sat` })
          }
          default: throw new Error(`payments.${request.method} is not simulated`)
        }
      }
      const method = request.method as StorageMethod
      const body = request.body ?? EMPTY_BODY
      const args = request.args ?? []
      const price = host.engine.cost(method, { caller: renter, args, bodyLength: body.length })
      const payment = request.payment
      let sats = payment?.type === 'defer' ? parseBtc(payment.amount) : 0n
      if (payment?.type === 'channel') {
        // the payee's check: exactly its latest state plus this payment, signed by the payer, kept before it serves
        sats = (await payeeOf(host).checkPayment(renter, payment as Extract<Payment, { type: 'channel' }>, price ?? 0n)).sats
        received.channel += sats
      }
      if (price != null && sats < price) {
        throw new Error(`${method} paid ${sats} sat, under the host's price of ${price}`)
      }
      if (payment?.type === 'defer') {
        // the host's payment desk gives credit up to its max-tab (the testnet's policy)
        if (host.owed + sats > MAX_TAB) {
          throw new Error(`a promise of ${sats} sat would take the tab with ${host.peer} over the testnet's max-tab of ${MAX_TAB} sat: the simulation does not model a host refusing credit`)
        }
        host.unpaid.push(payment.id)
        host.owed += sats
        received.defer += sats
        deferredTo.set(host.peer, (deferredTo.get(host.peer) ?? 0n) + sats)
      }
      const req = { caller: renter, args, signal: request.signal ?? new AbortController().signal, body: Object.assign(body.open(request.signal), { length: body.length }) }
      switch (method) {
        // one contract per host holds every file: not multiplied
        case 'contract': contracts++; return json(host.peer, await host.engine.contract(req))
        case 'renew': return json(host.peer, await host.engine.renew(req))
        case 'rent': return json(host.peer, await host.engine.rent(req))
        case 'put': return json(host.peer, await host.engine.put(req))
        case 'get': {
          const bytes = await buffer((await host.engine.get(req) as OutgoingBody).open())
          downloaded += bytes.byteLength * Number(readsPer)
          return answer(host.peer, bytes)
        }
        case 'prove': return answer(host.peer, await host.engine.prove(req))
        case 'delete': return json(host.peer, await host.engine.delete(req))
        case 'list': return json(host.peer, await host.engine.list(req))
        case 'end': return json(host.peer, await host.engine.end(req))
      }
      throw new Error(`storage.${String(method)} is not simulated`)
    }

    const wallet = await Wallet.open({ path: join(dir, 'wallet.json'), network: 'regtest', mnemonic: MNEMONIC })
    let coin = 0
    let chain = {
      // one confirmed coin of 1,000 BTC, a new one after each settlement (the fee does not depend on which)
      utxos: async (address: string) => address === wallet.identityAddress ? [{ txid: (++coin).toString(16).padStart(64, '0'), vout: 0, value: 100_000_000_000n, status: { confirmed: true, blockHeight: 1 } }] : [],
      transactions: async () => [],
      feeRate: async () => o.satPerVb,
      transaction: async (txid: string) => ({ txid })
    } as unknown as ChainBackend
    const tabs = new TabBook(new MemoryDatastore(), { now: () => clock })
    // strategy channels: a regtest chain whose tip follows the clock, and both sides' engines
    let regtest: RegtestChain | undefined
    let payer: Channels | undefined
    let h0 = 0
    /** coinbases go here: nobody's wallet */
    const burn = btcPayments.p2wpkh({ pubkey: signerFor(new Uint8Array(32).fill(200)).publicKey, network }).address as string
    const heightAt = (t: number): number => h0 + Math.floor((t - T0) / BLOCK_MS)
    const mineToClock = async (): Promise<void> => {
      const blocks = heightAt(clock) - (regtest as RegtestChain).height
      if (blocks > 0) {
        await (regtest as RegtestChain).mine(blocks, burn)
      }
    }
    /** the daemon's channel upkeep: the payer's, then each payee's */
    const watchChannels = async (): Promise<void> => {
      await payer?.watch()
      for (const p of payees.values()) {
        await p.watch()
      }
    }
    if (viaChannels) {
      const opened = regtest = new RegtestChain({ path: join(dir, 'chain') })
      await opened.open()
      closeChain = async () => { await opened.close() }
      // one mature coin of 50 BTC for the renter's wallet
      await regtest.mine(1, wallet.identityAddress)
      await regtest.mine(COINBASE_MATURITY, burn)
      h0 = regtest.height
      chain = inProcessChain(regtest, o.satPerVb)
      // the tip is asked afresh at every check (the clock jumps); the watchers run when the simulation says
      const engine = { network: 'regtest' as const, tipTtlMs: 0, watchIntervalMs: 2 ** 31 - 1 }
      // a channel holds what its host is paid over its life (a quarter more for the transfers and rounding), as
      // an operator sets channels.capacity for channels that live longer than a contract period
      const { k } = defaultRedundancy(o.hosts)
      const perHost = Number(hostPrices.storage) * (profile.fileSize * profile.realFiles / k) / TIB * o.channelDays / 30
      const capacity = BigInt(Math.max(50_000, Math.ceil(perHost * 1.25)))
      const payerInit = { ...engine, lifeBlocks: Math.round(o.channelDays * DAY / BLOCK_MS), capacity }
      for (let i = 0; i < hosts.length; i++) {
        // each host's own wallet, from its own words: the channel key it offers and the close it signs
        const hostWallet = await Wallet.open({ path: join(dir, `host-${i}-wallet.json`), network: 'regtest', mnemonic: entropyToMnemonic(new Uint8Array(16).fill(i + 1), wordlist) })
        const payee = new Channels({ datastore: new MemoryDatastore(), wallet: hostWallet, chain, tabs: new TabBook(new MemoryDatastore(), { now: () => clock }), call: async () => { throw new Error('a payee calls nobody') } }, engine)
        await payee.start()
        payees.set(hosts[i].peer, payee)
      }
      payer = new Channels({ datastore: new MemoryDatastore(), wallet, chain, tabs, call: async (peer, request) => route(peer.toString(), request) }, payerInit)
      await payer.start()
    }
    const agent = new PaymentAgent({ call: async (peer, request) => route(peer.toString(), request), wallet, chain, tabs }, { feeRateTtlMs: 0 })
    if (payer != null) {
      agent.useChannels(payer, 'always')
    }

    const client = new StorageClient({
      peerId: renter,
      signer: openCloudSigner(renterKey),
      datastore: new MemoryDatastore(),
      storageKey: () => new Uint8Array(32).fill(7),
      hosts: async (): Promise<HostOffer[]> => hosts.map(h => ({ peer: h.peer, ...hostPrices })),
      // as the node's caller does (payingCall): a priced call is a deferred promise through the payment agent,
      // or, strategy channels, goes through the host's channel where one has room (PaymentAgent.payTo)
      call: async (peer, request, sats) => {
        if (sats === 0n) {
          return route(peer, request)
        }
        const kind = request.method === 'rent' ? 'rent' : request.method === 'put' ? 'put' : 'get'
        paid[kind] += sats
        paidTo.set(peer, (paidTo.get(peer) ?? 0n) + sats)
        callsTo.set(peer, (callsTo.get(peer) ?? 0) + 1)
        promised = true
        if (viaChannels) {
          return agent.payTo(peerIdFromString(peer), request, sats)
        }
        return (await agent.call(peerIdFromString(peer), request, { pay: { kind: 'defer', sats }, maxPrice: sats })).response
      },
      // as the node's caller does: a put opens channels to its hosts first, where the strategy says
      ...(viaChannels ? { prepay: async (payees, signal) => agent.prepay(payees, signal) } : {})
    })

    // the redundancy is the client's own default for the hosts it knows (defaultRedundancy)
    let redundancy = { k: 0, n: 0 }
    for (let i = 0; i < profile.realFiles; i++) {
      const object = await client.put({ stream: zeros(profile.fileSize), size: profile.fileSize }, { name: `file-${i}` })
      redundancy = { k: object.k, n: object.n }
    }
    await agent.settleDue()

    // the daemon's upkeep at every check, and the agent's settlement check
    const end = T0 + o.days * DAY
    const readAt = T0 + 15 * DAY
    let read = false
    while (clock + o.checkMs < end) {
      clock += o.checkMs
      if (viaChannels) {
        await mineToClock()
      }
      const signal = AbortSignal.timeout(600_000)
      await client.collectGarbage(signal)
      await client.payRent(clock, signal)
      await client.audit(clock, signal)
      await client.renewAll(clock, signal)
      await client.repairAll(clock, signal)
      for (const h of hosts) {
        await h.engine.endOverdue(clock)
      }
      if (!read && clock >= readAt && (profile.filesRead ?? 0) > 0) {
        read = true
        // one real read standing for filesRead (the download price carries the number)
        const stream = await client.getStream('file-0')
        for await (const _ of stream.stream) {}
      }
      // the agent looks every 5 s; what it decides changes only with a new
      // promise or while a tab waits (its state says so), so it looks then
      if (promised || agent.settlementStates().length > 0) {
        promised = false
        await agent.settleDue()
      }
      await watchChannels()
    }
    const channels = regtest == null || payer == null
      ? undefined
      : await channelsToTheirEnd({ regtest, payer, payees, hosts: redundancy.n, received, paidTo, callsTo, satPerVb: o.satPerVb, rentSats: paid.rent, heightAt, advance: async () => { clock += o.checkMs; await mineToClock(); await watchChannels() } })

    const onChain = await tabs.onChain()
    const transactions = onChain.reduce((s, r) => s + r.transactions, 0)
    const feeSats = onChain.reduce((s, r) => s + r.fees, 0n)
    const hostsPaid = onChain.filter(r => r.transactions > 0).length
    const storedBytes = hosts.reduce((s, h) => s + h.engine.used(), 0) * Number(filesPer)
    // each month's payments to a host, settled at worthSettling, carry its share of a settlement's fee
    const fee = paymentFee(o.satPerVb)
    const worth = worthSettling(o.satPerVb)
    let amortizedFeeSats = 0n
    for (const h of hosts) {
      // through channels, only what was deferred instead waits for a settlement
      const promisedTo = (viaChannels ? deferredTo : paidTo).get(h.peer) ?? 0n
      const feesPaid = onChain.find(r => r.peer === h.peer)?.fees ?? 0n
      const share = (promisedTo * fee + worth - 1n) / worth
      amortizedFeeSats += feesPaid > share ? feesPaid : share
    }
    const totalSats = paid.rent + paid.put + paid.get + amortizedFeeSats + (channels?.feeSats ?? 0n)
    const totalUsd = Number(totalSats) / SAT_PER_BTC * o.btcUsd
    const monthShare = 30 / o.days
    const dataBytes = profile.files * profile.fileSize
    await client.stop()
    for (const h of hosts) {
      await h.engine.stop()
    }
    await payer?.stop()
    for (const p of payees.values()) {
      await p.stop()
    }
    return {
      profile: profile.name,
      files: profile.files,
      fileSize: profile.fileSize,
      dataBytes,
      ...redundancy,
      storedBytes,
      contracts,
      rentSats: paid.rent,
      uploadSats: paid.put,
      downloadSats: paid.get,
      transactions,
      hostsPaid,
      txPerHostMonth: hostsPaid === 0 ? 0 : transactions / hostsPaid * monthShare,
      vbytes: vsizes.length === 0 ? 0 : vsizes.reduce((a, b) => a + b, 0) / vsizes.length,
      feeSats,
      amortizedFeeSats,
      feeOverhead: paid.rent === 0n ? 0 : Number(amortizedFeeSats + (channels?.feeSats ?? 0n)) / Number(paid.rent),
      totalSats,
      totalUsd: totalUsd * monthShare,
      usdPerTbMonth: totalUsd * monthShare / (dataBytes / TB),
      bytesRentSats: storedBytes / TIB * prices.exact.storage,
      downloadedBytes: downloaded,
      bytesDownloadSats: downloaded / TIB * prices.exact.download,
      ...(channels == null ? {} : { channels })
    }
  } finally {
    Date.now = realNow
    await closeChain?.()
    await rm(dir, { recursive: true, force: true })
  }
}

/** The issue's target for the fees of paying through channels: under 2% of the rent */
export const CHANNEL_FEE_TARGET = 0.02
const YEAR_MONTHS = 365 / 30

/**
 * Deferred against channels for one profile, from the two runs: the fees
 * each puts on the rent, the credit deferred payment asks of each host and
 * for how long, and when a channel's two transactions fall under 2% of the
 * rent they carry: the fees of a channel do not depend on what goes through
 * it, so its share falls with the rent it carries, that is with the data
 * stored and the channel's life
 */
export interface StrategyComparison {
  profile: string
  dataBytes: number
  hosts: number
  /** the rent one host is paid a month, sat */
  rentPerHostMonth: number
  deferred?: {
    feeOverhead: number
    /** the tab at which a host's deferred payments settle (worthSettling: four settlement fees): the credit each host gives */
    creditPerHostSats: bigint
    /** how many months of this profile's payments to a host that tab is: how long the host waits for its money */
    monthsOfCredit: number
  }
  channels: {
    feeOverhead: number
    txPerHost: number
    transactions: number
    /** one host's share of the funding's fee and its close's (or refund's) fee, sat */
    feePerHostSats: number
    paidToHostsOnChain: bigint
    forfeitedSats: bigint
    lifeDays: number
    /** those fees over the rent a 30-day and a 1-year channel carry at this size */
    overhead30Days: number
    overheadYear: number
    /** how long a channel must live at this size for its fees to be 2% of the rent it carries */
    monthsFor2Percent: number
    /** how much a user must store for a 30-day and a 1-year channel's fees to be 2% of the rent it carries, bytes */
    dataFor2Percent30Days: number
    dataFor2PercentYear: number
    /** months until a host's total in its channel reaches the dust limit: before that it has nothing to claim, and the payer refunds it all */
    monthsToDust: number
    autoOpens: ChannelFigures['autoOpens']
  }
}

export function compareStrategies (deferred: ProfileResult | undefined, channel: ProfileResult, o: Required<CostOptions>): StrategyComparison {
  const ch = channel.channels as ChannelFigures
  const monthShare = 30 / o.days
  const hosts = channel.n
  const rentPerHostMonth = Number(channel.rentSats) / hosts * monthShare
  const feePerHostSats = Number(ch.feeSats) / hosts
  const overheadFor = (months: number): number => feePerHostSats / (rentPerHostMonth * months)
  const monthsFor2Percent = feePerHostSats / (CHANNEL_FEE_TARGET * rentPerHostMonth)
  const worth = worthSettling(o.satPerVb)
  const paidPerHostMonth = deferred == null ? 0 : Number(deferred.rentSats + deferred.uploadSats + deferred.downloadSats) / deferred.n * monthShare
  return {
    profile: channel.profile,
    dataBytes: channel.dataBytes,
    hosts,
    rentPerHostMonth,
    ...(deferred == null
      ? {}
      : { deferred: { feeOverhead: deferred.feeOverhead, creditPerHostSats: worth, monthsOfCredit: paidPerHostMonth === 0 ? Infinity : Number(worth) / paidPerHostMonth } }),
    channels: {
      feeOverhead: ch.feeOverhead,
      txPerHost: ch.txPerHost,
      transactions: ch.transactions,
      feePerHostSats,
      paidToHostsOnChain: ch.paidToHostsOnChain,
      forfeitedSats: ch.forfeitedSats,
      lifeDays: ch.lifeDays,
      overhead30Days: overheadFor(1),
      overheadYear: overheadFor(YEAR_MONTHS),
      monthsFor2Percent,
      dataFor2Percent30Days: channel.dataBytes * monthsFor2Percent,
      dataFor2PercentYear: channel.dataBytes * monthsFor2Percent / YEAR_MONTHS,
      monthsToDust: Number(DUST) / rentPerHostMonth,
      autoOpens: ch.autoOpens
    }
  }
}

export interface CostReport {
  options: Required<CostOptions>
  prices: { storage: string, upload: string, download: string, exact: Prices['exact'], usdPerTbMonthOnWire: number }
  redundancy: { k: number, n: number }
  /** paid deferred, settled on chain (the node's way without channels) */
  results: ProfileResult[]
  /** the same profiles paid through payment channels (those with `channels` not false) */
  channels: ProfileResult[]
  /** the two side by side, and the horizons of the 2% target */
  comparison: StrategyComparison[]
  anchors: typeof ANCHORS
}

export async function simulateCost (init: CostOptions = {}, profiles = defaultProfiles(), strategies: Strategy[] = ['deferred', 'channels']): Promise<CostReport> {
  const o = options(init)
  const prices = pricesOf(o)
  const results: ProfileResult[] = []
  const channels: ProfileResult[] = []
  for (const p of profiles) {
    if (strategies.includes('deferred')) {
      results.push(await simulateProfile(p, o))
    }
    if (strategies.includes('channels') && p.channels !== false) {
      channels.push(await simulateProfile(p, o, 'channels'))
    }
  }
  return {
    options: o,
    prices: {
      storage: String(prices.storage),
      upload: String(prices.upload),
      download: String(prices.download),
      exact: prices.exact,
      usdPerTbMonthOnWire: Number(prices.storage) / TIB * TB / SAT_PER_BTC * o.btcUsd
    },
    redundancy: defaultRedundancy(o.hosts),
    results,
    channels,
    comparison: channels.map(c => compareStrategies(results.find(r => r.profile === c.profile), c, o)),
    anchors: ANCHORS
  }
}

// ---- the command ----

const HELP = `Usage: npm run sim:cost -- [options]

What storage costs a user per month, counted by driving the node's own
client, hosts, payment agent and wallet on a simulated clock over 30 days:
rent, transfer, and the settlement transactions the payment agent makes
with their fees (and each month's share of the fee of a settlement that
comes later). Each 100 MB profile stores one real 100 MB file that stands
for all of the profile's files: the hosts' prices are multiplied by their
number (one contract per host holds every file, rent on the bytes held,
transfers' fractions of a satoshi accrued with it); the small-files profile
stores all its 1,000 files.

Then the same profiles (not the 1,000 small files, whose calls are the 10
MB file's) paid through payment channels: the real Channels engine on both
sides, a put opening a channel to each of its hosts in one funding
transaction, on a regtest chain in this process that checks every
transaction; the clock runs on until every channel has ended on chain
(closed by its payee at its margin, or refunded to the payer after its
expiry). Side by side: the fees over the rent of each strategy, the credit
deferred payment asks of each host and for how long, and the horizon at
which a channel's two transactions are under 2% of the rent it carries.
Ends with the targets: 100 GB under Dropbox Plus's $11.99, 1 TB under $5
per TB-month, 1,000 small files within 2x of one 10 MB file, at most 2
on-chain transactions per host per contract period through channels, and
their fees for a 100 GB user under 2% of rent.

Options:
  --btc-usd USD             USD per bitcoin, default 90000
  --sat-per-vb RATE         the chain's fee rate, default 10
  --price-per-tb-month USD  the hosts' storage price, default 1.5 (Storj's host payout)
  --upload-per-tb USD       the hosts' upload price, default 0 (Storj pays no ingress)
  --download-per-tb USD     the hosts' download price, default 2 (Storj's egress payout)
  --hosts N                 hosts on the market, default 10 (4-of-8)
  --days N                  days simulated, default 30
  --channel-days N          how long a channel lives, default 30 (the node's
                            channels.lifeBlocks); a payee takes up to 365
  --strategy S              deferred, channels or both (default): how the
                            storage calls are paid
  --profile NAME            only this profile (a name in the table, or a size
                            such as "25 TB"); may be given more than once
  --json                    print the report as JSON
  -h, --help                show this help`

const fmtBytes = (b: number): string => b >= TB ? `${+(b / TB).toFixed(2)} TB` : b >= 1e9 ? `${+(b / 1e9).toFixed(1)} GB` : `${+(b / MB).toFixed(1)} MB`
const fmtSat = (s: bigint | number): string => Number(s).toLocaleString('en-US', { maximumFractionDigits: 0 })
const usd = (x: number): string => `$${x >= 100 ? x.toLocaleString('en-US', { maximumFractionDigits: 0 }) : x.toFixed(2)}`

/** The issue's targets, each with what the run measured (README, "Storage") */
export function targets (r: CostReport): Array<{ target: string, measured: string, met: boolean }> {
  const out: Array<{ target: string, measured: string, met: boolean }> = []
  const by = (name: string): ProfileResult | undefined => r.results.find(x => x.profile === name)
  const dropbox = r.anchors.find(a => a.who.startsWith('Dropbox'))
  const gb100 = by('100 GB')
  if (gb100 != null && dropbox != null) {
    out.push({ target: '100 GB for less than Dropbox Plus ($11.99 a month)', measured: `${usd(gb100.totalUsd)} a month`, met: gb100.totalUsd < 11.99 })
  }
  const tb = by('1 TB')
  if (tb != null) {
    out.push({ target: '1 TB for less than $5 per TB-month all-in', measured: `${usd(tb.usdPerTbMonth)} per TB-month`, met: tb.usdPerTbMonth < 5 })
  }
  const tb2 = by('2 TB')
  if (tb2 != null) {
    out.push({ target: '2 TB (the figure, beside Dropbox Plus\'s $11.99)', measured: `${usd(tb2.totalUsd)} a month`, met: tb2.totalUsd < 11.99 })
  }
  const small = by('1,000 x 10 KiB')
  const one = by('1 x 10 MB')
  if (small != null && one != null) {
    const ratio = Number(small.totalSats) / Math.max(1, Number(one.totalSats))
    out.push({ target: '1,000 files of 10 KiB within 2x of one 10 MB file', measured: `${fmtSat(small.totalSats)} sat against ${fmtSat(one.totalSats)} sat (${ratio.toFixed(2)}x)`, met: ratio <= 2 })
  }
  if (r.channels.length > 0) {
    const most = r.channels.reduce((a, b) => (b.channels?.txPerHost ?? 0) > (a.channels?.txPerHost ?? 0) ? b : a)
    const most2 = most.channels as ChannelFigures
    out.push({ target: 'through channels, at most 2 on-chain transactions per host per contract period', measured: `at most ${most2.txPerHost} a host (its funding and its close or refund); ${most2.transactions} in all for ${most.n} hosts (${most.profile})`, met: r.channels.every(c => (c.channels?.txPerHost ?? 0) <= 2) })
  }
  const gb100ch = r.channels.find(x => x.profile === '100 GB')
  const cmp = r.comparison.find(x => x.profile === '100 GB')
  if (gb100ch?.channels != null && cmp != null) {
    const ch = gb100ch.channels
    out.push({
      target: `through channels, the fee overhead for a 100 GB user at ${r.options.satPerVb} sat/vB under 2% of rent`,
      measured: `${pct(ch.feeOverhead)}: ${fmtSat(ch.feeSats)} sat of fees for ${fmtSat(gb100ch.rentSats)} sat of rent in ${r.options.days} days. One close alone (${fmtSat(ch.closeFeeSats / BigInt(Math.max(1, ch.opened)))} sat) is ${(Number(ch.closeFeeSats) / Math.max(1, ch.opened) / Number(gb100ch.rentSats)).toFixed(1)}x the month's rent of all ${gb100ch.n} hosts: no on-chain payment can be under 2% of it. A channel reaches 2% after ${fmtMonths(cmp.channels.monthsFor2Percent)} at 100 GB, or at ${fmtBytes(cmp.channels.dataFor2PercentYear)} in a year`,
      met: ch.feeOverhead < CHANNEL_FEE_TARGET
    })
  }
  return out
}

const pct = (x: number): string => x >= 10 ? `${fmtSat(x * 100)}%` : `${(x * 100).toFixed(1)}%`
const fmtMonths = (m: number): string => !Number.isFinite(m) ? 'never' : m >= 24 ? `${fmtSat(m / 12)} years` : `${m.toFixed(1)} months`

/** The channel case beside the deferred one, and when a channel's fees fall under 2% of its rent */
function formatChannels (r: CostReport): string[] {
  const o = r.options
  const lines: string[] = []
  if (r.channels.length === 0) {
    return lines
  }
  const first = r.channels[0].channels as ChannelFigures
  lines.push(`Through payment channels: the same calls paid by the agent through the real Channels engine (channels.use always), the put opening one channel to each of its ${r.channels[0].n} hosts in one funding transaction, on a regtest chain in this process (a block per ten simulated minutes) that checks every transaction's scripts, signatures and lock times; each host's payee side a real Channels engine with its own wallet. Channels live ${o.channelDays} days past the payee's margin (expiry ${first.lifeDays.toFixed(0)} days after the open); the clock then runs on, with no more calls, until each has ended on chain.`)
  lines.push('')
  const head = ['profile', 'rent sat/month', 'deferred: fees/rent', 'credit a host, sat', 'held for', 'channels: tx/host', 'tx on chain', 'fees sat', 'fees/rent', 'closes', 'refunds', 'hosts paid on chain', 'never paid', 'auto opens']
  const rows = r.channels.map(c => {
    const ch = c.channels as ChannelFigures
    const cmp = r.comparison.find(x => x.profile === c.profile)
    const d = cmp?.deferred
    return [
      c.profile,
      fmtSat(Number(c.rentSats) * 30 / o.days),
      d == null ? '' : pct(d.feeOverhead),
      d == null ? '' : fmtSat(d.creditPerHostSats),
      d == null ? '' : fmtMonths(d.monthsOfCredit),
      String(ch.txPerHost),
      `${ch.transactions} (${ch.fundingTransactions} + ${ch.closes + ch.refunds})`,
      fmtSat(ch.feeSats),
      pct(ch.feeOverhead),
      String(ch.closes),
      String(ch.refunds),
      `${fmtSat(ch.paidToHostsOnChain)} sat`,
      ch.forfeitedSats > 0n ? `${fmtSat(ch.forfeitedSats)} sat` : '0',
      ch.autoOpens.withCredit ? 'yes' : ch.autoOpens.withoutCredit ? 'without credit' : 'no'
    ]
  })
  lines.push(...table(head, rows))
  lines.push('')
  // the largest profile: the least rounding of rent in its figures
  const largest = r.comparison.reduce((a, b) => b.dataBytes > a.dataBytes ? b : a)
  const perHost = largest.channels.feePerHostSats
  const mean = (xs: number[]): string => xs.length === 0 ? 'none made' : `${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(0)} vB`
  const closeVb = mean(r.channels.filter(c => (c.channels?.closes ?? 0) > 0).map(c => c.channels?.closeVbytes ?? 0))
  const refundVb = mean(r.channels.filter(c => (c.channels?.refunds ?? 0) > 0).map(c => c.channels?.refundVbytes ?? 0))
  lines.push(`A channel's fees do not depend on what it carries: each host's share of the funding (${first.fundingVbytes.toFixed(0)} vB for ${first.opened} channels) and its close (${closeVb}) or refund (${refundVb}), either paying the ${fmtSat(first.closeFeeSats / BigInt(Math.max(1, first.opened)))} sat fixed at the open (${CLOSE_VBYTES} vB at ${o.satPerVb} sat/vB): ${fmtSat(perHost)} sat a host. So its share of the rent falls only with the rent it carries, with the data stored and the channel's life:`)
  lines.push('')
  const head2 = ['profile', 'rent a host/month', 'fees/rent, 30-day channel', '1-year channel', 'life for 2%', 'data for 2%, 30 days', '1 year', 'host paid dust after']
  const rows2 = r.comparison.map(x => [
    x.profile,
    `${x.rentPerHostMonth.toFixed(0)} sat`,
    pct(x.channels.overhead30Days),
    pct(x.channels.overheadYear),
    fmtMonths(x.channels.monthsFor2Percent),
    fmtBytes(x.channels.dataFor2Percent30Days),
    fmtBytes(x.channels.dataFor2PercentYear),
    fmtMonths(x.channels.monthsToDust)
  ])
  lines.push(...table(head2, rows2))
  lines.push('')
  const worth = worthSettling(o.satPerVb)
  lines.push(`Deferred, a host's tab settles once it is worth four settlement fees (${fmtSat(worth)} sat at ${o.satPerVb} sat/vB): the fees are a quarter of the rent at any size, and each host gives that much credit for as long as the user takes to owe it ("held for" above). A tab settled at 2% would be ${fmtSat(paymentFee(o.satPerVb) * 50n)} sat of credit a host. A channel needs no credit (the payee holds a signed state for everything it served) and is under 2% once it carries ${fmtSat(perHost / CHANNEL_FEE_TARGET)} sat of rent a host; at these prices that is a year's channel for about ${fmtBytes(largest.channels.dataFor2PercentYear)} of data, or a 30-day channel for ${fmtBytes(largest.channels.dataFor2Percent30Days)} (${largest.profile}'s figures, scaled). A payee's default takes channels of up to a year (maxExpiryBlocks 52,560).`)
  lines.push('A host whose channel carried less than the dust limit (294 sat) has nothing to claim on chain: a close would pay it nothing, it does not close, and the payer\'s refund after the expiry takes back everything it was paid ("never paid"). "auto opens": what channels.use auto would choose for these hosts, with the testnet\'s credit (max-tab 0.001 BTC) or without credit (a node\'s default).')
  return lines
}

function table (head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(row => row[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ')
  return [line(head), ...rows.map(line)]
}

export function formatReport (r: CostReport): string {
  const o = r.options
  const satUsd = o.btcUsd / SAT_PER_BTC
  const lines: string[] = []
  lines.push(`Host prices: $${o.pricePerTbMonth} per TB-month = ${r.prices.exact.storage.toFixed(1)} sat per TiB-month, rounded up to ${r.prices.storage} sat (the wire carries whole sat per TiB-month) = $${r.prices.usdPerTbMonthOnWire.toFixed(3)} per TB-month`)
  lines.push(`  download $${o.downloadPerTb} per TB = ${r.prices.exact.download.toFixed(1)} sat per TiB, rounded up to ${r.prices.download}; upload $${o.uploadPerTb} per TB = ${r.prices.upload} sat per TiB`)
  lines.push(`$${o.btcUsd} per BTC, ${o.satPerVb} sat/vB, ${o.hosts} hosts: ${r.redundancy.k}-of-${r.redundancy.n} (the default redundancy for that many), ${o.days} simulated days`)
  lines.push('')
  if (r.results.length > 0) {
    lines.push(...formatDeferred(r))
    lines.push('')
  }
  if (r.channels.length > 0) {
    lines.push(...formatChannels(r))
    lines.push('')
  }
  lines.push('Beside, the published prices (README, "Storage"):')
  for (const a of r.anchors) {
    lines.push(`  ${a.who.padEnd(13)} ${usd(a.usdPerTbMonth)} per TB-month (${a.note})`)
  }
  lines.push(`1 sat = $${satUsd.toFixed(4)} (0.00000001 BTC)`)
  lines.push('')
  lines.push('Targets:')
  for (const t of targets(r)) {
    lines.push(`  ${t.met ? 'met    ' : 'NOT MET'}  ${t.target}: ${t.measured}`)
  }
  lines.push('')
  lines.push('tx/host/month: on-chain settlements per host paid in the month; 0 where no host\'s tab was worth a settlement yet (it waits, owed, for more).')
  lines.push('rent: each period is paid ahead on the bytes held then; a contract renewed 7 days before its end pays its new first period while the old one\'s paid time runs out.')
  return lines.join('\n')
}

/** The deferred case: the table of what each profile costs, and how to read it */
function formatDeferred (r: CostReport): string[] {
  const o = r.options
  const lines: string[] = []
  // sat columns say so: the node's other output is in BTC, and these are too small to read there
  const head = ['profile', 'data', 'stored', 'contracts', 'rent sat/month', 'transfer sat', 'tx/host/month', 'fees paid sat', 'fees amortized sat', 'total sat', 'total USD', 'USD/TB-month', 'fees/rent']
  const rows = r.results.map(x => [
    x.profile,
    fmtBytes(x.dataBytes),
    `${fmtBytes(x.storedBytes)} (${(x.storedBytes / x.dataBytes).toFixed(2)}x)`,
    fmtSat(x.contracts),
    fmtSat(Number(x.rentSats) * 30 / o.days),
    fmtSat(x.uploadSats + x.downloadSats),
    x.txPerHostMonth.toFixed(1),
    fmtSat(x.feeSats),
    fmtSat(x.amortizedFeeSats),
    fmtSat(x.totalSats),
    usd(x.totalUsd),
    usd(x.usdPerTbMonth),
    `${(x.feeOverhead * 100).toFixed(1)}%`
  ])
  lines.push('Paid deferred, each host\'s tab settled on chain by the payment agent:')
  lines.push(...table(head, rows))
  lines.push('')
  const vb = r.results.find(x => x.vbytes > 0)?.vbytes
  lines.push(`A settlement transaction is ${vb == null ? '141 vB (none was made this month)' : `${vb.toFixed(1)} vB, as measured`} (one coin in, the host and change out), ${o.satPerVb} sat/vB; a tab is settled once it is worth four fees, so every payment deferred carries up to a quarter of itself in fees: "fees amortized" is each month's share, "fees paid" what the month's own settlements paid.`)
  const small = r.results.find(x => x.fileSize < MB)
  if (small != null) {
    lines.push(`${small.profile}: ${fmtSat(small.rentSats)} sat of rent a month for bytes worth ${small.bytesRentSats.toFixed(2)} sat at the price, in ${fmtSat(small.contracts)} contracts: one per host for all the files, rent accrued exactly on the bytes held.`)
  }
  for (const x of r.results.filter(x => x.downloadedBytes > 0)) {
    lines.push(`${x.profile}: ${fmtSat(x.downloadSats)} sat paid with the gets for ${fmtBytes(x.downloadedBytes)} of shards read, worth ${fmtSat(x.bytesDownloadSats)} sat at the price: each get pays its whole satoshis, and its fraction is accrued and paid with the rent.`)
  }
  lines.push(`Each 100 MB profile stores one real file standing for all its files: the hosts' prices are multiplied by their number (by the files read, for downloads); rent is on the bytes held and each transfer's fraction of a satoshi is accrued with it, exactly, so one contract per host pays what all the files would. The small files are all stored.`)
  return lines
}

const replacer = (_: string, v: unknown): unknown => typeof v === 'bigint' ? v.toString() : v

async function main (): Promise<void> {
  let values: Record<string, any>
  try {
    values = parseArgs({
      options: {
        'btc-usd': { type: 'string', default: '90000' },
        'sat-per-vb': { type: 'string', default: '10' },
        'price-per-tb-month': { type: 'string', default: '1.5' },
        'upload-per-tb': { type: 'string', default: '0' },
        'download-per-tb': { type: 'string', default: '2' },
        hosts: { type: 'string', default: '10' },
        days: { type: 'string', default: '30' },
        'channel-days': { type: 'string', default: '30' },
        strategy: { type: 'string', default: 'both' },
        profile: { type: 'string', multiple: true },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      }
    }).values
  } catch (err: any) {
    process.stderr.write(`sim:cost: ${err.message}\n\n${HELP}\n`)
    process.exit(2)
  }
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`)
    return
  }
  const num = (name: string, min: number): number => {
    const x = Number(values[name])
    if (!Number.isFinite(x) || x < min) {
      process.stderr.write(`sim:cost: --${name} must be a number of at least ${min}\n\n${HELP}\n`)
      process.exit(2)
    }
    return x
  }
  const usage = (message: string): never => {
    process.stderr.write(`sim:cost: ${message}\n\n${HELP}\n`)
    process.exit(2)
  }
  const strategies: Strategy[] = values.strategy === 'both' ? ['deferred', 'channels'] : values.strategy === 'deferred' || values.strategy === 'channels' ? [values.strategy] : usage(`--strategy is deferred, channels or both, not "${String(values.strategy)}"`)
  const profiles = values.profile == null
    ? defaultProfiles()
    : (values.profile as string[]).map(name => profileNamed(name) ?? usage(`no profile "${name}": one of ${defaultProfiles().map(p => `"${p.name}"`).join(', ')}, or a size such as "25 TB"`))
  const report = await simulateCost({
    btcUsd: num('btc-usd', 1),
    satPerVb: num('sat-per-vb', 1),
    pricePerTbMonth: num('price-per-tb-month', 0),
    uploadPerTb: num('upload-per-tb', 0),
    downloadPerTb: num('download-per-tb', 0),
    hosts: Math.floor(num('hosts', 2)),
    days: num('days', 1),
    channelDays: Math.min(365, num('channel-days', 1))
  }, profiles, strategies)
  process.stdout.write(values.json === true ? `${JSON.stringify(report, replacer, 2)}\n` : `${formatReport(report)}\n`)
}

if (import.meta.main) {
  await main()
}
