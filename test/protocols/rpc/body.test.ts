import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Uint8ArrayList } from 'uint8arraylist'
import { bodyFromFile, hashedFileBody } from '../../../src/protocols/rpc/body.ts'
import { appendData, headWithBody } from '../../../src/protocols/rpc/frames.ts'
import { FrameType, MAX_DATA_FRAME } from '../../../src/protocols/rpc/constants.ts'

const MIB = 1024 * 1024

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of source) {
    // a copy: a consumer that keeps chunks must not see them change later
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

describe('file bodies', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'oc-body-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('hash and send every byte in order, across the reads that overlap the hashing and the sending', async () => {
    // over two 4 MiB hashing reads and several 1 MiB sending reads, ending inside one
    for (const size of [0, 1, MIB - 1, MIB, 9 * MIB + 12345]) {
      const bytes = randomBytes(size)
      const path = join(dir, `f${size}`)
      await writeFile(path, bytes)
      const body = await bodyFromFile(path)
      assert.equal(body.length, size)
      assert.deepEqual(Buffer.from(body.sha256), createHash('sha256').update(bytes).digest(), `the digest of ${size} bytes`)
      const sent = await collect(body.open())
      assert.ok(sent.equals(bytes), `the bytes sent of ${size}`)
    }
  })

  it('send a file whose digest the caller has without reading it first', async () => {
    const bytes = randomBytes(2 * MIB + 1)
    const path = join(dir, 'hashed')
    await writeFile(path, bytes)
    const sha256 = Uint8Array.from(createHash('sha256').update(bytes).digest())
    const body = hashedFileBody(path, bytes.byteLength, sha256)
    assert.equal(body.sha256, sha256)
    assert.ok((await collect(body.open())).equals(bytes))
  })

  it('refuses a file that shrank between the hashing and the sending', async () => {
    const path = join(dir, 'shrinks')
    await writeFile(path, randomBytes(3 * MIB))
    const body = await bodyFromFile(path)
    await truncate(path, MIB + 5)
    await assert.rejects(collect(body.open()), /shrank while it was being sent/)
  })

  it('stops reading when its consumer stops, with a read still in flight', { skip: process.platform !== 'linux' && 'counts open files in /proc' }, async () => {
    const path = join(dir, 'stops')
    await writeFile(path, randomBytes(5 * MIB))
    const body = await bodyFromFile(path)
    const openFiles = async (): Promise<number> => (await readdir('/proc/self/fd')).length
    const before = await openFiles()
    for await (const chunk of body.open()) {
      assert.ok(chunk.byteLength > 0)
      assert.equal(await openFiles(), before + 1, 'the file is open while it is read')
      break
    }
    assert.equal(await openFiles(), before, 'the file is closed once its consumer stopped')
  })
})

describe('a head and its small body in one write', () => {
  it('holds the head frame, then the body as DATA frames split at the frame limit', async () => {
    const head = Uint8Array.from([7, 7, 7])
    const body = randomBytes(MAX_DATA_FRAME + 10)
    const frames = await headWithBody(FrameType.REQUEST, head, (async function * () { yield body.subarray(0, 5); yield body.subarray(5) })(), body.byteLength)
    const bytes = frames.subarray()
    // head: varint(4) REQUEST 7 7 7
    assert.deepEqual([...bytes.subarray(0, 5)], [4, FrameType.REQUEST, 7, 7, 7])
    // DATA of 5 bytes, then the rest split at MAX_DATA_FRAME
    const expected = new Uint8ArrayList(Uint8Array.from([6, FrameType.DATA]), body.subarray(0, 5))
    appendData(expected, body.subarray(5))
    assert.ok(Buffer.from(bytes.subarray(5)).equals(Buffer.from(expected.subarray())))
    assert.equal(frames.byteLength, 5 + 2 + 5 + 4 + MAX_DATA_FRAME + 2 + 5)
  })

  it('refuses a body that produces more or fewer bytes than it declared', async () => {
    const source = (n: number): AsyncIterable<Uint8Array> => (async function * () { yield new Uint8Array(n) })()
    await assert.rejects(headWithBody(FrameType.RESPONSE, new Uint8Array(1), source(11), 10), /more than the 10 bytes it declared/)
    await assert.rejects(headWithBody(FrameType.RESPONSE, new Uint8Array(1), source(9), 10), /9 of the 10 bytes it declared/)
  })
})
