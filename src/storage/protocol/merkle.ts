import { createHash } from 'node:crypto'

/**
 * The Merkle tree over a shard (PROTOCOL.md, "Storage: Merkle trees"). A
 * shard is cut into 4 KiB leaves (the last may be shorter) and hashed as in
 * RFC 6962 (Certificate Transparency): a leaf is SHA-256(0x00 || leaf), an
 * inner node SHA-256(0x01 || left || right), and a tree of n leaves splits at
 * the largest power of two below n. An outside implementer can reuse any CT
 * library; the prefixes keep a leaf from passing as an inner node.
 *
 * Small leaves keep an audit cheap: a proof is one leaf plus about log2(n)
 * hashes, 4 KiB and 22 hashes for a 64 MiB shard.
 */

export const LEAF_SIZE = 4096
export const HASH_SIZE = 32

export class InvalidProofError extends Error {
  override name = 'InvalidProofError'
}

export function leafHash (leaf: Uint8Array): Uint8Array {
  return Uint8Array.from(createHash('sha256').update(Uint8Array.of(0)).update(leaf).digest())
}

export function nodeHash (left: Uint8Array, right: Uint8Array): Uint8Array {
  return Uint8Array.from(createHash('sha256').update(Uint8Array.of(1)).update(left).update(right).digest())
}

/** How many leaves a shard of `length` bytes has */
export function leafCount (length: number): number {
  return Math.ceil(length / LEAF_SIZE)
}

/**
 * Hashes a shard as it streams past: leaf hashes are kept (32 bytes per
 * 4 KiB, under 1% of the shard) so proofs need no second pass over the data,
 * and the root is folded with a stack, as a binary counter, so memory is
 * one partial leaf plus the leaf hashes.
 */
export class MerkleHasher {
  readonly leaves: Uint8Array[] = []
  private partial = new Uint8Array(LEAF_SIZE)
  private filled = 0
  length = 0

  update (chunk: Uint8Array): void {
    this.length += chunk.byteLength
    let offset = 0
    while (offset < chunk.byteLength) {
      const take = Math.min(LEAF_SIZE - this.filled, chunk.byteLength - offset)
      if (this.filled === 0 && take === LEAF_SIZE) {
        this.leaves.push(leafHash(chunk.subarray(offset, offset + LEAF_SIZE)))
      } else {
        this.partial.set(chunk.subarray(offset, offset + take), this.filled)
        this.filled += take
        if (this.filled === LEAF_SIZE) {
          this.leaves.push(leafHash(this.partial))
          this.filled = 0
        }
      }
      offset += take
    }
  }

  /** The root; call once, after the last chunk */
  digest (): Uint8Array {
    if (this.filled > 0) {
      this.leaves.push(leafHash(this.partial.subarray(0, this.filled)))
      this.filled = 0
    }
    return rootOf(this.leaves)
  }
}

/** The RFC 6962 root over leaf hashes; the empty tree's root is SHA-256 of nothing */
export function rootOf (leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) {
    return Uint8Array.from(createHash('sha256').digest())
  }
  // bottom-up with the odd node promoted: the same tree as RFC 6962's split
  let level = leaves
  while (level.length > 1) {
    const next: Uint8Array[] = []
    for (let i = 0; i + 1 < level.length; i += 2) {
      next.push(nodeHash(level[i], level[i + 1]))
    }
    if (level.length % 2 === 1) {
      next.push(level[level.length - 1])
    }
    level = next
  }
  return level[0]
}

export function merkleRoot (data: Uint8Array): Uint8Array {
  const hasher = new MerkleHasher()
  hasher.update(data)
  return hasher.digest()
}

function largestPowerOfTwoBelow (n: number): number {
  let k = 1
  while (k * 2 < n) {
    k *= 2
  }
  return k
}

/** RFC 6962 audit path of leaf `index`: sibling hashes from the leaf up */
export function auditPath (leaves: Uint8Array[], index: number): Uint8Array[] {
  if (index < 0 || index >= leaves.length) {
    throw new RangeError(`leaf ${index} is outside a tree of ${leaves.length} leaves`)
  }
  const path: Uint8Array[] = []
  const walk = (lo: number, hi: number): void => {
    const n = hi - lo
    if (n === 1) {
      return
    }
    const k = largestPowerOfTwoBelow(n)
    if (index - lo < k) {
      walk(lo, lo + k)
      path.push(rootOf(leaves.slice(lo + k, hi)))
    } else {
      walk(lo + k, hi)
      path.push(rootOf(leaves.slice(lo, lo + k)))
    }
  }
  walk(0, leaves.length)
  return path
}

/**
 * Check that `leaf` is leaf `index` of a tree of `count` leaves with root
 * `root` (RFC 9162 section 2.1.3.2). Throws InvalidProofError otherwise.
 */
export function verifyPath (root: Uint8Array, count: number, index: number, leaf: Uint8Array, path: Uint8Array[]): void {
  if (index >= count || index < 0) {
    throw new InvalidProofError(`leaf ${index} is outside a tree of ${count} leaves`)
  }
  let fn = index
  let sn = count - 1
  let r = leafHash(leaf)
  for (const p of path) {
    if (sn === 0) {
      throw new InvalidProofError('the proof is longer than the tree is deep')
    }
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r)
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2)
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      r = nodeHash(r, p)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  if (sn !== 0 || !equalBytes(r, root)) {
    throw new InvalidProofError(`leaf ${index} does not hash to the shard's root`)
  }
}

/**
 * The leaves an audit challenge picks: leaf i of `count` is the first 8
 * bytes of SHA-256(challenge || u8 i), big-endian, modulo the leaf count. A
 * host cannot know them before the challenge arrives, so it must hold the
 * whole shard to answer.
 */
export function challengeLeaves (challenge: Uint8Array, leaves: number, count: number): number[] {
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    const digest = createHash('sha256').update(challenge).update(Uint8Array.of(i)).digest()
    out.push(Number(digest.readBigUInt64BE(0) % BigInt(leaves)))
  }
  return out
}

/**
 * The commitment to what a contract holds (a revision's data root): the
 * RFC 6962 root over the shard roots sorted bytewise, each as a leaf. The
 * order of uploads does not matter, so either side can recompute it from the
 * set of shards; no shards gives the root of the empty tree.
 */
export function dataRoot (shardRoots: Uint8Array[]): Uint8Array {
  const sorted = [...shardRoots].sort(compareBytes)
  return rootOf(sorted.map(leafHash))
}

export function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength)
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return a[i] - b[i]
    }
  }
  return a.byteLength - b.byteLength
}

export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && compareBytes(a, b) === 0
}
