/**
 * npm run sim:cost -- [--btc-usd 90000] [--sat-per-vb 10] [--price-per-tb-month 1.5] [--hosts 10] [--json]
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
}

/** The profiles of the cost figure: 100 MB files; 1,000 small files beside one file of their size; 1 TB with 10% read back */
export function defaultProfiles (): CostProfile[] {
  const of100MB = (name: string, bytes: number, readShare = 0): CostProfile => {
    const files = Math.round(bytes / (100 * MB))
    return { name, files, fileSize: 100 * MB, realFiles: 1, filesRead: Math.round(files * readShare) }
  }
  return [
    of100MB('10 GB', 10e9),
    of100MB('100 GB', 100e9),
    of100MB('1 TB', TB),
    of100MB('2 TB', 2 * TB),
    // every one of them stored: a thousand objects in one contract per host
    { name: '1,000 x 10 KiB', files: 1000, fileSize: 10 * KIB, realFiles: 1000 },
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
    checkMs: o.checkMs ?? 6 * 3600_000
  }
}

/**
 * One profile over `days` simulated days: real client, hosts, payment
 * agent, tab book and wallet; Date.now is the simulated clock meanwhile
 * (the client and the agent read it; the hosts and the tab book are given
 * it too), and is given back at the end.
 */
export async function simulateProfile (profile: CostProfile, init: CostOptions = {}): Promise<ProfileResult> {
  const o = options(init)
  const prices = pricesOf(o)
  const dir = await mkdtemp(join(tmpdir(), 'oc-sim-cost-'))
  const realNow = Date.now
  let clock = T0
  Date.now = () => clock
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
          default: throw new Error(`payments.${request.method} is not simulated`)
        }
      }
      const method = request.method as StorageMethod
      const body = request.body ?? EMPTY_BODY
      const args = request.args ?? []
      const price = host.engine.cost(method, { caller: renter, args, bodyLength: body.length })
      const payment = request.payment
      const sats = payment?.type === 'defer' ? parseBtc(payment.amount) : 0n
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
    const chain = {
      // one confirmed coin of 1,000 BTC, a new one after each settlement (the fee does not depend on which)
      utxos: async (address: string) => address === wallet.identityAddress ? [{ txid: (++coin).toString(16).padStart(64, '0'), vout: 0, value: 100_000_000_000n, status: { confirmed: true, blockHeight: 1 } }] : [],
      transactions: async () => [],
      feeRate: async () => o.satPerVb,
      transaction: async (txid: string) => ({ txid })
    } as unknown as ChainBackend
    const tabs = new TabBook(new MemoryDatastore(), { now: () => clock })
    const agent = new PaymentAgent({ call: async (peer, request) => route(peer.toString(), request), wallet, chain, tabs }, { feeRateTtlMs: 0 })

    const client = new StorageClient({
      peerId: renter,
      signer: openCloudSigner(renterKey),
      datastore: new MemoryDatastore(),
      storageKey: () => new Uint8Array(32).fill(7),
      hosts: async (): Promise<HostOffer[]> => hosts.map(h => ({ peer: h.peer, ...hostPrices })),
      // as the node's caller does (payingCall): a priced call is a deferred promise through the payment agent
      call: async (peer, request, sats) => {
        if (sats === 0n) {
          return route(peer, request)
        }
        const kind = request.method === 'rent' ? 'rent' : request.method === 'put' ? 'put' : 'get'
        paid[kind] += sats
        paidTo.set(peer, (paidTo.get(peer) ?? 0n) + sats)
        promised = true
        return (await agent.call(peerIdFromString(peer), request, { pay: { kind: 'defer', sats }, maxPrice: sats })).response
      }
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
    }

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
      const promisedTo = paidTo.get(h.peer) ?? 0n
      const feesPaid = onChain.find(r => r.peer === h.peer)?.fees ?? 0n
      const share = (promisedTo * fee + worth - 1n) / worth
      amortizedFeeSats += feesPaid > share ? feesPaid : share
    }
    const totalSats = paid.rent + paid.put + paid.get + amortizedFeeSats
    const totalUsd = Number(totalSats) / SAT_PER_BTC * o.btcUsd
    const monthShare = 30 / o.days
    const dataBytes = profile.files * profile.fileSize
    await client.stop()
    for (const h of hosts) {
      await h.engine.stop()
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
      feeOverhead: paid.rent === 0n ? 0 : Number(amortizedFeeSats) / Number(paid.rent),
      totalSats,
      totalUsd: totalUsd * monthShare,
      usdPerTbMonth: totalUsd * monthShare / (dataBytes / TB),
      bytesRentSats: storedBytes / TIB * prices.exact.storage,
      downloadedBytes: downloaded,
      bytesDownloadSats: downloaded / TIB * prices.exact.download
    }
  } finally {
    Date.now = realNow
    await rm(dir, { recursive: true, force: true })
  }
}

export interface CostReport {
  options: Required<CostOptions>
  prices: { storage: string, upload: string, download: string, exact: Prices['exact'], usdPerTbMonthOnWire: number }
  redundancy: { k: number, n: number }
  results: ProfileResult[]
  anchors: typeof ANCHORS
}

export async function simulateCost (init: CostOptions = {}, profiles = defaultProfiles()): Promise<CostReport> {
  const o = options(init)
  const prices = pricesOf(o)
  const results: ProfileResult[] = []
  for (const p of profiles) {
    results.push(await simulateProfile(p, o))
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
stores all its 1,000 files. Ends with the targets: 100 GB under Dropbox
Plus's $11.99, 1 TB under $5 per TB-month, 1,000 small files within 2x of
one 10 MB file.

Options:
  --btc-usd USD             USD per bitcoin, default 90000
  --sat-per-vb RATE         the chain's fee rate, default 10
  --price-per-tb-month USD  the hosts' storage price, default 1.5 (Storj's host payout)
  --upload-per-tb USD       the hosts' upload price, default 0 (Storj pays no ingress)
  --download-per-tb USD     the hosts' download price, default 2 (Storj's egress payout)
  --hosts N                 hosts on the market, default 10 (4-of-8)
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
  return out
}

export function formatReport (r: CostReport): string {
  const o = r.options
  const satUsd = o.btcUsd / SAT_PER_BTC
  const lines: string[] = []
  lines.push(`Host prices: $${o.pricePerTbMonth} per TB-month = ${r.prices.exact.storage.toFixed(1)} sat per TiB-month, rounded up to ${r.prices.storage} sat (the wire carries whole sat per TiB-month) = $${r.prices.usdPerTbMonthOnWire.toFixed(3)} per TB-month`)
  lines.push(`  download $${o.downloadPerTb} per TB = ${r.prices.exact.download.toFixed(1)} sat per TiB, rounded up to ${r.prices.download}; upload $${o.uploadPerTb} per TB = ${r.prices.upload} sat per TiB`)
  lines.push(`$${o.btcUsd} per BTC, ${o.satPerVb} sat/vB, ${o.hosts} hosts: ${r.redundancy.k}-of-${r.redundancy.n} (the default redundancy for that many), ${o.days} simulated days`)
  lines.push('')
  // sat columns say so: the node's other output is in BTC, and these are too small to read there
  const head = ['profile', 'data', 'stored', 'contracts', 'rent sat/month', 'transfer sat', 'tx/host/month', 'fees paid sat', 'fees amortized sat', 'total sat', 'total USD', 'USD/TB-month', 'fees/rent']
  const rows = r.results.map(x => [
    x.profile,
    fmtBytes(x.dataBytes),
    `${fmtBytes(x.storedBytes)} (${(x.storedBytes / x.dataBytes).toFixed(2)}x)`,
    fmtSat(x.contracts),
    fmtSat(x.rentSats),
    fmtSat(x.uploadSats + x.downloadSats),
    x.txPerHostMonth.toFixed(1),
    fmtSat(x.feeSats),
    fmtSat(x.amortizedFeeSats),
    fmtSat(x.totalSats),
    usd(x.totalUsd),
    usd(x.usdPerTbMonth),
    `${(x.feeOverhead * 100).toFixed(1)}%`
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(row => row[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ')
  lines.push(line(head))
  for (const row of rows) {
    lines.push(line(row))
  }
  lines.push('')
  const vb = r.results.find(x => x.vbytes > 0)?.vbytes
  lines.push(`A settlement transaction is ${vb == null ? '141 vB (none was made this month)' : `${vb.toFixed(1)} vB, as measured`} (one coin in, the host and change out), ${o.satPerVb} sat/vB; a tab is settled once it is worth four fees, so until payment channels every payment carries up to a quarter of itself in fees: "fees amortized" is each month's share, "fees paid" what the month's own settlements paid.`)
  const small = r.results.find(x => x.fileSize < MB)
  if (small != null) {
    lines.push(`${small.profile}: ${fmtSat(small.rentSats)} sat of rent a month for bytes worth ${small.bytesRentSats.toFixed(2)} sat at the price, in ${fmtSat(small.contracts)} contracts: one per host for all the files, rent accrued exactly on the bytes held.`)
  }
  for (const x of r.results.filter(x => x.downloadedBytes > 0)) {
    lines.push(`${x.profile}: ${fmtSat(x.downloadSats)} sat paid with the gets for ${fmtBytes(x.downloadedBytes)} of shards read, worth ${fmtSat(x.bytesDownloadSats)} sat at the price: each get pays its whole satoshis, and its fraction is accrued and paid with the rent.`)
  }
  lines.push(`Each 100 MB profile stores one real file standing for all its files: the hosts' prices are multiplied by their number (by the files read, for downloads); rent is on the bytes held and each transfer's fraction of a satoshi is accrued with it, exactly, so one contract per host pays what all the files would. The small files are all stored.`)
  lines.push('')
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
  const report = await simulateCost({
    btcUsd: num('btc-usd', 1),
    satPerVb: num('sat-per-vb', 1),
    pricePerTbMonth: num('price-per-tb-month', 0),
    uploadPerTb: num('upload-per-tb', 0),
    downloadPerTb: num('download-per-tb', 0),
    hosts: Math.floor(num('hosts', 2))
  })
  process.stdout.write(values.json === true ? `${JSON.stringify(report, replacer, 2)}\n` : `${formatReport(report)}\n`)
}

if (import.meta.main) {
  await main()
}
