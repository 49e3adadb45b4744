import { DecodeError, Reader, Writer } from '../../protocols/codec.ts'
import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import { peerBytes, peerText, verifySignedBy, withDomain } from '../../protocols/signed.ts'
import { MAX_CONTRACT_MS } from './contract.ts'

/**
 * Shares (PROTOCOL.md 8h): a grant the renter signs with its identity key
 * (the node's libp2p key, the one its contracts carry) that lets a holder
 * read named shards from the renter's hosts with `shared-get`, and the
 * share text a holder is given: the grant, its signature and, per object,
 * what a node that holds none of the owner's words needs to fetch, check
 * and decrypt it. The grant names shard roots, never contracts: a
 * contract is renewed under a new id, and a repaired shard keeps its root
 * (Reed-Solomon is deterministic) on another host, and the share still
 * opens both.
 */

export const GRANT_VERSION = 1
export const SHARE_DOMAIN = new TextEncoder().encode('opencloud-storage-share-v1\n')
/** What a share text starts with; the digit is the version of the text's layout */
export const SHARE_TEXT_PREFIX = 'ocshare1'
/** 16 random bytes: which grant `unshare` revokes */
export const GRANT_ID_BYTES = 16
/**
 * The most roots one grant opens: 32,768 (1 MiB of roots), a 16 GiB file at
 * 4-of-8 in 4 MiB segments. Bounded because the grant is the body of every
 * `shared-get` and the host hashes it for each signature check.
 */
export const MAX_GRANT_ROOTS = 32_768
/** The largest encoded grant: the roots and room for the rest */
export const MAX_GRANT_BYTES = MAX_GRANT_ROOTS * 32 + 1024
/**
 * The longest a share lasts: a year and a day, the longest contract. A host
 * refuses a grant that expires later, so the revocations it keeps (until
 * each grant's expiry) are bounded in time too.
 */
export const MAX_SHARE_MS = MAX_CONTRACT_MS
/** How far past MAX_SHARE_MS from its own clock a host still takes a grant's expiry: 10 minutes, a renter's clock ahead of it */
export const SHARE_CLOCK_SKEW_MS = 600_000

export interface Grant {
  /** PeerId of the renter that signs it (the owner of the shards) */
  renter: string
  /** 16 bytes */
  id: Uint8Array
  /** ms since the epoch; the host refuses it from then on by its own clock */
  expires: number
  /** PeerId of the one caller it lets in; undefined: anyone holding the share */
  holder?: string
  /** 32-byte shard roots, sorted (bytewise) and distinct */
  roots: Uint8Array[]
}

function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength)
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return a[i] - b[i]
    }
  }
  return a.byteLength - b.byteLength
}

/** Roots in the one order a grant carries them: sorted bytewise, each once */
export function sortRoots (roots: Uint8Array[]): Uint8Array[] {
  const sorted = [...roots].sort(compareBytes)
  return sorted.filter((r, i) => i === 0 || compareBytes(sorted[i - 1], r) !== 0)
}

export function encodeGrant (g: Grant): Uint8Array {
  if (g.id.byteLength !== GRANT_ID_BYTES) {
    throw new RangeError('a grant id is 16 bytes')
  }
  const roots = sortRoots(g.roots)
  if (roots.length !== g.roots.length || roots.some((r, i) => r.byteLength !== 32 || compareBytes(r, g.roots[i]) !== 0)) {
    throw new RangeError('a grant\'s roots are 32 bytes each, sorted and distinct (sortRoots)')
  }
  if (roots.length === 0 || roots.length > MAX_GRANT_ROOTS) {
    throw new RangeError(`a grant opens 1 to ${MAX_GRANT_ROOTS} shard roots, not ${roots.length}`)
  }
  const w = new Writer()
    .u8(GRANT_VERSION)
    .bytes(peerBytes(g.renter))
    .bytes(g.id)
    .varint(g.expires)
    .bytes(g.holder == null ? new Uint8Array(0) : peerBytes(g.holder))
    .varint(roots.length)
  for (const root of roots) {
    w.raw(root)
  }
  return w.finish()
}

export function decodeGrant (bytes: Uint8Array): Grant {
  if (bytes.byteLength > MAX_GRANT_BYTES) {
    throw new DecodeError(`a grant is at most ${MAX_GRANT_BYTES} bytes`)
  }
  const r = new Reader(bytes)
  r.version(GRANT_VERSION, 'grant')
  const renter = peerText(r.bytes(128, 'the renter'), 'the renter')
  const id = r.bytes(GRANT_ID_BYTES, 'the grant id')
  if (id.byteLength !== GRANT_ID_BYTES) {
    throw new DecodeError('the grant id is 16 bytes')
  }
  const expires = r.varint('expires')
  const holderBytes = r.bytes(128, 'the holder')
  const holder = holderBytes.byteLength === 0 ? undefined : peerText(holderBytes, 'the holder')
  const count = r.count(MAX_GRANT_ROOTS, 'shard roots')
  if (count === 0) {
    throw new DecodeError('a grant opens at least one shard root')
  }
  const roots: Uint8Array[] = []
  for (let i = 0; i < count; i++) {
    const root = r.raw(32, 'a shard root')
    // one order, so one grant has one encoding and a lookup is a binary search
    if (i > 0 && compareBytes(roots[i - 1], root) >= 0) {
      throw new DecodeError('the shard roots of a grant are sorted and distinct')
    }
    roots.push(root)
  }
  r.end('the grant')
  return { renter, id, expires, ...(holder == null ? {} : { holder }), roots }
}

/** The renter's signature of an encoded grant: domain-separated, as every signed message (PROTOCOL.md section 7) */
export function signGrant (encoded: Uint8Array, signer: CredentialSigner): Uint8Array {
  return signer.sign(withDomain(SHARE_DOMAIN, encoded))
}

/** Throws InvalidSignatureError unless `renter` signed the grant */
export function verifyGrant (encoded: Uint8Array, renter: string, signature: Uint8Array): void {
  verifySignedBy(renter, signature, withDomain(SHARE_DOMAIN, encoded))
}

/** Whether a grant opens `root` (its roots are sorted: a binary search) */
export function grantOpens (g: Grant, root: Uint8Array): boolean {
  let lo = 0
  let hi = g.roots.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const c = compareBytes(g.roots[mid], root)
    if (c === 0) {
      return true
    }
    if (c < 0) {
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  return false
}

/** The body of `shared-get`: bytes grant || bytes signature */
export function encodeGrantBody (grant: Uint8Array, signature: Uint8Array): Uint8Array {
  return new Writer().bytes(grant).bytes(signature).finish()
}

export function decodeGrantBody (bytes: Uint8Array): { grant: Uint8Array, signature: Uint8Array } {
  const r = new Reader(bytes)
  const grant = r.bytes(MAX_GRANT_BYTES, 'the grant')
  const signature = r.bytes(128, 'the grant signature')
  r.end('the body of shared-get')
  return { grant, signature }
}

/** The largest body of `shared-get` */
export const MAX_GRANT_BODY_BYTES = MAX_GRANT_BYTES + 256

// ---- the share text ----

/** One object of a share: what a holder needs to fetch, check and decrypt it */
export interface SharedObject {
  name: string
  size: number
  /** SHA-256 of the plaintext, hex */
  sha256: string
  k: number
  n: number
  segmentSize: number
  /** the object id (16 bytes, hex): the additional data of each sealed segment */
  id: string
  /** the object's own key (crypto.ts objectKey): this object's only, never the storage key */
  key: Uint8Array
  segments: Array<{ plainLength: number, shardSize: number, shards: Array<{ host: string, root: string }> }>
}

/** What a host charged the renter for a get when the share was made: what its shared-get costs the holder */
export interface HostPrice {
  /** the terms' version (1: per GiB, rounded up; 2: per TiB, rounded down) */
  version: 1 | 2
  /** satoshis per TiB downloaded (version 1: per GiB) */
  downloadPrice: bigint
}

export interface ShareText {
  /** the encoded grant, as signed */
  grant: Uint8Array
  signature: Uint8Array
  /** the folder shared ("PREFIX/", each object's name under it), or '' for one object */
  folder: string
  objects: SharedObject[]
  /**
   * each host's get price under the renter's contract when the share was
   * made, so the holder pays it with its first call; a host missing here
   * (or whose contract was renewed at another price since) is paid what
   * its first refusal names
   */
  prices?: Map<string, HostPrice>
}

const MAX_SHARE_OBJECTS = 100_000
const MAX_NAME_BYTES = 4096

/**
 * The share text (PROTOCOL.md 8h, "The share text"): `ocshare1` then
 * base64url, without padding, of bytes grant || bytes signature || string
 * folder ('' for one object) || the hosts (a count, then each PeerId's bytes, its terms' version and its
 * download price; version 0 and price 0 when not known) || the objects (a count, then
 * each: string name, varint size, 32 bytes sha256, varint k, n and segment
 * size, bytes id (16 today), 32 bytes key, a count of segments, each varint plain
 * length, varint shard size and its n shards as varint host index || 32
 * bytes root). The host table keeps a PeerId (38 bytes) out of every shard.
 */
export function encodeShareText (share: ShareText): string {
  const hosts: string[] = []
  const index = new Map<string, number>()
  for (const o of share.objects) {
    for (const s of o.segments) {
      for (const x of s.shards) {
        if (!index.has(x.host)) {
          index.set(x.host, hosts.length)
          hosts.push(x.host)
        }
      }
    }
  }
  const w = new Writer().bytes(share.grant).bytes(share.signature).string(share.folder).varint(hosts.length)
  for (const host of hosts) {
    const price = share.prices?.get(host)
    w.bytes(peerBytes(host)).u8(price?.version ?? 0).varint(Number(price?.downloadPrice ?? 0n))
  }
  w.varint(share.objects.length)
  for (const o of share.objects) {
    w.string(o.name).varint(o.size).raw(Buffer.from(o.sha256, 'hex')).varint(o.k).varint(o.n).varint(o.segmentSize)
      .bytes(Buffer.from(o.id, 'hex')).raw(o.key).varint(o.segments.length)
    for (const s of o.segments) {
      if (s.shards.length !== o.n) {
        throw new RangeError(`segment of "${o.name}" has ${s.shards.length} shards, not ${o.n}`)
      }
      w.varint(s.plainLength).varint(s.shardSize)
      for (const x of s.shards) {
        w.varint(index.get(x.host)!).raw(Buffer.from(x.root, 'hex'))
      }
    }
  }
  return SHARE_TEXT_PREFIX + Buffer.from(w.finish()).toString('base64url')
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

/** Reads a share text; throws DecodeError saying what is wrong with it */
export function decodeShareText (text: string): ShareText {
  const trimmed = text.trim()
  if (!trimmed.startsWith(SHARE_TEXT_PREFIX)) {
    throw new DecodeError(`a share starts with "${SHARE_TEXT_PREFIX}"; this text starts with "${trimmed.slice(0, 8)}"`)
  }
  const body = trimmed.slice(SHARE_TEXT_PREFIX.length)
  if (!/^[A-Za-z0-9_-]*$/.test(body)) {
    throw new DecodeError('a share is "ocshare1" and base64url (A-Z a-z 0-9 - _); this one has other characters (cut or wrapped when it was copied?)')
  }
  const r = new Reader(Buffer.from(body, 'base64url'))
  const grant = r.bytes(MAX_GRANT_BYTES, 'the grant')
  const signature = r.bytes(128, 'the grant signature')
  const folder = r.string(MAX_NAME_BYTES, 'the folder')
  const hosts: string[] = []
  const prices = new Map<string, HostPrice>()
  const hostCount = r.count(MAX_GRANT_ROOTS, 'hosts')
  for (let i = 0; i < hostCount; i++) {
    const host = peerText(r.bytes(128, 'a host'), 'a host')
    const version = r.u8('a host\'s terms version')
    const downloadPrice = BigInt(r.varint('a host\'s download price'))
    if (version !== 0 && version !== 1 && version !== 2) {
      throw new DecodeError(`host ${host} has terms of version ${version}, which this node does not know`)
    }
    hosts.push(host)
    if (version !== 0) {
      prices.set(host, { version, downloadPrice })
    }
  }
  const objects: SharedObject[] = []
  const objectCount = r.count(MAX_SHARE_OBJECTS, 'objects')
  for (let i = 0; i < objectCount; i++) {
    const name = r.string(MAX_NAME_BYTES, 'the name')
    const size = r.varint('the size')
    const sha256 = hex(r.raw(32, 'the SHA-256'))
    const k = r.varint('k')
    const n = r.varint('n')
    const segmentSize = r.varint('the segment size')
    if (k < 1 || n < k || n > 255) {
      throw new DecodeError(`"${name}" is stored ${k}-of-${n}, which is not a redundancy (1 <= K <= N <= 255)`)
    }
    const id = hex(r.bytes(64, 'the object id'))
    const key = Uint8Array.from(r.raw(32, 'the object key'))
    const segments: SharedObject['segments'] = []
    const segmentCount = r.count(MAX_GRANT_ROOTS, 'segments')
    for (let j = 0; j < segmentCount; j++) {
      const plainLength = r.varint('a segment\'s plain length')
      const shardSize = r.varint('a segment\'s shard size')
      const shards: Array<{ host: string, root: string }> = []
      for (let s = 0; s < n; s++) {
        const at = r.varint('a host index')
        if (at >= hosts.length) {
          throw new DecodeError(`host index ${at} is past the ${hosts.length} hosts of the share`)
        }
        shards.push({ host: hosts[at], root: hex(r.raw(32, 'a shard root')) })
      }
      segments.push({ plainLength, shardSize, shards })
    }
    objects.push({ name, size, sha256, k, n, segmentSize, id, key, segments })
  }
  r.end('the share')
  if (folder !== '' && (!folder.endsWith('/') || objects.some(o => !o.name.startsWith(folder) || o.name.length === folder.length))) {
    throw new DecodeError(`the share is of the folder "${folder}", and names an object outside it`)
  }
  return { grant, signature, folder, objects, prices }
}
