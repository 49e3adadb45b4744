import { Status, type StatusCode } from './status.ts'
import type { AcceptablePayment } from './wire-types.ts'

/**
 * The base of every error that has a wire status. A server throws one of
 * these anywhere in its pipeline and the status it carries is what the caller
 * sees; a client turns a non-ok response back into the same class.
 */
export class RpcError extends Error {
  static readonly code: StatusCode = Status.SERVER_ERROR
  readonly code: StatusCode
  /** Set by payment refusals: what the server would accept instead */
  acceptablePayment?: AcceptablePayment

  constructor (message: string, code?: StatusCode) {
    super(message)
    this.name = 'RpcError'
    this.code = code ?? (this.constructor as typeof RpcError).code
  }
}

export class ClientError extends RpcError {
  static override readonly code: StatusCode = Status.CLIENT_ERROR
  override name = 'ClientError'
}

export class BadRequestError extends RpcError {
  static override readonly code: StatusCode = Status.BAD_REQUEST
  override name = 'BadRequestError'
}

/** A frame or message that does not parse; answered as bad-request */
export class MalformedMessageError extends BadRequestError {
  override name = 'MalformedMessageError'
}

/** The body's bytes do not hash to the digest the sender signed */
export class BodyDigestMismatchError extends BadRequestError {
  override name = 'BodyDigestMismatchError'
  constructor (message = 'the body does not match the SHA-256 digest in the signed head') {
    super(message)
  }
}

/** A declared body stopped arriving; answered as bad-request, then the stream is closed */
export class BodyStalledError extends BadRequestError {
  override name = 'BodyStalledError'
}

export class InvalidSignatureError extends RpcError {
  static override readonly code: StatusCode = Status.INVALID_SIGNATURE
  override name = 'InvalidSignatureError'
}

export class ServiceUnsupportedError extends RpcError {
  static override readonly code: StatusCode = Status.SERVICE_UNSUPPORTED
  override name = 'ServiceUnsupportedError'
}

export class MethodUnsupportedError extends RpcError {
  static override readonly code: StatusCode = Status.METHOD_UNSUPPORTED
  override name = 'MethodUnsupportedError'
}

export class BodyTooLargeError extends RpcError {
  static override readonly code: StatusCode = Status.BODY_TOO_LARGE
  override name = 'BodyTooLargeError'
}

export class ServerError extends RpcError {
  static override readonly code: StatusCode = Status.SERVER_ERROR
  override name = 'ServerError'
}

export class RequestDeclinedError extends RpcError {
  static override readonly code: StatusCode = Status.REQUEST_DECLINED
  override name = 'RequestDeclinedError'
}

export class RefreshNonceError extends RpcError {
  static override readonly code: StatusCode = Status.REFRESH_NONCE
  override name = 'RefreshNonceError'
}

export class PaymentDeclinedError extends RpcError {
  static override readonly code: StatusCode = Status.PAYMENT_DECLINED
  override name = 'PaymentDeclinedError'
}

export class PaymentTooLowError extends PaymentDeclinedError {
  static override readonly code: StatusCode = Status.PAYMENT_TOO_LOW
  override name = 'PaymentTooLowError'
}

export class NoDeferError extends PaymentDeclinedError {
  static override readonly code: StatusCode = Status.PAYMENT_NO_DEFER
  override name = 'NoDeferError'
}

export class AccessDeniedError extends RpcError {
  static override readonly code: StatusCode = Status.ACCESS_DENIED
  override name = 'AccessDeniedError'
}

export class RateLimitedError extends RpcError {
  static override readonly code: StatusCode = Status.RATE_LIMITED
  override name = 'RateLimitedError'
}

/** What the call names (a storage contract, a shard) does not exist on this server */
export class NotFoundError extends RpcError {
  static override readonly code: StatusCode = Status.NOT_FOUND
  override name = 'NotFoundError'
}

/** A storage host without room for what was asked */
export class InsufficientStorageError extends RpcError {
  static override readonly code: StatusCode = Status.INSUFFICIENT_STORAGE
  override name = 'InsufficientStorageError'
}

/** The one table from wire status to error class */
const ERROR_CLASSES: Record<StatusCode, typeof RpcError | undefined> = {
  [Status.OK]: undefined,
  [Status.CLIENT_ERROR]: ClientError,
  [Status.BAD_REQUEST]: BadRequestError,
  [Status.INVALID_SIGNATURE]: InvalidSignatureError,
  [Status.SERVICE_UNSUPPORTED]: ServiceUnsupportedError,
  [Status.METHOD_UNSUPPORTED]: MethodUnsupportedError,
  [Status.BODY_TOO_LARGE]: BodyTooLargeError,
  [Status.SERVER_ERROR]: ServerError,
  [Status.REQUEST_DECLINED]: RequestDeclinedError,
  [Status.REFRESH_NONCE]: RefreshNonceError,
  [Status.PAYMENT_DECLINED]: PaymentDeclinedError,
  [Status.PAYMENT_TOO_LOW]: PaymentTooLowError,
  [Status.PAYMENT_NO_DEFER]: NoDeferError,
  [Status.ACCESS_DENIED]: AccessDeniedError,
  [Status.RATE_LIMITED]: RateLimitedError,
  [Status.NOT_FOUND]: NotFoundError,
  [Status.INSUFFICIENT_STORAGE]: InsufficientStorageError
}

export function errorForStatus (code: StatusCode, message: string): RpcError {
  const ErrorClass = ERROR_CLASSES[code] ?? ServerError
  return new ErrorClass(message, code)
}

/** Errors that happen on this side only and never travel as a status */

export class StreamEndedError extends Error {
  override name = 'StreamEndedError'
  constructor (message = 'the remote peer closed the stream before the exchange finished') {
    super(message)
  }
}

export class ResponseVerificationError extends Error {
  override name = 'ResponseVerificationError'
}

/** The peer could not be reached: no address known, none found, or none answered */
export class DialError extends Error {
  override name = 'DialError'
}
