import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { connect as netConnect } from 'node:net'
import { networkInterfaces } from 'node:os'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, ListObjectsCommand, DeleteObjectCommand, DeleteObjectsCommand, CreateBucketCommand, DeleteBucketCommand, HeadBucketCommand, ListBucketsCommand, CopyObjectCommand, CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand, AbortMultipartUploadCommand, ListPartsCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { SignatureV4 } from '@smithy/signature-v4'
import { HttpRequest } from '@smithy/protocol-http'
import { Hash } from '@smithy/hash-node'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { objectInfo } from '../../src/storage/views.ts'
import { IndexNotes } from '../../src/storage/client/recovery/index-notes.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import type { S3Gateway } from '../../src/gateway/s3/s3-gateway.ts'
import type { AccessKey } from '../../src/gateway/s3/access-keys.ts'

const MIB = 1024 * 1024
const HOSTS = 4
const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex')
const sha256hex = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex')

/** What a raw request answered */
interface Raw {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/**
 * The S3 gateway (issue 23), on real nodes over TCP: the AWS SDK for
 * JavaScript against it (put, get, ranges, multipart, presigned URLs,
 * listings, copies, versions), its keys (wrong secret, read-only, one
 * bucket, revoked), and hostile requests sent raw (unsigned, skewed,
 * tampered chunks, '..' keys, short bodies, dropped connections)
 */
describe('S3 gateway: the AWS SDK and raw requests against a node on real hosts', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  const hosts: OpenCloudNode[] = []
  let client: OpenCloudNode
  let gateway: S3Gateway
  let key: AccessKey
  let s3: S3Client
  let url: URL

  const sdk = (k: { id: string, secret: string }, extra: Record<string, unknown> = {}): S3Client => new S3Client({ endpoint: gateway.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: k.id, secretAccessKey: k.secret }, maxAttempts: 1, ...extra })

  /** A request signed here with SigV4 (header form), sent with its path exactly as given */
  const raw = async (method: string, path: string, options: { headers?: Record<string, string>, body?: Buffer, date?: Date, secret?: string, keyId?: string, unsigned?: boolean, payload?: string, sendBytes?: Buffer, localAddress?: string } = {}): Promise<Raw> => {
    const [pathname, search = ''] = path.split('?')
    const query: Record<string, string> = {}
    for (const [k, v] of new URLSearchParams(search)) {
      query[k] = v
    }
    const body = options.body ?? Buffer.alloc(0)
    let headers: Record<string, string> = { host: url.host, 'x-amz-content-sha256': options.payload ?? sha256hex(body), 'content-length': String(body.length), ...options.headers }
    if (options.unsigned !== true) {
      const signer = new SignatureV4({ credentials: { accessKeyId: options.keyId ?? key.id, secretAccessKey: options.secret ?? key.secret }, region: 'us-east-1', service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false })
      const signed = await signer.sign(new HttpRequest({ method, hostname: url.hostname, port: Number(url.port), path: pathname, query, headers }), { signingDate: options.date ?? new Date() })
      headers = signed.headers as Record<string, string>
    }
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers, localAddress: options.localAddress }, res => {
        const chunks: Buffer[] = []
        res.on('data', c => chunks.push(c))
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }) })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(options.sendBytes ?? body)
    })
  }
  const codeOf = (r: Raw): string | undefined => /<Code>([^<]+)<\/Code>/.exec(r.body.toString())?.[1]

  const names = async (prefix = ''): Promise<string[]> => (await client.storage.current(prefix)).map(c => c.object.name).sort()

  before(async () => {
    dir = await tempDir()
    for (let i = 0; i < HOSTS; i++) {
      hosts[i] = await OpenCloudNode.create({ dataDir: join(dir.path, `host${i}`), config: testConfig(), bootstrap: i === 0 ? [] : [addrOf(hosts[0])] })
      await hosts[i].start()
    }
    // 1 MiB segments, so that a range and a 30 MiB object cross many
    client = await OpenCloudNode.create({ dataDir: join(dir.path, 'client'), config: testConfig(), bootstrap: [addrOf(hosts[0])], modules: { s3: { listen: '127.0.0.1:0' } }, storage: { segmentSize: MIB, rentCheckMs: 86_400_000 } })
    await client.start()
    for (const host of hosts) {
      await connect(client, host)
    }
    await waitFor(async () => (await client.storageHosts()).length === HOSTS, 60_000, 'storage offers from every host')
    gateway = client.engine<S3Gateway>('s3') as S3Gateway
    assert.ok(gateway.url != null, 'the gateway listens')
    url = new URL(gateway.url)
    key = await gateway.keys.create({ label: 'test' })
    s3 = sdk(key)
    await s3.send(new CreateBucketCommand({ Bucket: 'photos' }))
  })

  after(async () => {
    s3?.destroy()
    await client?.stop()
    for (const host of hosts) {
      await host?.stop()
    }
    await dir?.cleanup()
  })

  it('puts, gets, heads, lists and deletes through the SDK; the object is a storage object named bucket/key, and the other way round', async () => {
    const data = randomBytes(2 * MIB + 333)
    const put = await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: '2026/beach.jpg', Body: data, ContentType: 'image/jpeg', Metadata: { camera: 'x100' } }))
    assert.equal(put.ETag, `"${md5(data)}"`, 'the ETag of a single put is its MD5, as S3 clients check it')
    // the storage namespace: store ls lists it, with its size and sha256
    const stored = await client.storage.find('photos/2026/beach.jpg')
    assert.equal(stored.size, data.length)
    assert.equal(stored.sha256, sha256hex(data))
    assert.equal(put.VersionId, stored.id)
    // what S3 keeps goes with the object: into store info, and into its index note (so it comes back from the words)
    const meta = { 'content-type': 'image/jpeg', 'x-amz-meta-camera': 'x100', etag: md5(data) }
    assert.deepEqual((objectInfo(stored) as any).meta, meta)
    assert.deepEqual(IndexNotes.noteObject(stored).meta, meta)

    const got = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: '2026/beach.jpg' }))
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(data), 'byte-identical')
    assert.equal(got.ContentType, 'image/jpeg')
    assert.deepEqual(got.Metadata, { camera: 'x100' })
    assert.equal(got.ETag, put.ETag)

    const head = await s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: '2026/beach.jpg' }))
    assert.equal(head.ContentLength, data.length)
    assert.equal(head.ContentType, 'image/jpeg')

    // stored with the storage client (as `store put --name photos/notes.txt`): in the bucket
    const notes = Buffer.from('written by store put\n')
    await client.storage.put({ stream: Readable.from([notes]), size: notes.length }, { name: 'photos/notes.txt' })
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'photos' }))
    assert.deepEqual(listed.Contents?.map(c => c.Key), ['2026/beach.jpg', 'notes.txt'])
    assert.equal(listed.Contents?.[1].Size, notes.length)
    const fetched = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'notes.txt' }))
    assert.equal(await fetched.Body!.transformToString(), notes.toString())
    assert.doesNotMatch(String(fetched.ETag), /^"[0-9a-f]{32}"$/, 'an object with no MD5 is not given an ETag that looks like one')

    const buckets = await s3.send(new ListBucketsCommand({}))
    assert.ok(buckets.Buckets?.some(b => b.Name === 'photos'))

    await s3.send(new DeleteObjectCommand({ Bucket: 'photos', Key: 'notes.txt' }))
    assert.deepEqual(await names('photos/'), ['photos/2026/beach.jpg'])
    // deleting what is not there is no error, as in S3
    await s3.send(new DeleteObjectCommand({ Bucket: 'photos', Key: 'notes.txt' }))
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'notes.txt' })), (err: any) => err.name === 'NoSuchKey')
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'nobucket', Key: 'x' })), (err: any) => err.name === 'NoSuchBucket')
  })

  it('answers ranges across segments, suffixes and open ends, refuses one past the end with InvalidRange, and keeps conditional GETs', async () => {
    const data = randomBytes(3 * MIB + 5)
    const put = await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'ranges.bin', Body: data }))
    const range = async (r: string): Promise<{ body: Buffer, contentRange?: string }> => {
      const got = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranges.bin', Range: r }))
      return { body: Buffer.from(await got.Body!.transformToByteArray()), contentRange: got.ContentRange }
    }
    const across = await range(`bytes=${MIB - 10}-${2 * MIB + 9}`)
    assert.ok(across.body.equals(data.subarray(MIB - 10, 2 * MIB + 10)), 'a range over three segments')
    assert.equal(across.contentRange, `bytes ${MIB - 10}-${2 * MIB + 9}/${data.length}`)
    assert.ok((await range('bytes=-7')).body.equals(data.subarray(data.length - 7)))
    assert.ok((await range(`bytes=${3 * MIB}-`)).body.equals(data.subarray(3 * MIB)))
    assert.ok((await range('bytes=0-0')).body.equals(data.subarray(0, 1)))
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranges.bin', Range: `bytes=${data.length}-` })), (err: any) => err.name === 'InvalidRange' && err.$metadata.httpStatusCode === 416)

    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranges.bin', IfNoneMatch: put.ETag })), (err: any) => err.$metadata.httpStatusCode === 304)
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranges.bin', IfMatch: '"0123"' })), (err: any) => err.$metadata.httpStatusCode === 412)
    const matched = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranges.bin', IfMatch: put.ETag, Range: 'bytes=0-3' }))
    assert.ok(Buffer.from(await matched.Body!.transformToByteArray()).equals(data.subarray(0, 4)))
  })

  it('takes a 30 MiB multipart upload in 5 MiB parts, with the "MD5-N" ETag; lists and aborts uploads; refuses a small part and an unknown upload', async () => {
    const data = randomBytes(30 * MIB)
    const upload = new Upload({ client: s3, params: { Bucket: 'photos', Key: 'video/big.mp4', Body: data, ContentType: 'video/mp4' }, partSize: 5 * MIB, queueSize: 3 })
    const done = await upload.done()
    const partMd5s = Buffer.concat(Array.from({ length: 6 }, (_, i) => Buffer.from(md5(data.subarray(i * 5 * MIB, (i + 1) * 5 * MIB)), 'hex')))
    assert.equal(done.ETag, `"${md5(partMd5s)}-6"`)
    const got = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'video/big.mp4' }))
    assert.equal(got.ContentType, 'video/mp4')
    assert.equal(sha256hex(Buffer.from(await got.Body!.transformToByteArray())), sha256hex(data), 'byte-identical')
    // the spooled parts are gone once it is one object
    assert.deepEqual(await readdir(join(dir.path, 'client', 's3', 'uploads')).catch(() => []), [])

    // an upload by hand: ListParts, ListMultipartUploads, a part too small, Abort
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'by-hand.bin' }))
    const id = created.UploadId as string
    const p1 = await s3.send(new UploadPartCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: id, PartNumber: 1, Body: randomBytes(1024) }))
    const p2 = await s3.send(new UploadPartCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: id, PartNumber: 2, Body: randomBytes(1024) }))
    const parts = await s3.send(new ListPartsCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: id }))
    assert.deepEqual(parts.Parts?.map(p => [p.PartNumber, p.Size, p.ETag]), [[1, 1024, p1.ETag], [2, 1024, p2.ETag]])
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'photos' }))
    assert.deepEqual(uploads.Uploads?.map(u => [u.Key, u.UploadId]), [['by-hand.bin', id]])
    await assert.rejects(s3.send(new CompleteMultipartUploadCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: id, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] } })), (err: any) => err.name === 'EntityTooSmall')
    await assert.rejects(s3.send(new CompleteMultipartUploadCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: id, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"00000000000000000000000000000000"' }] } })), (err: any) => err.name === 'InvalidPart')
    await assert.rejects(s3.send(new CompleteMultipartUploadCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: id, MultipartUpload: { Parts: [{ PartNumber: 2, ETag: p2.ETag }, { PartNumber: 1, ETag: p1.ETag }] } })), (err: any) => err.name === 'InvalidPartOrder')
    assert.ok(!(await names('photos/')).includes('photos/by-hand.bin'), 'an unfinished upload is not listed')
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: id }))
    await assert.rejects(s3.send(new UploadPartCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: id, PartNumber: 3, Body: Buffer.from('x') })), (err: any) => err.name === 'NoSuchUpload')
    await assert.rejects(s3.send(new ListPartsCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: 'f'.repeat(32) })), (err: any) => err.name === 'NoSuchUpload')
    await assert.rejects(s3.send(new UploadPartCommand({ Bucket: 'photos', Key: 'by-hand.bin', UploadId: '../../etc', PartNumber: 1, Body: Buffer.from('x') })), (err: any) => err.name === 'NoSuchUpload')
  })

  it('serves a presigned GET, and refuses one that expired or was changed', async () => {
    const data = Buffer.from('presigned bytes')
    await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'shared/link.txt', Body: data }))
    const link = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'photos', Key: 'shared/link.txt' }), { expiresIn: 60 })
    const res = await fetch(link)
    assert.equal(res.status, 200)
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(data))
    const old = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'photos', Key: 'shared/link.txt' }), { expiresIn: 60, signingDate: new Date(Date.now() - 3_600_000) })
    const expired = await fetch(old)
    assert.equal(expired.status, 403)
    assert.match(await expired.text(), /<Code>AccessDenied<\/Code>.*expired/s)
    const changed = await fetch(link.replace('link.txt', 'link.txx'))
    assert.equal(changed.status, 403)
    assert.match(await changed.text(), /SignatureDoesNotMatch/)
  })

  it('refuses a wrong secret, a read-only key\'s put, another bucket to a bucket key, and a revoked key', async () => {
    const wrong = sdk({ id: key.id, secret: 'x'.repeat(40) })
    await assert.rejects(wrong.send(new ListObjectsV2Command({ Bucket: 'photos' })), (err: any) => err.name === 'SignatureDoesNotMatch')
    await assert.rejects(sdk({ id: 'OCNOTAKEYOFTHISNODE1', secret: key.secret }).send(new ListObjectsV2Command({ Bucket: 'photos' })), (err: any) => err.name === 'InvalidAccessKeyId')

    const readOnly = await gateway.keys.create({ readOnly: true })
    const reader = sdk(readOnly)
    await assert.rejects(reader.send(new PutObjectCommand({ Bucket: 'photos', Key: 'ro.txt', Body: 'no' })), (err: any) => err.name === 'AccessDenied')
    await assert.rejects(reader.send(new DeleteObjectCommand({ Bucket: 'photos', Key: '2026/beach.jpg' })), (err: any) => err.name === 'AccessDenied')
    assert.ok((await reader.send(new ListObjectsV2Command({ Bucket: 'photos' }))).Contents?.some(c => c.Key === '2026/beach.jpg'), 'a read-only key reads')
    assert.ok(!(await names('photos/')).includes('photos/ro.txt'))

    await s3.send(new CreateBucketCommand({ Bucket: 'other' }))
    const limited = sdk(await gateway.keys.create({ bucket: 'photos' }))
    await assert.rejects(limited.send(new ListObjectsV2Command({ Bucket: 'other' })), (err: any) => err.name === 'AccessDenied')
    await assert.rejects(limited.send(new CreateBucketCommand({ Bucket: 'third' })), (err: any) => err.name === 'AccessDenied')
    assert.deepEqual((await limited.send(new ListBucketsCommand({}))).Buckets?.map(b => b.Name), ['photos'])
    await assert.rejects(limited.send(new DeleteBucketCommand({ Bucket: 'photos' })), (err: any) => err.name === 'AccessDenied')
    const others = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'someone-elses.bin' }))
    await assert.rejects(limited.send(new AbortMultipartUploadCommand({ Bucket: 'photos', Key: 'someone-elses.bin', UploadId: others.UploadId })), (err: any) => err.name === 'AccessDenied')
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'photos', Key: 'someone-elses.bin', UploadId: others.UploadId }))

    const revocable = await gateway.keys.create()
    const soon = sdk(revocable)
    await soon.send(new HeadBucketCommand({ Bucket: 'photos' }))
    await gateway.keys.revoke(revocable.id)
    await assert.rejects(soon.send(new HeadBucketCommand({ Bucket: 'photos' })), (err: any) => err.$metadata.httpStatusCode === 403)
    await assert.rejects(soon.send(new ListObjectsV2Command({ Bucket: 'photos' })), (err: any) => err.name === 'InvalidAccessKeyId' && /revoked/.test(err.message))
  })

  it('lists with prefix, delimiter, start-after, max-keys and continuation tokens (V2 and V1), deletes many, copies, and keeps versions', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'lists' }))
    const keys = ['a/1', 'a/2', 'a/b/3', 'b', 'c/4', 'c/5', 'z']
    for (const k of keys) {
      await s3.send(new PutObjectCommand({ Bucket: 'lists', Key: k, Body: k }))
    }
    const top = await s3.send(new ListObjectsV2Command({ Bucket: 'lists', Delimiter: '/' }))
    assert.deepEqual(top.Contents?.map(c => c.Key), ['b', 'z'])
    assert.deepEqual(top.CommonPrefixes?.map(p => p.Prefix), ['a/', 'c/'])
    const under = await s3.send(new ListObjectsV2Command({ Bucket: 'lists', Prefix: 'a/', Delimiter: '/' }))
    assert.deepEqual(under.Contents?.map(c => c.Key), ['a/1', 'a/2'])
    assert.deepEqual(under.CommonPrefixes?.map(p => p.Prefix), ['a/b/'])
    const after = await s3.send(new ListObjectsV2Command({ Bucket: 'lists', StartAfter: 'b' }))
    assert.deepEqual(after.Contents?.map(c => c.Key), ['c/4', 'c/5', 'z'])
    // pages of 2, followed by their tokens, give every key once
    const paged: string[] = []
    let token: string | undefined
    let pages = 0
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: 'lists', MaxKeys: 2, ContinuationToken: token }))
      paged.push(...(page.Contents ?? []).map(c => c.Key as string))
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined
      pages++
    } while (token != null)
    assert.deepEqual(paged, keys)
    assert.equal(pages, 4)
    const v1 = await s3.send(new ListObjectsCommand({ Bucket: 'lists', Marker: 'a/b/3', MaxKeys: 2 }))
    assert.deepEqual(v1.Contents?.map(c => c.Key), ['b', 'c/4'])
    assert.equal(v1.IsTruncated, true)
    await assert.rejects(s3.send(new ListObjectsV2Command({ Bucket: 'lists', ContinuationToken: 'not a token!' })), (err: any) => err.name === 'InvalidArgument')

    // a key is what was sent, spaces and all: deleting "b " is not deleting "b"
    await s3.send(new PutObjectCommand({ Bucket: 'lists', Key: 'b ', Body: 'b with a space' }))
    const spaced = await s3.send(new DeleteObjectsCommand({ Bucket: 'lists', Delete: { Objects: [{ Key: 'b ' }] } }))
    assert.deepEqual(spaced.Deleted?.map(d => d.Key), ['b '])
    assert.deepEqual(await names('lists/b'), ['lists/b'])
    // DeleteObjects, with a key that is not there and one that is refused
    const deleted = await s3.send(new DeleteObjectsCommand({ Bucket: 'lists', Delete: { Objects: [{ Key: 'c/4' }, { Key: 'c/5' }, { Key: 'never' }, { Key: 'bad/../key' }] } }))
    assert.deepEqual(deleted.Deleted?.map(d => d.Key).sort(), ['c/4', 'c/5', 'never'])
    assert.deepEqual(deleted.Errors?.map(e => [e.Key, e.Code]), [['bad/../key', 'InvalidArgument']])
    assert.deepEqual(await names('lists/'), ['lists/a/1', 'lists/a/2', 'lists/a/b/3', 'lists/b', 'lists/z'])
    await assert.rejects(s3.send(new DeleteBucketCommand({ Bucket: 'lists' })), (err: any) => err.name === 'BucketNotEmpty')

    // a copy (metadata kept, or replaced), and a version of a key by its id
    await s3.send(new PutObjectCommand({ Bucket: 'lists', Key: 'doc', Body: 'version one', ContentType: 'text/plain', Metadata: { n: '1' } }))
    const copied = await s3.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'copy-of-doc', CopySource: 'lists/doc' }))
    assert.equal(copied.CopyObjectResult?.ETag, `"${md5(Buffer.from('version one'))}"`)
    const copy = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'copy-of-doc' }))
    assert.equal(await copy.Body!.transformToString(), 'version one')
    assert.deepEqual([copy.ContentType, copy.Metadata], ['text/plain', { n: '1' }])
    await s3.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'copy-of-doc', CopySource: 'photos/copy-of-doc', MetadataDirective: 'REPLACE', ContentType: 'text/markdown' }))
    assert.equal((await s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'copy-of-doc' }))).ContentType, 'text/markdown')

    const first = await s3.send(new HeadObjectCommand({ Bucket: 'lists', Key: 'doc' }))
    await s3.send(new PutObjectCommand({ Bucket: 'lists', Key: 'doc', Body: 'version two' }))
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: 'lists', Prefix: 'doc' }))
    assert.deepEqual(versions.Versions?.map(v => [v.Key, v.IsLatest]), [['doc', true], ['doc', false]])
    assert.equal(versions.Versions?.[1].VersionId, first.VersionId)
    const old = await s3.send(new GetObjectCommand({ Bucket: 'lists', Key: 'doc', VersionId: first.VersionId }))
    assert.equal(await old.Body!.transformToString(), 'version one')
    assert.equal(await (await s3.send(new GetObjectCommand({ Bucket: 'lists', Key: 'doc' }))).Body!.transformToString(), 'version two')
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'lists', Key: 'doc', VersionId: 'f'.repeat(32) })), (err: any) => err.name === 'NoSuchVersion')
  })

  it('keeps conditional writes, and refuses a header that was not signed and a response header that cannot be one', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'lock', Body: 'first', IfNoneMatch: '*' }))
    await assert.rejects(s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'lock', Body: 'second', IfNoneMatch: '*' })), (err: any) => err.$metadata.httpStatusCode === 412)
    await assert.rejects(s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'lock', Body: 'third', IfMatch: '"00000000000000000000000000000000"' })), (err: any) => err.$metadata.httpStatusCode === 412)
    await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'lock', Body: 'fourth', IfMatch: `"${md5(Buffer.from('first'))}"` }))
    assert.equal(await (await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'lock' }))).Body!.transformToString(), 'fourth')

    // a presigned upload cannot be turned into a copy of another object by a header its signer did not sign
    await s3.send(new PutObjectCommand({ Bucket: 'other', Key: 'secret', Body: 'TOP SECRET' }))
    const upload = await getSignedUrl(s3, new PutObjectCommand({ Bucket: 'photos', Key: 'inbox/drop.txt' }), { expiresIn: 60 })
    const hijack = await fetch(upload, { method: 'PUT', headers: { 'x-amz-copy-source': '/other/secret' }, body: '' })
    assert.equal(hijack.status, 403)
    assert.match(await hijack.text(), /headers present in the request which were not signed: x-amz-copy-source/)
    const plain = await fetch(upload, { method: 'PUT', body: 'dropped' })
    assert.equal(plain.status, 200, 'the presigned upload itself works')
    assert.equal(await (await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'inbox/drop.txt' }))).Body!.transformToString(), 'dropped')

    const disposition = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'photos', Key: 'inbox/drop.txt', ResponseContentDisposition: 'attachment; filename="报告.pdf"' }), { expiresIn: 60 })
    const refused = await fetch(disposition)
    assert.equal(refused.status, 400)
    assert.match(await refused.text(), /InvalidArgument/)
    const slots = (client.storage as any).downloader.components.slots
    assert.equal(slots.free, 4, 'a GET refused before its head holds no segment slot')
  })

  it('refuses unsigned, skewed and malformed requests with S3 error documents, and keys with ".." or control characters', async () => {
    const unsigned = await raw('GET', '/photos', { unsigned: true })
    assert.equal(unsigned.status, 403)
    assert.equal(codeOf(unsigned), 'AccessDenied')
    assert.match(unsigned.body.toString(), /^<\?xml/)

    const skewed = await raw('GET', '/photos', { date: new Date(Date.now() - 16 * 60_000) })
    assert.equal(codeOf(skewed), 'RequestTimeTooSkewed')
    const ahead = await raw('GET', '/photos', { date: new Date(Date.now() + 16 * 60_000) })
    assert.equal(codeOf(ahead), 'RequestTimeTooSkewed')
    const fine = await raw('GET', '/photos', { date: new Date(Date.now() - 14 * 60_000) })
    assert.equal(fine.status, 200, 'within 15 minutes is taken')

    const dots = await raw('PUT', '/photos/a/../b.txt', { body: Buffer.from('x') })
    assert.equal(codeOf(dots), 'InvalidArgument')
    const control = await raw('PUT', '/photos/a%01b.txt', { body: Buffer.from('x') })
    assert.equal(codeOf(control), 'InvalidArgument')
    const slashes = await raw('PUT', '/photos/a//b.txt', { body: Buffer.from('x') })
    assert.equal(codeOf(slashes), 'InvalidArgument')
    assert.equal(codeOf(await raw('PUT', '/Bad_Bucket')), 'InvalidBucketName')

    // a body that is not the SHA-256 it was signed with
    const mismatch = await raw('PUT', '/photos/sha.txt', { body: Buffer.from('what was sent'), payload: sha256hex('what was signed') })
    assert.equal(codeOf(mismatch), 'XAmzContentSHA256Mismatch')
    const badMd5 = await raw('PUT', '/photos/md5.txt', { body: Buffer.from('abc'), headers: { 'content-md5': Buffer.from(md5(Buffer.from('abd')), 'hex').toString('base64') } })
    assert.equal(codeOf(badMd5), 'BadDigest')
    assert.deepEqual((await names('photos/')).filter(n => /sha\.txt|md5\.txt|b\.txt/.test(n)), [], 'nothing refused is stored')

    const malformed = await raw('POST', '/photos?delete', { body: Buffer.from('<Delete><Object><Key>x</Key></Objec></Delete>') })
    assert.equal(codeOf(malformed), 'MalformedXML')
    const doctype = await raw('POST', '/photos?delete', { body: Buffer.from('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><Delete><Object><Key>&lol;</Key></Object></Delete>') })
    assert.equal(codeOf(doctype), 'MalformedXML')
    const tooLarge = await raw('PUT', '/photos/huge.bin', { headers: { 'content-length': String(6 * 1024 ** 3) }, sendBytes: Buffer.alloc(0), payload: 'UNSIGNED-PAYLOAD' })
    assert.equal(codeOf(tooLarge), 'EntityTooLarge', 'a 6 GiB single put is refused before its body')
    const notImplemented = await raw('GET', '/photos?policy')
    assert.equal(codeOf(notImplemented), 'NotImplemented')
  })

  it('checks signed aws-chunked bodies chunk by chunk: a tampered chunk is refused and nothing is stored', async () => {
    const signer = new SignatureV4({ credentials: { accessKeyId: key.id, secretAccessKey: key.secret }, region: 'us-east-1', service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false })
    const chunked = async (name: string, chunks: Buffer[], tamper: boolean): Promise<Raw> => {
      const date = new Date()
      const size = chunks.reduce((n, c) => n + c.length, 0)
      const headers: Record<string, string> = { host: url.host, 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(size) }
      const signed = await signer.sign(new HttpRequest({ method: 'PUT', hostname: url.hostname, port: Number(url.port), path: `/photos/${name}`, headers }), { signingDate: date })
      let previous = /Signature=([0-9a-f]+)/.exec(String(signed.headers.authorization))?.[1] as string
      const longDate = String(signed.headers['x-amz-date'])
      const scope = `${longDate.slice(0, 8)}/us-east-1/s3/aws4_request`
      const parts: Buffer[] = []
      for (const chunk of [...chunks, Buffer.alloc(0)]) {
        const signature = await signer.sign(`AWS4-HMAC-SHA256-PAYLOAD\n${longDate}\n${scope}\n${previous}\n${sha256hex('')}\n${sha256hex(chunk)}`, { signingDate: date }) as string
        previous = signature
        const sent = tamper && chunk.length > 0 ? Buffer.from(chunk).fill(0x41, 0, 1) : chunk
        parts.push(Buffer.from(`${chunk.length.toString(16)};chunk-signature=${signature}\r\n`), sent, Buffer.from('\r\n'))
      }
      const body = Buffer.concat(parts)
      return new Promise((resolve, reject) => {
        const req = httpRequest({ host: url.hostname, port: url.port, method: 'PUT', path: `/photos/${name}`, headers: { ...signed.headers, 'content-length': String(body.length) } }, res => {
          const out: Buffer[] = []
          res.on('data', c => out.push(c))
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(out) }) })
        })
        req.on('error', reject)
        req.end(body)
      })
    }
    const chunks = [randomBytes(64 * 1024), randomBytes(64 * 1024), randomBytes(1000)]
    const good = await chunked('chunked.bin', chunks, false)
    assert.equal(good.status, 200, good.body.toString())
    const got = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'chunked.bin' }))
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat(chunks)))
    const bad = await chunked('tampered.bin', chunks, true)
    assert.equal(codeOf(bad), 'SignatureDoesNotMatch')
    assert.ok(!(await names('photos/')).includes('photos/tampered.bin'))
  })

  it('stores nothing of a body shorter than its Content-Length or a client gone mid-upload, and sweeps unfinished uploads', async () => {
    // a PUT that declares 2 MiB, sends 1 MiB and closes
    const half = randomBytes(MIB)
    const signer = new SignatureV4({ credentials: { accessKeyId: key.id, secretAccessKey: key.secret }, region: 'us-east-1', service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false })
    const dropAfter = async (path: string, query: Record<string, string>): Promise<void> => {
      const headers = { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-length': String(2 * MIB) }
      const signed = await signer.sign(new HttpRequest({ method: 'PUT', hostname: url.hostname, port: Number(url.port), path, query, headers }), { signingDate: new Date() })
      const search = new URLSearchParams(query).toString()
      await new Promise<void>((resolve) => {
        const socket = netConnect(Number(url.port), url.hostname, () => {
          socket.write(`PUT ${path}${search === '' ? '' : `?${search}`} HTTP/1.1\r\n` + Object.entries(signed.headers).map(([k, v]) => `${k}: ${String(v)}`).join('\r\n') + '\r\n\r\n')
          socket.write(half, () => { setTimeout(() => { socket.destroy(); resolve() }, 200) })
        })
        socket.on('error', () => { resolve() })
      })
    }
    await dropAfter('/photos/cut-short.bin', {})
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'dropped.bin' }))
    const id = created.UploadId as string
    await s3.send(new UploadPartCommand({ Bucket: 'photos', Key: 'dropped.bin', UploadId: id, PartNumber: 1, Body: randomBytes(5 * MIB) }))
    await dropAfter('/photos/dropped.bin', { partNumber: '2', uploadId: id })
    // the gateway notices the closed connection; the put fails and lets its name go
    await waitFor(async () => (await client.storage.current('photos/cut-short.bin')).length === 0 && (await gateway.uploads.parts(id)).length === 1, 10_000, 'the cut-short put to fail')
    assert.ok(!(await names('photos/')).includes('photos/cut-short.bin'), 'a body cut short is not stored')
    assert.deepEqual((await gateway.uploads.parts(id)).map(p => p.number), [1], 'a part cut short is not a part')
    const folder = join(dir.path, 'client', 's3', 'uploads', id)
    assert.deepEqual((await readdir(folder)).filter(f => f.endsWith('.tmp')), [], 'nothing half-written is left')
    // a day without a part: swept (the sweep runs every 10 minutes with the configured expiry)
    assert.equal(await gateway.uploads.sweep(24 * 3_600_000), 0, 'a live upload is kept')
    assert.equal(await gateway.uploads.sweep(24 * 3_600_000, Date.now() + 25 * 3_600_000), 1)
    await assert.rejects(s3.send(new ListPartsCommand({ Bucket: 'photos', Key: 'dropped.bin', UploadId: id })), (err: any) => err.name === 'NoSuchUpload')
    await assert.rejects(readdir(folder), { code: 'ENOENT' })
  })

  it('gives back what a GET held when its client goes away mid-object: more such GETs than segment slots, then a whole one', async () => {
    // larger than the socket buffers hold, so the gateway waits on a full socket when its client leaves
    const data = randomBytes(16 * MIB)
    await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'abandoned.bin', Body: data }))
    // the storage client holds 4 segments in memory at once (DEFAULT_SEGMENT_SLOTS): 6 readers gone must not keep them
    const link = new URL(await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'photos', Key: 'abandoned.bin' }), { expiresIn: 60 }))
    for (let i = 0; i < 6; i++) {
      // a reader that takes the head and a little, stops reading (the gateway's writes back up), then leaves
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest({ host: link.hostname, port: link.port, path: link.pathname + link.search, agent: false }, res => {
          res.once('data', () => {
            res.pause()
            setTimeout(() => { res.destroy(); resolve() }, 500)
          })
        })
        req.on('error', reject)
        // a reader that gets no head is the leak this test is for (every segment slot held by the readers gone)
        req.setTimeout(10_000, () => { req.destroy(new Error(`GET ${i + 1} had no answer in 10 s: segment slots are still held by the readers gone before it`)) })
        req.end()
      })
    }
    // every slot back (the client's memory bound, SegmentSlots): none held by a stream nobody reads
    const slots = (client.storage as any).downloader.components.slots
    await waitFor(() => slots.free === 4 && slots.waiting.length === 0, 10_000, 'every segment slot given back')
    const whole = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'abandoned.bin' }), { abortSignal: AbortSignal.timeout(30_000) })
    assert.ok(Buffer.from(await whole.Body!.transformToByteArray()).equals(data))
  })

  it('refuses a request from beyond loopback when bound to loopback', async (t) => {
    const external = Object.values(networkInterfaces()).flat().find(a => a != null && a.family === 'IPv4' && !a.internal)
    if (external == null) {
      t.skip('this machine has no non-loopback IPv4 address to send from')
      return
    }
    // sent to 127.0.0.1 from the machine's own outside address: the kernel takes it, the gateway must not
    const res = await raw('GET', '/photos', { localAddress: external.address })
    assert.equal(res.status, 403)
    assert.equal(codeOf(res), 'AccessDenied')
    assert.match(res.body.toString(), /loopback/)
  })

  it('answers 100 concurrent requests, gets and puts together', async () => {
    const data = randomBytes(100_000)
    await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'busy/source.bin', Body: data }))
    const results = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      if (i % 10 === 0) {
        const body = Buffer.from(`object ${i}`)
        const put = await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: `busy/${i}.txt`, Body: body }))
        return put.ETag === `"${md5(body)}"`
      }
      if (i % 3 === 0) {
        return (await s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'busy/source.bin' }))).ContentLength === data.length
      }
      const got = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'busy/source.bin' }))
      return Buffer.from(await got.Body!.transformToByteArray()).equals(data)
    }))
    assert.equal(results.filter(ok => ok).length, 100)
    assert.equal((await names('photos/busy/')).length, 11)
  })
})
