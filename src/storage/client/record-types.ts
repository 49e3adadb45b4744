/**
 * The shapes of the client's records (records.ts keeps them): objects,
 * their segments and shards, the contracts they share, and the puts and
 * gets under way. A leaf file: the records and the contract table both
 * read it.
 */

export interface AuditRecord {
  /** when the last audit ran, and the last one that passed */
  at?: number
  passedAt?: number
  passed: number
  failed: number
  /** the host could not be reached since then (audits retry until auditGraceMs) */
  unreachableSince?: number
  lastError?: string
  next: number
}

export interface ContractRecord {
  /** the terms' version: 2 for contracts formed now (absent in records of version 1 contracts) */
  version?: 1 | 2
  host: string
  /** encodeSigned(terms, renter signature, host signature), base64 */
  signed: string
  start: number
  end: number
  maxBytes: number
  storagePrice: string
  uploadPrice: string
  downloadPrice: string
  rentPeriodMs: number
  rentPaidPeriods: number
  /** version 2: the exact rent charged so far, in RENT_UNITS_PER_SAT (decimal), and the whole satoshis paid for it */
  rentAccrued?: string
  rentPaid?: string
  /**
   * this node's own count of the same sum (its rent and every transfer's
   * fraction, counted when asked), never replaced by a host's figure: the
   * bound a host's sums are taken within
   */
  rentCounted?: string
  revision: number
  /** encodeSigned(revision, renter signature, host signature), base64 */
  signedRevision?: string
  /** [root hex, bytes]: every shard the contract holds, of every object with shards under it */
  shards: Array<[string, number]>
  /**
   * roots of `shards` this node did not put itself: taken from the host's
   * revision (a resync, a recovery). Another machine on the same words may
   * still be storing them, so the periodic collection waits
   * storage.orphanGraceMs before it takes one of these
   */
  learned?: string[]
  /** satoshis paid or promised under the contract, for all its objects: uploads, downloads, rent */
  spent: { upload: string, download: string, rent: string }
  ended?: number
  audit?: AuditRecord
  /** the contract that took this one's place when it was renewed */
  renewedAs?: string
  /** the signed ratings exchanged when it ended (base64), and what each said */
  ratings?: { renter: string, host?: string, renterSatisfied: boolean, hostSatisfied?: boolean }
  /** the host's trust score when the contract formed (the highest since, across renewals) */
  trustAtStart?: number
  /** why its shards are being moved off a host that did nothing wrong (its price rose, its trust fell) */
  migrating?: string
  /** since when the host's trust score has been low enough to move off it (see trustGraceMs) */
  trustLowSince?: number
  /** when the host was caught (a failed audit, or unreachable past the grace): its shards no longer count */
  lost?: number
  lostReason?: string
  /**
   * why it was condemned, which says whether repair may use the host again:
   * `cheated` (an audit failed, or it sent bytes that are not the shard)
   * never; `unreachable` (past the audit grace) and `replaced` (it failed
   * or stalled an upload) once it answers again. Records written before
   * this field: `unreachable` when lostReason says so, else `cheated`
   */
  lostFor?: 'cheated' | 'unreachable' | 'replaced'
  /** shards of this contract the host said were gone or corrupt when asked for them */
  shardsLost?: number
}

export interface ShardRecord {
  host: string
  contract: string
  root: string
  /** when the host answered that this one shard is gone or corrupt on its disk: it no longer counts */
  lost?: number
  lostReason?: string
}

export interface SegmentRecord {
  plainLength: number
  shardSize: number
  shards: ShardRecord[]
}

export interface StoredObject {
  id: string
  name: string
  size: number
  sha256: string
  createdAt: number
  k: number
  n: number
  segmentSize: number
  segments: SegmentRecord[]
  /**
   * the contracts its shards are under, each the one record every object
   * with shards there shares (ContractTable); in the datastore the object
   * names them (contractIds). In the record `store rm` keeps, a copy of
   * each as it was, without its shard list.
   */
  contracts: Record<string, ContractRecord>
  /** why the last repair could not put every lost shard back (cleared once one does) */
  repair?: RepairState
  /**
   * which version of its name it is, 1-based (absent: 1, records written
   * before versions). Every version is a whole object with its own id and
   * shards: upkeep, rent, audits and repair treat each alike
   */
  version?: number
  /** what a gateway keeps with it (PutOptions.meta: an S3 ETag, Content-Type, user metadata) */
  meta?: Record<string, string>
  /** when a newer version of its name was committed (absent: it is the current version) */
  supersededAt?: number
  /** when the record last changed in a way another machine's copy should take (importObject keeps the newer) */
  updatedAt?: number
  /** when `store rm` removed it, and how many segments it had (only in the record kept for `store info`, which has no segments) */
  removedAt?: number
  /** in that record: the upkeep removed it because it was superseded longer than storage.versionsKeptFor */
  pruned?: boolean
  segmentCount?: number
}

/** A repair that is stuck (StoredObject.repair), and when it is tried again (StorageClientInit.repairRetryMs) */
export interface RepairState {
  /** why, as the last attempt found */
  problem: string
  /** since when it has been stuck */
  at: number
  /** attempts that ended stuck, in a row */
  attempts?: number
  /** the upkeep tries again from then on (absent: at the next check) */
  retryAt?: number
  /** hosts that failed an upload of this object's repair: offered none of its shards until `until` */
  hosts?: Record<string, { failures: number, until: number }>
}

/**
 * A put under way, as its record under /storage/uploads names it: after a
 * crash, cleanUploads lets its name go and resynchronises the contracts it
 * put shards under (the hosts may hold revisions this node never
 * recorded); the shards no object names are then deleted (collectGarbage)
 */
export interface PendingUpload {
  id: string
  /** the name it holds (records of older versions may have none) */
  name?: string
  /** the contracts it put or was about to put shards under */
  contracts: string[]
}

/** A get under way: the partial plaintext file it writes (swept after a crash) */
export interface PendingDownload {
  tmp: string
  object: string
  at: number
}
