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
