import { buffer } from 'node:stream/consumers'
/**
 * What the host's handlers see of a call: the engine's own shape of it, so
 * the storage engine imports nothing of services/. The storage module passes
 * its ServiceContext as it is (it has every field below, and more).
 */
export interface HostRequest {
  /** PeerId text of the caller's OpenCloud ID: the renter */
  caller: string
  args: string[]
  /** the request body, read at most once; `length` is known from the head before a byte is read */
  body: AsyncIterable<Uint8Array> & { readonly length: number }
  /** aborted when the stream closes under the call */
  signal: AbortSignal
}

/**
 * What the agreement check sees before payment, when the body is not read
 * yet (the pipeline's CostQuery has this shape)
 */
export interface HostQuery {
  caller: string
  args: string[]
  bodyLength: number
}

export function queryOf (req: HostRequest): HostQuery {
  return { args: req.args, bodyLength: req.body.length, caller: req.caller }
}

/** The whole body of a small request (a proposal, a rating) */
export async function readBody (req: HostRequest): Promise<Uint8Array> {
  return buffer(req.body)
}
