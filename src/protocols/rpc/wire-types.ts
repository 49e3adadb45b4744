/**
 * The OpenCloud RPC's wire types (PROTOCOL.md sections 4 and 5), in a leaf
 * file that imports nothing: the message codec, the errors and everything
 * above them refer to these shapes without importing one another.
 */

export const CredentialType = {
  /** an OpenCloud ID: the bytes of a libp2p PeerId (an Ed25519 key) */
  OPENCLOUD: 1,
  /** a bitcoin address, as ASCII */
  BITCOIN: 2
} as const
export type CredentialTypeCode = typeof CredentialType[keyof typeof CredentialType]

export interface Credential {
  type: CredentialTypeCode
  value: Uint8Array
}

export const PaymentType = { NONE: 0, ATTACHED: 1, DEFER: 2, PROMO: 3, CHANNEL: 4 } as const
/** the kinds of payment a server may name as acceptable, by their index on the wire (PROTOCOL.md section 5) */
export type PaymentTypeName = 'none' | 'attached' | 'defer' | 'channel'

export type Payment =
  | { type: 'none' }
  | { type: 'attached', currency: string, amount: string, txn: Uint8Array }
  | { type: 'defer', currency: string, amount: string, id: string, threshold: string }
  /** a Cloud Ledger promo code and its owner's authorization for this server to redeem it (PROTOCOL.md section 8e) */
  | { type: 'promo', code: Uint8Array, authorization: Uint8Array }
  /**
   * a payment through a channel the payer opened to this server (PROTOCOL.md
   * section 8f): the channel's next state, paying the server `amount` more
   * than the latest, and the payer's signature on it
   */
  | { type: 'channel', currency: string, amount: string, channel: string, txn: Uint8Array, signature: Uint8Array }

export interface AcceptablePayment {
  type: PaymentTypeName
  currency: string
  amount: string
}

export interface RequestHead {
  credentials: Credential[]
  /** one per credential, in the same order */
  signatures: Uint8Array[]
  nonce: Uint8Array
  service: string
  method: string
  args: string[]
  payment: Payment
  bodyLength: number
  bodySha256: Uint8Array
}

export interface ResponseHead {
  credentials: Credential[]
  signatures: Uint8Array[]
  /** SHA-256 of the request's signing bytes, all zero when there was no request */
  requestDigest: Uint8Array
  nonce: Uint8Array
  status: number
  message: string
  acceptablePayment?: AcceptablePayment
  bodyLength: number
  bodySha256: Uint8Array
}

export type UnsignedRequest = Omit<RequestHead, 'signatures'>
export type UnsignedResponse = Omit<ResponseHead, 'signatures'>
