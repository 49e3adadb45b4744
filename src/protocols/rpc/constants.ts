/** The libp2p protocol id of the OpenCloud RPC */
export const RPC_PROTOCOL = '/opencloud/rpc/1.0.0'

/** The version byte that starts every request and response head */
export const WIRE_VERSION = 1

/**
 * Domain separation: the first bytes of everything that is signed, so a
 * signature over a request can never be replayed as a response or as a
 * signature in another protocol that uses the same key.
 */
export const REQUEST_DOMAIN = new TextEncoder().encode('opencloud-rpc-v1-request\n')
export const RESPONSE_DOMAIN = new TextEncoder().encode('opencloud-rpc-v1-response\n')

/** Frame types (PROTOCOL.md, "Frames") */
export const FrameType = {
  REQUEST: 1,
  RESPONSE: 2,
  CONTINUE: 3,
  DATA: 4
} as const

/**
 * Field limits a decoder enforces before it allocates anything. They are far
 * above what honest peers send and small enough that a head always fits in
 * one frame.
 */
export const Limits = {
  credentials: 8,
  credentialBytes: 128,
  signatureBytes: 128,
  nonceBytes: 64,
  nameBytes: 64,
  args: 64,
  argBytes: 4096,
  currencyBytes: 8,
  amountBytes: 32,
  paymentIdBytes: 128,
  thresholdBytes: 256,
  /** a standard bitcoin transaction is at most 400,000 weight units */
  txnBytes: 400_000,
  /** "<txid>:<vout>": 64 hex digits, a colon, at most 6 digits */
  channelIdBytes: 71,
  /** a channel state is one input and at most two outputs: about 120 bytes */
  channelStateBytes: 1024,
  /** a DER signature and its sighash byte: at most 73 bytes */
  channelSignatureBytes: 80,
  messageBytes: 1024
} as const

/** A head frame: the largest head is a request with an attached transaction */
export const MAX_HEAD_FRAME = 512 * 1024

/**
 * Body bytes travel in DATA frames of at most this size. Per-frame costs
 * (parsing, a hash update, a promise) are paid per frame, and bench/rpc
 * measured 256 KiB frames about 15% faster than 64 KiB ones for bulk bodies;
 * a receiver holds at most one partial frame beyond its read buffer.
 */
export const MAX_DATA_FRAME = 256 * 1024

/**
 * Bodies up to this size follow their head at once; larger ones wait for the
 * server's CONTINUE, so a refused upload costs one round trip instead of the
 * whole body.
 */
export const EAGER_BODY_LIMIT = 64 * 1024

/** Default largest request body a server accepts (a config setting) */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024 * 1024

/** SHA-256 of the empty string: the digest of an empty body */
export const EMPTY_SHA256 = Uint8Array.from(Buffer.from('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex'))
