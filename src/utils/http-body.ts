import type { IncomingMessage } from 'node:http'

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
