import { MONTH_MS } from './protocol/contract.ts'

/**
 * The storage client's defaults and datastore keys, each once. The
 * defaults are those of StorageClientInit (src/storage/client/interface.ts),
 * which says what each field does; why each value was chosen is here.
 */

/** the storage service's name on the wire */
export const STORAGE = 'storage'

// ---- datastore keys ----

/** stored objects by id */
export const OBJECTS = '/storage/objects'
/** name -> object id, or {reserved: id} while a put holds the name */
export const NAMES = '/storage/names'
/** puts under way, each with the contracts it put shards under: cleanUploads resynchronises them after a crash */
export const UPLOADS = '/storage/uploads'
/** this node's contracts with hosts, one record each, shared by every object with shards under it (without the shard list) */
export const CONTRACTS = '/storage/contracts'
/** each contract's shard list, written only when its revision moves (it is the large part of a contract) */
export const CONTRACT_SHARDS = '/storage/contract-shards'
/** set once the records written before contracts were shared are moved into the contract table */
export const CONTRACTS_SHARED = '/storage/migrations/contracts-shared'
/** the ratings exchanged when each contract ended, kept after its object is gone */
export const RATINGS = '/storage/ratings'
/** plaintext files a get is writing (they are renamed into place when whole): swept after a crash */
export const DOWNLOADS = '/storage/downloads'
/** objects removed by `store rm`, kept without their segments so `store info` still shows the contracts' ratings */
export const REMOVED = '/storage/removed'
/** name -> the id of the latest removed object of that name (not under REMOVED: a prefix query of it would list these) */
export const REMOVED_NAMES = '/storage/removals/names'
/** <removedAt>-<id> -> id: which removed objects to forget first (keepRemoved) */
export const REMOVED_ORDER = '/storage/removals/order'
/** the shares this node made (PROTOCOL.md 8h): /storage/shares/<grant id hex> -> ShareRecord */
export const SHARES = '/storage/shares'
/** set once the removed objects kept before REMOVED_NAMES and REMOVED_ORDER existed are indexed */
export const REMOVALS_INDEXED = '/storage/removals/indexed'
/** <encodeURIComponent(name)>/<version, 10 digits> -> object id: every version of a name, kept while one of them is stored (a pruned or removed one's key stays so `store get --version` can say what became of it) */
export const VERSIONS = '/storage/versions'
/** name -> {reserved: id} while a put stores a new version of it: the name key keeps pointing at the current version until the put commits */
export const RESERVING = '/storage/reserving'

/** versions are kept 30 days after a newer one is stored: what Dropbox Plus keeps, and a month of anyone's "I overwrote it last week" */
export const DEFAULT_VERSIONS_KEPT_FOR_MS = 30 * 86_400_000

// ---- fixed bounds ----

/** a trust score a host must have had for a fall from it to move data away (1 is the average peer) */
export const TRUSTED_SCORE = 0.5
/**
 * The most an `end` call may take: ending is best effort (a host that
 * cannot be told keeps the shards until the contract's end, and endUnused
 * tells it at a later check), so a host that does not answer must not hold
 * up `store rm` or the upkeep for the RPC client's whole timeout
 */
export const END_CALL_MS = 15_000
/** the longest a stuck repair, or a host that failed one, waits before it is tried again (see repairRetryMs) */
export const MAX_REPAIR_RETRY_MS = 6 * 3600_000
/** a shard transfer's fixed allowance, on top of its size at minThroughput (see transferTimeoutMs) */
export const TRANSFER_BASE_MS = 10_000
/** a download's hedge time grows by the shard's size at this rate (1 MiB/s) */
export const HEDGE_BYTES_PER_S = 1024 * 1024
/**
 * A shard request of a download running this many times longer than the
 * median of its segment's answers so far is overdriven: another host is
 * asked beside it (renterd's "overdrive", relative to the others rather
 * than to a fixed hedge time). 3: on a loaded two-core machine the K
 * answers of a segment came within 2x of each other, while a frozen host
 * never answers.
 */
export const OVERDRIVE_FACTOR = 3
/** ... and at least this much longer than that median (ms): tiny shards answer within a millisecond, where 3x is jitter */
export const OVERDRIVE_MIN_MS = 50
/**
 * The most shards one segment's overdrive asks for beyond K (failures
 * aside), as a fraction of K, rounded up: 1 at K = 4. Each is paid for
 * (downloadCost) and sent by its host even when cancelled, so this bounds
 * what a download can spend on the long tail: at most 1/4 more per segment,
 * and in practice once per slow host per transfer (it is asked last after).
 */
export const OVERDRIVE_SHARE = 1 / 4
/** how many leaves one audit checks: 4 x 4 KiB plus their paths, per shard */
export const AUDIT_LEAVES = 4
/** the most a host that fails uploads of one repair slot is given before the slot waits for the next check */
export const MAX_FAILED_REPAIR_UPLOADS = 3
/**
 * A put's shard to one host is given up on (HostStalledError) and its slot
 * moved to another host (renterd's overdrive) once all of: it has run this
 * many times the median of the put's recent shard transfers, and at least
 * UPLOAD_STALL_MIN_MS; its segment waits on it and at most one or two
 * others; and the host does not answer a ping within UPLOAD_PROBE_MS
 * (frozen, gone, or its connection dead: a host that is only slow answers,
 * and keeps the shard until its transfer timeout). Relative, so a machine
 * or network slow for every host moves no one. Replacing a host costs a new
 * contract and a repair of the shards it held; waiting on a frozen one
 * costs its whole transfer timeout (TRANSFER_BASE_MS, over 10 s), with the
 * put stopped, since the segments in flight are bounded.
 */
export const UPLOAD_STALL_FACTOR = 4
/** the least a shard transfer runs before it can count as stalled (see UPLOAD_STALL_FACTOR) */
export const UPLOAD_STALL_MIN_MS = 1_000
/** how long a host whose transfer stalled has to answer a ping (see UPLOAD_STALL_FACTOR) */
export const UPLOAD_PROBE_MS = 1_000
/** how many times a put moves one slot to another host before it gives up */
export const MAX_SLOT_REPLACEMENTS = 3

// ---- defaults of StorageClientInit ----

/**
 * 4 MiB: the unit held in memory while it is coded (about 4x over, with its
 * shards). A daemon storing 192 MiB peaked over 300 MB with 8 MiB segments
 * and stays under it with 4 MiB (test/storage/cli.test.ts); in
 * bench/storage 8 MiB put at the same speed and got about 20% faster.
 */
export const DEFAULT_SEGMENT_SIZE = 4 * 1024 * 1024
/**
 * 3: while one segment's shards are written and fsynced at the hosts (a
 * host's log says 20-280 ms per 1 MiB shard with eight hosts syncing on one
 * disk), the next ones are coded and sent. bench/storage, 64 MiB at
 * 4-of-8 with hosts each in their own process, runs alternated on a loaded
 * machine: one at a time 6.1, 7.6 and 13.0 MB/s, three 12.8 and 15.8 (with
 * all hosts in one process there was no gain: their one core was the
 * bound, as both cores are on a quiet 2-core machine). Each segment in
 * flight holds about 3x its size (the plaintext sealed, the parity, the
 * transport's frames): 40 MB more at 4 MiB; bench/storage peaked at 233-246
 * MB.
 */
export const DEFAULT_SEGMENTS_IN_FLIGHT = 3
/**
 * 4, for all transfers together (puts, gets and repairs): concurrent
 * transfers take turns segment by segment rather than each hold their own
 * (see SegmentSlots)
 */
export const DEFAULT_SEGMENT_SLOTS = 4
/** 30 days */
export const DEFAULT_DURATION_MS = MONTH_MS
/**
 * 256 MiB: the room a new contract reserves with a host beyond what the
 * put that forms it needs (renterd's allowance). Rent is on the bytes
 * held, so room costs the renter nothing, but it is room the host cannot
 * promise to others: small enough that a 2 GiB testnet host takes several
 * renters, large enough that a thousand small files share one contract.
 * A second contract with the same host reserves twice the first's room
 * (CONTRACT_GROWTH), so a renter with a lot of data has few contracts.
 */
export const DEFAULT_CONTRACT_ALLOWANCE = 256 * 1024 * 1024
/** each further contract with a host reserves this many times the room of the largest before it, up to MAX_CONTRACT_ALLOWANCE */
export const CONTRACT_GROWTH = 2
/** 1 TiB: the most room one new contract reserves beyond what its put needs */
export const MAX_CONTRACT_ALLOWANCE = 1024 ** 4
/** 1 day */
export const DEFAULT_RENT_PERIOD_MS = 24 * 3600_000
/** 60 s */
export const DEFAULT_RENT_CHECK_MS = 60_000
/** 64 KiB/s: a shard upload slower than this is given to another host */
export const DEFAULT_MIN_THROUGHPUT = 64 * 1024
/** 5 s, plus the shard's size at 1 MiB/s */
export const DEFAULT_HEDGE_MS = 5_000
/** 6 h, spread at random over 0.5x to 1.5x so audits do not come in bursts */
export const DEFAULT_AUDIT_INTERVAL_MS = 6 * 3600_000
/** 1 h: a restart is not cheating */
export const DEFAULT_AUDIT_GRACE_MS = 3600_000
/** 10 minutes, doubling with each attempt up to MAX_REPAIR_RETRY_MS (the audit interval) */
export const DEFAULT_REPAIR_RETRY_MS = 10 * 60_000
/** 1,000 removed objects `store info` can still show */
export const DEFAULT_KEEP_REMOVED = 1000
/** 7 days, or a third of the contract's length if that is less */
export const DEFAULT_RENEW_BEFORE_MS = 7 * 24 * 3600_000
/** 3x the market's median storage price */
export const DEFAULT_MIGRATE_ABOVE_PRICE = 3
/**
 * 0 (off): a score of 0 is also what a host nobody has rated yet gets, and
 * moving off every new host would be a migration storm
 */
export const DEFAULT_MIN_TRUST = 0
/**
 * 0.25 of the score at the contract's start. Only hosts that had a score
 * of at least TRUSTED_SCORE then are held to it: a new host's 0 cannot
 * fall, and small scores swing with every record
 */
export const DEFAULT_TRUST_DROP = 0.25
/**
 * 1 h: a node that restarts computes trust from scratch (every score 0
 * until it is done) and hears other nodes' summaries over the next minutes,
 * and a migration is a repair of every shard the host holds
 */
export const DEFAULT_TRUST_GRACE_MS = 3600_000

// ---- the object index at the hosts (PROTOCOL.md 8g) ----

/** Objects whose notes at the hosts may be behind their record: each with the hosts that may hold a stale one */
export const INDEX_DIRTY = '/storage/index/dirty'
/** What each object's note says (its hash) and which hosts took it */
export const INDEX_WRITTEN = '/storage/index/written'
/** How long one note call to a host may take: a note is small, and a put's commit waits for it */
export const NOTE_CALL_MS = 15_000
/** How often a put's commit tries a host's note before leaving it to the next check */
export const NOTE_PUT_ATTEMPTS = 2
/** How long a recovery waits for the market to list storage hosts, default 60 s (`store recover --wait`) */
export const DEFAULT_RECOVER_WAIT_MS = 60_000
/**
 * The file `wallet restore` leaves in the data directory: the next start
 * recovers the object index from the hosts once (and removes it when the
 * index was found, or the hosts answered that there is none)
 */
export const RECOVERY_MARKER = 'recover-pending.json'

/** 7 days, a share's life unless --expires says otherwise: long enough to hand a file over a weekend, short enough that a forgotten link dies on its own */
export const DEFAULT_SHARE_MS = 7 * 24 * 3600_000

/**
 * How long a shard must have been named by nothing before the periodic
 * garbage collection takes it: 6 hours, longer than a put runs. Another
 * machine on the same words writes a put's note only once every shard is
 * stored, so its shards under a shared contract look unnamed until then.
 */
export const DEFAULT_ORPHAN_GRACE_MS = 21_600_000
