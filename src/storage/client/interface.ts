import type { CallRequest, CallResponse } from '../../protocols/rpc/rpc-client.ts'
import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import type { Datastore } from 'interface-datastore'

/**
 * The storage client's public types: what it is given (components, init)
 * and what its put and get take. A leaf file: every part of the client
 * imports it, and it imports none of them.
 */

/** A host's storage offer from the market: satoshis per TiB-month stored, per TiB up and down */
export interface HostOffer {
  peer: string
  storage: bigint
  upload: bigint
  download: bigint
}

/** A call to a host that pays `sats` (0: unpaid), deferred where the host gives credit */
export type StorageCall = (peer: string, request: CallRequest, sats: bigint) => Promise<CallResponse>

export interface StorageClientComponents {
  peerId: string
  signer: CredentialSigner
  datastore: Datastore
  /** the wallet's storage key (HKDF of the BIP39 seed) */
  storageKey: () => Uint8Array
  /**
   * the wallet's index key (HKDF of the BIP39 seed, PROTOCOL.md 8g): the
   * object index is kept at the hosts under it. Optional: without it no
   * index is kept, and nothing can be recovered from the words
   */
  indexKey?: () => Uint8Array
  /** hosts offering storage, best first by price and trust */
  hosts: () => Promise<HostOffer[]>
  /** a host's trust score (1 is the average peer, 0 none); hosts below minTrust are migrated away from */
  trust?: (peer: string) => number
  /** a call to a host that pays `sats` (0: unpaid), deferred where the host gives credit */
  call: StorageCall
  /**
   * The hosts a put is about to pay, each about `sats` in `calls` paid calls
   * over the contract: the node opens payment channels to them in one funding
   * transaction where its payment strategy says a channel is worth it
   * (PaymentAgent.prepay). Optional: without it every call pays as `call` does.
   */
  prepay?: (payees: Array<{ peer: string, sats: bigint, calls: number, method: string }>, signal: AbortSignal) => Promise<void>
  /**
   * Whether a peer answers at all (a libp2p ping) within the signal's time:
   * the put's overdrive tells a frozen host from a slow one with it.
   * Optional: without it a stalled transfer is judged by time alone.
   */
  alive?: (peer: string, signal: AbortSignal) => Promise<boolean>
  /** a reputation record of a host that failed or cheated */
  rate?: (peer: string, event: 'corrupt' | 'failed', method: string) => void
  /** a reputation record of a host when its contract ends: how it served */
  rateContract?: (peer: string, satisfactory: boolean) => void
}

/** The client's settings; each default is in src/storage/constants.ts with the reason for it */
export interface StorageClientInit {
  /** plaintext bytes per segment, the unit held in memory while it is coded, default 4 MiB (DEFAULT_SEGMENT_SIZE) */
  segmentSize?: number
  /** segments coded and uploaded at once, default 3 (DEFAULT_SEGMENTS_IN_FLIGHT) */
  segmentsInFlight?: number
  /** segments held in memory at once by all transfers together (puts, gets and repairs), default 4 (DEFAULT_SEGMENT_SLOTS) */
  segmentSlots?: number
  /** contract length, default 30 days */
  durationMs?: number
  /**
   * the room a new contract with a host reserves beyond what the put that
   * forms it needs, default 256 MiB (DEFAULT_CONTRACT_ALLOWANCE); a further
   * contract with the same host reserves twice the largest before it. One
   * contract per host holds every object's shards there until it is full.
   */
  contractAllowance?: number
  /** how often rent falls due, default 1 day */
  rentPeriodMs?: number
  /** how often the daemon checks for rent to pay (and runs the rest of the upkeep), default 60 s */
  rentCheckMs?: number
  /** a shard upload slower than this many bytes per second is given to another host, default 64 KiB/s */
  minThroughput?: number
  /**
   * a shard download that has not finished after this long, plus its size
   * at 1 MiB/s, asks another host too, default 5 s; its host is then asked
   * last for the rest of the transfer
   */
  hedgeMs?: number
  /**
   * each contract is audited (one shard, 4 leaves) about this often, default
   * 6 h, spread at random over 0.5x to 1.5x so audits do not come in bursts
   */
  auditIntervalMs?: number
  /**
   * a host that cannot be reached is audited again, and condemned only when
   * it has been unreachable this long, default 1 h: a restart is not cheating
   */
  auditGraceMs?: number
  /**
   * how many of a segment's N shards may be lost before the object is
   * repaired, default half the margin, ceil((N-K)/2) (4-of-8: 2; 2-of-4: 1;
   * 10-of-30: 10). A repair fetches K shards per segment however many it
   * rebuilds, so waiting for a second loss halves the repair traffic, while
   * half the margin is still left to survive the losses until it is done
   */
  repairAfterLost?: (k: number, n: number) => number
  /**
   * a repair that could not put every lost shard back waits this long
   * before the upkeep tries it again, doubling with each attempt up to 6 h
   * (the audit interval), default 10 minutes; a host that signed a repair's
   * contract and then failed its upload is offered no shard of that object
   * for twice as long, doubling with each failure the same way. Each
   * attempt can pay a rent period to a new host and download K shards of
   * each segment, so a repair that cannot finish must not do so at every
   * check; a new loss (a get or an audit finds one) starts it again at
   * once, and `repair()` runs it now.
   */
  repairRetryMs?: number
  /**
   * how many removed objects `store info` can still show (their contracts
   * and the ratings they ended with), default 1,000: the oldest are
   * forgotten past that (the ratings stay under /storage/ratings)
   */
  keepRemoved?: number
  /**
   * contracts are renewed (same host, same length, shards carried over)
   * when this little is left, default 7 days or a third of the contract's
   * length if that is less
   */
  renewBeforeMs?: number
  /** a host whose storage price has risen above this multiple of the market's median is migrated away from, default 3 */
  migrateAbovePrice?: number
  /** a host whose trust score falls below this is migrated away from, default 0 (off: DEFAULT_MIN_TRUST says why) */
  minTrust?: number
  /**
   * a host whose trust score falls under this fraction of what it was when
   * its contract formed is migrated away from, default 0.25 (only hosts
   * that had a score of at least 0.5 then: DEFAULT_TRUST_DROP)
   */
  trustDrop?: number
  /** a trust score under minTrust or trustDrop moves data away only once it has stayed there this long, default 1 h */
  trustGraceMs?: number
  /**
   * how long a version stays after a newer one of its name is stored,
   * default 30 days (DEFAULT_VERSIONS_KEPT_FOR_MS); 0 keeps only the
   * current version. The upkeep removes older ones (their shards deleted
   * as `store rm` does) and keeps a record that says when.
   */
  versionsKeptForMs?: number
  /**
   * how long a shard this node did not put itself (ContractRecord.learned)
   * must have been named by nothing before the periodic check takes it,
   * default 21600000 ms (6 h,
   * DEFAULT_ORPHAN_GRACE_MS): a put under way on another machine with the
   * same words names its shards only when it commits
   */
  orphanGraceMs?: number
}

/** What a transfer reports as it goes */
export interface Progress {
  phase: 'contracts' | 'upload' | 'download'
  done: number
  total: number
  message?: string
}

/**
 * What a put stores: a file's path, or a byte stream with its size. The
 * size is needed up front: each host's contract is signed for the bytes it
 * will hold before the first byte is sent, and the segments' sizes follow
 * from it. A stream that ends before `size` bytes, or goes on after, is
 * refused (StreamSizeError) and nothing is stored.
 */
export type PutSource = string | { stream: AsyncIterable<Uint8Array>, size: number }

export interface PutOptions {
  /** the object's name; default the file's name (a stream has none: required) */
  name?: string
  /** K-of-N; default from the number of hosts (defaultRedundancy) */
  k?: number
  n?: number
  durationMs?: number
  /** the most to pay per TiB-month stored, satoshis */
  maxStoragePrice?: bigint
  /**
   * what a gateway keeps with the object (an S3 ETag, Content-Type, user
   * metadata): strings by name, kept in its record and its index note, so
   * they come back with it on another machine. A function is asked when the
   * object commits, after its last byte was read (an ETag is the MD5 of
   * what was read). Default none.
   */
  meta?: Record<string, string> | (() => Record<string, string>)
  /** store a file even if it is identical (size and SHA-256) to the current version of its name (default false: ObjectUnchangedError) */
  force?: boolean
  signal?: AbortSignal
  onProgress?: (p: Progress) => void
}

export interface GetOptions {
  signal?: AbortSignal
  /** which version of the name (1-based; default the current one) */
  version?: number
  /**
   * only these bytes of the plaintext, from `start` up to `end` (exclusive,
   * at most the size): only the segments holding them are fetched, and the
   * whole object's SHA-256 is not checked (each segment's tag is). Default
   * the whole object.
   */
  range?: { start: number, end: number }
  /** replace a file already at `out` (default false: refuse, before fetching anything) */
  overwrite?: boolean
  onProgress?: (p: Progress) => void
}
