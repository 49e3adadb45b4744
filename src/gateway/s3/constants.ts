/**
 * The S3 gateway's defaults, each once, with the reason for it. Limits that
 * S3 itself sets are S3's numbers, so a client's own checks and ours agree.
 */

/** the address README and `--s3` suggest: the control API's port plus one */
export const DEFAULT_S3_PORT = 4102

/** the region a client signs for when none is set (what the AWS tools default to); any region is accepted */
export const DEFAULT_REGION = 'us-east-1'

/** S3 refuses a request whose signing time is further than this from its clock (RequestTimeTooSkewed) */
export const MAX_CLOCK_SKEW_MS = 15 * 60_000

/** a presigned URL lives at most a week (SigV4's own limit) */
export const MAX_PRESIGNED_SECONDS = 7 * 24 * 3600

/** the largest single PutObject and the largest part, as S3's */
export const MAX_PUT_BYTES = 5 * 1024 ** 3

/** every part of a multipart upload but the last is at least this, as S3's */
export const MIN_PART_BYTES = 5 * 1024 ** 2

/** the most parts an upload has, as S3's */
export const MAX_PARTS = 10_000

/** the most keys a listing answers at once, as S3's */
export const MAX_KEYS = 1000

/** the most keys one DeleteObjects names, as S3's */
export const MAX_DELETE_KEYS = 1000

/**
 * an unfinished multipart upload's parts are deleted when nothing has been
 * added to it for this long, default 24 h: a client that died leaves no
 * disk used for ever, and a slow upload of many parts has a day between two
 */
export const DEFAULT_UPLOAD_EXPIRY_MS = 24 * 3600_000

/** how often unfinished uploads are looked at for expiry */
export const UPLOAD_SWEEP_MS = 10 * 60_000

/** the largest XML body (DeleteObjects, CompleteMultipartUpload) read into memory: 1,000 keys of 1,024 bytes, with room */
export const MAX_XML_BODY = 2 * 1024 ** 2

/** the largest aws-chunked chunk header line and trailer block read */
export const MAX_CHUNK_LINE = 4096

/** how many requests are served at once; more wait (SlowDown would make clients back off for seconds) */
export const DEFAULT_MAX_CONCURRENT = 64
