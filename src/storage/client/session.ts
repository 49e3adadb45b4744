import { bodyFromBytes } from '../../protocols/rpc/body.ts'
import { Writer } from '../../protocols/codec.ts'
import { STORAGE } from '../constants.ts'
import type { ListAnswer } from '../protocol/answers.ts'
import type { StorageCall } from './interface.ts'
import type { ResponseBody } from '../../protocols/rpc/rpc-client.ts'

/**
 * The storage protocol as the client speaks it (PROTOCOL.md section 8d):
 * one method per RPC method of the `storage` service, each building the
 * request's args and body, calling the host through `call` (which pays
 * `sats` where the method is priced) and decoding the answer. Upload,
 * download, contracts and the upkeep never build a CallRequest themselves.
 * What is signed, and checking the host's signatures, is theirs: the session
 * carries bytes, as kad-dht's rpc/ does for its messages.
 */

/** A host's answer to `contract`: the id it computed and its signature of the terms */
export interface ContractAnswer {
  contract: string
  hostSignature: Uint8Array
}

/** A host's answer to `renew`: the new contract and its revision 1 (the old shards), both signed */
export interface RenewAnswer {
  contract: string
  revision: number
  hostSignature: Uint8Array
  revisionSignature: Uint8Array
}

/** A host's answer to `rent`: the periods paid, and its sums (rent units, and "0.00000012 BTC") */
export interface RentAnswer {
  rentPaidPeriods: number
  rentAccrued?: string
  rentPaid?: string
}

/** A host's answer to `delete`: the revision it signed */
export interface DeleteAnswer {
  revision: number
  hostSignature: Uint8Array
}

/**
 * A call's signal with a bound tighter than the RPC client's own per-call
 * timeout (rpc.timeoutMs, which every call has anyway): a shard transfer's
 * transferTimeoutMs, or END_CALL_MS
 */
export function callSignal (signal: AbortSignal, timeoutMs: number): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
}

/**
 * A response body (a shard) in one buffer of its declared length (`into`,
 * or a new one), each frame copied in once as it comes: body.bytes() gathers the frames and
 * copies them twice (a get's client spent 6 ms per 4 MiB segment there).
 * The RPC client checks the length and the signed digest as it yields.
 */
async function bodyInOne (body: ResponseBody, into?: Uint8Array): Promise<Uint8Array> {
  if (into != null && into.byteLength !== body.length) {
    throw new Error(`the response body is ${body.length} bytes, not the ${into.byteLength} asked for`)
  }
  const out = into ?? Buffer.allocUnsafe(body.length)
  let at = 0
  for await (const part of body) {
    if (at + part.byteLength > out.byteLength) {
      throw new Error(`the response body is longer than the ${body.length} bytes it declared`)
    }
    out.set(part, at)
    at += part.byteLength
  }
  if (at !== out.byteLength) {
    throw new Error(`the response body ended after ${at} of the ${body.length} bytes it declared`)
  }
  return out
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')
const fromB64 = (value: unknown): Uint8Array => Buffer.from(String(value), 'base64')

export class StorageSession {
  private readonly call: StorageCall

  constructor (call: StorageCall) {
    this.call = call
  }

  private async json (host: string, method: string, args: string[], body: Uint8Array | undefined, sats: bigint, signal: AbortSignal): Promise<any> {
    const response = await this.call(host, { service: STORAGE, method, args, ...(body == null ? {} : { body: bodyFromBytes(body) }), signal }, sats)
    return JSON.parse(new TextDecoder().decode(await response.body.bytes()))
  }

  /** `contract`: propose the encoded terms with the renter's signature */
  async contract (host: string, terms: Uint8Array, renterSignature: Uint8Array, signal: AbortSignal): Promise<ContractAnswer> {
    const answer = await this.json(host, 'contract', [], new Writer().bytes(terms).bytes(renterSignature).finish(), 0n, signal)
    return { contract: String(answer.contract), hostSignature: fromB64(answer.hostSignature) }
  }

  /** `renew`: new terms for a contract, and the renter's signature of the new contract's revision 1 */
  async renew (host: string, oldId: string, terms: Uint8Array, renterSignature: Uint8Array, revisionSignature: Uint8Array, signal: AbortSignal): Promise<RenewAnswer> {
    const answer = await this.json(host, 'renew', [oldId, b64(revisionSignature)], new Writer().bytes(terms).bytes(renterSignature).finish(), 0n, signal)
    return { contract: String(answer.contract), revision: Number(answer.revision), hostSignature: fromB64(answer.hostSignature), revisionSignature: fromB64(answer.revisionSignature) }
  }

  /** `rent`: pay `periods` periods of a contract; resolves with the host's sums after it (absent from hosts of version 1 only) */
  async rent (host: string, contract: string, periods: number, sats: bigint, signal: AbortSignal): Promise<RentAnswer> {
    const answer = await this.json(host, 'rent', [contract, String(periods)], undefined, sats, signal)
    return {
      rentPaidPeriods: Number(answer?.rentPaidPeriods),
      rentAccrued: typeof answer?.rentAccrued === 'string' && /^[0-9]+$/.test(answer.rentAccrued) ? answer.rentAccrued : undefined,
      rentPaid: typeof answer?.rentPaid === 'string' ? answer.rentPaid : undefined
    }
  }

  /** `put`: one shard, with the renter's signature of the revision that adds it; resolves with the host's signature of it */
  async put (host: string, contract: string, root: string, renterSignature: Uint8Array, shard: Uint8Array, sats: bigint, signal: AbortSignal): Promise<Uint8Array> {
    const answer = await this.json(host, 'put', [contract, root, b64(renterSignature)], shard, sats, signal)
    return fromB64(answer.hostSignature)
  }

  /** `get`: `length` bytes of a shard from `offset`, into `into` when given (`length` bytes) */
  async get (host: string, contract: string, root: string, offset: number, length: number, sats: bigint, signal: AbortSignal, into?: Uint8Array): Promise<Uint8Array> {
    const response = await this.call(host, { service: STORAGE, method: 'get', args: [contract, root, String(offset), String(length)], signal }, sats)
    return bodyInOne(response.body, into)
  }

  /** `prove`: the proofs of `count` leaves of a shard that the challenge picks (decodeProofs reads them) */
  async prove (host: string, contract: string, root: string, challenge: Uint8Array, count: number, signal?: AbortSignal): Promise<Uint8Array> {
    const response = await this.call(host, { service: STORAGE, method: 'prove', args: [contract, root, Buffer.from(challenge).toString('hex'), String(count)], signal }, 0n)
    return response.body.bytes()
  }

  /** `delete`: one shard, with the renter's signature of the revision without it */
  async delete (host: string, contract: string, root: string, renterSignature: Uint8Array, signal: AbortSignal): Promise<DeleteAnswer> {
    const answer = await this.json(host, 'delete', [contract, root, b64(renterSignature)], undefined, 0n, signal)
    return { revision: Number(answer.revision), hostSignature: fromB64(answer.hostSignature) }
  }

  /** `list`: the contract, its latest signed revision and its shards, as the host holds them */
  async list (host: string, contract: string, signal: AbortSignal): Promise<ListAnswer> {
    return this.json(host, 'list', [contract], undefined, 0n, signal)
  }

  /** `shared-get`: `length` bytes of a shard from `offset`, for the holder of a share (body: encodeGrantBody) */
  async sharedGet (host: string, root: string, offset: number, length: number, grantBody: Uint8Array, sats: bigint, signal: AbortSignal): Promise<Uint8Array> {
    const response = await this.call(host, { service: STORAGE, method: 'shared-get', args: [root, String(offset), String(length)], body: bodyFromBytes(grantBody), signal }, sats)
    return bodyInOne(response.body)
  }

  /** `unshare`: revoke one of this renter's grants at a host until its expiry; resolves with until when the host keeps it (null: expired already) */
  async unshare (host: string, grantId: string, expires: number, signal: AbortSignal): Promise<{ until: string | null }> {
    const answer = await this.json(host, 'unshare', [grantId, String(expires)], undefined, 0n, signal)
    return { until: typeof answer?.until === 'string' ? answer.until : null }
  }

  /** `end`: end a contract, with this node's signed rating of the host if given; resolves with the host's rating of this node (base64), if it sent one */
  async end (host: string, contract: string, rating: Uint8Array | undefined, signal: AbortSignal): Promise<{ rating?: string }> {
    if (rating == null) {
      await this.call(host, { service: STORAGE, method: 'end', args: [contract], signal }, 0n)
      return {}
    }
    const response = await this.call(host, { service: STORAGE, method: 'end', args: [contract], body: bodyFromBytes(rating), signal }, 0n)
    // ended: an answer without a readable rating is still an end
    try {
      const answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
      return typeof answer.rating === 'string' ? { rating: answer.rating } : {}
    } catch {
      return {}
    }
  }

  // the object index (PROTOCOL.md 8g)

  /** `note-put`: keep a sealed note under its id at the host */
  async notePut (host: string, id: string, note: Uint8Array, signal: AbortSignal): Promise<void> {
    await this.json(host, 'note-put', [id], note, 0n, signal)
  }

  /** `note-list`: one page of this node's notes at the host, after `after` */
  async noteList (host: string, after: string | undefined, signal: AbortSignal): Promise<{ notes: Array<{ id: string, note: Uint8Array }>, more: boolean }> {
    const answer = await this.json(host, 'note-list', after == null ? [] : [after], undefined, 0n, signal)
    const notes = Array.isArray(answer?.notes) ? answer.notes : []
    return {
      notes: notes.filter((n: any) => typeof n?.id === 'string' && /^[0-9a-f]{64}$/.test(n.id) && typeof n.note === 'string').map((n: any) => ({ id: n.id, note: fromB64(n.note) })),
      more: answer?.more === true
    }
  }

  /** `note-delete`: forget a note at the host */
  async noteDelete (host: string, id: string, signal: AbortSignal): Promise<void> {
    await this.json(host, 'note-delete', [id], undefined, 0n, signal)
  }

  /** `contracts`: the ids of this node's contracts whose shards the host holds */
  async contracts (host: string, signal: AbortSignal): Promise<Array<{ id: string, ended: boolean }>> {
    const answer = await this.json(host, 'contracts', [], undefined, 0n, signal)
    const list = Array.isArray(answer?.contracts) ? answer.contracts : []
    return list.filter((c: any) => typeof c?.id === 'string' && /^[0-9a-f]{64}$/.test(c.id)).map((c: any) => ({ id: c.id, ended: c.ended === true }))
  }
}
