import { readAhead } from '../../utils/read-ahead.ts'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, stat, type FileHandle } from 'node:fs/promises'
import { basename } from 'node:path'
import { logger } from '@libp2p/logger'
import { NotFoundError } from '../../protocols/rpc/errors.ts'
import { formatAmount } from '../../protocols/units.ts'
import { formatSize } from '../../utils/size.ts'
import { objectKey, sealSegment, TAG_BYTES } from '../protocol/crypto.ts'
import { ReedSolomon, split } from '../protocol/erasure.ts'
import { merkleRoot } from '../protocol/merkle.ts'
import { MONTH_MS, TIB } from '../protocol/contract.ts'
import { END_CALL_MS, MAX_SLOT_REPLACEMENTS } from '../constants.ts'
import { HostStalledError, InvalidNameError, InvalidPutOptionError, NotEnoughHostsError, ObjectUnchangedError, StreamSizeError } from '../errors.ts'
import { checkName } from './names.ts'
import { hex, type Contracts, type Lease } from './contracts.ts'
import { defaultRedundancy } from './health.ts'
import { judgeHostError } from './host-answers.ts'
import { inTransfer, releaseSegmentMemory, type SegmentSlots } from './memory.ts'
import { callSignal, type StorageSession } from './session.ts'
import { StallWatch } from './stall-watch.ts'
import type { HostOffer, Progress, PutOptions, PutSource, StorageClientComponents } from './interface.ts'
import type { ContractRecord, PendingUpload, Records, SegmentRecord, ShardRecord, StoredObject } from './records.ts'

const log = logger('opencloud:storage:client')

/** A file's SHA-256, read through once */
async function sha256Of (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer)
  }
  return hash.digest('hex')
}

/** One host's column of an upload: its contract (shared with the node's other objects on that host), and its shards in order */
export interface Slot {
  index: number
  host: HostOffer
  contract: string
  record: ContractRecord
  /** puts to one contract go one at a time: each signs the revision after the last */
  queue: Promise<void>
  replacements: number
  /** the shards this slot's host has taken so far, as the object's segments will name them */
  put: ShardRecord[]
}

export interface UploadComponents extends Pick<StorageClientComponents, 'hosts' | 'storageKey' | 'rate' | 'prepay' | 'alive'> {
  records: Records
  contracts: Contracts
  session: StorageSession
  slots: SegmentSlots
}

export interface UploadInit {
  segmentSize: number
  segmentsInFlight: number
  /** contract length when the put names none */
  durationMs: number
}

/** Where a put's plaintext comes from, a segment at a time in order */
interface SegmentSource {
  /** the next `length` bytes */
  next: (index: number, offset: number, length: number) => Promise<Buffer>
  /** after the last segment: throws if there is more than the size said */
  end: () => Promise<void>
  close: () => Promise<void>
}

function fileSource (path: string, file: FileHandle): SegmentSource {
  return {
    next: async (_index, offset, length) => {
      const plain = Buffer.allocUnsafe(length)
      const { bytesRead } = await file.read(plain, 0, length, offset)
      if (bytesRead !== length) {
        throw new Error(`${path} changed while it was being stored`)
      }
      return plain
    },
    end: async () => {},
    close: async () => { await file.close() }
  }
}

/** A byte stream cut into segments; it must hold exactly `size` bytes */
function streamSource (stream: AsyncIterable<Uint8Array>, size: number): SegmentSource {
  const it = stream[Symbol.asyncIterator]()
  let left: Uint8Array = new Uint8Array(0)
  let read = 0
  const longer = (): StreamSizeError => new StreamSizeError(`the stream went on past the ${size} bytes it declared; nothing is stored (give the size of what it sends)`)
  return {
    next: async (_index, _offset, length) => {
      const out = Buffer.allocUnsafe(length)
      let filled = 0
      while (filled < length) {
        if (left.byteLength === 0) {
          const r = await it.next()
          if (r.done === true) {
            throw new StreamSizeError(`the stream ended after ${read + filled} bytes of the ${size} it declared; nothing is stored (send the whole object, or give the size of what it sends)`)
          }
          left = r.value
          continue
        }
        const take = Math.min(length - filled, left.byteLength)
        out.set(left.subarray(0, take), filled)
        left = left.subarray(take)
        filled += take
      }
      read += length
      return out
    },
    end: async () => {
      if (left.byteLength > 0) {
        throw longer()
      }
      for (;;) {
        const r = await it.next()
        if (r.done === true) {
          return
        }
        if (r.value.byteLength > 0) {
          throw longer()
        }
      }
    },
    close: async () => { await it.return?.() }
  }
}

/**
 * The data path of a put (renterd's worker): encrypt, erasure-code segment
 * by segment, take room in the contract this node holds with each of N
 * hosts (or form one: Contracts.acquire) and upload one shard per segment
 * to each, replacing a host that fails or stalls. An object is recorded
 * only once every shard of every segment is stored.
 */
export class Uploader {
  private readonly components: UploadComponents
  private readonly init: UploadInit
  /** uploads running in this process: their pending records are not leftovers of a crash */
  private readonly uploading = new Set<string>()

  constructor (components: UploadComponents, init: UploadInit) {
    this.components = components
    this.init = init
  }

  /** Store a file, or a byte stream of a declared size (PutSource); `signal` is the caller's and the node's */
  async put (source: PutSource, options: PutOptions, signal: AbortSignal): Promise<StoredObject> {
    const { records } = this.components
    let size: number
    let name: string
    if (typeof source === 'string') {
      size = (await stat(source)).size
      name = options.name ?? basename(source)
    } else {
      size = source.size
      if (!Number.isSafeInteger(size) || size < 0) {
        throw new InvalidPutOptionError(`a stream's size is a whole number of bytes, not ${String(size)}`)
      }
      if (options.name == null) {
        throw new InvalidNameError('a stream has no file name: give the object a name')
      }
      name = options.name
    }
    checkName(name)
    // a file identical to the current version of its name is stored once
    // (re-putting a folder stores only what changed): said, not stored
    if (options.force !== true) {
      await this.refuseUnchanged(source, name, size)
    }
    const id = randomBytes(16)
    const objectId = hex(id)
    // the upload's record, which names every contract formed: a check
    // running meanwhile must not take it for one a crash left
    const pending: PendingUpload = { id: objectId, name, contracts: [] }
    this.uploading.add(objectId)
    try {
      // one name, one object: the name is held from here until the object
      // is stored, or let go when the put fails
      await records.reserveName(name, pending)
      let stored = false
      try {
        const object = await inTransfer(async () => this.putReserved(source, size, pending, id, options, signal))
        stored = true
        return object
      } finally {
        if (!stored) {
          await records.releaseName(name, objectId)
          if (pending.contracts.length === 0) {
            // nothing for cleanUploads to resynchronise
            await records.deletePending(objectId)
          }
        }
        records.forgetReservation(name)
      }
    } finally {
      this.uploading.delete(objectId)
    }
  }

  /** ObjectUnchangedError when `source` is a file with the size and sha256 of the current version of `name` */
  private async refuseUnchanged (source: PutSource, name: string, size: number): Promise<void> {
    if (typeof source !== 'string') {
      // a stream cannot be read twice: it is stored
      return
    }
    let current: StoredObject
    try {
      current = await this.components.records.find(name)
    } catch {
      return
    }
    if (current.name !== name || current.size !== size) {
      return
    }
    if (await sha256Of(source) === current.sha256) {
      throw new ObjectUnchangedError(`${name} is unchanged (the same ${formatSize(size)} and SHA-256 as version ${current.version ?? 1}, stored ${new Date(current.createdAt).toISOString()}): nothing stored (--force stores it again)`, current)
    }
  }

  private async putReserved (source: PutSource, size: number, pending: PendingUpload, id: Uint8Array, options: PutOptions, signal: AbortSignal): Promise<StoredObject> {
    const { records, contracts: book } = this.components
    const { segmentSize } = this.init
    const { id: objectId } = pending
    const name = pending.name ?? objectId
    const ceiling = options.maxStoragePrice
    const known = await this.components.hosts()
    const offers = known.filter(h => ceiling == null || h.storage <= ceiling)
    // none at all is another problem than too few: the hints differ (a
    // lone node was told to choose a smaller redundancy than "1-of-0")
    if (known.length === 0) {
      throw new NotEnoughHostsError('no storage host is known: the market has heard no other node offer storage. Start the node with --bootstrap <multiaddr of a peer> to join a network, or try the local testnet (npm run testnet in a checkout); market prices --service storage lists the offers heard')
    }
    if (offers.length === 0) {
      const cheapest = known.reduce((a, b) => b.storage < a.storage ? b : a)
      throw new NotEnoughHostsError(`no storage host asks ${formatAmount(ceiling as bigint)} per TiB-month or less: the cheapest of the ${known.length} the market knows asks ${formatAmount(cheapest.storage)} per TiB-month; raise --max-price to at least "${formatAmount(cheapest.storage)}"`)
    }
    const { k, n } = options.k != null && options.n != null ? { k: options.k, n: options.n } : defaultRedundancy(offers.length)
    const atPrice = ceiling == null ? '' : ` at or under ${formatAmount(ceiling)} per TiB-month`
    if (n < 1 || offers.length < n) {
      throw new NotEnoughHostsError(`storing ${k}-of-${n} needs ${n} hosts, and the market knows ${offers.length}${atPrice}; wait for more offers (market prices --service storage), raise --max-price, or choose a smaller --redundancy`)
    }
    const rs = new ReedSolomon(k, n)
    const segmentCount = Math.max(1, Math.ceil(size / segmentSize))
    const plainLength = (i: number): number => Math.min(segmentSize, size - i * segmentSize)
    const shardSize = (i: number): number => Math.max(1, Math.ceil((plainLength(i) + TAG_BYTES) / k))
    const bytesFrom = (i: number): number => { let b = 0; for (let s = i; s < segmentCount; s++) b += shardSize(s); return b }
    const durationMs = options.durationMs ?? this.init.durationMs
    const key = objectKey(this.components.storageKey(), id)
    const progress = (p: Progress): void => { options.onProgress?.(p) }

    // once the N slots have hosts under contract, what each is about to be
    // paid: the node opens channels to them in one funding transaction
    // (PaymentAgent.prepay) before the rent that pays for the shards. A host
    // that refused its contract gets none; a later replacement pays deferred
    const prepay = async (): Promise<void> => {
      if (this.components.prepay == null) {
        return
      }
      const months = durationMs / MONTH_MS
      const held = bytesFrom(0)
      const expected = (h: HostOffer): bigint => BigInt(Math.ceil(Number(h.storage) * held * months / TIB + Number(h.upload) * held / TIB))
      await this.components.prepay(slotHosts.map(h => ({ peer: h.peer, sats: expected(h), calls: segmentCount + Math.ceil(months * 30), method: 'storage.put' })), signal)
    }
    const slotHosts: HostOffer[] = []

    // room with N hosts, taking the next offer whenever one refuses
    let next = 0
    const refusals: string[] = []
    const used = new Set<string>()
    const leases: Lease[] = []
    const newSlotHost = async (index: number, bytes: number): Promise<{ host: HostOffer, contract: string, record: ContractRecord }> => {
      while (next < offers.length) {
        const host = offers[next++]
        if (used.has(host.peer)) {
          continue
        }
        used.add(host.peer)
        try {
          signal.throwIfAborted()
          const lease = await book.acquire(host, bytes, durationMs, signal, { maxStoragePrice: ceiling })
          leases.push(lease)
          // named before a shard is sent: after a crash, cleanUploads resynchronises it
          pending.contracts.push(lease.id)
          await records.savePending(pending)
          slotHosts.push(host)
          if (slotHosts.length === n) {
            await prepay()
          }
          return { host, contract: lease.id, record: lease.record }
        } catch (err: any) {
          if (signal.aborted) {
            throw err
          }
          refusals.push(`${host.peer}: ${err.message}`)
          log('host %s refused slot %d - %s', host.peer, index, err.message)
        }
      }
      throw new NotEnoughHostsError(refusals.length === 0
        ? `no host left to hold shard ${index + 1} of ${n} (${k}-of-${n}): each of the ${offers.length} hosts the market knows${atPrice} holds a shard of this file already or failed it, and every shard needs a host of its own; wait for more offers (market prices --service storage), or choose a smaller --redundancy`
        : `no host left to hold shard ${index + 1} of ${n} (${k}-of-${n}); the hosts tried said:\n  ${refusals.join('\n  ')}`)
    }
    try {
      // a host not tried yet: the overdrive moves a slot only when there is one to move it to
      const hasSpare = (): boolean => offers.slice(next).some(h => !used.has(h.peer))
      return await this.upload(source, size, pending, id, name, { k, n, rs, segmentCount, plainLength, shardSize, bytesFrom, key, progress, newSlotHost, hasSpare }, signal, options.meta)
    } finally {
      for (const lease of leases) {
        lease.release()
      }
    }
  }

  private async upload (source: PutSource, size: number, pending: PendingUpload, id: Uint8Array, name: string, plan: UploadPlan, signal: AbortSignal, metaOf?: PutOptions['meta']): Promise<StoredObject> {
    const { records, contracts: book } = this.components
    const { segmentSize } = this.init
    const { k, n, rs, segmentCount, plainLength, shardSize, bytesFrom, key, progress, newSlotHost, hasSpare } = plan
    const objectId = pending.id
    await records.savePending(pending)
    progress({ phase: 'contracts', done: 0, total: n })
    const slots: Slot[] = []
    let formedCount = 0
    await Promise.all(Array.from({ length: n }, async (_, index) => {
      const s = await newSlotHost(index, bytesFrom(0))
      slots[index] = { index, ...s, queue: Promise.resolve(), replacements: 0, put: [] }
      progress({ phase: 'contracts', done: ++formedCount, total: n })
    }))

    const segments: SegmentRecord[] = []
    const totalShardBytes = bytesFrom(0) * n
    let shardBytesDone = 0
    const fileHash = createHash('sha256')
    // a stream is read ahead by the segments a put codes at once (that much
    // more memory a put), so the bytes of the next ones arrive while these
    // are coded and sent, as a file's are there when they are asked for
    const input = typeof source === 'string' ? fileSource(source, await open(source, 'r')) : streamSource(readAhead(source.stream, segmentSize * this.init.segmentsInFlight), size)
    // the overdrive: a shard transfer that holds up its segment long after the others is stopped, and its slot moves on
    const watch = new StallWatch(this.components.alive, { k, n, hasSpare, signal })
    const putOnSlot = async (slot: Slot, segment: number, shard: Uint8Array, root: Uint8Array): Promise<ShardRecord> => {
      // queued behind the slot's earlier shards: revisions follow each other
      const run = slot.queue.then(async () => {
        for (;;) {
          signal.throwIfAborted()
          const attempt = watch.begin(slot.host.peer, slot.index, segment)
          try {
            const under = await book.putShard(slot.contract, slot.record, shard, root, AbortSignal.any([signal, attempt.signal]))
            attempt.stored()
            if (under !== slot.contract) {
              // renewed meanwhile: the rest goes under the new contract
              slot.contract = under
              slot.record = records.contracts.get(under) ?? slot.record
            }
            const record: ShardRecord = { host: slot.host.peer, contract: under, root: hex(root) }
            slot.put.push(record)
            return record
          } catch (caught: any) {
            // stopped by the overdrive: what counts is why
            const err = attempt.signal.aborted ? attempt.signal.reason : caught
            if (signal.aborted || slot.replacements >= MAX_SLOT_REPLACEMENTS) {
              throw err
            }
            let s: Awaited<ReturnType<typeof newSlotHost>> | undefined
            if (err instanceof HostStalledError) {
              try {
                s = await newSlotHost(slot.index, bytesFrom(segment))
              } catch (none) {
                // no other host took the slot: it stays, and the shard is
                // sent to it again (the overdrive stops no transfer once no
                // host is left to try)
                if (signal.aborted) {
                  throw none
                }
                log('shard %d of segment %d stalled on %s and no other host took the slot: sent again - %s', slot.index, segment, slot.host.peer, err.message)
                continue
              }
            }
            // a refusal over what this node owes is not the host failing
            if (judgeHostError(err) !== 'owed') {
              this.components.rate?.(slot.host.peer, 'failed', 'put')
            }
            log('shard %d of segment %d failed on %s, moving the slot to another host - %s', slot.index, segment, slot.host.peer, err.message)
            // the shards it took before count as lost from now on: repair
            // moves them. Only this object's: the contract is shared with
            // the node's other objects there, which a failed put does not
            // condemn (their audits judge the host)
            const at = Date.now()
            for (const taken of slot.put) {
              taken.lost = at
              taken.lostReason = `replaced during the upload after it failed shard ${slot.index + 1} of segment ${segment}: ${err.message}`
            }
            slot.put = []
            slot.replacements++
            s ??= await newSlotHost(slot.index, bytesFrom(segment))
            Object.assign(slot, s)
          } finally {
            attempt.end()
          }
        }
      })
      slot.queue = run.then(() => {}, () => {})
      return run
    }
    try {
      const inFlight = new Set<Promise<void>>()
      let failure: unknown
      for (let i = 0; i < segmentCount && failure == null; i++) {
        while (inFlight.size >= this.init.segmentsInFlight) {
          await Promise.race(inFlight)
        }
        if (failure != null) {
          break
        }
        const give = await this.components.slots.take(signal)
        let plain: Uint8Array
        try {
          plain = await input.next(i, i * segmentSize, plainLength(i))
        } catch (err) {
          // the segments already under way finish (or fail) before the put
          // answers, so nothing is still uploading, and paying, once it has
          give()
          failure ??= err
          break
        }
        fileHash.update(plain)
        const segment = i
        const task = (async () => {
          const sealed = sealSegment(key, id, segment, plain)
          const data = split(sealed, k)
          const shards = [...data, ...rs.encode(data)]
          const roots = shards.map(merkleRoot)
          const records = await Promise.all(shards.map(async (shard, s) => {
            const record = await putOnSlot(slots[s], segment, shard, roots[s])
            shardBytesDone += shard.byteLength
            progress({ phase: 'upload', done: Math.floor(shardBytesDone / totalShardBytes * size), total: size })
            return record
          }))
          segments[segment] = { plainLength: plainLength(segment), shardSize: shardSize(segment), shards: records }
          watch.segmentDone(segment)
        })().catch(err => { failure ??= err }).finally(() => {
          give()
          releaseSegmentMemory()
        })
        const tracked = task.finally(() => { inFlight.delete(tracked) })
        inFlight.add(tracked)
      }
      await Promise.all(inFlight)
      if (failure != null) {
        throw failure
      }
      // a stream that sends more than it said is refused as one that sends less
      await input.end()
    } finally {
      watch.stop()
      await input.close()
    }
    // the contracts its shards are under now (one renewed during the put has handed them on)
    const contracts = records.contractsUnder(segments)
    const object: StoredObject = {
      id: objectId,
      name,
      size,
      sha256: fileHash.digest('hex'),
      createdAt: Date.now(),
      k,
      n,
      segmentSize,
      segments,
      contracts
    }
    const meta = typeof metaOf === 'function' ? metaOf() : metaOf
    if (meta != null && Object.keys(meta).length > 0) {
      object.meta = meta
    }
    // the object and its name appear together, and only now that every shard is stored
    await records.commitStored(object)
    log('stored %s (%s) as %d-of-%d on %d contracts', name, formatSize(size), k, n, Object.keys(contracts).length)
    return object
  }

  /**
   * What uploads that never finished (a crash, kill -9, a failure) left:
   * their names are let go, and each contract they put shards under is
   * resynchronised from its host's signed revision (the host may have
   * countersigned puts this node never recorded). The shards no object
   * names are deleted afterwards (collectGarbage). An upload's record goes
   * once every host has answered; hosts that could not be reached are tried
   * again at the next check. Resolves with how many contracts were
   * resynchronised.
   */
  async cleanUploads (signal: AbortSignal): Promise<number> {
    const { records, contracts } = this.components
    let synced = 0
    for await (const pending of records.pendingUploads()) {
      if (this.uploading.has(pending.id)) {
        continue
      }
      if (pending.name != null) {
        await records.releaseName(pending.name, pending.id)
      }
      const left: string[] = []
      for (const id of new Set(pending.contracts)) {
        const c = records.contracts.get(id)
        if (c == null || c.ended != null) {
          continue
        }
        signal.throwIfAborted()
        try {
          if (await contracts.locks.run(id, async () => contracts.resync(id, c, callSignal(signal, END_CALL_MS)), { signal })) {
            synced++
          }
        } catch (err: any) {
          if (signal.aborted) {
            throw err
          }
          if (err instanceof NotFoundError) {
            // the host has no such contract (it expired, or never formed)
            continue
          }
          left.push(id)
          log('could not resynchronise contract %s of an interrupted upload with %s - %s', id, c.host, err.message)
        }
      }
      if (left.length === 0) {
        await records.deletePending(pending.id)
        log('cleaned up interrupted upload %s (%d contracts)', pending.id, pending.contracts.length)
      } else {
        await records.savePending({ ...pending, contracts: left })
      }
    }
    return synced
  }
}

/** What an upload works from, once the put's options are checked */
interface UploadPlan {
  k: number
  n: number
  rs: ReedSolomon
  segmentCount: number
  plainLength: (i: number) => number
  shardSize: (i: number) => number
  bytesFrom: (i: number) => number
  key: Uint8Array
  progress: (p: Progress) => void
  newSlotHost: (index: number, bytes: number) => Promise<{ host: HostOffer, contract: string, record: ContractRecord }>
  /** whether newSlotHost has a host left to try */
  hasSpare: () => boolean
}
