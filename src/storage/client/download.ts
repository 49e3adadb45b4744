import { createHash, randomBytes } from 'node:crypto'
import { link, open, rename, rm, stat } from 'node:fs/promises'
import { logger } from '@libp2p/logger'
import { DecryptError, objectKey, openSegment, TAG_BYTES } from '../protocol/crypto.ts'
import { ReedSolomon } from '../protocol/erasure.ts'
import { equalBytes, merkleRoot } from '../protocol/merkle.ts'
import { HEDGE_BYTES_PER_S, OVERDRIVE_FACTOR, OVERDRIVE_MIN_MS, OVERDRIVE_SHARE } from '../constants.ts'
import { IntegrityError, OutputExistsError, PaymentRefusedError, ShardUnavailableError } from '../errors.ts'
import { transferTimeoutMs } from './contracts.ts'
import { judgeHostError } from './host-answers.ts'
import { beginTransfer, releaseSegmentMemory, type SegmentSlots } from './memory.ts'
import { callSignal, type StorageSession } from './session.ts'
import { applyTransfer, newTransfer, type Transfer } from './transfer.ts'
import type { Contracts } from './contracts.ts'
import type { GetOptions, StorageClientComponents } from './interface.ts'
import type { Records, StoredObject } from './records.ts'

const log = logger('opencloud:storage:client')

export interface DownloadComponents extends Pick<StorageClientComponents, 'storageKey' | 'rate'> {
  records: Records
  session: StorageSession
  /** what a get pays with the call (its fraction of a satoshi counted for the next rent) */
  contracts: Pick<Contracts, 'downloadCost'>
  slots: SegmentSlots
  /** aborted when the node stops (replaced at each start) */
  shutdown: () => AbortSignal
  /** a get found shards lost or hosts that lied: the object's health changed */
  onHealthChanged?: () => void
}

export interface DownloadInit {
  /** a shard download not done after this long, plus its size at 1 MiB/s, asks another host too */
  hedgeMs: number
  /** bytes per second under which a shard transfer is given up on */
  minThroughput: number
}

/** A get as a byte stream: the object, and its plaintext in order */
export interface ObjectStream {
  object: StoredObject
  /**
   * the plaintext, a segment at a time, read at the reader's pace (one
   * segment is fetched ahead); it throws IntegrityError at its end if the
   * whole does not hash to what was stored, so a reader that keeps the
   * bytes keeps them only once the stream has ended without an error
   */
  stream: AsyncIterable<Uint8Array>
}

/** Fetches one shard of a segment, checked against its root: a renter's own `get` (the default), or a share holder's `shared-get` (shares.ts) */
export type ShardFetcher = (object: StoredObject, index: number, slot: number, transfer: Transfer, signal: AbortSignal) => Promise<Uint8Array>

/**
 * Where a stream's shards come from and the key that opens them, when the
 * object is not this node's own: a share's holder fetches with shared-get
 * and decrypts with the object key the share carries (it has no storage
 * key of the owner's), and nothing of what the fetch finds goes into
 * records (this node has none of the object)
 */
export interface ShardSource {
  key: Uint8Array
  fetch: ShardFetcher
}

/**
 * The data path of a get (renterd's worker): the first K good shards of
 * each segment, decoded and decrypted, as a byte stream or into a file.
 * A get of this node's own objects checks the K shards by the segment's
 * AES-GCM tag, and each against its Merkle root only when that fails (to
 * find the host that lied); repair (which fetches its segments here too)
 * and a share's holder check each shard against its root as it comes.
 */
export class Downloader {
  private readonly components: DownloadComponents
  private readonly init: DownloadInit
  /** gets running in this process: their partial files are not leftovers of a crash */
  private readonly downloading = new Set<string>()

  constructor (components: DownloadComponents, init: DownloadInit) {
    this.components = components
    this.init = init
  }

  /**
   * One shard from its host, checked against its root. What the answer
   * says about the host goes into `transfer`, read by judgeHostError: a
   * shard the host says is gone or corrupt (`not-found`) counts as lost;
   * bytes that do not match condemn the contract (as a failed audit does);
   * a refusal over money (PaymentRefusedError) and any other failure
   * (`server-error`, no answer in time) have the host asked last for the
   * rest of the transfer, and the latter audited at the next check.
   */
  private readonly fetchShard: ShardFetcher = async (object, index, slot, transfer, signal) => {
    const bytes = await this.fetchUnchecked(object, index, slot, transfer, signal)
    if (!this.matches(object, index, slot, bytes)) {
      throw new IntegrityError(this.caught(object, index, slot, transfer))
    }
    return bytes
  }

  /**
   * One shard from its host as fetchShard, but not checked against its
   * root, except for its length: a get of its own objects checks the
   * shards together, by the segment's AES-GCM tag (see openShards), and
   * hashes them only when that fails, to find the host that lied. Its
   * bytes go into `into` when given (see segments).
   */
  private readonly fetchUnchecked = async (object: StoredObject, index: number, slot: number, transfer: Transfer, signal: AbortSignal, into?: Uint8Array): Promise<Uint8Array> => {
    const segment = object.segments[index]
    const shard = segment.shards[slot]
    const c = object.contracts[shard.contract]
    const sats = this.components.contracts.downloadCost(c, segment.shardSize)
    let bytes: Uint8Array
    try {
      bytes = await this.components.session.get(shard.host, shard.contract, shard.root, 0, segment.shardSize, sats, callSignal(signal, transferTimeoutMs(segment.shardSize, this.init.minThroughput)), into)
    } catch (err: any) {
      if (signal.aborted) {
        throw err
      }
      const judged = judgeHostError(err)
      if (judged === 'owed') {
        // what this node owes it, not how it serves: not rated, asked last
        transfer.avoid.add(shard.host)
        throw new PaymentRefusedError(`host ${shard.host} refuses to serve it: ${err.message}`)
      }
      this.components.rate?.(shard.host, 'failed', 'get')
      if (judged === 'lost') {
        transfer.lostShards.set(`${index} ${slot}`, { contract: shard.contract, root: shard.root, reason: `host ${shard.host} answered: ${err.message}` })
      } else {
        transfer.avoid.add(shard.host)
        transfer.unreachable.add(shard.contract)
      }
      throw err
    }
    transfer.spent.set(shard.contract, (transfer.spent.get(shard.contract) ?? 0n) + sats)
    if (bytes.byteLength !== segment.shardSize) {
      throw new IntegrityError(this.caught(object, index, slot, transfer))
    }
    return bytes
  }

  /** Whether `bytes` are shard `slot` of segment `index`: its length, and its Merkle root */
  private matches (object: StoredObject, index: number, slot: number, bytes: Uint8Array): boolean {
    const segment = object.segments[index]
    return bytes.byteLength === segment.shardSize && equalBytes(merkleRoot(bytes), Buffer.from(segment.shards[slot].root, 'hex'))
  }

  /** A host sent bytes that are not its shard: rated, its contract condemned, asked last; the reason */
  private caught (object: StoredObject, index: number, slot: number, transfer: Transfer): string {
    const shard = object.segments[index].shards[slot]
    this.components.rate?.(shard.host, 'corrupt', 'get')
    const reason = `host ${shard.host} sent bytes that do not match shard ${shard.root} (segment ${index})`
    transfer.cheated.set(shard.contract, reason)
    transfer.avoid.add(shard.host)
    return reason
  }

  /**
   * The first K good shards of segment `index`: K requests at once, data
   * shards first (they need no decoding), shards known lost never asked
   * for, hosts caught or slow earlier in the transfer asked last. A failed
   * or wrong answer starts the next host. A request still running marks
   * its host slow, and another host is asked in its place, at the hedge
   * time, or sooner, once it runs OVERDRIVE_FACTOR times longer than the
   * median of the segment's answers so far (its overdrive: at most
   * ceil(K x OVERDRIVE_SHARE) of those per segment). A host refusing over
   * money is passed over like one that failed. Every request ends within
   * transferTimeoutMs, so the fetch ends too: with K shards; or once every
   * host has answered or failed, with PaymentRefusedError when a host
   * refusing over money was one of those that could have made up K
   * (settling would help), else with ShardUnavailableError; or at once on
   * the caller's signal.
   *
   * Once K are in, the requests still running are cancelled, except those
   * of hosts marked slow: those run on in the background (until they
   * answer, their transfer timeout or the caller's signal), their bytes
   * dropped, so that a host that was only late is asked first again once
   * it answers, while one that is frozen stays asked last. They cost
   * nothing more: a request is paid for when it is asked.
   *
   * Shards in `have` (checked already) count as fetched and are not asked
   * for again.
   */
  async fetchSegment (object: StoredObject, index: number, transfer: Transfer, signal: AbortSignal, fetchShard: ShardFetcher = this.fetchShard, have?: ReadonlyArray<Uint8Array | undefined>): Promise<Array<Uint8Array | undefined>> {
    signal.throwIfAborted()
    const { k, n } = object
    const segment = object.segments[index]
    // hosts that failed or were caught last of all, then those still slow
    const askLast = (slot: number): number => {
      const shard = segment.shards[slot]
      return transfer.avoid.has(shard.host) || object.contracts[shard.contract]?.lost != null ? 2 : transfer.slow.has(shard.host) ? 1 : 0
    }
    const got: Array<Uint8Array | undefined> = Array.from({ length: n }, (_, slot) => have?.[slot])
    const known = (slot: number): boolean => segment.shards[slot].lost != null || transfer.lostShards.has(`${index} ${slot}`)
    // stable: data shards first within each rank
    const order = Array.from({ length: n }, (_, i) => i).filter(slot => !known(slot) && got[slot] == null).sort((a, b) => askLast(a) - askLast(b))
    const skipped = n - order.length - got.filter(s => s != null).length
    const hedgeMs = this.init.hedgeMs + segment.shardSize / HEDGE_BYTES_PER_S * 1000
    const errors: string[] = []
    /** hosts that refused over money: settling with them would bring their shards back */
    let refusedOverMoney = 0
    /** requests under way: slot -> when it started, whether its host was marked slow, and its own cancel */
    const running = new Map<number, { started: number, slow: boolean, cancel: AbortController }>()
    /** how long each answer of this segment took (ms), for the overdrive */
    const took: number[] = []
    let overdrives = 0
    const maxOverdrives = Math.ceil(k * OVERDRIVE_SHARE)
    let cursor = 0
    let good = got.filter(s => s != null).length
    let done = false
    return new Promise((resolve, reject) => {
      let hedge: ReturnType<typeof setInterval> | undefined
      let overdrive: ReturnType<typeof setTimeout> | undefined
      const finish = (err?: Error): void => {
        if (done) {
          return
        }
        done = true
        clearInterval(hedge)
        clearTimeout(overdrive)
        signal.removeEventListener('abort', onAbort)
        for (const r of running.values()) {
          if (!r.slow || err != null) {
            r.cancel.abort()
          }
        }
        if (err != null) {
          reject(err)
        } else {
          resolve(got)
        }
      }
      const onAbort = (): void => { finish(signal.reason instanceof Error ? signal.reason : new Error('the fetch was aborted')) }
      signal.addEventListener('abort', onAbort, { once: true })
      const settle = (): void => {
        if (good >= k) {
          finish()
        } else if (running.size === 0 && cursor >= order.length) {
          const what = `only ${good} of the ${k} shards needed for segment ${index} of "${object.name}" could be fetched${skipped > 0 ? ` (${skipped} of its ${n} are known lost)` : ''}:\n  ${errors.join('\n  ') || '(no other host holds one)'}`
          finish(refusedOverMoney > 0
            ? new PaymentRefusedError(`${what}\n${refusedOverMoney} of the hosts asked refuse over money (what this node owes them, or a price over what it pays); what this node owes each host is in "payments tabs", and the get can be tried again once it is settled`)
            : new ShardUnavailableError(what))
        }
      }
      // requests until K are under way that are not known slow. A host
      // still slow from an earlier segment left a request unanswered (frozen,
      // as far as this transfer knows): it is no hedge while the requests
      // under way could make up K and none of them has run past three hedge
      // times. On a loaded machine two live hosts slower than the hedge time
      // led the hedge on to a frozen host again (test/faults/storage-faults);
      // the bound keeps a host that freezes now, among spares all marked
      // slow, from costing its whole transfer timeout
      const fill = (): void => {
        const hopeful = (): number => [...running.values()].filter(r => !r.slow).length
        const waitingWell = (): number => { const now = performance.now(); return [...running.values()].filter(r => now - r.started < 3 * hedgeMs).length }
        while (!done && good + hopeful() < k && cursor < order.length) {
          if (transfer.slow.has(segment.shards[order[cursor]].host) && good + waitingWell() >= k) {
            break
          }
          launch(order[cursor++])
        }
      }
      const markSlow = (slot: number): void => {
        const r = running.get(slot)
        if (r != null && !r.slow) {
          // slow now: asked after the others for the rest of the
          // transfer, unless it answers after all
          r.slow = true
          transfer.slow.add(segment.shards[slot].host)
        }
      }
      // the overdrive: once enough answers are in to tell the usual time
      // (half of K), a request past OVERDRIVE_FACTOR times their median is
      // slow. Not before: the first answers of a segment on a loaded
      // machine say little. A frozen host costs the first segment this
      // wait (then it is asked last), not the hedge time.
      const checkOverdrive = (): void => {
        clearTimeout(overdrive)
        if (done || overdrives >= maxOverdrives || took.length < Math.ceil(k / 2)) {
          return
        }
        const sorted = [...took].sort((a, b) => a - b)
        const median = sorted[Math.floor((sorted.length - 1) / 2)]
        const after = Math.max(OVERDRIVE_FACTOR * median, median + OVERDRIVE_MIN_MS)
        const now = performance.now()
        let next = Infinity
        for (const [slot, r] of running) {
          if (r.slow) {
            continue
          }
          if (now - r.started >= after && overdrives < maxOverdrives) {
            overdrives++
            markSlow(slot)
          } else {
            next = Math.min(next, r.started + after - now)
          }
        }
        fill()
        if (Number.isFinite(next) && overdrives < maxOverdrives) {
          overdrive = setTimeout(checkOverdrive, Math.max(1, Math.ceil(next)))
          overdrive.unref?.()
        }
      }
      const launch = (slot: number): void => {
        const cancel = new AbortController()
        const started = performance.now()
        running.set(slot, { started, slow: false, cancel })
        fetchShard(object, index, slot, transfer, AbortSignal.any([signal, cancel.signal])).then(bytes => {
          running.delete(slot)
          // it answered: slow once, not frozen
          transfer.slow.delete(segment.shards[slot].host)
          if (!done) {
            got[slot] = bytes
            good++
            took.push(performance.now() - started)
            settle()
            checkOverdrive()
          }
        }, (err: any) => {
          running.delete(slot)
          if (done) {
            return
          }
          if (err instanceof PaymentRefusedError) {
            refusedOverMoney++
          }
          errors.push(`${segment.shards[slot].host}: ${err.message}`)
          fill()
          settle()
          checkOverdrive()
        })
      }
      hedge = setInterval(() => {
        const now = performance.now()
        for (const [slot, r] of running) {
          if (now - r.started >= hedgeMs) {
            markSlow(slot)
          }
        }
        fill()
      }, Math.max(10, Math.floor(hedgeMs / 4)))
      hedge.unref?.()
      fill()
      settle()
    })
  }

  /**
   * A segment whose shards did not open: each checked against its root,
   * and the hosts of those that do not match caught (as fetchShard does).
   * Resolves with the shards that match, for a fetch of checked ones in
   * place of the others; undefined when all match (the bytes are what was
   * stored: the key is wrong).
   */
  private blame (object: StoredObject, index: number, shards: Array<Uint8Array | undefined>, transfer: Transfer): Array<Uint8Array | undefined> | undefined {
    let lied = 0
    const kept = shards.map((bytes, slot) => {
      if (bytes == null || this.matches(object, index, slot, bytes)) {
        return bytes
      }
      lied++
      log.error(this.caught(object, index, slot, transfer))
      return undefined
    })
    return lied > 0 ? kept : undefined
  }

  /**
   * An object's plaintext as a byte stream (ObjectStream). Nothing is
   * fetched until the stream is read; a reader that stops early (a closed
   * HTTP response) stops the fetch. What the fetches found (shards gone,
   * hosts that lied, what the download cost) goes into the record once the
   * stream ends, however it ends.
   */
  async getStream (nameOrId: string, options: Omit<GetOptions, 'overwrite'> = {}): Promise<ObjectStream> {
    const { records } = this.components
    const object = options.version == null ? await records.find(nameOrId) : await records.findVersion(nameOrId, options.version)
    return { object, stream: this.segments(object, options) }
  }

  /** A shared object's plaintext as a byte stream (see getStream), its shards from `source` */
  sharedStream (object: StoredObject, source: ShardSource, options: Omit<GetOptions, 'overwrite'> = {}): ObjectStream {
    return { object, stream: this.segments(object, options, source) }
  }

  /** A shared object into the file `out`, as get writes one (a `.part` beside it, renamed when whole) */
  async getShared (object: StoredObject, source: ShardSource, out: string, options: GetOptions = {}): Promise<StoredObject> {
    return this.writeOut(this.sharedStream(object, source, options), out, options)
  }

  private async * segments (object: StoredObject, options: Omit<GetOptions, 'overwrite'>, source?: ShardSource): AsyncGenerator<Uint8Array> {
    const end = beginTransfer()
    const { slots } = this.components
    // a failure stops the fetch running ahead too, before the stream ends
    const stopAhead = new AbortController()
    const signal = AbortSignal.any([...(options.signal == null ? [] : [options.signal]), this.components.shutdown(), stopAhead.signal])
    const rs = new ReedSolomon(object.k, object.n)
    const id = Buffer.from(object.id, 'hex')
    const key = source?.key ?? objectKey(this.components.storageKey(), id)
    const transfer = newTransfer(object)
    const hash = createHash('sha256')
    // a range is the segments that hold it, each cut to it; the whole
    // object's SHA-256 cannot be checked on a part (each segment's AES-GCM
    // tag still is)
    const range = options.range
    let first = 0
    let last = object.segments.length - 1
    let from = 0
    if (range != null) {
      let at = 0
      first = object.segments.length
      last = -1
      object.segments.forEach((segment, i) => {
        const end = at + segment.plainLength
        if (end > range.start && at < range.end) {
          if (i < first) {
            first = i
            from = at
          }
          last = i
        }
        at = end
      })
    }
    let done = 0
    // a segment's slot is held from its fetch until the reader asks for the next
    const fetchHeld = async (i: number): Promise<{ shards: Array<Uint8Array | undefined>, sealed: Uint8Array, give: () => void }> => {
      const give = await slots.take(signal)
      try {
        // the data shards land side by side in the segment's sealed bytes,
        // which then need no copy into one buffer to open. A request still
        // running once K are in (see fetchSegment) may go on writing into
        // its slot's place: that slot is then not among the shards used,
        // and openShards writes it (rebuilt) and opens the segment in one
        // synchronous step, between that request's writes.
        const { shardSize } = object.segments[i]
        const sealed = Buffer.allocUnsafe(object.k * shardSize)
        const fetch: ShardFetcher = source?.fetch ?? (async (o, index, slot, t, s) => this.fetchUnchecked(o, index, slot, t, s, slot < o.k ? sealed.subarray(slot * shardSize, (slot + 1) * shardSize) : undefined))
        return { shards: await this.fetchSegment(object, i, transfer, signal, fetch), sealed, give }
      } catch (err) {
        give()
        throw err
      }
    }
    // one segment ahead: the next is fetched while this one is decoded and read
    let ahead = first <= last ? fetchHeld(first) : Promise.reject(new Error('nothing to fetch'))
    ahead.catch(() => {})
    let at = from
    try {
      for (let i = first; i <= last; i++) {
        const segment = object.segments[i]
        const { shards, sealed, give } = await ahead
        try {
          if (i + 1 <= last) {
            ahead = fetchHeld(i + 1)
            ahead.catch(() => {})
          }
          let plain: Uint8Array
          try {
            plain = openShards(rs, key, id, i, segment.plainLength, shards, sealed)
          } catch (err) {
            // a host sent bytes that are not its shard (a share's fetch
            // checked each already: there it is the key)
            const kept = err instanceof DecryptError && source == null ? this.blame(object, i, shards, transfer) : undefined
            if (kept == null) {
              throw err
            }
            plain = openShards(rs, key, id, i, segment.plainLength, await this.fetchSegment(object, i, transfer, signal, this.fetchShard, kept), sealed)
          }
          if (range == null) {
            hash.update(plain)
          } else {
            // the part of this segment inside the range
            plain = plain.subarray(Math.max(0, range.start - at), Math.min(plain.byteLength, range.end - at))
          }
          at += segment.plainLength
          yield plain
          done += plain.byteLength
          options.onProgress?.({ phase: 'download', done, total: range == null ? object.size : range.end - range.start })
        } finally {
          give()
          releaseSegmentMemory()
        }
      }
      if (range == null && hash.digest('hex') !== object.sha256) {
        throw new IntegrityError(`"${object.name}" decrypted, but its SHA-256 is not the one recorded when it was stored`)
      }
    } finally {
      stopAhead.abort()
      // the segment fetched ahead of a reader that stopped gives its slot back (a slot given twice is given once)
      await ahead.then(a => { a.give() }, () => {})
      end()
      // what the fetch found (shards gone, hosts that lied, what the
      // download cost) goes into the record, and a repair check follows
      // when it changed the object's health. In the background: the record
      // waits its turn behind the upkeep (a repair of another object may
      // run for minutes), and the get's answer does not. A shared object
      // is not this node's: it has no record of it.
      if (source == null) {
        void this.recordTransfer(object.id, transfer).then(changed => {
          if (changed) {
            this.components.onHealthChanged?.()
          }
        }, err => {
          if (!this.components.shutdown().aborted) {
            log.error('recording what the get of "%s" found failed - %e', object.name, err)
          }
        })
      }
    }
  }

  /**
   * Fetch, check, decode and decrypt an object into `out`, from its byte
   * stream: written beside it first (`out.<random>.part`, named in the
   * datastore so a crash's leftover is removed at the next start: it is
   * plaintext), renamed when whole, removed on any failure
   */
  async get (nameOrId: string, out: string, options: GetOptions = {}): Promise<StoredObject> {
    return this.writeOut(await this.getStream(nameOrId, options), out, options)
  }

  /** An object's byte stream into the file `out` (see get) */
  private async writeOut ({ object, stream }: ObjectStream, out: string, options: GetOptions): Promise<StoredObject> {
    const { records } = this.components
    if (options.overwrite !== true && await stat(out).then(() => true, () => false)) {
      throw new OutputExistsError(`${out} exists already; choose another --out or pass --force to replace it`)
    }
    const tmp = `${out}.${randomBytes(4).toString('hex')}.part`
    const partKey = randomBytes(8).toString('hex')
    this.downloading.add(tmp)
    await records.markDownload({ tmp, object: object.id, at: Date.now() }, partKey)
    try {
      const file = await open(tmp, 'wx', 0o600)
      try {
        for await (const plain of stream) {
          await file.write(plain)
        }
        await file.sync()
        await file.close()
        if (options.overwrite === true) {
          await rename(tmp, out)
        } else {
          // link fails where a file appeared meanwhile: never replaced unasked
          try {
            await link(tmp, out)
          } catch (err: any) {
            throw err.code === 'EEXIST' ? new OutputExistsError(`${out} appeared while the object was fetched; it is left as it was`) : err
          }
          await rm(tmp, { force: true })
        }
      } catch (err) {
        await file.close().catch(() => {})
        throw err
      }
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    } finally {
      try {
        await records.unmarkDownload(partKey)
      } catch {}
      this.downloading.delete(tmp)
    }
    return object
  }

  /** Remove the partial plaintext files of gets a crash interrupted */
  async cleanDownloads (): Promise<number> {
    const { records } = this.components
    let removed = 0
    for await (const { key, tmp } of records.pendingDownloads()) {
      if (this.downloading.has(tmp)) {
        continue
      }
      await rm(tmp, { force: true })
      await records.unmarkDownload(key)
      removed++
      log('removed %s, the partial file of an interrupted get', tmp)
    }
    return removed
  }

  /**
   * Write what a get learned about the hosts into the object's record as it
   * is now (an audit or a repair may have changed it meanwhile): shards
   * found gone or corrupt, hosts that sent wrong bytes, what the download
   * cost, and hosts to audit soon because they did not answer. Resolves with
   * whether the object's health changed. A node that stops meanwhile drops
   * it (the next get or audit finds the same again).
   */
  private async recordTransfer (id: string, transfer: Transfer): Promise<boolean> {
    const { records } = this.components
    return records.exclusive(async () => {
      let current: StoredObject
      try {
        current = await records.find(id)
      } catch {
        return false
      }
      const changed = applyTransfer(current, transfer, Date.now())
      await records.saveObject(current)
      return changed
    }, this.components.shutdown())
  }
}

/**
 * A segment's plaintext from any K of its shards: the data shards as they
 * are when all K came, else rebuilt from what did, each in its place in
 * `sealed` (K x the shard size) unless it is there already; AES-GCM's tag
 * checks every byte of the K shards' sealed part at once (DecryptError
 * when one is not what was sealed: see Downloader.blame)
 */
function openShards (rs: ReedSolomon, key: Uint8Array, id: Uint8Array, index: number, plainLength: number, shards: Array<Uint8Array | undefined>, sealed: Uint8Array): Uint8Array {
  const k = rs.k
  const data = shards.slice(0, k).every(s => s != null) ? shards.slice(0, k) as Uint8Array[] : rs.reconstructData(shards)
  const size = sealed.byteLength / k
  data.forEach((shard, c) => {
    if (shard.buffer !== sealed.buffer || shard.byteOffset !== sealed.byteOffset + c * size) {
      sealed.set(shard, c * size)
    }
  })
  return openSegment(key, id, index, sealed.subarray(0, plainLength + TAG_BYTES))
}
