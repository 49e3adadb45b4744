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
