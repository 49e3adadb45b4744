import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { auditPath, dataRoot, leafHash, LEAF_SIZE, MerkleHasher, merkleRoot, nodeHash, rootOf } from '../../../src/storage/protocol/merkle.ts'

/** The hashes as merkle.ts made them before the one-shot, flat version: createHash per leaf and per node */
const sha256 = (...parts: Uint8Array[]): Buffer => { const h = createHash('sha256'); parts.forEach(p => h.update(p)); return h.digest() }
const oldLeaf = (leaf: Uint8Array): Buffer => sha256(Uint8Array.of(0), leaf)
const oldNode = (l: Uint8Array, r: Uint8Array): Buffer => sha256(Uint8Array.of(1), l, r)
function oldRoot (leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return sha256()
  let level = leaves
  while (level.length > 1) {
    const next: Uint8Array[] = []
    for (let i = 0; i + 1 < level.length; i += 2) next.push(oldNode(level[i], level[i + 1]))
    if (level.length % 2 === 1) next.push(level[level.length - 1])
    level = next
  }
  return level[0]
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('Merkle hashing, one-shot and flat', () => {
  it('gives the old bytes for leaves and nodes of every length, as plain Uint8Arrays', () => {
    for (const size of [0, 1, 31, 32, 33, 64, 4095, 4096, 4097, 10_000]) {
      const a = randomBytes(size)
      const b = randomBytes(32)
      assert.equal(hex(leafHash(a)), hex(oldLeaf(a)), `leaf of ${size} bytes`)
      assert.equal(hex(nodeHash(a, b)), hex(oldNode(a, b)), `node of ${size} + 32 bytes`)
      assert.equal(hex(nodeHash(b, a)), hex(oldNode(b, a)), `node of 32 + ${size} bytes`)
      assert.equal(Object.getPrototypeOf(leafHash(a)), Uint8Array.prototype)
    }
  })

  it('roots past the first growth of the flat store, with leaves read mid-stream staying right', () => {
    // 64 leaf hashes fit the first flat array; 1000 leaves grow it four times
    const data = randomBytes(1000 * LEAF_SIZE - 123)
    const leaves: Uint8Array[] = []
    for (let i = 0; i < data.byteLength; i += LEAF_SIZE) leaves.push(oldLeaf(data.subarray(i, i + LEAF_SIZE)))
    const hasher = new MerkleHasher()
    let early: Uint8Array[] = []
    for (let i = 0; i < data.byteLength; i += 7777) {
      hasher.update(data.subarray(i, i + 7777))
      if (early.length === 0 && i > 50 * LEAF_SIZE) early = hasher.leaves.slice()
    }
    const root = hasher.digest()
    assert.equal(hex(root), hex(oldRoot(leaves)))
    assert.equal(hex(merkleRoot(data)), hex(root))
    assert.ok(early.length > 40)
    assert.deepEqual(early.map(hex), leaves.slice(0, early.length).map(hex), 'views taken before the store grew')
    assert.deepEqual(hasher.leaves.map(hex), leaves.map(hex))
    assert.equal(hex(hasher.leafHashes()), hex(Buffer.concat(leaves)))
    assert.equal(hex(Buffer.concat(hasher.leaves)), hex(Buffer.concat(leaves)), "the host's .leaves file")
  })

  it('folds rootOf, auditPath and dataRoot as before, and leaves their inputs alone', () => {
    for (const count of [0, 1, 2, 3, 5, 8, 13, 64, 65]) {
      const leaves = Array.from({ length: count }, () => new Uint8Array(randomBytes(32)))
      const before = leaves.map(hex)
      assert.equal(hex(rootOf(leaves)), hex(oldRoot(leaves)), `${count} leaves`)
      assert.equal(hex(dataRoot(leaves)), hex(oldRoot([...leaves].sort(Buffer.compare).map(oldLeaf))), `data root of ${count}`)
      if (count > 0) {
        const path = auditPath(leaves, count - 1)
        assert.ok(path.every(p => p.byteLength === 32))
      }
      assert.deepEqual(leaves.map(hex), before, 'rootOf changed its input')
    }
  })
})
