import { MAX_CONTRACT_MS } from '../protocol/contract.ts'

const GIB = 1024 ** 3

/** Bytes a host offers in all contracts together unless config.json says otherwise (services.storage.capacity) */
export const DEFAULT_CAPACITY = 10 * GIB

/** The longest contract a host signs: a year and a day (the client's put check uses the same bound) */
export const DEFAULT_MAX_DURATION_MS = MAX_CONTRACT_MS

/** The shortest rent period a host signs: a minute (testnets use short ones) */
export const DEFAULT_MIN_RENT_PERIOD_MS = 60_000

/** How far a contract's start may be from the host's clock: 10 minutes */
export const DEFAULT_CLOCK_SKEW_MS = 600_000

/**
 * How long rent may stay unpaid past the periods paid for (and a contract
 * past its end) before its shards are deleted: 7 days, so a renter's node
 * that is off for a week loses nothing
 */
export const DEFAULT_RENT_GRACE_MS = 7 * 24 * 3600_000

/** How often the sweeper looks for unpaid and expired contracts: a minute */
export const DEFAULT_SWEEP_MS = 60_000

/** Where the host keeps its contracts in the datastore (one key per contract) */
export const CONTRACTS_PREFIX = '/storage/host/contracts'

/** The largest body of `contract` and `renew` (terms and a signature are about 200 bytes) */
export const MAX_PROPOSAL_BYTES = 4096

/** The largest body of `end`: a signed rating (its rating at most MAX_RATING_BYTES) */
export const MAX_END_BODY_BYTES = 2048

/** Where the host keeps its renters' notes (the object index, PROTOCOL.md 8g): one key per note */
export const NOTES_PREFIX = '/storage/host/notes'

/** The most notes a renter may keep at a host: one per object, so 100,000 objects */
export const MAX_NOTES_PER_RENTER = 100_000

/**
 * The most bytes of notes a renter may keep: max(16 MiB, 1% of its live
 * contracts' maxBytes). A note is a few KiB per object; the floor lets a
 * small renter index thousands of objects, the share grows with the room it
 * pays for, and either bounds what a renter can make a host keep for free.
 */
export const MIN_NOTE_BYTES_PER_RENTER = 16 * 1024 * 1024
export const NOTE_BYTES_SHARE = 0.01

/** How many bytes of notes one `note-list` answer carries at most (at least one note): about 1 MiB */
export const MAX_NOTE_LIST_BYTES = 1024 * 1024
