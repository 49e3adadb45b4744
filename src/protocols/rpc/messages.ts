import { FrameType, Limits, REQUEST_DOMAIN, RESPONSE_DOMAIN, WIRE_VERSION } from './constants.ts'
import { MalformedMessageError } from './errors.ts'
import { Reader, Writer } from '../codec.ts'
import { CredentialType, PaymentType, type AcceptablePayment, type Credential, type Payment, type PaymentTypeName, type RequestHead, type ResponseHead, type UnsignedRequest, type UnsignedResponse } from './wire-types.ts'

export * from './wire-types.ts'

/**
 * The OpenCloud request and response heads, their wire encoding and the
 * bytes that are signed. PROTOCOL.md, "Request head" and "Response head",
 * describes the same layout field by field.
 */

const PAYMENT_TYPE_NAMES: PaymentTypeName[] = ['none', 'attached', 'defer', 'channel']

const NAME = /^[a-z][a-z0-9-]*$/
/** a channel: its funding transaction's id and output index */
const CHANNEL_ID = /^[0-9a-f]{64}:(0|[1-9][0-9]{0,5})$/
const CURRENCY = /^[A-Z][A-Z0-9]{1,7}$/
/** a decimal amount: no sign, no exponent, no leading zeros, at most 8 decimals */
const AMOUNT = /^(0|[1-9][0-9]{0,15})(\.[0-9]{1,8})?$/

function checkName (value: string, what: string): void {
  if (!NAME.test(value)) {
    throw new MalformedMessageError(`${what} "${value}" must be lowercase letters, digits and dashes, starting with a letter`)
  }
}

function checkAmount (currency: string, amount: string): void {
  if (!CURRENCY.test(currency)) {
    throw new MalformedMessageError(`currency "${currency}" must be 2 to 8 uppercase letters or digits`)
  }
  if (!AMOUNT.test(amount)) {
    throw new MalformedMessageError(`amount "${amount}" must be a plain decimal number with at most 8 decimals`)
  }
}

function writeCredentials (w: Writer, credentials: Credential[]): void {
  w.varint(credentials.length)
  for (const c of credentials) {
    w.u8(c.type).bytes(c.value)
  }
}

function readCredentials (r: Reader): Credential[] {
  const n = r.count(Limits.credentials, 'credentials')
  const out: Credential[] = []
  for (let i = 0; i < n; i++) {
    const type = r.u8('a credential type')
    if (type !== CredentialType.OPENCLOUD && type !== CredentialType.BITCOIN) {
      throw new MalformedMessageError(`unknown credential type ${type}`)
    }
    out.push({ type, value: r.bytes(Limits.credentialBytes, 'a credential') })
  }
  return out
}

function writeSignatures (w: Writer, signatures: Uint8Array[]): void {
  w.varint(signatures.length)
  for (const s of signatures) {
    w.bytes(s)
  }
}

function readSignatures (r: Reader): Uint8Array[] {
  const n = r.count(Limits.credentials, 'signatures')
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    out.push(r.bytes(Limits.signatureBytes, 'a signature'))
  }
  return out
}

function writePayment (w: Writer, payment: Payment): void {
  switch (payment.type) {
    case 'none':
      w.u8(PaymentType.NONE)
      break
    case 'attached':
      w.u8(PaymentType.ATTACHED).string(payment.currency).string(payment.amount).bytes(payment.txn)
      break
    case 'defer':
      w.u8(PaymentType.DEFER).string(payment.currency).string(payment.amount).string(payment.id).string(payment.threshold)
      break
    case 'promo':
      if (payment.code.byteLength !== 32) {
        throw new RangeError('a promo code is 32 bytes')
      }
      w.u8(PaymentType.PROMO).raw(payment.code).bytes(payment.authorization)
      break
    case 'channel':
      w.u8(PaymentType.CHANNEL).string(payment.currency).string(payment.amount).string(payment.channel).bytes(payment.txn).bytes(payment.signature)
      break
  }
}

/** The `payment` field alone, as it stands inside a request's signed part (PROTOCOL.md, section 4) */
export function encodePayment (payment: Payment): Uint8Array {
  const w = new Writer()
  writePayment(w, payment)
  return w.finish()
}

function readPayment (r: Reader): Payment {
  const type = r.u8('the payment type')
  switch (type) {
    case PaymentType.NONE:
      return { type: 'none' }
    case PaymentType.ATTACHED: {
      const currency = r.string(Limits.currencyBytes, 'the payment currency')
      const amount = r.string(Limits.amountBytes, 'the payment amount')
      checkAmount(currency, amount)
      return { type: 'attached', currency, amount, txn: r.bytes(Limits.txnBytes, 'the payment transaction') }
    }
    case PaymentType.DEFER: {
      const currency = r.string(Limits.currencyBytes, 'the payment currency')
      const amount = r.string(Limits.amountBytes, 'the payment amount')
      checkAmount(currency, amount)
      const id = r.string(Limits.paymentIdBytes, 'the deferred payment id')
      const threshold = r.string(Limits.thresholdBytes, 'the defer threshold')
      return { type: 'defer', currency, amount, id, threshold }
    }
    case PaymentType.PROMO:
      return { type: 'promo', code: r.raw(32, 'the promo code'), authorization: r.bytes(64, 'the redemption authorization') }
    case PaymentType.CHANNEL: {
      const currency = r.string(Limits.currencyBytes, 'the payment currency')
      const amount = r.string(Limits.amountBytes, 'the payment amount')
      checkAmount(currency, amount)
      const channel = r.string(Limits.channelIdBytes, 'the channel id')
      if (!CHANNEL_ID.test(channel)) {
        throw new MalformedMessageError(`a channel id is <funding txid>:<output index>, 64 lowercase hex digits, a colon and a decimal index, not "${channel}"`)
      }
      return { type: 'channel', currency, amount, channel, txn: r.bytes(Limits.channelStateBytes, 'the channel state'), signature: r.bytes(Limits.channelSignatureBytes, 'the channel signature') }
    }
    default:
      throw new MalformedMessageError(`unknown payment type ${type}`)
  }
}

function writeBody (w: Writer, length: number, sha256: Uint8Array): void {
  if (sha256.byteLength !== 32) {
    throw new RangeError('a body digest is 32 bytes')
  }
  w.varint(length).raw(sha256)
}

/** The part of a request head that its signatures cover, without the domain */
export function encodeRequestSigned (head: UnsignedRequest): Uint8Array {
  checkName(head.service, 'service')
  checkName(head.method, 'method')
  const w = new Writer().u8(WIRE_VERSION)
  writeCredentials(w, head.credentials)
  w.bytes(head.nonce).string(head.service).string(head.method)
  w.varint(head.args.length)
  for (const arg of head.args) {
    w.string(arg)
  }
  writePayment(w, head.payment)
  writeBody(w, head.bodyLength, head.bodySha256)
  return w.finish()
}

export function encodeResponseSigned (head: UnsignedResponse): Uint8Array {
  const w = new Writer().u8(WIRE_VERSION)
  writeCredentials(w, head.credentials)
  if (head.requestDigest.byteLength !== 32) {
    throw new RangeError('a request digest is 32 bytes')
  }
  w.raw(head.requestDigest).bytes(head.nonce).varint(head.status).string(head.message)
  if (head.acceptablePayment == null) {
    w.u8(0)
  } else {
    const p = head.acceptablePayment
    w.u8(1).u8(PAYMENT_TYPE_NAMES.indexOf(p.type)).string(p.currency).string(p.amount)
  }
  writeBody(w, head.bodyLength, head.bodySha256)
  return w.finish()
}

/** domain || signed part: the exact bytes each signature signs */
export function signingBytes (domain: Uint8Array, signed: Uint8Array): Uint8Array {
  const out = new Uint8Array(domain.byteLength + signed.byteLength)
  out.set(domain, 0)
  out.set(signed, domain.byteLength)
  return out
}

/** A head payload: the signatures, then the signed part verbatim */
export function encodeHead (signatures: Uint8Array[], signed: Uint8Array): Uint8Array {
  const w = new Writer()
  writeSignatures(w, signatures)
  return w.raw(signed).finish()
}

export interface DecodedRequest {
  head: RequestHead
  /** REQUEST_DOMAIN || signed part */
  signing: Uint8Array
}

export interface DecodedResponse {
  head: ResponseHead
  signing: Uint8Array
}

function readVersion (r: Reader): void {
  const version = r.u8('the version')
  if (version !== WIRE_VERSION) {
    throw new MalformedMessageError(`unsupported wire version ${version}, this node speaks version ${WIRE_VERSION}`)
  }
}

function readBody (r: Reader): { bodyLength: number, bodySha256: Uint8Array } {
  const bodyLength = r.varint('the body length')
  const bodySha256 = r.raw(32, 'the body digest')
  return { bodyLength, bodySha256 }
}

export function decodeRequest (payload: Uint8Array): DecodedRequest {
  const r = new Reader(payload)
  const signatures = readSignatures(r)
  const start = r.offset
  readVersion(r)
  const credentials = readCredentials(r)
  const nonce = r.bytes(Limits.nonceBytes, 'the nonce')
  const service = r.string(Limits.nameBytes, 'the service')
  const method = r.string(Limits.nameBytes, 'the method')
  checkName(service, 'service')
  checkName(method, 'method')
  const nArgs = r.count(Limits.args, 'args')
  const args: string[] = []
  for (let i = 0; i < nArgs; i++) {
    args.push(r.string(Limits.argBytes, 'an arg'))
  }
  const payment = readPayment(r)
  const body = readBody(r)
  r.end('the request head')
  return {
    head: { credentials, signatures, nonce, service, method, args, payment, ...body },
    signing: signingBytes(REQUEST_DOMAIN, payload.subarray(start))
  }
}

export function decodeResponse (payload: Uint8Array): DecodedResponse {
  const r = new Reader(payload)
  const signatures = readSignatures(r)
  const start = r.offset
  readVersion(r)
  const credentials = readCredentials(r)
  const requestDigest = r.raw(32, 'the request digest')
  const nonce = r.bytes(Limits.nonceBytes, 'the nonce')
  const status = r.varint('the status')
  const message = r.string(Limits.messageBytes, 'the status message')
  let acceptablePayment: AcceptablePayment | undefined
  if (r.u8('the acceptable-payment flag') === 1) {
    const type = PAYMENT_TYPE_NAMES[r.u8('the acceptable payment type')]
    if (type == null) {
      throw new MalformedMessageError('unknown acceptable payment type')
    }
    const currency = r.string(Limits.currencyBytes, 'the acceptable payment currency')
    const amount = r.string(Limits.amountBytes, 'the acceptable payment amount')
    checkAmount(currency, amount)
    acceptablePayment = { type, currency, amount }
  }
  const body = readBody(r)
  r.end('the response head')
  return {
    head: { credentials, signatures, requestDigest, nonce, status, message, acceptablePayment, ...body },
    signing: signingBytes(RESPONSE_DOMAIN, payload.subarray(start))
  }
}

export { FrameType }
