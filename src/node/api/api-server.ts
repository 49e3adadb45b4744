import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { DecodeError } from '../../protocols/codec.ts'
import { InvalidAmountError } from '../../protocols/units.ts'
import { HttpError, sendJson } from '../../utils/http-body.ts'
import { InvalidDurationError } from '../../utils/duration.ts'
import { InvalidSizeError } from '../../utils/size.ts'
import { PaymentsOffError } from '../caller.ts'
import { callRoute } from './call-route.ts'
import type { ErrorStatus, RouteContext, RouteTable } from '../../services/module.ts'
import type { OpenCloudNode } from '../opencloud-node.ts'

const log = logger('opencloud:api')

export interface ApiServerInit {
  host: string
  port: number
  token: string
  /**
   * What `POST /v1/stop` (the `stop` command) does: the daemon's own clean
   * stop, as on SIGTERM. Absent (an embedded API): the route is not served.
   */
  onStop?: () => void
}

/**
 * Errors every module may throw that are the API client's to fix, not the
 * node failing: answered 4xx with their own sentence instead of 500. Each
 * module adds its own (ServiceModule.errors).
 */
const CORE_ERRORS: ErrorStatus[] = [
  [DecodeError, 400],
  [InvalidAmountError, 400],
  [InvalidDurationError, 400],
  [InvalidSizeError, 400],
  [PaymentsOffError, 409]
]

/**
 * The local control API (README, "Control API"): it listens on loopback
 * only, answers only requests addressed to its loopback name, wants
 * `Authorization: Bearer <token>` from api.token on every request, and
 * hands each to its route: POST /v1/call (the OpenCloud protocol over HTTP)
 * and the routes of the node's modules. An error a route throws is answered
 * with the status the error table gives its class.
 */
export class ApiServer {
  private readonly init: ApiServerInit
  private readonly routes: RouteTable
  private readonly pages: RouteTable
  private readonly errors: ErrorStatus[]
  private server?: Server
  url = ''

  constructor (node: OpenCloudNode, init: ApiServerInit) {
    this.init = init
    this.routes = {
      ...node.routes,
      'POST /v1/call': async (ctx) => callRoute(node, ctx),
      'GET /v1/warnings': async ({ json }) => { json(200, { warnings: await node.warnings() }) },
      // Prometheus text; a scraper sends the token as a bearer credential (README, "Metrics")
      'GET /metrics': async ({ res }) => {
        const { body, contentType } = await node.metrics.text()
        res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) })
        res.end(body)
      }
    }
    this.pages = node.pages
    const onStop = init.onStop
    if (onStop != null) {
      this.routes['POST /v1/stop'] = async ({ json }) => {
        // answered first: the stop closes this server, and the client is told it began
        json(202, { stopping: true, peerId: node.peerId.toString() })
        setImmediate(onStop)
      }
    }
    this.errors = [...CORE_ERRORS, ...node.errorStatuses]
  }

  /** The routes this API answers, "GET /v1/id" and so on (a dashboard lists them) */
  routeNames (): string[] {
    return [...Object.keys(this.routes), ...Object.keys(this.pages)].sort()
  }

  /** The HTTP status of an error: its own for HttpError, else the table's for its class or the nearest parent class, else 500 */
  statusOf (err: unknown): number {
    if (err instanceof HttpError) {
      return err.status
    }
    for (const [ErrorClass, status] of this.errors) {
      if (err instanceof ErrorClass) {
        return status
      }
    }
    return 500
  }

  async start (): Promise<void> {
    const server = createServer((req, res) => {
      this.route(req, res).catch((err: any) => {
        const status = this.statusOf(err)
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
    // a page of the dashboard is never framed by another site, nor its answers sniffed as another type
    res.setHeader('x-content-type-options', 'nosniff')
    res.setHeader('x-frame-options', 'DENY')
    res.setHeader('referrer-policy', 'no-referrer')
    const url = new URL(req.url ?? '/', 'http://localhost')
    const route = `${req.method} ${url.pathname}`
    const page = this.pages[route]
    if (page == null && !this.authorized(req)) {
      throw new HttpError(401, 'missing or wrong API token: send "Authorization: Bearer <token>" with the token from api.token in the data directory')
    }
    const handler = page ?? this.routes[route]
    if (handler == null) {
      throw new HttpError(404, `no such API route: ${route}`)
    }
    const controller = new AbortController()
    res.on('close', () => { if (!res.writableFinished) controller.abort(new Error('the API client went away')) })
    const ctx: RouteContext = { req, res, url, json: (status, value) => { sendJson(res, status, value) }, signal: controller.signal, statusOf: (err) => this.statusOf(err) }
    await handler(ctx)
  }
}
