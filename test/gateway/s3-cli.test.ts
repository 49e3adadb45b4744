import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { S3Client, ListBucketsCommand, CreateBucketCommand } from '@aws-sdk/client-s3'
import { tempDir } from '../helpers/nodes.ts'
import { runCli, startDaemon, type Daemon } from '../helpers/cli.ts'

/**
 * The S3 gateway from the command line (issue 23): --s3 on the daemon (kept
 * in config.json), s3 status, s3 keys create|ls|revoke, and a key's life as
 * an S3 client sees it
 */
describe('s3 from the command line: --s3, status and keys', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let daemon: Daemon
  let endpoint: string
  const cli = async (...args: string[]): ReturnType<typeof runCli> => runCli(['--data-dir', join(dir.path, 'node'), ...args])

  before(async () => {
    dir = await tempDir()
    daemon = await startDaemon(join(dir.path, 'node'), ['--s3', '127.0.0.1:0'])
    const started = JSON.parse(await readFile(join(dir.path, 'node', 'config.json'), 'utf8'))
    assert.equal(started.s3.listen, '127.0.0.1:0', '--s3 is kept in config.json')
  })

  after(async () => {
    await daemon?.stop()
    await dir?.cleanup()
  })

  it('says where it listens, issues keys that work, lists them without secrets, and revokes them', async () => {
    const status = await cli('s3', 'status', '--json')
    assert.equal(status.code, 0, status.stderr)
    const s = JSON.parse(status.stdout)
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(s.loopbackOnly, true)
    assert.equal(s.keys, 0)
    endpoint = s.url
    const human = await cli('s3', 'status')
    assert.match(human.stdout, /no key yet: .*s3 keys create/)

    const created = await cli('s3', 'keys', 'create', '--label', 'laptop', '--json')
    assert.equal(created.code, 0, created.stderr)
    const key = JSON.parse(created.stdout)
    assert.match(key.id, /^OC[A-Z2-7]{18}$/)
    assert.equal(key.secret.length, 40)
    assert.equal(key.endpoint, endpoint)
    const env = await cli('s3', 'keys', 'create', '--bucket', 'photos', '--read-only', '--env')
    assert.match(env.stdout, /^export AWS_ACCESS_KEY_ID=OC[A-Z2-7]{18} AWS_SECRET_ACCESS_KEY=[A-Za-z0-9_-]{40} AWS_DEFAULT_REGION=us-east-1\n$/)

    const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: key.id, secretAccessKey: key.secret }, maxAttempts: 1 })
    await s3.send(new CreateBucketCommand({ Bucket: 'photos' }))
    assert.deepEqual((await s3.send(new ListBucketsCommand({}))).Buckets?.map(b => b.Name), ['photos'])

    const listed = await cli('s3', 'keys', 'ls', '--json')
    const keys = JSON.parse(listed.stdout)
    assert.equal(keys.length, 2)
    assert.ok(keys.every((k: any) => k.secret == null), 'ls never shows a secret')
    assert.deepEqual(keys.map((k: any) => [k.label ?? null, k.bucket ?? null, k.readOnly]), [['laptop', null, false], [null, 'photos', true]])
    const table = await cli('s3', 'keys', 'ls')
    assert.doesNotMatch(table.stdout, new RegExp(key.secret))

    const revoked = await cli('s3', 'keys', 'revoke', key.id)
    assert.equal(revoked.code, 0, revoked.stderr)
    assert.match(revoked.stdout, new RegExp(`revoked ${key.id}`))
    await assert.rejects(s3.send(new ListBucketsCommand({})), (err: any) => err.name === 'InvalidAccessKeyId')
    s3.destroy()
    assert.ok(JSON.parse((await cli('s3', 'keys', 'ls', '--json')).stdout)[0].revokedAt > 0)

    const unknown = await cli('s3', 'keys', 'revoke', 'OCNOSUCHKEY000000000')
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /no access key OCNOSUCHKEY000000000/)
  })

  it('refuses what it cannot do with a usage error', async () => {
    for (const args of [['s3'], ['s3', 'keys'], ['s3', 'keys', 'rotate'], ['s3', 'keys', 'revoke'], ['s3', 'keys', 'ls', '--read-only']]) {
      const r = await cli(...args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /s3 --help/)
    }
    const bucket = await cli('s3', 'keys', 'create', '--bucket', 'Not_A_Bucket')
    assert.equal(bucket.code, 2, 'a bucket name the CLI can check is a usage error')
    assert.match(bucket.stderr, /--bucket: "Not_A_Bucket" is not a bucket name/)
    const bad = await runCli(['daemon', '--data-dir', join(dir.path, 'other'), '--s3', 'nowhere'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /--s3 "nowhere" is not HOST:PORT/)
  })
})
