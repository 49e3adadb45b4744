import { createHash, randomBytes } from 'node:crypto'
import { createServer, validateHeaderValue, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { ObjectBeingStoredError, ObjectNotFoundError, InvalidNameError, NotEnoughHostsError, StreamSizeError, VersionPrunedError, StorageStoppedError, ShardUnavailableError, PaymentRefusedError, IntegrityError, type StorageClient, type StoredObject } from '../../storage/client/storage-client.ts'
import { HostStalledError } from '../../storage/errors.ts'
import { Slots } from '../../utils/slots.ts'
import { AccessKeys } from './access-keys.ts'
import { authorize, header as headerOf, type Authorized } from './auth.ts'
import { objectBody, smallBody, type ObjectBody } from './body.ts'
import { Buckets, checkBucketName, objectName } from './buckets.ts'
import { DEFAULT_MAX_CONCURRENT, DEFAULT_REGION, DEFAULT_S3_PORT, DEFAULT_UPLOAD_EXPIRY_MS, MAX_DELETE_KEYS, MAX_KEYS, MAX_PARTS, MAX_PUT_BYTES, MAX_XML_BODY, UPLOAD_SWEEP_MS } from './constants.ts'
import { AccessDeniedError, BucketAlreadyOwnedByYouError, BucketNotEmptyError, EntityTooLargeError, IncompleteBodyError, InternalError, InvalidArgumentError, InvalidRangeError, InvalidRequestError, MalformedXMLError, MethodNotAllowedError, NoSuchBucketError, NoSuchKeyError, NoSuchVersionError, NotImplementedError, NotModified, PreconditionFailedError, S3Error, ServiceUnavailableError } from './errors.ts'
import { continuationToken, listKeys, maxKeysOf, parseContinuationToken, type ListOutput } from './listing.ts'
import { MultipartUploads, type UploadRecord } from './multipart.ts'
import { errorDocument, parseXml, XML_DECLARATION, xmlDocument, xmlElement } from './xml.ts'
import type { Datastore } from 'interface-datastore'
import type { AddressInfo } from 'node:net'

const log = logger('opencloud:s3')

/**
 * An S3-compatible HTTP endpoint in front of the storage client: the tools
 * people already use (aws, rclone, backup programs, every SDK) store on
 * the network through it. Bodies stream both ways (an upload goes to the
 * hosts as it arrives, a download leaves as its segments are decoded); no
 * whole object is held in memory. Path-style addressing
 * (http://HOST:PORT/BUCKET/KEY). README, "S3 gateway", has what is taken.
 */

export interface S3GatewayComponents {
  storage: StorageClient
  /** the node's datastore: access keys and empty buckets */
  datastore: Datastore
  /** a folder of its own: multipart uploads are spooled under it */
  dir: string
  /** the owner's ID in ListBuckets: the node's PeerId */
  owner: string
}

export interface S3GatewayInit {
  /** where it listens, default 127.0.0.1 */
  host?: string
  /** default 4102 (DEFAULT_S3_PORT); 0 picks a free port */
  port?: number
  /** the region GetBucketLocation answers, default us-east-1; a request signed for any region is taken */
  region?: string
  /** an unfinished multipart upload with no part for this long is deleted, default 24 h (DEFAULT_UPLOAD_EXPIRY_MS) */
  uploadExpiryMs?: number
  /** requests served at once, default 64 (DEFAULT_MAX_CONCURRENT); more wait their turn */
  maxConcurrent?: number
}

/** What an object's record keeps for S3 (StoredObject.meta) */
const META_ETAG = 'etag'
const STORED_HEADERS = ['content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires']

/** A request as the handlers see it */
interface S3Request {
  req: IncomingMessage
  res: ServerResponse
  method: string
  bucket?: string
  key?: string
  query: URLSearchParams
  auth: Authorized
  signal: AbortSignal
}

function isLoopback (address: string | undefined): boolean {
  return address != null && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'))
}

function header (req: IncomingMessage, name: string): string | undefined {
  return headerOf(req.headers, name)
}

/** S3's time format in XML */
const iso = (ms: number): string => new Date(ms).toISOString()

/** An object's ETag as S3 clients read it: the MD5 of a single put, "MD5-N" of a multipart one, quoted */
export function etagOf (object: StoredObject): string {
  // an object stored by `store put` has no MD5: its SHA-256 is not one
  // (64 digits), so clients that check an MD5 ETag know not to
  return `"${object.meta?.[META_ETAG] ?? object.sha256}"`
}

/** A Range header's bytes of an object of `size`: undefined for none (or one S3 ignores), InvalidRange past the end */
export function parseRange (text: string | undefined, size: number): { start: number, end: number } | undefined {
  if (text == null) {
    return undefined
  }
  const m = /^bytes=(\d*)-(\d*)$/.exec(text.trim())
  if (m == null || (m[1] === '' && m[2] === '')) {
    // several ranges, or another unit: S3 answers the whole object
    return undefined
  }
  let start: number
  let end: number
  if (m[1] === '') {
    // the last N bytes
    const n = Number(m[2])
    if (n === 0) {
      throw new InvalidRangeError('The requested range is not satisfiable', { RangeRequested: text, ActualObjectSize: String(size) })
    }
    start = Math.max(0, size - n)
    end = size
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size : Math.min(size, Number(m[2]) + 1)
    if (m[2] !== '' && Number(m[2]) < start) {
      return undefined
    }
  }
  if (start >= size) {
    throw new InvalidRangeError('The requested range is not satisfiable', { RangeRequested: text, ActualObjectSize: String(size) })
  }
  return { start, end }
}

/** The S3 error of a storage error, so a client acts on it (retries a 503, stops at a 404) */
function s3ErrorOf (err: any, what: string): S3Error {
  if (err instanceof S3Error) {
    return err
  }
  if (err instanceof ObjectNotFoundError) {
    return new NoSuchKeyError(`The specified key does not exist: ${err.message}`, { Key: what })
  }
  if (err instanceof VersionPrunedError) {
    return new NoSuchVersionError(err.message)
  }
  if (err instanceof InvalidNameError) {
    return new InvalidArgumentError(err.message)
  }
  if (err instanceof StreamSizeError) {
    return new IncompleteBodyError(err.message)
  }
  if (err instanceof ObjectBeingStoredError) {
    return new S3Error('OperationAborted', 409, `A conflicting operation is in progress on this object: ${err.message}`)
  }
  if (err instanceof NotEnoughHostsError || err instanceof StorageStoppedError || err instanceof ShardUnavailableError || err instanceof PaymentRefusedError || err instanceof HostStalledError) {
    return new ServiceUnavailableError(err.message)
  }
  if (err instanceof IntegrityError) {
    return new InternalError(err.message)
  }
  log.error('%s: %s', what, err?.stack ?? err)
  return new InternalError(`We encountered an internal error: ${err?.message ?? String(err)}`)
}

export class S3Gateway {
  private readonly components: S3GatewayComponents
  private readonly host: string
  private readonly port: number
  private readonly region: string
  private readonly uploadExpiryMs: number
  readonly keys: AccessKeys
  readonly buckets: Buckets
  readonly uploads: MultipartUploads
  private server?: Server
  private sweeper?: NodeJS.Timeout
  /** requests served at once; those past it wait, and one whose client leaves meanwhile leaves the queue */
  private readonly turns: Slots
  private readonly shutdown = new AbortController()
  /** uploads completed in the last hour (at most 1,000), for a Complete sent again */
  private readonly completed = new Map<string, { bucket: string, key: string, etag: string, at: number }>()

  constructor (components: S3GatewayComponents, init: S3GatewayInit = {}) {
    this.components = components
    this.host = init.host ?? '127.0.0.1'
    this.port = init.port ?? DEFAULT_S3_PORT
    this.region = init.region ?? DEFAULT_REGION
    this.uploadExpiryMs = init.uploadExpiryMs ?? DEFAULT_UPLOAD_EXPIRY_MS
    this.turns = new Slots(init.maxConcurrent ?? DEFAULT_MAX_CONCURRENT)
    this.keys = new AccessKeys(components.datastore)
    this.buckets = new Buckets(components.datastore)
    this.uploads = new MultipartUploads(join(components.dir, 'uploads'))
  }

  /** http://HOST:PORT once listening */
  get url (): string | undefined {
    const address = this.server?.address() as AddressInfo | null | undefined
    if (address == null) {
      return undefined
    }
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    return `http://${host}:${address.port}`
  }

  /** Whether it only takes requests from this machine */
  get loopbackOnly (): boolean {
    return this.host === 'localhost' || isLoopback(this.host)
  }

  async start (): Promise<void> {
    const server = createServer((req, res) => { void this.serve(req, res) })
    // a client that sends its head slowly is cut off, as the control API does
    server.headersTimeout = 30_000
    server.requestTimeout = 0
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: any) => {
        reject(err.code === 'EADDRINUSE' ? new Error(`the S3 gateway cannot listen on ${this.host}:${this.port}: the address is in use; give another with --s3 HOST:PORT or s3.listen in config.json`) : err)
      })
      server.listen(this.port, this.host, () => { resolve() })
    })
    this.server = server
    if (!this.loopbackOnly) {
      log('the S3 gateway listens on %s, beyond this machine: its requests are signed, but their bodies travel in the clear (put it behind a TLS proxy)', this.url)
    }
    void this.uploads.sweep(this.uploadExpiryMs).catch(() => {})
    this.sweeper = setInterval(() => { void this.uploads.sweep(this.uploadExpiryMs).catch(() => {}) }, UPLOAD_SWEEP_MS)
    this.sweeper.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.sweeper)
    this.shutdown.abort(new Error('the node is stopping'))
    const server = this.server
    this.server = undefined
    if (server != null) {
      await new Promise<void>(resolve => {
        server.close(() => { resolve() })
        server.closeAllConnections()
      })
    }
  }

  /** One request: checked, dispatched, and answered with S3's error document when it fails */
  private async serve (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase()
    res.setHeader('x-amz-request-id', requestId)
    res.setHeader('Server', 'opencloud-node')
    const closed = new AbortController()
    res.on('close', () => { if (!res.writableFinished) closed.abort(new Error('the client went away')) })
    const signal = AbortSignal.any([closed.signal, this.shutdown.signal])
    const raw = req.url ?? '/'
    const q = raw.indexOf('?')
    const rawPath = q < 0 ? raw : raw.slice(0, q)
    const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1))
    const method = req.method ?? 'GET'
    let release: (() => void) | undefined
    try {
      if (this.loopbackOnly && !isLoopback(req.socket.remoteAddress)) {
        throw new AccessDeniedError(`this gateway is bound to loopback and takes requests from this machine only, not from ${req.socket.remoteAddress ?? 'an unknown address'}`)
      }
      release = await this.turns.take(signal)
      let path: string
      try {
        path = decodeURIComponent(rawPath)
      } catch {
        throw new InvalidArgumentError('the request path is not valid percent-encoding')
      }
      if (!path.startsWith('/')) {
        throw new InvalidRequestError('the request path must start with /')
      }
      const slash = path.indexOf('/', 1)
      const bucket = path.length <= 1 ? undefined : (slash < 0 ? path.slice(1) : path.slice(1, slash))
      const key = slash < 0 || slash === path.length - 1 ? undefined : path.slice(slash + 1)
      const auth = await authorize(this.keys, { method, rawPath, query, headers: req.headers })
      await this.dispatch({ req, res, method, bucket, key, query, auth, signal })
    } catch (caught: any) {
      if (caught instanceof NotModified) {
        res.writeHead(304)
        res.end()
        return
      }
      const err = s3ErrorOf(caught, rawPath)
      log('%s %s: %s %s', method, rawPath, err.code, err.message)
      if (res.headersSent) {
        // the head went with the first bytes: the client sees a cut body
        res.destroy(err)
        return
      }
      const body = method === 'HEAD' ? '' : errorDocument(err, rawPath, requestId)
      // a request body not read to its end (refused before it, or cut off)
      // is not drained, which could be gigabytes: the connection closes
      // after the answer, so no next request is read out of its bytes
      const unread = !req.complete
      res.writeHead(err.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), ...(unread ? { connection: 'close' } : {}), ...(err.status === 416 && err.extra.ActualObjectSize != null ? { 'content-range': `bytes */${err.extra.ActualObjectSize}` } : {}), ...(method === 'HEAD' ? { 'x-amz-error-code': err.code } : {}) })
      res.end(body, () => {
        if (unread) {
          req.socket.destroySoon()
        }
      })
    } finally {
      release?.()
    }
  }

  private async dispatch (r: S3Request): Promise<void> {
    const { method, bucket, key, query } = r
    if (bucket == null) {
      if (method === 'GET') {
        return this.listBuckets(r)
      }
      throw new MethodNotAllowedError(`${method} / is not an S3 operation (GET / lists buckets)`)
    }
    this.allowBucket(r, bucket)
    if (key == null) {
      const sub = ['location', 'versioning', 'uploads', 'versions', 'delete', 'acl', 'policy', 'cors', 'lifecycle', 'tagging', 'encryption', 'website', 'logging', 'notification', 'replication', 'object-lock', 'ownershipControls', 'publicAccessBlock', 'accelerate', 'requestPayment', 'analytics', 'metrics', 'inventory', 'intelligent-tiering'].find(s => query.has(s))
      switch (`${method} ${sub ?? ''}`) {
        case 'PUT ': return this.createBucket(r, bucket)
        case 'DELETE ': return this.deleteBucket(r, bucket)
        case 'HEAD ': return this.headBucket(r, bucket)
        case 'GET ': return query.get('list-type') === '2' ? this.listObjectsV2(r, bucket) : this.listObjectsV1(r, bucket)
        case 'GET location': await this.needBucket(bucket); return this.xml(r, 200, 'LocationConstraint', this.region === 'us-east-1' ? {} : { '#text': this.region })
        case 'GET versioning': await this.needBucket(bucket); return this.xml(r, 200, 'VersioningConfiguration', { Status: 'Enabled' })
        case 'GET uploads': return this.listUploads(r, bucket)
        case 'GET versions': return this.listVersions(r, bucket)
        case 'POST delete': return this.deleteObjects(r, bucket)
        default:
          throw new NotImplementedError(`${method} ?${sub ?? ''} on a bucket is not implemented by this gateway (README, "S3 gateway", lists what is)`)
      }
    }
    const name = objectName(bucket, key)
    const uploadId = query.get('uploadId')
    if (['tagging', 'acl', 'retention', 'legal-hold', 'torrent', 'restore', 'select', 'attributes'].some(s => query.has(s))) {
      throw new NotImplementedError('this object subresource is not implemented by this gateway (README, "S3 gateway", lists what is)')
    }
    switch (method) {
      case 'PUT':
        if (uploadId != null) {
          if (header(r.req, 'x-amz-copy-source') != null) {
            throw new NotImplementedError('UploadPartCopy is not implemented: upload the part\'s bytes (UploadPart)')
          }
          return this.uploadPart(r, bucket, key, uploadId)
        }
        if (header(r.req, 'x-amz-copy-source') != null) {
          return this.copyObject(r, bucket, key, name)
        }
        return this.putObject(r, bucket, key, name)
      case 'GET':
        if (uploadId != null) {
          return this.listParts(r, bucket, key, uploadId)
        }
        return this.getObject(r, bucket, key, name, false)
      case 'HEAD':
        return this.getObject(r, bucket, key, name, true)
      case 'DELETE':
        if (uploadId != null) {
          return this.abortUpload(r, bucket, key, uploadId)
        }
        return this.deleteObject(r, bucket, key, name)
      case 'POST':
        if (query.has('uploads')) {
          return this.createUpload(r, bucket, key)
        }
        if (uploadId != null) {
          return this.completeUpload(r, bucket, key, name, uploadId)
        }
        throw new NotImplementedError('POST on an object is CreateMultipartUpload (?uploads) or CompleteMultipartUpload (?uploadId=); browser POST uploads are not implemented')
      default:
        throw new MethodNotAllowedError(`${method} is not an S3 method`)
    }
  }

  // ---- what a key may do ----

  /** A key limited to a bucket is refused every other */
  private allowBucket ({ auth }: S3Request, bucket: string): void {
    if (auth.key.bucket != null && auth.key.bucket !== bucket) {
      throw new AccessDeniedError(`the access key ${auth.key.id} is limited to the bucket "${auth.key.bucket}"`)
    }
  }

  /** A read-only key is refused every change */
  private allowWrite ({ auth }: S3Request): void {
    if (auth.key.readOnly) {
      throw new AccessDeniedError(`the access key ${auth.key.id} is read-only`)
    }
  }

  // ---- answers ----

  private xml ({ res }: S3Request, status: number, root: string, body: Record<string, unknown>): void {
    const text = xmlDocument(root, body)
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  private empty ({ res }: S3Request, status: number, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-length': 0, ...headers })
    res.end()
  }

  // ---- buckets ----

  /**
   * Whether a bucket exists: created empty here, or a folder with objects.
   * A folder found is recorded as a bucket, so the next request does not
   * look through every object again (and it stays a bucket, empty, when
   * its last object is removed, as an S3 bucket does)
   */
  private async bucketExists (bucket: string): Promise<boolean> {
    if (await this.buckets.get(bucket) != null) {
      return true
    }
    if ((await this.components.storage.current(`${bucket}/`)).length === 0) {
      return false
    }
    await this.buckets.put(bucket)
    return true
  }

  private async needBucket (bucket: string): Promise<void> {
    if (!await this.bucketExists(bucket)) {
      throw new NoSuchBucketError('The specified bucket does not exist', { BucketName: bucket })
    }
  }

  private async listBuckets (r: S3Request): Promise<void> {
    const found = new Map<string, number>()
    for (const record of await this.buckets.list()) {
      found.set(record.name, record.createdAt)
    }
    for (const { object } of await this.components.storage.current()) {
      const slash = object.name.indexOf('/')
      if (slash > 0) {
        const name = object.name.slice(0, slash)
        found.set(name, Math.min(found.get(name) ?? Infinity, object.createdAt))
      }
    }
    const limit = r.auth.key.bucket
    const buckets = [...found].filter(([name]) => limit == null || name === limit).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    this.xml(r, 200, 'ListAllMyBucketsResult', {
      Owner: { ID: this.components.owner, DisplayName: 'opencloud-node' },
      Buckets: { Bucket: buckets.map(([Name, at]) => ({ Name, CreationDate: iso(at) })) }
    })
  }

  private async createBucket (r: S3Request, bucket: string): Promise<void> {
    this.allowWrite(r)
    if (r.auth.key.bucket != null) {
      throw new AccessDeniedError(`the access key ${r.auth.key.id} is limited to one bucket and cannot create buckets`)
    }
    checkBucketName(bucket)
    // a CreateBucketConfiguration (a region) is read and not needed: the network has none
    await smallBody(r.req, r.req.headers, r.auth, MAX_XML_BODY)
    if (await this.bucketExists(bucket)) {
      throw new BucketAlreadyOwnedByYouError('Your previous request to create the named bucket succeeded and you already own it', { BucketName: bucket })
    }
    await this.buckets.put(bucket)
    this.empty(r, 200, { location: `/${bucket}` })
  }

  private async deleteBucket (r: S3Request, bucket: string): Promise<void> {
    this.allowWrite(r)
    if (r.auth.key.bucket != null) {
      throw new AccessDeniedError(`the access key ${r.auth.key.id} is limited to the bucket "${r.auth.key.bucket}" and cannot delete it`)
    }
    if ((await this.components.storage.current(`${bucket}/`)).length > 0) {
      throw new BucketNotEmptyError('The bucket you tried to delete is not empty', { BucketName: bucket })
    }
    if (await this.buckets.get(bucket) == null) {
      throw new NoSuchBucketError('The specified bucket does not exist', { BucketName: bucket })
    }
    await this.buckets.delete(bucket)
    this.empty(r, 204)
  }

  private async headBucket (r: S3Request, bucket: string): Promise<void> {
    await this.needBucket(bucket)
    this.empty(r, 200, { 'x-amz-bucket-region': this.region })
  }

  // ---- listings ----

  /** The current objects of a bucket, by key */
  private async entries (bucket: string): Promise<Array<{ key: string, value: StoredObject }>> {
    return (await this.components.storage.current(`${bucket}/`)).map(({ object }) => ({ key: object.name.slice(bucket.length + 1), value: object }))
  }

  private content (key: string, object: StoredObject, encode: (s: string) => string): Record<string, unknown> {
    return { Key: encode(key), LastModified: iso(object.createdAt), ETag: etagOf(object), Size: object.size, StorageClass: 'STANDARD' }
  }

  /** url encoding-type: keys with characters XML cannot carry come back percent-encoded when the client asks */
  private encoder (query: URLSearchParams): (s: string) => string {
    const type = query.get('encoding-type')
    if (type != null && type !== 'url') {
      throw new InvalidArgumentError(`Invalid Encoding Method specified in Request: "${type.slice(0, 20)}" (only "url")`, { ArgumentName: 'encoding-type' })
    }
    return type === 'url' ? (s: string) => encodeURIComponent(s).replace(/%2F/g, '/') : (s: string) => s
  }

  /**
   * A page of a bucket's listing as the three list operations read it:
   * prefix, delimiter, max-keys and encoding-type from the query, and the
   * keys after `after` (their start: a token, start-after, marker or
   * key-marker). The parts every answer has: Name, Prefix, Delimiter,
   * MaxKeys, IsTruncated and CommonPrefixes.
   */
  private async page (r: S3Request, bucket: string, after: string | undefined): Promise<{ page: ListOutput<StoredObject>, encode: (s: string) => string, common: Record<string, unknown>, prefixes: Array<Record<string, string>> }> {
    const { query } = r
    await this.needBucket(bucket)
    const encode = this.encoder(query)
    const prefix = query.get('prefix') ?? ''
    const delimiter = query.get('delimiter') ?? undefined
    const maxKeys = maxKeysOf(query.get('max-keys'), MAX_KEYS)
    const page = listKeys({ entries: await this.entries(bucket), prefix, delimiter, after, maxKeys })
    const common = {
      Name: bucket,
      Prefix: encode(prefix),
      ...(delimiter != null ? { Delimiter: encode(delimiter) } : {}),
      MaxKeys: maxKeys,
      IsTruncated: page.truncated,
      ...(query.has('encoding-type') ? { EncodingType: 'url' } : {})
    }
    return { page, encode, common, prefixes: page.commonPrefixes.map(p => ({ Prefix: encode(p) })) }
  }

  private async listObjectsV2 (r: S3Request, bucket: string): Promise<void> {
    const token = r.query.get('continuation-token')
    const startAfter = r.query.get('start-after') ?? undefined
    const { page, encode, common, prefixes } = await this.page(r, bucket, token != null ? parseContinuationToken(token) : startAfter)
    this.xml(r, 200, 'ListBucketResult', {
      ...common,
      KeyCount: page.contents.length + page.commonPrefixes.length,
      ...(token != null ? { ContinuationToken: token } : {}),
      ...(page.truncated && page.last != null ? { NextContinuationToken: continuationToken(page.last) } : {}),
      ...(startAfter != null ? { StartAfter: encode(startAfter) } : {}),
      Contents: page.contents.map(({ key, value }) => this.content(key, value, encode)),
      CommonPrefixes: prefixes
    })
  }

  private async listObjectsV1 (r: S3Request, bucket: string): Promise<void> {
    const marker = r.query.get('marker') ?? undefined
    const { page, encode, common, prefixes } = await this.page(r, bucket, marker)
    this.xml(r, 200, 'ListBucketResult', {
      ...common,
      Marker: encode(marker ?? ''),
      // S3 gives NextMarker only with a delimiter; a client without one takes the last key
      ...(page.truncated && page.last != null ? { NextMarker: encode(page.last) } : {}),
      Contents: page.contents.map(({ key, value }) => this.content(key, value, encode)),
      CommonPrefixes: prefixes
    })
  }

  private async listVersions (r: S3Request, bucket: string): Promise<void> {
    const marker = r.query.get('key-marker') ?? undefined
    // a page is of whole keys (all their versions): a version-id-marker is not needed to go on
    const { page, encode, common, prefixes } = await this.page(r, bucket, marker)
    const versions: Array<Record<string, unknown>> = []
    for (const { key, value } of page.contents) {
      const all = await this.components.storage.versions(value.name)
      for (const v of all.reverse()) {
        versions.push({ Key: encode(key), VersionId: v.id, IsLatest: v.id === value.id, LastModified: iso(v.createdAt), ETag: etagOf(v), Size: v.size, StorageClass: 'STANDARD' })
      }
    }
    this.xml(r, 200, 'ListVersionsResult', {
      ...common,
      KeyMarker: encode(marker ?? ''),
      VersionIdMarker: '',
      ...(page.truncated && page.last != null ? { NextKeyMarker: encode(page.last) } : {}),
      Version: versions,
      CommonPrefixes: prefixes
    })
  }

  // ---- objects ----

  /** Content-Type, the other stored headers and x-amz-meta-* of a request, as an object's meta */
  private metaOf (req: IncomingMessage): Record<string, string> {
    const meta: Record<string, string> = {}
    let bytes = 0
    for (const [name, value] of Object.entries(req.headers)) {
      if (value == null) {
        continue
      }
      if (STORED_HEADERS.includes(name) || name.startsWith('x-amz-meta-')) {
        const text = Array.isArray(value) ? value.join(',') : value
        // aws-chunked is how the body came, not what the object is
        const kept = name === 'content-encoding' ? text.split(',').map(s => s.trim()).filter(s => s !== 'aws-chunked').join(',') : text
        if (kept !== '') {
          meta[name] = kept
          bytes += name.length + kept.length
        }
      }
    }
    if (bytes > 2048 + 1024) {
      // S3 takes 2 KB of user metadata; a few standard headers beside it
      throw new S3Error('MetadataTooLarge', 400, 'Your metadata headers exceed the maximum allowed metadata size (2 KB)')
    }
    return meta
  }

  /** What a put's body throws, kept: the put may wrap it, and its S3 code is what the client needs */
  private watched (body: ObjectBody): { body: ObjectBody, failure: () => unknown } {
    let failure: unknown
    const source = body.stream
    async function * stream (): AsyncGenerator<Uint8Array> {
      try {
        yield * source
      } catch (err) {
        failure = err
        throw err
      }
    }
    return { body: { ...body, stream: stream() }, failure: () => failure }
  }

  private tooLarge = (size: number): Error => new EntityTooLargeError(`Your proposed upload is ${size} bytes: a single PutObject takes at most 5 GiB; use a multipart upload (aws s3 cp and rclone do by themselves)`, { ProposedSize: String(size), MaxSizeAllowed: String(MAX_PUT_BYTES) })

  /**
   * A conditional write's check (If-None-Match: * puts only a key that is
   * not there; If-Match only over that ETag), before the upload starts; two
   * writes of one name at once cannot both go on (the storage client
   * stores one name once at a time: the second is OperationAborted)
   */
  private async writeConditions (req: IncomingMessage, name: string, key: string): Promise<void> {
    const ifNoneMatch = header(req, 'if-none-match')
    const ifMatch = header(req, 'if-match')
    if (ifNoneMatch == null && ifMatch == null) {
      return
    }
    if (ifNoneMatch != null && ifNoneMatch.trim() !== '*') {
      throw new NotImplementedError('If-None-Match on a write takes only "*" (put only if the key is not there)')
    }
    let current: StoredObject | undefined
    try {
      current = await this.components.storage.find(name)
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) {
        throw err
      }
    }
    if (ifNoneMatch != null && current != null) {
      throw new PreconditionFailedError('At least one of the pre-conditions you specified did not hold: the key exists', { Condition: 'If-None-Match' })
    }
    if (ifMatch != null) {
      if (current == null) {
        throw new NoSuchKeyError('The specified key does not exist', { Key: key })
      }
      const etag = etagOf(current)
      if (!ifMatch.split(',').map(t => t.trim()).some(t => t === '*' || t === etag || `"${t}"` === etag)) {
        throw new PreconditionFailedError('At least one of the pre-conditions you specified did not hold', { Condition: 'If-Match' })
      }
    }
  }

  private async putObject (r: S3Request, bucket: string, key: string, name: string): Promise<void> {
    this.allowWrite(r)
    await this.needBucket(bucket)
    await this.writeConditions(r.req, name, key)
    const meta = this.metaOf(r.req)
    const { body, failure } = this.watched(objectBody(r.req, r.req.headers, r.auth, MAX_PUT_BYTES, this.tooLarge))
    let object: StoredObject
    try {
      object = await this.components.storage.put({ stream: body.stream, size: body.size }, { name, signal: r.signal, meta: () => ({ ...meta, [META_ETAG]: body.md5() }) })
    } catch (err) {
      throw failure() ?? err
    }
    this.empty(r, 200, { etag: etagOf(object), 'x-amz-version-id': object.id })
  }

  /** The object a request names: the current version, or ?versionId= (an object id) */
  private async objectOf (name: string, key: string, versionId: string | null): Promise<StoredObject> {
    if (versionId == null || versionId === 'null') {
      return this.components.storage.find(name).catch((err: unknown) => { throw s3ErrorOf(err, key) })
    }
    let object: StoredObject | undefined
    if (/^[0-9a-f]{32}$/.test(versionId)) {
      object = await this.components.storage.find(versionId).catch(() => undefined)
    }
    if (object == null || object.name !== name) {
      throw new NoSuchVersionError('The specified version does not exist', { Key: key, VersionId: versionId.slice(0, 64) })
    }
    return object
  }

  /** If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, as S3 weighs them */
  private conditions (req: IncomingMessage, object: StoredObject): void {
    const etag = etagOf(object)
    const matches = (list: string): boolean => list.split(',').map(s => s.trim()).some(t => t === '*' || t === etag || `"${t}"` === etag)
    const modified = Math.floor(object.createdAt / 1000) * 1000
    const ifMatch = header(req, 'if-match')
    const ifNoneMatch = header(req, 'if-none-match')
    const ifModifiedSince = Date.parse(header(req, 'if-modified-since') ?? '')
    const ifUnmodifiedSince = Date.parse(header(req, 'if-unmodified-since') ?? '')
    if (ifMatch != null && !matches(ifMatch)) {
      throw new PreconditionFailedError('At least one of the pre-conditions you specified did not hold', { Condition: 'If-Match' })
    }
    if (ifMatch == null && !Number.isNaN(ifUnmodifiedSince) && modified > ifUnmodifiedSince) {
      throw new PreconditionFailedError('At least one of the pre-conditions you specified did not hold', { Condition: 'If-Unmodified-Since' })
    }
    if (ifNoneMatch != null && matches(ifNoneMatch)) {
      throw new NotModified()
    }
    if (ifNoneMatch == null && !Number.isNaN(ifModifiedSince) && modified <= ifModifiedSince) {
      throw new NotModified()
    }
  }

  private objectHeaders (object: StoredObject): Record<string, string> {
    const headers: Record<string, string> = {
      etag: etagOf(object),
      'last-modified': new Date(object.createdAt).toUTCString(),
      'accept-ranges': 'bytes',
      'x-amz-version-id': object.id,
      'content-type': object.meta?.['content-type'] ?? 'application/octet-stream'
    }
    for (const [name, value] of Object.entries(object.meta ?? {})) {
      if (name !== META_ETAG && name !== 'content-type') {
        headers[name] = value
      }
    }
    return headers
  }

  private async getObject (r: S3Request, bucket: string, key: string, name: string, head: boolean): Promise<void> {
    const { req, res, query } = r
    await this.needBucket(bucket)
    const object = await this.objectOf(name, key, query.get('versionId'))
    this.conditions(req, object)
    const partNumber = query.get('partNumber')
    let range = parseRange(header(req, 'range'), object.size)
    if (partNumber != null) {
      // the object is one part as the gateway keeps it: part 1 is all of it
      if (partNumber !== '1') {
        throw new InvalidRangeError('The requested partNumber is not satisfiable: an object is stored as one part', { ActualPartCount: '1' })
      }
      range = undefined
    }
    const headers = this.objectHeaders(object)
    // response-* parameters of a (presigned) GET override what is stored
    for (const name of ['content-type', 'content-language', 'expires', 'cache-control', 'content-disposition', 'content-encoding']) {
      const value = query.get(`response-${name}`)
      if (value != null) {
        try {
          validateHeaderValue(name, value)
        } catch {
          throw new InvalidArgumentError(`response-${name} is not a value an HTTP header can carry (non-Latin-1 characters go percent-encoded, e.g. filename*=UTF-8''...)`, { ArgumentName: `response-${name}` })
        }
        headers[name] = value
      }
    }
    const status = range != null ? 206 : 200
    const length = range != null ? range.end - range.start : object.size
    if (range != null) {
      headers['content-range'] = `bytes ${range.start}-${range.end - 1}/${object.size}`
    }
    headers['content-length'] = String(length)
    if (head || length === 0) {
      res.writeHead(status, headers)
      res.end()
      return
    }
    const { stream } = await this.components.storage.getStream(object.id, { signal: r.signal, ...(range != null ? { range } : {}) })
    const pieces = stream[Symbol.asyncIterator]()
    try {
      // the first segment before the head: a get that cannot fetch it (too few
      // hosts) is answered with an error, not a 200 that is then cut short
      let next = await pieces.next()
      res.writeHead(status, headers)
      while (next.done !== true) {
        if (res.destroyed) {
          throw new Error('the client went away')
        }
        if (!res.write(next.value)) {
          await new Promise<void>((resolve, reject) => {
            const onDrain = (): void => { res.off('close', onClose); resolve() }
            const onClose = (): void => { res.off('drain', onDrain); reject(new Error('the client went away')) }
            res.once('drain', onDrain)
            res.once('close', onClose)
          })
        }
        next = await pieces.next()
      }
      res.end()
    } finally {
      // a reader gone mid-object: the download's own finally gives back its
      // segment slots and records what it found (a stream left suspended
      // would hold them until it is collected)
      await pieces.return?.(undefined)
    }
  }

  private async deleteObject (r: S3Request, bucket: string, key: string, name: string): Promise<void> {
    this.allowWrite(r)
    await this.needBucket(bucket)
    const versionId = r.query.get('versionId')
    const removed = await this.removeKey(name, key, versionId, r.signal)
    this.empty(r, 204, removed != null ? { 'x-amz-version-id': removed } : {})
  }

  /** Remove a key (every version of it) or one version; one that is not there is no error, as in S3. Resolves with the version removed */
  private async removeKey (name: string, key: string, versionId: string | null, signal: AbortSignal): Promise<string | undefined> {
    if (versionId != null && versionId !== 'null') {
      const object = await this.objectOf(name, key, versionId)
      await this.components.storage.remove(object.id, signal)
      return object.id
    }
    try {
      await this.components.storage.remove(name, signal)
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        return undefined
      }
      throw err
    }
    return undefined
  }

  private async deleteObjects (r: S3Request, bucket: string): Promise<void> {
    this.allowWrite(r)
    await this.needBucket(bucket)
    const doc = parseXml((await smallBody(r.req, r.req.headers, r.auth, MAX_XML_BODY)).toString('utf8'), 'Delete')
    const objects: Array<Record<string, any>> = doc.Object ?? []
    if (objects.length > MAX_DELETE_KEYS) {
      throw new MalformedXMLError(`a DeleteObjects names at most ${MAX_DELETE_KEYS} keys, not ${objects.length}`)
    }
    const quiet = String(doc.Quiet ?? 'false').trim().toLowerCase() === 'true'
    const deleted: Array<Record<string, unknown>> = []
    const errors: Array<Record<string, unknown>> = []
    for (const entry of objects) {
      // a key as sent, spaces and all; a version id is a word
      const key = typeof entry.Key === 'string' ? entry.Key : ''
      const versionId = entry.VersionId != null ? String(entry.VersionId).trim() : null
      try {
        const name = objectName(bucket, key)
        await this.removeKey(name, key, versionId, r.signal)
        if (!quiet) {
          deleted.push({ Key: key, ...(versionId != null ? { VersionId: versionId } : {}) })
        }
      } catch (caught) {
        const err = s3ErrorOf(caught, key)
        errors.push({ Key: key, ...(versionId != null ? { VersionId: versionId } : {}), Code: err.code, Message: err.message })
      }
    }
    this.xml(r, 200, 'DeleteResult', { Deleted: deleted, Error: errors })
  }

  private async copyObject (r: S3Request, bucket: string, key: string, name: string): Promise<void> {
    this.allowWrite(r)
    await this.needBucket(bucket)
    const source = header(r.req, 'x-amz-copy-source') as string
    let decoded: string
    try {
      decoded = decodeURIComponent(source)
    } catch {
      throw new InvalidArgumentError('x-amz-copy-source is not valid percent-encoding')
    }
    const [path, version] = decoded.split('?versionId=')
    const trimmed = path.startsWith('/') ? path.slice(1) : path
    const slash = trimmed.indexOf('/')
    if (slash <= 0 || slash === trimmed.length - 1) {
      throw new InvalidArgumentError('x-amz-copy-source must be BUCKET/KEY (URL-encoded), optionally with ?versionId=')
    }
    const fromBucket = trimmed.slice(0, slash)
    const fromKey = trimmed.slice(slash + 1)
    this.allowBucket(r, fromBucket)
    await this.needBucket(fromBucket)
    const from = await this.objectOf(objectName(fromBucket, fromKey), fromKey, version ?? null)
    const etag = etagOf(from)
    const matchHeader = (name: string): string | undefined => header(r.req, `x-amz-copy-source-${name}`)
    const ifMatch = matchHeader('if-match')
    const ifNoneMatch = matchHeader('if-none-match')
    if ((ifMatch != null && ifMatch.replace(/"/g, '') !== etag.replace(/"/g, '')) || (ifNoneMatch != null && ifNoneMatch.replace(/"/g, '') === etag.replace(/"/g, ''))) {
      throw new PreconditionFailedError('At least one of the pre-conditions you specified did not hold')
    }
    const directive = (header(r.req, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase()
    if (directive !== 'COPY' && directive !== 'REPLACE') {
      throw new InvalidArgumentError(`x-amz-metadata-directive is COPY or REPLACE, not "${directive.slice(0, 20)}"`)
    }
    const { [META_ETAG]: _etag, ...kept } = from.meta ?? {}
    const meta = directive === 'REPLACE' ? this.metaOf(r.req) : kept
    // the bytes, streamed from the source's hosts to the copy's: one segment in memory at a time
    const md5 = createHash('md5')
    const { stream } = await this.components.storage.getStream(from.id, { signal: r.signal })
    async function * hashed (): AsyncGenerator<Uint8Array> {
      for await (const piece of stream) {
        md5.update(piece)
        yield piece
      }
    }
    // S3 takes a request without a body here; one sent is drained
    r.req.resume()
    const object = await this.components.storage.put({ stream: hashed(), size: from.size }, { name, signal: r.signal, meta: () => ({ ...meta, [META_ETAG]: md5.digest('hex') }) })
    this.xml(r, 200, 'CopyObjectResult', { LastModified: iso(object.createdAt), ETag: etagOf(object) })
  }

  // ---- multipart ----

  private async createUpload (r: S3Request, bucket: string, key: string): Promise<void> {
    this.allowWrite(r)
    await this.needBucket(bucket)
    const meta = this.metaOf(r.req)
    r.req.resume()
    const upload = await this.uploads.create(bucket, key, meta, r.auth.key.id)
    this.xml(r, 200, 'InitiateMultipartUploadResult', { Bucket: bucket, Key: key, UploadId: upload.id })
  }

  /** An upload a key may go on with: its own, or any with a key of every bucket */
  private async ownUpload (r: S3Request, uploadId: string, bucket: string, key: string): Promise<UploadRecord> {
    const upload = await this.uploads.get(uploadId, bucket, key)
    if (upload.keyId !== r.auth.key.id && r.auth.key.bucket != null) {
      throw new AccessDeniedError(`the upload was created with another access key, and ${r.auth.key.id} is limited to one bucket`)
    }
    return upload
  }

  private async uploadPart (r: S3Request, bucket: string, key: string, uploadId: string): Promise<void> {
    this.allowWrite(r)
    await this.ownUpload(r, uploadId, bucket, key)
    const numberText = r.query.get('partNumber') ?? ''
    const number = /^\d{1,5}$/.test(numberText) ? Number(numberText) : NaN
    const body = objectBody(r.req, r.req.headers, r.auth, MAX_PUT_BYTES, (size) => new EntityTooLargeError(`a part is at most 5 GiB, not ${size} bytes`, { ProposedSize: String(size), MaxSizeAllowed: String(MAX_PUT_BYTES) }))
    if (Number.isNaN(number) || number < 1 || number > MAX_PARTS) {
      throw new InvalidArgumentError(`Part number must be an integer between 1 and ${MAX_PARTS}, inclusive, not "${numberText.slice(0, 20)}"`, { ArgumentName: 'partNumber' })
    }
    const part = await this.uploads.putPart(uploadId, number, body, r.signal)
    this.empty(r, 200, { etag: `"${part.md5}"` })
  }

  private async listParts (r: S3Request, bucket: string, key: string, uploadId: string): Promise<void> {
    const upload = await this.ownUpload(r, uploadId, bucket, key)
    const marker = Number(r.query.get('part-number-marker') ?? '0') || 0
    const maxParts = maxKeysOf(r.query.get('max-parts'), MAX_KEYS)
    const all = (await this.uploads.parts(uploadId)).filter(p => p.number > marker)
    const page = all.slice(0, maxParts)
    this.xml(r, 200, 'ListPartsResult', {
      Bucket: bucket,
      Key: key,
      UploadId: upload.id,
      PartNumberMarker: marker,
      ...(page.length > 0 ? { NextPartNumberMarker: page[page.length - 1].number } : {}),
      MaxParts: maxParts,
      IsTruncated: all.length > page.length,
      StorageClass: 'STANDARD',
      Part: page.map(p => ({ PartNumber: p.number, LastModified: iso(p.lastModified), ETag: `"${p.md5}"`, Size: p.size }))
    })
  }

  private async listUploads (r: S3Request, bucket: string): Promise<void> {
    await this.needBucket(bucket)
    const prefix = r.query.get('prefix') ?? ''
    const maxUploads = maxKeysOf(r.query.get('max-uploads'), MAX_KEYS)
    const all = (await this.uploads.list(bucket)).filter(u => u.key.startsWith(prefix))
    const page = all.slice(0, maxUploads)
    this.xml(r, 200, 'ListMultipartUploadsResult', {
      Bucket: bucket,
      KeyMarker: '',
      UploadIdMarker: '',
      Prefix: prefix,
      MaxUploads: maxUploads,
      IsTruncated: all.length > page.length,
      Upload: page.map(u => ({ Key: u.key, UploadId: u.id, Initiated: iso(u.createdAt), StorageClass: 'STANDARD' }))
    })
  }

  private async abortUpload (r: S3Request, bucket: string, key: string, uploadId: string): Promise<void> {
    this.allowWrite(r)
    await this.ownUpload(r, uploadId, bucket, key)
    await this.uploads.remove(uploadId)
    this.empty(r, 204)
  }

  private async completeUpload (r: S3Request, bucket: string, key: string, name: string, uploadId: string): Promise<void> {
    this.allowWrite(r)
    const done = this.completed.get(uploadId)
    if (done != null && done.bucket === bucket && done.key === key) {
      // a Complete sent again (its answer was lost): the same answer, not NoSuchUpload for an object that is stored
      this.xml(r, 200, 'CompleteMultipartUploadResult', { Location: `/${bucket}/${key}`, Bucket: bucket, Key: key, ETag: done.etag })
      return
    }
    const upload = await this.ownUpload(r, uploadId, bucket, key)
    const doc = parseXml((await smallBody(r.req, r.req.headers, r.auth, MAX_XML_BODY)).toString('utf8'), 'CompleteMultipartUpload')
    const named = (doc.Part ?? []).map((p: Record<string, unknown>) => ({ number: Number(String(p.PartNumber ?? '').trim()), etag: String(p.ETag ?? '').trim() }))
    await this.writeConditions(r.req, name, key)
    const { size, etag, stream, close } = await this.uploads.assemble(uploadId, named)
    // the put may take minutes (every byte goes to the hosts now): as S3
    // does, the status (200) and the XML declaration go at once, then a
    // space every 10 s keeps the connection alive, then the result, or an
    // error document when the put fails
    r.res.writeHead(200, { 'content-type': 'application/xml' })
    r.res.write(XML_DECLARATION)
    const keepAlive = setInterval(() => { r.res.write(' ') }, 10_000)
    let object: StoredObject
    try {
      object = await this.components.storage.put({ stream, size }, { name, signal: r.signal, meta: { ...upload.meta, [META_ETAG]: etag } })
    } catch (caught) {
      const err = s3ErrorOf(caught, key)
      log('complete %s/%s: %s %s', bucket, key, err.code, err.message)
      r.res.end(errorDocument(err, `/${bucket}/${key}`, String(r.res.getHeader('x-amz-request-id')), false))
      return
    } finally {
      clearInterval(keepAlive)
      await close()
    }
    this.completed.set(uploadId, { bucket, key, etag: etagOf(object), at: Date.now() })
    for (const [id, c] of this.completed) {
      if (this.completed.size <= 1000 && Date.now() - c.at < 3_600_000) {
        break
      }
      this.completed.delete(id)
    }
    await this.uploads.remove(uploadId)
    r.res.end(xmlElement('CompleteMultipartUploadResult', { Location: `/${bucket}/${key}`, Bucket: bucket, Key: key, ETag: etagOf(object) }))
  }

}
