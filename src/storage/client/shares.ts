import { randomBytes } from 'node:crypto'
import { isAbsolute, join, resolve, sep, basename } from 'node:path'
import { mkdir, stat } from 'node:fs/promises'
import { logger } from '@libp2p/logger'
import { Key, type Datastore } from 'interface-datastore'
import { DecodeError } from '../../protocols/codec.ts'
import { PaymentTooLowError } from '../../protocols/rpc/errors.ts'
import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import { peerBytes } from '../../protocols/signed.ts'
import { parseDuration } from '../../utils/duration.ts'
import { objectKey } from '../protocol/crypto.ts'
import { equalBytes, merkleRoot } from '../protocol/merkle.ts'
import { decodeGrant, decodeShareText, encodeGrant, encodeGrantBody, encodeShareText, GRANT_ID_BYTES, MAX_GRANT_ROOTS, MAX_SHARE_MS, SHARE_CLOCK_SKEW_MS, signGrant, sortRoots, type HostPrice, type SharedObject } from '../protocol/share.ts'
import { TIB, transferCost } from '../protocol/contract.ts'
import { parseBtc } from '../../protocols/units.ts'
import { DEFAULT_SHARE_MS, END_CALL_MS, SHARES } from '../constants.ts'
import { IntegrityError, InvalidShareError, ObjectNotFoundError, OutputExistsError, ShardUnavailableError, ShareExpiredError, ShareHolderError, ShareNotFoundError, ShareNotHeldError, shareRefusalOf } from '../errors.ts'
import { transferTimeoutMs } from './contracts.ts'
import { callSignal, type StorageSession } from './session.ts'
import type { Downloader, ShardFetcher, ShardSource } from './download.ts'
import type { GetOptions, StorageClientComponents } from './interface.ts'
import type { Records, StoredObject } from './records.ts'

const log = logger('opencloud:storage:shares')

const GRANT_ID_HEX = /^[0-9a-f]{32}$/

export { DEFAULT_SHARE_MS, SHARES }

/** A share as its owner keeps it (`store shares`) */
export interface ShareRecord {
  /** the grant id, hex: what `store unshare` takes */
  id: string
  /** what was shared: an object's name, or a folder "PREFIX/" */
  what: string
  objects: Array<{ id: string, name: string }>
  /** the one PeerId it lets in; null: anyone holding the share (a link) */
  holder: string | null
  createdAt: number
  expires: number
  /** how many shard roots it opens */
  roots: number
  /** the hosts that held one of its shards when it was made */
  hosts: string[]
  /** when `store unshare` revoked it */
  revokedAt?: number
  /** hosts not told of the revocation yet: told at each check until they are, or until it expires */
  untold?: string[]
  /** the hosts told of its revocation: a host a repair moves its shards to later is told too (retryUntold) */
  told?: string[]
}

export interface ShareOptions {
  /** the one PeerId that may use it; absent: anyone holding the share */
  to?: string
  /** one version of the name (1-based; Records.findVersion), not the current one */
  version?: number
  /** how long it lasts, default DEFAULT_SHARE_MS, at most MAX_SHARE_MS */
  expiresInMs?: number
  now?: number
}

export interface FetchedObject {
  name: string
  size: number
  sha256: string
  out: string
}

export interface SharesComponents extends Pick<StorageClientComponents, 'prepay'> {
  /** this node's PeerId: the renter its contracts carry, and so the grants' */
  peerId: string
  signer: CredentialSigner
  datastore: Datastore
  storageKey: () => Uint8Array
  records: Pick<Records, 'find' | 'findVersion' | 'list' | 'contracts'>
  session: StorageSession
  downloader: Pick<Downloader, 'getShared' | 'sharedStream'>
  /** bytes per second under which a shard transfer is given up on */
  minThroughput: number
}

const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

/** "7d", "12h", "90min", or ms; at most 366 days */
export function parseShareExpiry (text: string | number | undefined, what = '--expires'): number {
  if (text == null) {
    return DEFAULT_SHARE_MS
  }
  let ms: number
  try {
    ms = typeof text === 'number' ? text : parseDuration(String(text), what)
  } catch (err: any) {
    throw new InvalidShareError(err.message)
  }
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms > MAX_SHARE_MS) {
    throw new InvalidShareError(`${what} "${String(text)}" is not a share's life: from a minute to ${MAX_SHARE_MS / 86_400_000} days (hosts refuse longer ones)`)
  }
  return ms
}

/**
 * A stored name as a path under `dir`, refused when it would land outside
 * it: a share's names come from its owner, and a holder must not have a
 * file written anywhere a crafted name points ("../../.bashrc", "/etc/x")
 */
export function pathUnder (dir: string, name: string): string {
  const parts = name.split('/')
  if (name.startsWith('/') || parts.some(p => p === '' || p === '.' || p === '..' || p.includes('\\') || /[\u0000-\u001f]/.test(p))) {
    throw new InvalidShareError(`the share names "${name}", which is not a relative path of plain names: nothing was written`)
  }
  const root = resolve(dir)
  const out = resolve(root, ...parts)
  if (!out.startsWith(root + sep)) {
    throw new InvalidShareError(`the share names "${name}", which is outside ${root}: nothing was written`)
  }
  return out
}

/** A shared object as the downloader takes it: no contracts, each shard its host and root */
function objectOf (o: SharedObject): StoredObject {
  return {
    id: o.id,
    name: o.name,
    size: o.size,
    sha256: o.sha256,
    createdAt: 0,
    k: o.k,
    n: o.n,
    segmentSize: o.segmentSize,
    segments: o.segments.map(s => ({ plainLength: s.plainLength, shardSize: s.shardSize, shards: s.shards.map(x => ({ host: x.host, contract: '', root: x.root })) })),
    contracts: {}
  }
}

/**
 * Sharing (PROTOCOL.md 8h). The owner's side: `share` signs a grant for
 * the shards of an object or a folder and writes the share text (with each
 * object's own key, never the storage key); `unshare` tells every host
 * that holds one of its shards to refuse it until its expiry. The holder's
 * side: `fetch` reads a share text and gets each object shard by shard
 * with shared-get, K of N per segment as a get does, checked and decrypted
 * with the key the share carries: it needs none of the owner's words.
 */
export class Shares {
  private readonly components: SharesComponents

  constructor (components: SharesComponents) {
    this.components = components
  }

  /** The current objects a name or a folder ("PREFIX/") names, or one version of a name */
  private async objectsOf (what: string, version?: number): Promise<StoredObject[]> {
    if (version != null) {
      if (what.endsWith('/')) {
        throw new InvalidShareError(`--version picks a version of one file, and "${what}" is a folder: its share is of each file's current version`)
      }
      return [await this.components.records.findVersion(what, version)]
    }
    if (!what.endsWith('/')) {
      return [await this.components.records.find(what)]
    }
    // the current version of each name only (an old version is shared by its name and --version)
    const objects = (await this.components.records.list()).filter(o => o.name.startsWith(what) && o.supersededAt == null)
    if (objects.length === 0) {
      throw new ObjectNotFoundError(`nothing is stored under "${what}": see store ls`)
    }
    return objects
  }

  /** Make a share of an object or a folder; resolves with its record and the share text */
  async share (what: string, options: ShareOptions = {}): Promise<{ share: ShareRecord, text: string }> {
    const { peerId, signer, storageKey, datastore } = this.components
    const expiresInMs = parseShareExpiry(options.expiresInMs, 'the expiry')
    if (options.to != null) {
      try {
        peerBytes(options.to)
      } catch {
        throw new InvalidShareError(`--to takes the PeerId of the node that may use the share (its "id" command prints it), not "${options.to}"`)
      }
    }
    const objects = await this.objectsOf(what, options.version)
    const roots = sortRoots(objects.flatMap(o => o.segments.flatMap(s => s.shards.map(x => Uint8Array.from(Buffer.from(x.root, 'hex'))))))
    if (roots.length > MAX_GRANT_ROOTS) {
      throw new InvalidShareError(`"${what}" has ${roots.length} shards, over the ${MAX_GRANT_ROOTS} one share opens: share a smaller folder, or its files one by one`)
    }
    const now = options.now ?? Date.now()
    const id = randomBytes(GRANT_ID_BYTES)
    const expires = now + expiresInMs
    const grant = encodeGrant({ renter: peerId, id, expires, holder: options.to, roots })
    const signature = signGrant(grant, signer)
    const shared: SharedObject[] = objects.map(o => ({
      name: o.name,
      size: o.size,
      sha256: o.sha256,
      k: o.k,
      n: o.n,
      segmentSize: o.segmentSize,
      id: o.id,
      key: objectKey(storageKey(), Buffer.from(o.id, 'hex')),
      segments: o.segments.map(s => ({ plainLength: s.plainLength, shardSize: s.shardSize, shards: s.shards.map(x => ({ host: x.host, root: x.root })) }))
    }))
    const record: ShareRecord = {
      id: id.toString('hex'),
      what: options.version == null ? what : `${what} (version ${options.version})`,
      objects: objects.map(o => ({ id: o.id, name: o.name })),
      holder: options.to ?? null,
      createdAt: now,
      expires,
      roots: roots.length,
      hosts: hostsOf(objects)
    }
    await datastore.put(new Key(`${SHARES}/${record.id}`), enc(record))
    return { share: record, text: encodeShareText({ grant, signature, objects: shared, folder: what.endsWith('/') ? what : '', prices: pricesOf(objects) }) }
  }

  /** Every share this node made, newest first */
  async list (): Promise<ShareRecord[]> {
    const out: ShareRecord[] = []
    for await (const { value } of this.components.datastore.query({ prefix: SHARES })) {
      out.push(dec<ShareRecord>(value))
    }
    return out.sort((a, b) => b.createdAt - a.createdAt)
  }

  private async save (record: ShareRecord): Promise<void> {
    await this.components.datastore.put(new Key(`${SHARES}/${record.id}`), enc(record))
  }

  /**
   * Revoke a share by its id, or every live share of an object or folder
   * by the name it was made for (or a name it covers): each host that held
   * one of its shards then, or holds one now (a repair may have moved
   * some), is told to refuse it until its expiry. Resolves with the shares
   * revoked and the hosts that could not be told (each retried at the next
   * check: retryUntold).
   */
  async unshare (idOrName: string, signal?: AbortSignal): Promise<{ revoked: ShareRecord[], unreachable: string[] }> {
    const now = Date.now()
    const all = await this.list()
    const byId = all.filter(s => s.id === idOrName)
    const matching = byId.length > 0 ? byId : all.filter(s => s.revokedAt == null && s.expires > now && (s.what === idOrName || s.objects.some(o => o.name === idOrName || o.id === idOrName)))
    // an object's id is 32 hex digits too: one stored here is not taken for a grant's
    const isObject = async (): Promise<boolean> => this.components.records.find(idOrName).then(() => true, () => false)
    if (matching.length === 0 && GRANT_ID_HEX.test(idOrName) && !await isObject()) {
      matching.push(await this.unrecorded(idOrName, now))
    }
    if (matching.length === 0) {
      throw new ShareNotFoundError(`no live share has id or names "${idOrName}": see store shares`)
    }
    const unreachable: string[] = []
    for (const share of matching) {
      if (share.revokedAt == null) {
        share.revokedAt = now
        share.untold = [...new Set([...share.hosts, ...await this.currentHosts(share)])]
        await this.save(share)
      }
      unreachable.push(...await this.tell(share, signal))
    }
    return { revoked: matching, unreachable }
  }

  /**
   * A grant id this node has no record of (a share made before its data
   * directory was lost and restored from the words: the same identity signs
   * again, decision 1 of issue 21): revoked at every host this node has a
   * live contract with, until the latest a host accepts a grant to expire
   */
  private async unrecorded (id: string, now: number): Promise<ShareRecord> {
    const hosts = [...new Set(this.components.records.contracts.entries().filter(([, c]) => c.ended == null).map(([, c]) => c.host))].sort()
    const record: ShareRecord = { id, what: '(not recorded here)', objects: [], holder: null, createdAt: now, expires: now + MAX_SHARE_MS + SHARE_CLOCK_SKEW_MS, roots: 0, hosts }
    await this.save(record)
    return record
  }

  /** The hosts of the share's objects now (a repair moves shards, with their roots, to other hosts) */
  private async currentHosts (share: ShareRecord): Promise<string[]> {
    const objects: StoredObject[] = []
    for (const { id } of share.objects) {
      try {
        objects.push(await this.components.records.find(id))
      } catch {}
    }
    return hostsOf(objects)
  }

  /** Tell the share's untold hosts of its revocation; resolves with why each that could not be told was not */
  private async tell (share: ShareRecord, signal?: AbortSignal): Promise<string[]> {
    const failed: string[] = []
    const told = new Set<string>()
    await Promise.all((share.untold ?? []).map(async host => {
      try {
        await this.components.session.unshare(host, share.id, share.expires, callSignal(signal ?? AbortSignal.timeout(END_CALL_MS), END_CALL_MS))
        told.add(host)
      } catch (err: any) {
        failed.push(`${host} (${err.message}); told again at the next check until it expires at ${new Date(share.expires).toISOString()}`)
      }
    }))
    share.untold = (share.untold ?? []).filter(h => !told.has(h))
    share.told = [...new Set([...(share.told ?? []), ...told])].sort()
    await this.save(share)
    return failed
  }

  /** At each check: the hosts not told yet of a revoked share that has not expired */
  async retryUntold (signal?: AbortSignal): Promise<number> {
    const now = Date.now()
    let told = 0
    for (const share of await this.list()) {
      if (share.revokedAt == null) {
        continue
      }
      if (share.expires > now && share.objects.length > 0) {
        // a repair may have moved its roots to a host never told: it would serve them
        const told = new Set([...(share.told ?? []), ...(share.untold ?? [])])
        const moved = (await this.currentHosts(share)).filter(h => !told.has(h))
        if (moved.length > 0) {
          share.untold = [...(share.untold ?? []), ...moved]
          await this.save(share)
        }
      }
      if ((share.untold ?? []).length === 0) {
        continue
      }
      if (share.expires <= now) {
        // expired: every host refuses it anyway
        share.untold = []
        await this.save(share)
        continue
      }
      signal?.throwIfAborted()
      const before = share.untold!.length
      const failed = await this.tell(share, signal)
      told += before - failed.length
      if (failed.length > 0) {
        log('share %s: %d hosts still not told of its revocation', share.id, failed.length)
      }
    }
    return told
  }

  /**
   * The holder's side: fetch every object of a share text. One object goes
   * to `out` when given (into it, by its name's last part, when `out` is a
   * directory), else to its name's last part in `dir`. A folder's objects
   * go under `out` by their names within the folder (as `store get
   * PREFIX/ --out DIR` writes them), else under the folder's last part in
   * `dir`; each path is checked to stay inside. Nothing of
   * the owner's is needed: the shards come from the hosts with shared-get
   * (paid by this node), the key from the share.
   */
  async fetch (text: string, target: { out?: string, dir?: string }, options: GetOptions = {}): Promise<FetchedObject[]> {
    let share
    let grant
    try {
      share = decodeShareText(text)
      grant = decodeGrant(share.grant)
    } catch (err: any) {
      throw err instanceof DecodeError ? new InvalidShareError(`the share does not read: ${err.message}`) : err
    }
    if (grant.expires <= Date.now() - SHARE_CLOCK_SKEW_MS) {
      // said here too, past any skew between clocks: the hosts refuse it, each by its own
      throw new ShareExpiredError(`the share expired at ${new Date(grant.expires).toISOString()}: ask its owner for a new one`)
    }
    if (share.objects.length === 0) {
      throw new InvalidShareError('the share names no object')
    }
    if (grant.holder != null && grant.holder !== this.components.peerId) {
      // the hosts would refuse every shard: said before one is asked for
      throw new ShareHolderError(`this share is for ${grant.holder}, and this node is ${this.components.peerId}: only that node can use it (ask the owner for a share --to this node, or a --link)`)
    }
    const dir = target.dir ?? process.cwd()
    const { folder } = share
    // every path is checked before a byte is fetched: a bad name writes nothing
    let outs: string[]
    if (folder !== '') {
      const root = target.out ?? pathUnder(dir, basename(folder.slice(0, -1)))
      if (await stat(root).then(s => !s.isDirectory(), () => false)) {
        throw new InvalidShareError(`the share is of the folder ${folder}, and ${root} is a file: give a directory`)
      }
      outs = share.objects.map(o => pathUnder(root, o.name.slice(folder.length)))
    } else {
      if (share.objects.length !== 1) {
        throw new InvalidShareError(`the share names ${share.objects.length} objects and no folder`)
      }
      const name = basename(pathUnder(dir, share.objects[0].name))
      outs = [target.out == null ? join(dir, name) : await stat(target.out).then(s => s.isDirectory(), () => false) ? join(target.out, name) : target.out]
    }
    for (const out of outs) {
      if (!isAbsolute(out)) {
        throw new InvalidShareError(`${out} is not an absolute path`)
      }
    }
    if (options.overwrite !== true) {
      // all or nothing: a folder is not left half fetched over files that were there
      const existing = (await Promise.all(outs.map(async out => stat(out).then(() => out, () => undefined)))).filter(o => o != null)
      if (existing.length > 0) {
        throw new OutputExistsError(`nothing is fetched: ${existing.length} of the ${outs.length} files exist already (${existing.slice(0, 5).join(', ')}${existing.length > 5 ? ', ...' : ''}); choose another --out or pass --force to replace them`)
      }
    }
    const body = encodeGrantBody(share.grant, share.signature)
    await this.prepay(share.objects, share.prices ?? new Map(), options.signal)
    const fetched: FetchedObject[] = []
    const total = share.objects.reduce((n, o) => n + o.size, 0)
    let before = 0
    for (const [i, o] of share.objects.entries()) {
      const object = objectOf(o)
      const source = this.sourceOf(o, body, share.prices ?? new Map())
      await mkdir(resolve(outs[i], '..'), { recursive: true })
      const base = before
      try {
        await this.components.downloader.getShared(object, source, outs[i], {
          ...options,
          onProgress: options.onProgress == null ? undefined : (p) => { options.onProgress?.({ ...p, done: base + p.done, total }) }
        })
      } catch (err) {
        throw source.refusal(err)
      }
      before += o.size
      fetched.push({ name: o.name, size: o.size, sha256: o.sha256, out: outs[i] })
    }
    return fetched
  }

  /**
   * What the fetch is about to pay each host (K of its N shards a segment,
   * spread over the hosts as the slots are), so the node opens a payment
   * channel where its strategy says one is cheaper than a payment per shard
   * (PaymentAgent.prepay), as a put does for its hosts
   */
  private async prepay (objects: SharedObject[], prices: Map<string, HostPrice>, signal?: AbortSignal): Promise<void> {
    if (this.components.prepay == null) {
      return
    }
    const expected = new Map<string, { sats: bigint, calls: number }>()
    for (const o of objects) {
      for (const s of o.segments) {
        for (const x of s.shards) {
          const p = prices.get(x.host)
          const e = expected.get(x.host) ?? { sats: 0n, calls: 0 }
          // each slot is asked for K / N of the time, on average
          e.sats += p == null ? 0n : transferCost(p.version, p.downloadPrice, s.shardSize) * BigInt(o.k) / BigInt(o.n)
          e.calls += o.k / o.n
          expected.set(x.host, e)
        }
      }
    }
    const payees = [...expected].filter(([, e]) => e.sats > 0n).map(([peer, e]) => ({ peer, sats: e.sats, calls: Math.ceil(e.calls), method: 'storage.shared-get' }))
    if (payees.length > 0) {
      try {
        await this.components.prepay(payees, signal ?? AbortSignal.timeout(60_000))
      } catch (err: any) {
        signal?.throwIfAborted()
        // each shard is then paid as it is fetched, as without a channel
        log('no payment channel opened for the fetch - %s', err.message)
      }
    }
  }

  /**
   * How a holder fetches one shard: shared-get with the grant, paying what
   * the host asks (the renter's contract's get price per TiB: learned from
   * its first too-low refusal, then paid up front), the bytes checked
   * against the root. A host's refusal of the share itself (expired,
   * revoked, out of scope, another holder, a bad signature) is kept: when
   * no segment could be made up, that is what the fetch says.
   */
  private sourceOf (o: SharedObject, body: Uint8Array, hostPrices: Map<string, HostPrice>): ShardSource & { refusal: (err: unknown) => unknown } {
    const { session, minThroughput } = this.components
    /** "host size" -> what a host asked in a refusal, paid from then on */
    const prices = new Map<string, bigint>()
    const priceOf = (host: string, size: number): bigint => {
      const asked = prices.get(`${host} ${size}`)
      if (asked != null) {
        return asked
      }
      const p = hostPrices.get(host)
      return p == null ? 0n : transferCost(p.version, p.downloadPrice, size)
    }
    /** host -> its refusal of the share itself */
    const refusals = new Map<string, Error>()
    const ask = async (host: string, root: string, size: number, signal: AbortSignal): Promise<Uint8Array> => {
      const key = `${host} ${size}`
      try {
        return await session.sharedGet(host, root, 0, size, body, priceOf(host, size), callSignal(signal, transferTimeoutMs(size, minThroughput)))
      } catch (err: any) {
        // the contract was renewed at another price since the share was
        // made (or the share names none): the refusal names what it costs
        // (an attached payment's is at least the dust limit)
        const asked = err instanceof PaymentTooLowError ? err.acceptablePayment?.amount : undefined
        if (asked == null || prices.has(key)) {
          throw err
        }
        let sats: bigint
        try {
          sats = parseBtc(asked)
        } catch {
          throw err
        }
        prices.set(key, sats)
        return session.sharedGet(host, root, 0, size, body, sats, callSignal(signal, transferTimeoutMs(size, minThroughput)))
      }
    }
    const fetch: ShardFetcher = async (object, index, slot, transfer, signal) => {
      const segment = object.segments[index]
      const shard = segment.shards[slot]
      let bytes: Uint8Array
      try {
        bytes = await ask(shard.host, shard.root, segment.shardSize, signal)
      } catch (err: any) {
        if (signal.aborted) {
          throw err
        }
        transfer.avoid.add(shard.host)
        const refusal = shareRefusalOf(err)
        if (refusal !== err && !(refusal instanceof ShareNotHeldError)) {
          refusals.set(shard.host, refusal as Error)
        }
        throw refusal
      }
      if (bytes.byteLength !== segment.shardSize || !equalBytes(merkleRoot(bytes), Buffer.from(shard.root, 'hex'))) {
        transfer.avoid.add(shard.host)
        throw new IntegrityError(`host ${shard.host} sent bytes that do not match shard ${shard.root} (segment ${index})`)
      }
      return bytes
    }
    return {
      key: o.key,
      fetch,
      refusal: (err) => {
        if (!(err instanceof ShardUnavailableError) || refusals.size === 0) {
          return err
        }
        const first = [...refusals.values()][0]
        const ErrorClass = first.constructor as new (message: string) => Error
        const hosts = refusals.size
        return new ErrorClass(`${first.message} (${hosts === 1 ? 'a host' : `${hosts} hosts`} of "${o.name}" refused it, and not enough shards could be fetched without them)`)
      }
    }
  }
}

/**
 * Each host's get price under the objects' contracts with it (the highest,
 * when there are several: a holder paying a little more is served, one
 * paying less is refused)
 */
function pricesOf (objects: StoredObject[]): Map<string, HostPrice> {
  const prices = new Map<string, HostPrice>()
  for (const o of objects) {
    for (const c of Object.values(o.contracts)) {
      if (c.ended != null) {
        continue
      }
      const price: HostPrice = { version: c.version ?? 1, downloadPrice: BigInt(c.downloadPrice) }
      const known = prices.get(c.host)
      if (known == null || transferCost(price.version, price.downloadPrice, TIB) > transferCost(known.version, known.downloadPrice, TIB)) {
        prices.set(c.host, price)
      }
    }
  }
  return prices
}

function hostsOf (objects: StoredObject[]): string[] {
  return [...new Set(objects.flatMap(o => o.segments.flatMap(s => s.shards.map(x => x.host))))].sort()
}
