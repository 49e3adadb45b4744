import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, hkdfSync, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { auditPath, challengeLeaves, dataRoot, LEAF_SIZE, MerkleHasher, merkleRoot, verifyPath } from '../../../src/storage/protocol/merkle.ts'
import { ReedSolomon, split } from '../../../src/storage/protocol/erasure.ts'
import { DecryptError, objectKey, openSegment, sealSegment, storageKeyFromSeed } from '../../../src/storage/protocol/crypto.ts'
import { contractIdOf, decodeRevision, decodeSigned, decodeTerms, transferCost, verifyRevision, verifyTerms } from '../../../src/storage/protocol/contract.ts'
import { decodeProofs } from '../../../src/storage/protocol/proofs.ts'
import { Reader } from '../../../src/protocols/codec.ts'
import { parseSize, formatSize } from '../../../src/utils/size.ts'
import { openRating } from '../../../src/storage/protocol/rating.ts'
import { defaultRedundancy, defaultRepairAfterLost, migrationReason } from '../../../src/storage/client/storage-client.ts'
import { parseRedundancy } from '../../../src/storage/put-options.ts'

const fixture = JSON.parse(await readFile(new URL('../../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const v = fixture.storage
const bytes = (h: string): Buffer => Buffer.from(h, 'hex')
const sha256 = (...parts: Uint8Array[]): Buffer => { const h = createHash('sha256'); parts.forEach(p => h.update(p)); return h.digest() }

/** RFC 6962 section 2.1, written the way the RFC states it: the reference for merkle.ts */
function referenceRoot (leaves: Uint8Array[]): Buffer {
  if (leaves.length === 0) return sha256()
  if (leaves.length === 1) return sha256(Uint8Array.of(0), leaves[0])
  let k = 1
  while (k * 2 < leaves.length) k *= 2
  return sha256(Uint8Array.of(1), referenceRoot(leaves.slice(0, k)), referenceRoot(leaves.slice(k)))
}

function leavesOf (data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < data.byteLength; i += LEAF_SIZE) out.push(data.subarray(i, i + LEAF_SIZE))
  return out
}

describe('storage primitives', () => {
  it('hash shards as RFC 6962 does, for every shape of tree, streamed in any chunking', () => {
    for (const size of [1, 100, 4096, 4097, 3 * 4096, 5 * 4096 + 1, 7 * 4096 + 4095, 64 * 4096]) {
      const data = randomBytes(size)
      const expected = referenceRoot(leavesOf(data))
      assert.deepEqual(Buffer.from(merkleRoot(data)), expected, `${size} bytes`)
      const streamed = new MerkleHasher()
      for (let i = 0; i < size; i += 1000) streamed.update(data.subarray(i, i + 1000))
      assert.deepEqual(Buffer.from(streamed.digest()), expected, `${size} bytes in 1000-byte chunks`)
    }
  })

  it('proves every leaf, and a proof fails for a changed leaf or the wrong index', () => {
    for (const size of [4096, 5 * 4096 + 7, 13 * 4096]) {
      const data = randomBytes(size)
      const hasher = new MerkleHasher()
      hasher.update(data)
      const root = hasher.digest()
      const leaves = leavesOf(data)
      for (let i = 0; i < leaves.length; i++) {
        verifyPath(root, leaves.length, i, leaves[i], auditPath(hasher.leaves, i))
      }
      if (leaves.length > 1) {
        const bad = Buffer.from(leaves[1])
        bad[0] ^= 1
        assert.throws(() => { verifyPath(root, leaves.length, 1, bad, auditPath(hasher.leaves, 1)) }, { name: 'InvalidProofError' })
        assert.throws(() => { verifyPath(root, leaves.length, 0, leaves[1], auditPath(hasher.leaves, 1)) }, { name: 'InvalidProofError' })
      }
    }
  })

  it('rebuilds a segment from every choice of K shards of N', () => {
    const k = 4
    const n = 8
    const rs = new ReedSolomon(k, n)
    const segment = randomBytes(4 * 1000 + 3)
    const data = split(segment, k)
    const shards = [...data, ...rs.encode(data)]
    let subsets = 0
    for (let mask = 0; mask < 1 << n; mask++) {
      let count = 0
      for (let i = 0; i < n; i++) if ((mask & (1 << i)) !== 0) count++
      if (count !== k) continue
      subsets++
      const rebuilt = rs.reconstruct(shards.map((s, i) => (mask & (1 << i)) !== 0 ? s : undefined))
      assert.deepEqual(rebuilt.map(b => Buffer.from(b)), shards.map(b => Buffer.from(b)), `shards ${mask.toString(2)}`)
    }
    assert.equal(subsets, 70)
    assert.throws(() => rs.reconstruct(shards.map((s, i) => i < k - 1 ? s : undefined)), /need|at least|shards/)
  })

  it('seals segments so that a wrong key, index, object or byte fails to open, never yielding garbage', () => {
    const key = objectKey(randomBytes(32), randomBytes(16))
    const id = randomBytes(16)
    const plain = randomBytes(10_000)
    const sealed = sealSegment(key, id, 7, plain)
    assert.equal(sealed.byteLength, plain.byteLength + 16)
    assert.deepEqual(Buffer.from(openSegment(key, id, 7, sealed)), plain)
    assert.throws(() => openSegment(randomBytes(32), id, 7, sealed), DecryptError)
    assert.throws(() => openSegment(key, id, 8, sealed), DecryptError)
    assert.throws(() => openSegment(key, randomBytes(16), 7, sealed), DecryptError)
    const flipped = Buffer.from(sealed)
    flipped[100] ^= 1
    assert.throws(() => openSegment(key, id, 7, flipped), /cannot decrypt/)
  })

  it('reads sizes and redundancy as a user writes them', () => {
    assert.equal(parseSize('10 GiB'), 10 * 1024 ** 3)
    assert.equal(parseSize('512MiB'), 512 * 1024 ** 2)
    assert.throws(() => parseSize('10 GB'), /GiB/)
    assert.equal(formatSize(192 * 1024 * 1024), '192 MiB')
    assert.deepEqual(parseRedundancy('4-of-8'), { k: 4, n: 8 })
    assert.throws(() => parseRedundancy('8-of-4'), { name: 'InvalidRedundancyError' })
    assert.deepEqual([1, 2, 3, 4, 5, 8, 10, 16, 20, 30, 40, 50].map(h => { const { k, n } = defaultRedundancy(h); return `${k}-of-${n}` }),
      ['1-of-1', '1-of-2', '1-of-2', '1-of-3', '2-of-4', '3-of-6', '4-of-8', '6-of-12', '5-of-15', '8-of-22', '10-of-30', '10-of-30'])
  })

  it('leaves spare hosts by default: as many as the losses that start a repair, so the repair has somewhere to go', () => {
    for (let hosts = 3; hosts <= 60; hosts++) {
      const { k, n } = defaultRedundancy(hosts)
      assert.ok(n > k, `${hosts} hosts: ${k}-of-${n} keeps a margin`)
      assert.ok(hosts - n >= defaultRepairAfterLost(k, n), `${hosts} hosts: ${k}-of-${n} leaves ${hosts - n} spare, and repairs after ${defaultRepairAfterLost(k, n)} losses`)
    }
  })
})

describe('storage migration', () => {
  const policy = { migrateAbovePrice: 3, minTrust: 0, trustDrop: 0.25 }

  it('moves off a host whose price rose over 3x the median, or whose trust fell to under a quarter of what it was', () => {
    assert.match(migrationReason({}, { price: 3001n, median: 1000n }, policy) ?? '', /price rose to 0\.00003001 BTC per TiB-month, over 3x the market median of 0\.00001 BTC/)
    assert.equal(migrationReason({}, { price: 3000n, median: 1000n }, policy), undefined)
    assert.match(migrationReason({ trustAtStart: 2 }, { trust: 0.4 }, policy) ?? '', /trust score fell to 0.40 from 2.00/)
    assert.equal(migrationReason({ trustAtStart: 2 }, { trust: 0.6 }, policy), undefined)
    // a host nobody knew when the contract formed (score 0), or barely knew, cannot fall: no migration storm
    assert.equal(migrationReason({ trustAtStart: 0 }, { trust: 0 }, policy), undefined)
    assert.equal(migrationReason({ trustAtStart: 0.3 }, { trust: 0.01 }, policy), undefined)
    assert.equal(migrationReason({}, { trust: 0 }, policy), undefined)
    // an explicit floor holds for every host
    assert.match(migrationReason({}, { trust: 0.2 }, { ...policy, minTrust: 0.5 }) ?? '', /under 0.5/)
  })
})

describe('storage test vectors (PROTOCOL.md section 11)', () => {
  it('hash the shard, pick the challenged leaves and prove them as PROTOCOL.md says', () => {
    const shard = Uint8Array.from({ length: 2 * 4096 + 100 }, (_, i) => i % 251)
    assert.equal(sha256(Uint8Array.of(0), shard.subarray(0, 4096)).toString('hex'), v.leaf0Hash)
    assert.equal(referenceRoot(leavesOf(shard)).toString('hex'), v.shardRoot)
    const picked = [0, 1, 2, 3].map(i => Number(sha256(bytes(v.challenge), Uint8Array.of(i)).readBigUInt64BE(0) % 3n))
    assert.equal(picked.join(','), v.challengedLeaves)
    assert.equal(challengeLeaves(bytes(v.challenge), 3, 4).join(','), v.challengedLeaves)
    const [proof] = decodeProofs(bytes(v.proofs))
    assert.equal(proof.index, 2)
    assert.deepEqual(Buffer.from(proof.leaf), Buffer.from(shard.subarray(8192)))
    assert.deepEqual(proof.path.map(h => Buffer.from(h).toString('hex')), [sha256(Uint8Array.of(1), sha256(Uint8Array.of(0), shard.subarray(0, 4096)), sha256(Uint8Array.of(0), shard.subarray(4096, 8192))).toString('hex')])
    verifyPath(bytes(v.shardRoot), 3, 2, proof.leaf, proof.path)
    // a data root is the tree over the sorted shard roots
    const roots = [bytes(v.shardRoot), sha256(Buffer.from('another shard'))].sort(Buffer.compare)
    assert.equal(referenceRoot(roots).toString('hex'), v.dataRootOfTwo)
    assert.equal(Buffer.from(dataRoot([])).toString('hex'), v.dataRootOfNone)
  })

  it('decode the terms and revision to what PROTOCOL.md says, signed by both keys', () => {
    const terms = decodeTerms(bytes(v.terms))
    assert.equal(terms.renter, fixture.keys.clientPeerId)
    assert.equal(terms.host, fixture.keys.serverPeerId)
    assert.equal(Buffer.from(terms.nonce).toString('hex'), '505152535455565758595a5b5c5d5e5f')
    assert.deepEqual([terms.start, terms.end, terms.maxBytes, terms.rentPeriodMs], [1767225600000, 1769817600000, 68719476736, 86400000])
    assert.deepEqual([terms.version, terms.storagePrice, terms.uploadPrice, terms.downloadPrice], [2, 2000n, 1000n, 2000n])
    assert.equal(sha256(bytes(v.terms)).toString('hex'), v.contractId)
    assert.equal(Buffer.from(contractIdOf(bytes(v.terms))).toString('hex'), v.contractId)
    verifyTerms(bytes(v.terms), terms.renter, bytes(v.renterTermsSignature))
    verifyTerms(bytes(v.terms), terms.host, bytes(v.hostTermsSignature))
    assert.throws(() => { verifyTerms(bytes(v.terms), terms.host, bytes(v.renterTermsSignature)) }, { name: 'InvalidSignatureError' })
    const r = new Reader(bytes(v.proposal))
    assert.deepEqual(Buffer.from(r.bytes(1024, 'terms')), bytes(v.terms))
    assert.deepEqual(Buffer.from(r.bytes(128, 'signature')), bytes(v.renterTermsSignature))
    // per TiB: 3 TiB and a byte at 1000 sat per TiB, rounded down (its remainder, and the rent steps: test/storage/protocol/contract.test.ts)
    assert.equal(transferCost(2, 1000n, 3 * 1024 ** 4 + 1), BigInt(v.uploadCostOf3TiBAnd1Byte))

    const revision = decodeRevision(bytes(v.revision))
    assert.equal(Buffer.from(revision.contractId).toString('hex'), v.contractId)
    assert.deepEqual([revision.number, revision.bytes, revision.shards], [1, 8292, 1])
    assert.deepEqual(Buffer.from(revision.root), referenceRoot([bytes(v.shardRoot)]))
    verifyRevision(bytes(v.revision), terms.renter, bytes(v.renterRevisionSignature))
    verifyRevision(bytes(v.revision), terms.host, bytes(v.hostRevisionSignature))
    // a revision signature is not a contract signature: the domains differ
    assert.throws(() => { verifyTerms(bytes(v.revision), terms.host, bytes(v.hostRevisionSignature)) }, { name: 'InvalidSignatureError' })
    const signed = decodeSigned(bytes(v.signedRevision))
    assert.deepEqual([signed.message, signed.renterSignature, signed.hostSignature].map(b => Buffer.from(b).toString('hex')), [v.revision, v.renterRevisionSignature, v.hostRevisionSignature])
  })

  it('sign a contract\'s rating as PROTOCOL.md says', () => {
    const rating = openRating(bytes(v.renterRating))
    assert.deepEqual([Buffer.from(rating.contractId).toString('hex'), rating.rater, rating.rated, rating.satisfactory, rating.reason, rating.at],
      [v.contractId, fixture.keys.clientPeerId, fixture.keys.serverPeerId, true, 'served as agreed', 1769817600000])
    const forged = bytes(v.renterRating)
    forged[forged.length - 1] ^= 1
    assert.throws(() => openRating(forged), { name: 'InvalidSignatureError' })
  })

  it('derive the keys, code and seal as PROTOCOL.md says', () => {
    const seed = Uint8Array.from({ length: 64 }, (_, i) => 0x70 + i)
    const storageKey = Buffer.from(hkdfSync('sha256', seed, 'opencloud-storage', 'v1', 32))
    assert.equal(storageKey.toString('hex'), v.storageKey)
    assert.equal(Buffer.from(storageKeyFromSeed(seed)).toString('hex'), v.storageKey)
    const id = bytes('909192939495969798999a9b9c9d9e9f')
    assert.equal(Buffer.from(hkdfSync('sha256', storageKey, id, 'object', 32)).toString('hex'), v.objectKey)
    assert.equal(Buffer.from(openSegment(bytes(v.objectKey), id, 1, bytes(v.sealedSegment1))).toString(), 'hello storage')
    assert.equal(v.rsData, ['6f70656e63', '6c6f756400'].join(','))
    const rs = new ReedSolomon(2, 4)
    const [p0, p1] = v.rsParity.split(',').map(bytes)
    const rebuilt = rs.reconstruct([undefined, undefined, p0, p1])
    assert.equal(Buffer.concat(rebuilt.slice(0, 2)).subarray(0, 9).toString(), 'opencloud')
  })
})
