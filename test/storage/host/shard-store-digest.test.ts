import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buffer } from 'node:stream/consumers'
import { ShardStore } from '../../../src/storage/host/shard-store.ts'
import { ShardCorruptError } from '../../../src/storage/host/errors.ts'
import { merkleRoot } from '../../../src/storage/protocol/merkle.ts'

const CONTRACT = 'cc'.repeat(32)
const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest()

/** a put's body as the RPC server gives it: the bytes, and the digest it checks them against */
function bodyOf (bytes: Uint8Array, digest = sha256(bytes)): AsyncIterable<Uint8Array> & { sha256: Uint8Array } {
  return { sha256: digest, [Symbol.asyncIterator]: async function * () { yield bytes.subarray(0, 5000); yield bytes.subarray(5000) } }
}

/** The whole shard's SHA-256, kept from its put so a get does not hash it twice */
describe('shard store: the kept digest of a whole shard', () => {
  let dir: string
  let store: ShardStore
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oc-shard-digest-'))
    store = new ShardStore(dir)
    await store.start()
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('keeps the put body\'s digest and signs a get of the whole shard with it; a range is hashed as before', async () => {
    const bytes = randomBytes(3 * 4096 + 100)
    const root = merkleRoot(bytes)
    const hex = Buffer.from(root).toString('hex')
    await store.write(CONTRACT, root, bodyOf(bytes), new AbortController().signal)
    assert.ok(await stat(join(dir, CONTRACT, `${hex}.sha256`)).then(() => true, () => false), 'kept beside the shard')
    const whole = await store.range(CONTRACT, hex, 0, bytes.byteLength, bytes.byteLength, new AbortController().signal)
    assert.deepEqual(Buffer.from(whole.sha256), sha256(bytes))
    assert.ok((await buffer(whole.open())).equals(bytes))
    const part = await store.range(CONTRACT, hex, 10, 5000, bytes.byteLength, new AbortController().signal)
    assert.deepEqual(Buffer.from(part.sha256), sha256(bytes.subarray(10, 5010)))
  })

  it('hashes the shard again, and keeps the digest again, when the kept one is damaged or missing', async () => {
    const bytes = randomBytes(2 * 4096)
    const root = merkleRoot(bytes)
    const hex = Buffer.from(root).toString('hex')
    // a body without a digest (as a test's plain stream): nothing kept at the put
    await store.write(CONTRACT, root, (async function * () { yield bytes })(), new AbortController().signal)
    const path = join(dir, CONTRACT, `${hex}.sha256`)
    assert.equal(await stat(path).then(() => true, () => false), false)
    const first = await store.range(CONTRACT, hex, 0, bytes.byteLength, bytes.byteLength, new AbortController().signal)
    assert.deepEqual(Buffer.from(first.sha256), sha256(bytes))
    const kept = await readFile(path)
    // a bit flipped in the kept digest: not signed, the shard is hashed again
    kept[3] ^= 0x01
    await writeFile(path, kept)
    const second = await store.range(CONTRACT, hex, 0, bytes.byteLength, bytes.byteLength, new AbortController().signal)
    assert.deepEqual(Buffer.from(second.sha256), sha256(bytes))
    assert.notDeepEqual(await readFile(path), kept, 'kept again, good')
  })

  it('still refuses a shard corrupt on disk with a good digest kept: every leaf is checked before the head goes out', async () => {
    const bytes = randomBytes(4 * 4096)
    const root = merkleRoot(bytes)
    const hex = Buffer.from(root).toString('hex')
    await store.write(CONTRACT, root, bodyOf(bytes), new AbortController().signal)
    const path = join(dir, CONTRACT, hex)
    const onDisk = await readFile(path)
    onDisk[9000] ^= 0xff
    await writeFile(path, onDisk)
    await assert.rejects(store.range(CONTRACT, hex, 0, bytes.byteLength, bytes.byteLength, new AbortController().signal), (err: any) => err instanceof ShardCorruptError && /leaf 2 does not match/.test(err.message))
  })
})
