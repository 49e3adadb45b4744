/**
 * S3's errors: an error document with the code clients act on
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
 * One class per condition, each with its code and HTTP status, so the
 * gateway throws what it means and one place writes the XML.
 */
export class S3Error extends Error {
  override name = 'S3Error'
  /** S3's error code (NoSuchKey, SignatureDoesNotMatch, ...) */
  readonly code: string
  readonly status: number
  /** more elements of the error document (BucketName, Key, ...) */
  readonly extra: Record<string, string>
  constructor (code: string, status: number, message: string, extra: Record<string, string> = {}) {
    super(message)
    this.code = code
    this.status = status
    this.extra = extra
  }
}

const kind = (code: string, status: number) => class extends S3Error {
  constructor (message: string, extra: Record<string, string> = {}) {
    super(code, status, message, extra)
    this.name = code
  }
}

export class AccessDeniedError extends kind('AccessDenied', 403) {}
export class InvalidAccessKeyIdError extends kind('InvalidAccessKeyId', 403) {}
export class SignatureDoesNotMatchError extends kind('SignatureDoesNotMatch', 403) {}
export class RequestTimeTooSkewedError extends kind('RequestTimeTooSkewed', 403) {}
/** a presigned URL past its X-Amz-Expires: S3 answers AccessDenied, "Request has expired" */
export class RequestExpiredError extends kind('AccessDenied', 403) {}
export class MissingSecurityHeaderError extends kind('MissingSecurityHeader', 400) {}
export class AuthorizationHeaderMalformedError extends kind('AuthorizationHeaderMalformed', 400) {}
export class NoSuchBucketError extends kind('NoSuchBucket', 404) {}
export class NoSuchKeyError extends kind('NoSuchKey', 404) {}
export class NoSuchVersionError extends kind('NoSuchVersion', 404) {}
export class NoSuchUploadError extends kind('NoSuchUpload', 404) {}
export class BucketAlreadyOwnedByYouError extends kind('BucketAlreadyOwnedByYou', 409) {}
export class BucketNotEmptyError extends kind('BucketNotEmpty', 409) {}
export class InvalidBucketNameError extends kind('InvalidBucketName', 400) {}
export class InvalidArgumentError extends kind('InvalidArgument', 400) {}
export class KeyTooLongError extends kind('KeyTooLongError', 400) {}
export class InvalidRangeError extends kind('InvalidRange', 416) {}
export class EntityTooLargeError extends kind('EntityTooLarge', 400) {}
export class EntityTooSmallError extends kind('EntityTooSmall', 400) {}
export class IncompleteBodyError extends kind('IncompleteBody', 400) {}
export class MissingContentLengthError extends kind('MissingContentLength', 411) {}
export class BadDigestError extends kind('BadDigest', 400) {}
export class InvalidDigestError extends kind('InvalidDigest', 400) {}
export class XAmzContentSHA256MismatchError extends kind('XAmzContentSHA256Mismatch', 400) {}
export class InvalidPartError extends kind('InvalidPart', 400) {}
export class InvalidPartOrderError extends kind('InvalidPartOrder', 400) {}
export class MalformedXMLError extends kind('MalformedXML', 400) {}
export class InvalidRequestError extends kind('InvalidRequest', 400) {}
export class MethodNotAllowedError extends kind('MethodNotAllowed', 405) {}
export class NotImplementedError extends kind('NotImplemented', 501) {}
export class PreconditionFailedError extends kind('PreconditionFailed', 412) {}
export class ServiceUnavailableError extends kind('ServiceUnavailable', 503) {}
export class InternalError extends kind('InternalError', 500) {}

/** Not an error document: 304 Not Modified, which has no body */
export class NotModified extends Error {
  override name = 'NotModified'
}
