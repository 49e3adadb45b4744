import { timingSafeEqual } from 'node:crypto'
import { SignatureV4 } from '@smithy/signature-v4'
import { HttpRequest } from '@smithy/protocol-http'
import { Hash } from '@smithy/hash-node'
import { MAX_CLOCK_SKEW_MS, MAX_PRESIGNED_SECONDS } from './constants.ts'
import { AccessDeniedError, AuthorizationHeaderMalformedError, InvalidAccessKeyIdError, InvalidArgumentError, InvalidRequestError, MissingSecurityHeaderError, NotImplementedError, RequestExpiredError, RequestTimeTooSkewedError, SignatureDoesNotMatchError } from './errors.ts'
import type { AccessKey, AccessKeys } from './access-keys.ts'
import type { IncomingHttpHeaders } from 'node:http'

/**
 * AWS Signature Version 4, checked: the request is signed again with the
 * secret of the key it names, by AWS's own signing package
 * (@smithy/signature-v4, what every AWS SDK for JavaScript signs with), and
 * the two signatures compared. Both forms: the Authorization header, and a
 * presigned URL's query. The payload is named by x-amz-content-sha256: its
 * SHA-256 (checked once the body is read), UNSIGNED-PAYLOAD, or one of the
 * aws-chunked forms, whose chunks carry signatures of their own (chunked.ts)
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
 */

const ALGORITHM = 'AWS4-HMAC-SHA256'
const sha256 = Hash.bind(null, 'sha256')

/** How the request's body is sent, as the signature says */
export type Payload =
  | { kind: 'sha256', hash: string }
  | { kind: 'unsigned' }
  | { kind: 'chunked', signed: boolean, trailer: boolean }

/** What a checked signature gives the request */
export interface Authorized {
  key: AccessKey
  payload: Payload
  /** for signed aws-chunked bodies: the signature of a chunk (or the trailer) that follows `previous` */
  chunkSignature: (previous: string, stringToSignTail: string, kind: 'PAYLOAD' | 'TRAILER') => Promise<string>
  /** the request's own signature: the first chunk's `previous` */
  seed: string
}

interface Parsed {
  keyId: string
  date: string
  region: string
  service: string
  terminator: string
  signedHeaders: string[]
  signature: string
  amzDate: string
  presigned: boolean
  expires?: number
}

/** "20261203T115000Z" as a Date, or undefined */
function amzDateOf (text: string | undefined): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text ?? '')
  if (m == null) {
    return undefined
  }
  const date = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]))
  return Number.isNaN(date.getTime()) ? undefined : date
}

/** A request header as one string (Node gives a repeated one as a list) */
export function header (headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value.join(',') : value
}

function parseCredential (credential: string): Pick<Parsed, 'keyId' | 'date' | 'region' | 'service' | 'terminator'> {
  const parts = credential.split('/')
  if (parts.length !== 5) {
    throw new AuthorizationHeaderMalformedError(`the Credential "${credential}" is not ACCESS_KEY/DATE/REGION/s3/aws4_request`)
  }
  const [keyId, date, region, service, terminator] = parts
  return { keyId, date, region, service, terminator }
}

/** The signature's parts, from the Authorization header or the presigned query; undefined: the request is not signed */
function parse (headers: IncomingHttpHeaders, query: URLSearchParams): Parsed | undefined {
  const authorization = header(headers, 'authorization')
  if (authorization != null) {
    if (authorization.startsWith('AWS ')) {
      throw new InvalidRequestError('Signature Version 2 is not taken: sign with Signature Version 4 (AWS4-HMAC-SHA256), what every current S3 client does by default')
    }
    if (authorization.startsWith('AWS4-ECDSA-P256-SHA256')) {
      throw new NotImplementedError('Signature Version 4A is not taken: sign with Signature Version 4 (AWS4-HMAC-SHA256)')
    }
    if (!authorization.startsWith(`${ALGORITHM} `)) {
      throw new AuthorizationHeaderMalformedError(`the Authorization header is not ${ALGORITHM} Credential=..., SignedHeaders=..., Signature=...`)
    }
    const fields: Record<string, string> = {}
    for (const part of authorization.slice(ALGORITHM.length + 1).split(',')) {
      const eq = part.indexOf('=')
      if (eq > 0) {
        fields[part.slice(0, eq).trim()] = part.slice(eq + 1).trim()
      }
    }
    if (fields.Credential == null || fields.SignedHeaders == null || fields.Signature == null) {
      throw new AuthorizationHeaderMalformedError('the Authorization header needs Credential, SignedHeaders and Signature')
    }
    const amzDate = header(headers, 'x-amz-date')
    if (amzDate == null) {
      throw new AccessDeniedError('the request has no x-amz-date header: SigV4 signs the time it was made')
    }
    return { ...parseCredential(fields.Credential), signedHeaders: fields.SignedHeaders.split(';'), signature: fields.Signature, amzDate, presigned: false }
  }
  const algorithm = query.get('X-Amz-Algorithm')
  if (algorithm == null) {
    if (query.has('Signature') && query.has('AWSAccessKeyId')) {
      throw new InvalidRequestError('a Signature Version 2 presigned URL is not taken: presign with Signature Version 4')
    }
    return undefined
  }
  if (algorithm !== ALGORITHM) {
    throw new AuthorizationHeaderMalformedError(`X-Amz-Algorithm "${algorithm}" is not ${ALGORITHM}`)
  }
  const credential = query.get('X-Amz-Credential')
  const signedHeaders = query.get('X-Amz-SignedHeaders')
  const signature = query.get('X-Amz-Signature')
  const amzDate = query.get('X-Amz-Date')
  const expires = Number(query.get('X-Amz-Expires'))
  if (credential == null || signedHeaders == null || signature == null || amzDate == null) {
    throw new AuthorizationHeaderMalformedError('a presigned URL needs X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature')
  }
  if (!Number.isSafeInteger(expires) || expires < 1 || expires > MAX_PRESIGNED_SECONDS) {
    throw new AuthorizationHeaderMalformedError(`X-Amz-Expires must be 1 to ${MAX_PRESIGNED_SECONDS} seconds (a week), not "${query.get('X-Amz-Expires') ?? ''}"`)
  }
  return { ...parseCredential(credential), signedHeaders: signedHeaders.split(';'), signature, amzDate, presigned: true, expires }
}

/** Each '/'-separated part of a path encoded as SigV4 says (RFC 3986 unreserved characters kept) */
function canonicalPath (rawPath: string): string {
  return rawPath.split('/').map(part => {
    let decoded: string
    try {
      decoded = decodeURIComponent(part)
    } catch {
      return part
    }
    return encodeURIComponent(decoded).replace(/[!'()*]/g, c => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  }).join('/')
}

export function sameSignature (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** The payload as x-amz-content-sha256 names it */
function payloadOf (value: string | undefined, presigned: boolean): Payload {
  if (value == null) {
    if (presigned) {
      return { kind: 'unsigned' }
    }
    throw new MissingSecurityHeaderError('the request has no x-amz-content-sha256 header: SigV4 for S3 names the payload\'s SHA-256 (or UNSIGNED-PAYLOAD) in it')
  }
  switch (value) {
    case 'UNSIGNED-PAYLOAD':
      return { kind: 'unsigned' }
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD':
      return { kind: 'chunked', signed: true, trailer: false }
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER':
      return { kind: 'chunked', signed: true, trailer: true }
    case 'STREAMING-UNSIGNED-PAYLOAD-TRAILER':
      return { kind: 'chunked', signed: false, trailer: true }
    default:
      if (/^[0-9a-f]{64}$/.test(value)) {
        return { kind: 'sha256', hash: value }
      }
      if (value.startsWith('STREAMING-')) {
        throw new NotImplementedError(`the payload form ${value} is not taken (SigV4A): sign with SigV4`)
      }
      throw new InvalidArgumentError(`x-amz-content-sha256 "${value}" is neither a SHA-256 in hex nor a payload form S3 knows`)
  }
}

export interface CheckInit {
  /** the request's method, path as sent (still percent-encoded) and query */
  method: string
  rawPath: string
  query: URLSearchParams
  headers: IncomingHttpHeaders
  /** now, for the clock-skew and expiry checks */
  now?: number
}

/**
 * The key that signed the request, and how its body comes, or the S3 error
 * that refuses it: AccessDenied (unsigned), InvalidAccessKeyId (unknown or
 * revoked), RequestTimeTooSkewed (over 15 minutes off), AccessDenied
 * (a presigned URL expired), SignatureDoesNotMatch
 */
export async function authorize (keys: AccessKeys, init: CheckInit): Promise<Authorized> {
  const { method, rawPath, query, headers } = init
  const now = init.now ?? Date.now()
  const parsed = parse(headers, query)
  if (parsed == null) {
    throw new AccessDeniedError('the request is not signed: anonymous access is not taken. Sign it with an access key from `opencloud-node s3 keys create`')
  }
  const key = await keys.get(parsed.keyId)
  if (key == null) {
    throw new InvalidAccessKeyIdError(`the access key ${parsed.keyId} was not issued by this node (s3 keys ls lists those that were)`)
  }
  if (key.revokedAt != null) {
    throw new InvalidAccessKeyIdError(`the access key ${key.id} was revoked at ${new Date(key.revokedAt).toISOString()}`)
  }
  const signingDate = amzDateOf(parsed.amzDate)
  if (signingDate == null) {
    throw new AccessDeniedError(`the signing time "${parsed.amzDate}" is not YYYYMMDDTHHMMSSZ`)
  }
  if (parsed.date !== parsed.amzDate.slice(0, 8)) {
    throw new AuthorizationHeaderMalformedError(`the credential's date ${parsed.date} is not the day of the signing time ${parsed.amzDate}`)
  }
  if (parsed.service !== 's3' || parsed.terminator !== 'aws4_request') {
    throw new AuthorizationHeaderMalformedError(`the credential is scoped to "${parsed.service}/${parsed.terminator}", not "s3/aws4_request"`)
  }
  const skew = signingDate.getTime() - now
  if (parsed.presigned) {
    if (skew > MAX_CLOCK_SKEW_MS) {
      throw new RequestTimeTooSkewedError(`the URL was signed for ${signingDate.toISOString()}, more than 15 minutes ahead of this node's clock (${new Date(now).toISOString()})`)
    }
    if (signingDate.getTime() + (parsed.expires as number) * 1000 < now) {
      throw new RequestExpiredError(`Request has expired: the URL was valid for ${parsed.expires as number} s from ${signingDate.toISOString()}`)
    }
  } else if (Math.abs(skew) > MAX_CLOCK_SKEW_MS) {
    throw new RequestTimeTooSkewedError(`the difference between the request time (${signingDate.toISOString()}) and this node's clock (${new Date(now).toISOString()}) is over 15 minutes: set the client's clock`, { RequestTime: parsed.amzDate, ServerTime: new Date(now).toISOString() })
  }
  const signed = new Set(parsed.signedHeaders.map(h => h.toLowerCase()))
  if (!signed.has('host')) {
    throw new AuthorizationHeaderMalformedError('SignedHeaders must include host')
  }
  const payloadHeader = parsed.presigned ? (query.get('X-Amz-Content-Sha256') ?? header(headers, 'x-amz-content-sha256')) : header(headers, 'x-amz-content-sha256')
  const payload = payloadOf(payloadHeader, parsed.presigned)

  // an x-amz-* header changes what a request does (a copy's source,
  // metadata, checksums): one that was not signed is refused, as S3 does, or
  // a presigned upload could be turned into a copy of another object
  for (const name of Object.keys(headers)) {
    if (name.startsWith('x-amz-') && !signed.has(name) && !(parsed.presigned && name === 'x-amz-content-sha256')) {
      throw new AccessDeniedError(`There were headers present in the request which were not signed: ${name}`, { HeadersNotSigned: name })
    }
  }
  const signedHeaderValues: Record<string, string> = {}
  for (const name of signed) {
    const value = header(headers, name)
    if (value == null) {
      throw new SignatureDoesNotMatchError(`the header ${name} is signed but not sent`)
    }
    signedHeaderValues[name] = value
  }
  const host = signedHeaderValues.host
  const signer = new SignatureV4({
    credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
    region: parsed.region,
    service: 's3',
    sha256,
    // S3 signs the path as sent, encoded once, not normalised
    uriEscapePath: false,
    applyChecksum: false
  })
  const queryObject: Record<string, string | string[]> = {}
  for (const [name, value] of query) {
    if (parsed.presigned && name === 'X-Amz-Signature') {
      continue
    }
    const had = queryObject[name]
    queryObject[name] = had == null ? value : [...(Array.isArray(had) ? had : [had]), value]
  }
  const signatureFor = async (path: string): Promise<string> => {
    if (parsed.presigned) {
      // presign() adds the X-Amz-* auth parameters itself, from its options
      const rest = Object.fromEntries(Object.entries(queryObject).filter(([name]) => !['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders'].includes(name)))
      const request = new HttpRequest({ method, hostname: host, path, query: rest, headers: { ...signedHeaderValues, 'x-amz-content-sha256': payloadHeader ?? 'UNSIGNED-PAYLOAD' } })
      const out = await signer.presign(request, { signingDate, expiresIn: parsed.expires, signableHeaders: signed, unsignableHeaders: signed.has('x-amz-content-sha256') ? undefined : new Set(['x-amz-content-sha256']), unhoistableHeaders: new Set([...signed, 'x-amz-content-sha256']) })
      return String(out.query?.['X-Amz-Signature'] ?? '')
    }
    const request = new HttpRequest({ method, hostname: host, path, query: queryObject, headers: { ...signedHeaderValues, 'x-amz-content-sha256': payloadHeader as string } })
    const out = await signer.sign(request, { signingDate, signableHeaders: signed, unsignableHeaders: signed.has('x-amz-content-sha256') ? undefined : new Set(['x-amz-content-sha256']) }) as HttpRequest
    return /Signature=([0-9a-f]+)/.exec(String(out.headers.authorization))?.[1] ?? ''
  }
  // the path as SigV4 encodes it, or else exactly as sent (a client that encodes otherwise signs what it sends)
  const canonical = canonicalPath(rawPath)
  let ok = sameSignature(await signatureFor(canonical), parsed.signature)
  if (!ok && canonical !== rawPath) {
    ok = sameSignature(await signatureFor(rawPath), parsed.signature)
  }
  if (!ok) {
    throw new SignatureDoesNotMatchError('The request signature we calculated does not match the signature you provided. Check your key and signing method.', { AWSAccessKeyId: key.id })
  }
  const scope = `${parsed.date}/${parsed.region}/s3/aws4_request`
  return {
    key,
    payload,
    seed: parsed.signature,
    chunkSignature: async (previous, tail, kind) => signer.sign(`AWS4-HMAC-SHA256-${kind}\n${parsed.amzDate}\n${scope}\n${previous}\n${tail}`, { signingDate, signingRegion: parsed.region, signingService: 's3' }) as Promise<string>
  }
}
