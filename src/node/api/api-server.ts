import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline as streamPipeline } from 'node:stream/promises'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { bodyFromFile, EMPTY_BODY, type OutgoingBody } from '../../protocols/rpc/body.ts'
import { DialError, RpcError } from '../../protocols/rpc/errors.ts'
import { statusName, Status } from '../../protocols/rpc/status.ts'
import { parsePeer, PriceRefusedError, type OpenCloudNode } from '../opencloud-node.ts'
import { httpStatusFor, API_HEADERS } from './http-status.ts'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import { ledgerRoute } from './ledger-routes.ts'
import type { CallResponse } from '../../protocols/rpc/rpc-client.ts'
import type { ChainBackend } from '../../payments/chain/interface.ts'
import { BiddingError, type PaidCallOptions, type PaidCallResult, type SettlementState } from '../../payments/payment-agent.ts'
import { parsePayRequest } from '../../payments/pay-options.ts'
import { checkAddressNetwork } from '../../protocols/bitcoin-networks.ts'
import { formatAmount, parseAmount } from '../../protocols/units.ts'
import { offerJson, statsJson } from '../../services/market/index.ts'

function marketQuery (url: URL): { service?: string, method?: string } {
  return { service: url.searchParams.get('service') ?? undefined, method: url.searchParams.get('method') ?? undefined }
}
import { tabJson } from '../../services/payments/index.ts'
import { storeRoute, STORE_MISTAKES } from './store-routes.ts'
import type { OnChainRow, SummaryRow, TabSummary } from '../../payments/tab-book.ts'


const log = logger('opencloud:api')

export interface ApiServerInit {
  host: string
  port: number
  token: string
}

/** `call auto` tries at most this many providers, in the market's order */
const AUTO_CANDIDATES = 3

/**
 * Errors that are the API client's to fix, not the node failing: answered
 * 4xx with their own sentence instead of 500.
 */
const CLIENT_MISTAKES: Record<string, number> = {
  DecodeError: 400,
  WrongNetworkAddressError: 400,
  InvalidAmountError: 400,
  DustPaymentError: 400,
  InsufficientFundsError: 409,
  FeeTooHighError: 409
}

/** A whole number above zero from the query, or 400 naming it */
function positiveInteger (url: URL, name: string, fallback: number): number {
  const text = url.searchParams.get(name)
  if (text == null) {
    return fallback
  }
  const value = Number(text)
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(value) || value <= 0) {
    throw new HttpError(400, `${name} must be a whole number above 0, not "${text}"`)
  }
  return value
}

/** The `peer` query parameter as a checked PeerId string */
function peerParam (url: URL, required: true): string
function peerParam (url: URL, required: false): string | null
function peerParam (url: URL, required: boolean): string | null {
  const peer = url.searchParams.get('peer')
  if (peer == null) {
    if (required) {
      throw new HttpError(400, `name a peer: ${url.pathname}?peer=<PeerId>`)
    }
    return null
  }
  try {
    peerIdFromString(peer)
  } catch {
    throw new HttpError(400, `"${peer}" is not a PeerId`)
  }
  return peer
}

/**
 * `payments summary`: what calls cost (the rows, and totals per peer, per
 * call and overall), and per peer and overall what this node's transactions
 * paid on chain and their fees; amounts with their unit. Without a `since`
 * the period starts at the first promise or payment (null before any).
 */
function summaryJson (rows: SummaryRow[], chain: OnChainRow[], since: number | null, until: number): Record<string, unknown> {
  const total = (list: SummaryRow[]): Record<string, unknown> => ({
    earned: formatAmount(list.reduce((s, r) => s + r.earned, 0n)),
    earnedUnpaid: formatAmount(list.reduce((s, r) => s + r.earnedUnpaid, 0n)),
    spent: formatAmount(list.reduce((s, r) => s + r.spent, 0n)),
    spentUnpaid: formatAmount(list.reduce((s, r) => s + r.spentUnpaid, 0n)),
    calls: list.reduce((s, r) => s + r.calls, 0)
  })
  const onChain = (list: OnChainRow[]): Record<string, unknown> => {
    const sent = list.reduce((s, r) => s + r.sent, 0n)
    const fees = list.reduce((s, r) => s + r.fees, 0n)
    return {
      paidOnChain: formatAmount(sent),
      fees: formatAmount(fees),
      // what left the wallet: the payments and their fees
      paidWithFees: formatAmount(sent + fees),
      receivedOnChain: formatAmount(list.reduce((s, r) => s + r.received, 0n)),
      transactions: list.reduce((s, r) => s + r.transactions, 0)
    }
  }
  const groups = (key: (r: SummaryRow) => string, name: string): Array<Record<string, unknown>> =>
    [...new Set(rows.map(key))].sort().map(k => ({ [name]: k, ...total(rows.filter(r => key(r) === k)) }))
  const peers = [...new Set([...rows.map(r => r.peer), ...chain.map(r => r.peer)])].sort()
  return {
    since: since == null ? null : new Date(since).toISOString(),
    until: new Date(until).toISOString(),
    total: { ...total(rows), ...onChain(chain) },
    byPeer: peers.map(peer => ({ peer, ...total(rows.filter(r => r.peer === peer)), ...onChain(chain.filter(r => r.peer === peer)) })),
    byCall: groups(r => r.call, 'call'),
    rows: rows.map(r => ({ peer: r.peer, call: r.call, ...total([r]) }))
  }
}

/** A payable tab for `payments tabs`: the wire's figures, when it fell due, and why it is not being paid (PaymentAgent.settlementStates) */
function payableJson (tab: TabSummary, state?: SettlementState): Record<string, unknown> {
  return {
    ...tabJson(tab),
    dueSince: tab.dueSince == null ? null : new Date(tab.dueSince).toISOString(),
    settlement: state == null
      ? null
      : { state: state.state, code: state.code, reason: state.reason, hint: state.hint ?? null, since: new Date(state.since).toISOString(), overdueAt: state.overdueAt == null ? null : new Date(state.overdueAt).toISOString() }
  }
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/**
 * The local control API (README, "Control API"). It listens on loopback only
 * and wants `Authorization: Bearer <token>` from api.token on every request.
 * POST /v1/call is the OpenCloud protocol over HTTP: the request body becomes
 * the call's body and the call's response body streams back.
 */
export class ApiServer {
  private readonly node: OpenCloudNode
  private readonly init: ApiServerInit
  private server?: Server
  url = ''

  constructor (node: OpenCloudNode, init: ApiServerInit) {
    this.node = node
    this.init = init
  }

  async start (): Promise<void> {
    const server = createServer((req, res) => {
      this.route(req, res).catch((err: any) => {
        const status = err instanceof HttpError ? err.status : (CLIENT_MISTAKES[err.name] ?? STORE_MISTAKES[err.name] ?? 500)
        if (status >= 500) {
          log.error('%s %s failed - %e', req.method, req.url, err)
        }
        if (res.headersSent) {
          res.destroy(err)
          return
        }
        sendJson(res, status, { error: { name: err.name ?? 'Error', message: err.message } })
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: any) => {
        reject(err.code === 'EADDRINUSE'
          ? new Error(`the control API cannot listen on ${this.init.host}:${this.init.port}: the port is in use; pass another --api`)
          : err)
      })
      server.listen(this.init.port, this.init.host, () => { resolve() })
    })
    this.server = server
    const address = server.address()
    if (address == null || typeof address === 'string') {
      throw new Error('the control API has no address')
    }
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    this.url = `http://${host}:${address.port}`
  }

  async stop (): Promise<void> {
    const server = this.server
    if (server == null) {
      return
    }
    this.server = undefined
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => { resolve() }))
  }

  private authorized (req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? ''
    const given = Buffer.from(header.replace(/^Bearer\s+/i, ''))
    const expected = Buffer.from(this.init.token)
    return given.length === expected.length && timingSafeEqual(given, expected)
  }

  /**
   * The API answers only requests addressed to its loopback name. A web page
   * can make a browser send requests to 127.0.0.1 under a name it controls
   * (DNS rebinding), with a Host header of that name, and can add an Origin
   * of its own; neither passes here, even with a leaked token.
   */
  private addressedHere (req: IncomingMessage): boolean {
    const port = (this.server?.address() as { port?: number } | null)?.port
    const local = (value: string): boolean => {
      const match = /^(?:127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\])(?::([0-9]+))?$/i.exec(value)
      return match != null && (match[1] == null || Number(match[1]) === port)
    }
    if (req.headers.host == null || !local(req.headers.host)) {
      return false
    }
    const origin = req.headers.origin
    if (origin != null) {
      const m = /^https?:\/\/(.+)$/i.exec(origin)
      return m != null && local(m[1])
    }
    return true
  }

  private async route (req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.addressedHere(req)) {
      throw new HttpError(403, 'the control API answers only requests addressed to its loopback address (Host 127.0.0.1 or localhost, and no foreign Origin)')
    }
    if (!this.authorized(req)) {
      throw new HttpError(401, 'missing or wrong API token: send "Authorization: Bearer <token>" with the token from api.token in the data directory')
    }
    const url = new URL(req.url ?? '/', 'http://localhost')
    const route = `${req.method} ${url.pathname}`
    switch (route) {
      case 'GET /v1/id':
        sendJson(res, 200, this.node.info())
        return
      case 'GET /v1/process': {
        // for operators (and tests) watching the daemon's memory: bytes
        const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage()
        sendJson(res, 200, { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), memory: { rss, heapTotal, heapUsed, external, arrayBuffers } })
        return
      }
      case 'GET /v1/peers':
        sendJson(res, 200, await this.node.peers())
        return
      case 'GET /v1/peers/find': {
        const service = url.searchParams.get('service')
        if (service == null || !/^[a-z][a-z0-9-]*$/.test(service)) {
          throw new HttpError(400, 'name a service: /v1/peers/find?service=sha256')
        }
        const timeout = positiveInteger(url, 'timeout', 15_000)
        sendJson(res, 200, await this.node.findProviders(service, AbortSignal.timeout(timeout)))
        return
      }
      case 'GET /v1/services':
        sendJson(res, 200, this.node.registry.list().map(s => ({
          name: s.name,
          version: s.version,
          description: s.description,
          methods: this.node.registry.methodNames(s)
        })))
        return
      case 'POST /v1/call':
        await this.call(req, res, url)
        return
      case 'GET /v1/wallet': {
        const { wallet, chain } = this.node
        const balance = chain == null ? undefined : await wallet.balance(chain)
        sendJson(res, 200, {
          network: wallet.network,
          identityAddress: wallet.identityAddress,
          encrypted: wallet.encrypted,
          chain: this.node.config.payments.chain === '' ? null : this.node.config.payments.chain,
          balance: balance == null ? null : { confirmed: formatAmount(balance.confirmed), unconfirmed: formatAmount(balance.unconfirmed) }
        })
        return
      }
      case 'POST /v1/wallet/address':
        sendJson(res, 200, { address: await this.node.wallet.freshAddress(), network: this.node.wallet.network })
        return
      case 'POST /v1/wallet/send': {
        const body = await readJsonBody(req, 'send JSON: {"address": "...", "amount": "0.001 BTC"}')
        if (typeof body.address !== 'string' || typeof body.amount !== 'string') {
          throw new HttpError(400, 'send JSON: {"address": "...", "amount": "0.001 BTC"}')
        }
        let sats: bigint
        try {
          checkAddressNetwork(body.address, this.node.wallet.network)
          sats = parseAmount(body.amount, 'the amount to send')
        } catch (err: any) {
          throw new HttpError(400, err.message)
        }
        const chain = this.requireChain()
        const sent = await this.node.wallet.send(chain, body.address, sats)
        sendJson(res, 200, { txid: sent.txid, fee: formatAmount(sent.fee) })
        return
      }
      case 'GET /v1/wallet/history':
        sendJson(res, 200, (await this.node.wallet.history(this.requireChain())).map(t => ({ ...t, delta: (t.delta < 0n ? '-' : '') + formatAmount(t.delta < 0n ? -t.delta : t.delta), fee: formatAmount(t.fee) })))
        return
      case 'GET /v1/market/prices':
        sendJson(res, 200, this.node.market.index.query(marketQuery(url)).map(offerJson))
        return
      case 'GET /v1/market/stats':
        sendJson(res, 200, this.node.market.index.stats(marketQuery(url)).map(statsJson))
        return
      case 'POST /v1/market/price': {
        const usage = 'send JSON: {"service": "sha256", "method": "hash", "amount": "100 sat", "confirm": false}'
        const body = await readJsonBody(req, usage)
        if (typeof body.service !== 'string' || typeof body.method !== 'string' || (typeof body.amount !== 'string' && typeof body.amount !== 'number')) {
          throw new HttpError(400, usage)
        }
        let sats: bigint
        try {
          sats = parseAmount(body.amount, 'a price')
          this.node.registry.resolve(body.service, body.method)
        } catch (err: any) {
          throw new HttpError(400, err.message)
        }
        let set
        try {
          set = await this.node.setPrice(body.service, body.method, sats, { confirm: body.confirm === true })
        } catch (err: any) {
          throw err instanceof PriceRefusedError ? new HttpError(409, err.message) : err
        }
        sendJson(res, 200, { service: body.service, method: body.method, price: formatAmount(sats), persisted: set.persisted, offer: set.offer == null ? null : offerJson(set.offer) })
        return
      }
      case 'GET /v1/reputation': {
        const peer = peerParam(url, false)
        sendJson(res, 200, peer == null ? await this.node.reputation.views() : await this.node.reputation.view(peer))
        return
      }
      case 'GET /v1/reputation/records': {
        const peer = peerParam(url, true)
        sendJson(res, 200, await this.node.reputation.store.records(peer))
        return
      }
      case 'GET /v1/payments/tabs': {
        const states = new Map((this.node.payments?.settlementStates() ?? []).map(s => [s.peer, s]))
        sendJson(res, 200, {
          receivable: (await this.node.tabs.tabs('receivable')).map(tabJson),
          payable: (await this.node.tabs.tabs('payable')).map(t => payableJson(t, states.get(t.peer)))
        })
        return
      }
      case 'GET /v1/payments/summary': {
        const since = url.searchParams.has('since') ? positiveInteger(url, 'since', 0) : null
        const until = url.searchParams.has('until') ? positiveInteger(url, 'until', 0) : Date.now()
        const { tabs: ledger } = this.node
        const from = since ?? await ledger.firstActivity() ?? null
        sendJson(res, 200, summaryJson(await ledger.summary(from ?? 0, until), await ledger.onChain(from ?? 0, until), from, until))
        return
      }
      case 'GET /v1/payments/history':
        sendJson(res, 200, (await this.node.tabs.payments()).map(p => ({ ...p, amount: formatAmount(p.sats), sats: undefined, at: new Date(p.at).toISOString() })))
        return
      default:
        if (await storeRoute(this.node, route, req, res, url, sendJson)) {
          return
        }
        if (await ledgerRoute(this.node, route, req, res, url, sendJson)) {
          return
        }
        throw new HttpError(404, `no such API route: ${route}`)
    }
  }

  private requireChain (): ChainBackend {
    if (this.node.chain == null) {
      throw new HttpError(409, 'payments are off: set payments.chain in config.json to an Esplora API URL (npm run chain starts a local one)')
    }
    return this.node.chain
  }

  /**
   * A body is sent after its length and SHA-256 are known. A client that
   * sends `OpenCloud-Body-Sha256` and a Content-Length streams straight
   * through; otherwise the body is spooled to the data directory's tmp/ and
   * hashed on the way, so memory stays flat for any size.
   */
  private async requestBody (req: IncomingMessage): Promise<{ body: OutgoingBody, cleanup: () => Promise<void> }> {
    const length = req.headers['content-length'] == null ? undefined : Number(req.headers['content-length'])
    if (length === 0) {
      return { body: EMPTY_BODY, cleanup: async () => {} }
    }
    const digestHeader = req.headers[API_HEADERS.bodySha256]
    if (length != null && typeof digestHeader === 'string' && /^[0-9a-f]{64}$/i.test(digestHeader)) {
      let used = false
      return {
        body: {
          length,
          sha256: Uint8Array.from(Buffer.from(digestHeader, 'hex')),
          open: () => {
            if (used) {
              throw new Error('the HTTP request body can be sent once')
            }
            used = true
            return req
          }
        },
        cleanup: async () => {}
      }
    }
    if (length == null && req.headers['transfer-encoding'] == null) {
      return { body: EMPTY_BODY, cleanup: async () => {} }
    }
    const path = join(this.node.paths.tmp, `upload-${randomBytes(8).toString('hex')}`)
    await streamPipeline(req, createWriteStream(path, { mode: 0o600 }))
    return { body: await bodyFromFile(path), cleanup: async () => rm(path, { force: true }) }
  }

  private async call (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    let peer = url.searchParams.get('peer')
    const service = url.searchParams.get('service')
    const method = url.searchParams.get('method')
    if (peer == null || service == null || method == null) {
      throw new HttpError(400, 'a call needs peer, service and method: /v1/call?peer=<PeerId|multiaddr|auto>&service=sha256&method=hash&arg=...')
    }
    let candidates: string[]
    if (peer === 'auto') {
      try {
        candidates = await this.node.selectProviders(service, method)
      } catch (err: any) {
        throw new HttpError(404, err.message)
      }
    } else {
      candidates = [peer]
    }
    const targets = []
    try {
      // a few providers at most: each that cannot be reached costs a dial timeout
      for (const candidate of candidates.slice(0, AUTO_CANDIDATES)) {
        targets.push(parsePeer(candidate))
      }
    } catch (err: any) {
      throw new HttpError(400, err.message)
    }
    let payOptions: PaidCallOptions | undefined
    try {
      const parsed = parsePayRequest({ pay: url.searchParams.get('pay') ?? undefined, maxPrice: url.searchParams.get('maxPrice') ?? undefined, threshold: url.searchParams.get('threshold') ?? undefined })
      if (parsed != null) {
        const length = Number(req.headers['content-length'] ?? 0)
        const max = parsed.maxPrice == null
          ? undefined
          : parsed.maxPrice.kind === 'market'
            ? this.node.marketMaxPrice(service, method, length, parsed.maxPrice.factor)
            : parsed.maxPrice.sats
        payOptions = { pay: parsed.pay, maxPrice: max, threshold: parsed.threshold }
      }
    } catch (err: any) {
      throw new HttpError(400, err.message)
    }
    if (payOptions?.pay.kind === 'promo' && this.node.cloudLedger == null) {
      throw new HttpError(409, 'this node follows no Cloud Ledger (ledger.genesis in config.json), so it cannot pay with a promo code')
    }
    const extraSigners = url.searchParams.get('credential') === 'btc' ? [this.node.bitcoinCredential()] : undefined
    const { body, cleanup } = await this.requestBody(req)
    const controller = new AbortController()
    res.on('close', () => { if (!res.writableFinished) controller.abort(new Error('the API client went away')) })
    let response: CallResponse
    let paid: PaidCallResult | undefined
    try {
      const request = { service, method, args: url.searchParams.getAll('arg'), body, extraSigners, signal: controller.signal }
      for (let i = 0; ; i++) {
        try {
          if (payOptions?.pay.kind === 'promo') {
            // the owner's authorization names this one server: no other can redeem it
            const server = targets[i].toString().replace(/^.*\/p2p\//, '')
            const code = payOptions.pay.code
            response = await this.node.call(targets[i], { ...request, payment: { type: 'promo', code: Buffer.from(code, 'hex'), authorization: Buffer.from(this.node.cloudLedger!.authorizeRedeem(code, server), 'base64') } })
          } else if (payOptions != null) {
            paid = await this.node.paidCall(targets[i], request, payOptions)
            response = paid.response
          } else {
            response = await this.node.call(targets[i], request)
          }
          break
        } catch (err: any) {
          // nothing was sent to a provider that could not be reached: the next one
          if (err instanceof DialError && i + 1 < targets.length) {
            log('provider %s cannot be reached, trying the next: %s', targets[i].toString(), err.message)
            continue
          }
          throw err
        }
      }
    } catch (err: any) {
      await cleanup()
      if (err instanceof BiddingError) {
        sendJson(res, 402, { error: { name: err.name, status: 'request-declined/payment-declined', message: err.message, decisions: err.decisions, asked: err.asked == null ? undefined : formatAmount(err.asked) } })
        return
      }
      if (err instanceof RpcError) {
        const r = (err as any).response as CallResponse | undefined
        sendJson(res, httpStatusFor(err.code), {
          error: {
            name: err.name,
            status: statusName(err.code),
            message: err.message,
            acceptablePayment: err.acceptablePayment,
            server: r?.server,
            decisions: (err as any).decisions,
            proof: r == null ? undefined : Buffer.from(r.proof).toString('base64')
          }
        })
        return
      }
      sendJson(res, 502, { error: { name: err.name, message: err.message } })
      return
    }
    await cleanup()
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': response.body.length,
      [API_HEADERS.status]: statusName(Status.OK),
      [API_HEADERS.message]: encodeURIComponent(response.message),
      [API_HEADERS.server]: response.server,
      [API_HEADERS.proof]: Buffer.from(response.proof).toString('base64'),
      [API_HEADERS.bodySha256]: Buffer.from(response.body.sha256).toString('hex'),
      ...(paid == null
        ? {}
        : {
            [API_HEADERS.payment]: encodeURIComponent(JSON.stringify({
              payment: paid.payment == null ? undefined : { ...paid.payment, sats: undefined, amount: formatAmount(paid.payment.sats) },
              decisions: paid.decisions
            }))
          })
    })
    for await (const chunk of response.body) {
      if (!res.write(chunk)) {
        await new Promise(resolve => res.once('drain', resolve))
      }
    }
    res.end()
  }
}
