import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline as streamPipeline } from 'node:stream/promises'
import { logger } from '@libp2p/logger'
import { bodyFromFile, EMPTY_BODY, type OutgoingBody } from '../../protocols/rpc/body.ts'
import { DialError, RpcError } from '../../protocols/rpc/errors.ts'
import { statusName, Status } from '../../protocols/rpc/status.ts'
import { formatAmount } from '../../protocols/units.ts'
import { HttpError, sendJson } from '../../utils/http-body.ts'
import { BiddingError, type PaidCallOptions, type PaidCallResult } from '../../payments/payment-agent.ts'
import { parsePayRequest } from '../../payments/pay-options.ts'
import { parsePeer } from '../caller.ts'
import { httpStatusFor, API_HEADERS } from './http-status.ts'
import type { IncomingMessage } from 'node:http'
import type { CallResponse } from '../../protocols/rpc/rpc-client.ts'
import type { RouteContext } from '../../services/module.ts'
import type { OpenCloudNode } from '../opencloud-node.ts'

const log = logger('opencloud:api:call')

/** `call auto` tries at most this many providers, in the market's order */
const AUTO_CANDIDATES = 3

/**
 * A body is sent after its length and SHA-256 are known. A client that
 * sends `OpenCloud-Body-Sha256` and a Content-Length streams straight
 * through; otherwise the body is spooled to the data directory's tmp/ and
 * hashed on the way, so memory stays flat for any size.
 */
async function requestBody (req: IncomingMessage, tmp: string): Promise<{ body: OutgoingBody, cleanup: () => Promise<void> }> {
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
  const path = join(tmp, `upload-${randomBytes(8).toString('hex')}`)
  await streamPipeline(req, createWriteStream(path, { mode: 0o600 }))
  return { body: await bodyFromFile(path), cleanup: async () => rm(path, { force: true }) }
}

/**
 * POST /v1/call: the OpenCloud protocol over HTTP (README, "Control API").
 * The request body becomes the call's body and the call's response body
 * streams back; `pay` pays as the CLI's --pay says (a promo code through
 * the module that can make that payment), `peer=auto` picks providers from
 * the market.
 */
export async function callRoute (node: OpenCloudNode, { req, res, url, signal }: RouteContext): Promise<void> {
  let peer = url.searchParams.get('peer')
  const service = url.searchParams.get('service')
  const method = url.searchParams.get('method')
  if (peer == null || service == null || method == null) {
    throw new HttpError(400, 'a call needs peer, service and method: /v1/call?peer=<PeerId|multiaddr|auto>&service=sha256&method=hash&arg=...')
  }
  let candidates: string[]
  if (peer === 'auto') {
    try {
      candidates = await node.selectProviders(service, method)
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
          ? node.marketMaxPrice(service, method, length, parsed.maxPrice.factor)
          : parsed.maxPrice.sats
      payOptions = { pay: parsed.pay, maxPrice: max, threshold: parsed.threshold }
    }
  } catch (err: any) {
    throw new HttpError(400, err.message)
  }
  const payWith = payOptions == null ? undefined : node.payWith[payOptions.pay.kind]
  if (payOptions?.pay.kind === 'promo' && payWith == null) {
    throw new HttpError(409, 'this node follows no Cloud Ledger (ledger.genesis in config.json), so it cannot pay with a promo code')
  }
  const extraSigners = url.searchParams.get('credential') === 'btc' ? [node.bitcoinCredential()] : undefined
  const { body, cleanup } = await requestBody(req, node.paths.tmp)
  let response: CallResponse
  let paid: PaidCallResult | undefined
  try {
    const request = { service, method, args: url.searchParams.getAll('arg'), body, extraSigners, signal }
    for (let i = 0; ; i++) {
      try {
        if (payOptions != null && payWith != null) {
          // a payment a module makes (a promo code): for this one server, no other can redeem it
          const server = targets[i].toString().replace(/^.*\/p2p\//, '')
          response = await node.call(targets[i], { ...request, payment: payWith(payOptions.pay, server) })
        } else if (payOptions != null) {
          paid = await node.paidCall(targets[i], request, payOptions)
          response = paid.response
        } else {
          response = await node.call(targets[i], request)
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
            payment: paid.payment == null ? undefined : { ...paid.payment, sats: undefined, amount: formatAmount(paid.payment.sats), fee: paid.fee == null ? undefined : formatAmount(paid.fee) },
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
