import type { IncomingMessage, ServerResponse } from 'node:http'
import { peerIdFromString } from '@libp2p/peer-id'

/** An HTTP answer other than 200, with the sentence the client shows */
export class HttpError extends Error {
  readonly status: number
  constructor (status: number, message: string) {
    super(message)
    this.name = 'HttpError'
    this.status = status
  }
}

/** A small request body as text; over `limit` bytes is a 413 */
export async function readSmallBody (req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += chunk.length
    if (size > limit) {
      throw new HttpError(413, `the request body is over ${limit} bytes`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** A small JSON request body: over `limit` bytes is a 413, anything but a JSON object a 400 with `usage` */
export async function readJsonBody (req: IncomingMessage, usage: string, limit = 64 * 1024): Promise<Record<string, unknown>> {
  const text = await readSmallBody(req, limit)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new HttpError(400, usage)
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(400, usage)
  }
  return value as Record<string, unknown>
}

/** A whole number above zero from the query, or 400 naming it */
export function positiveInteger (url: URL, name: string, fallback: number): number {
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
export function peerParam (url: URL, required: true): string
export function peerParam (url: URL, required: false): string | null
export function peerParam (url: URL, required: boolean): string | null {
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

/** Answer JSON with this HTTP status */
export function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}
