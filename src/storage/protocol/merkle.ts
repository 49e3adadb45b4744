import * as nodeCrypto from 'node:crypto'

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

/**
 * SHA-256 of `input`, written at `out[at..at+32]`. A shard of 64 MiB is
 * 16 Ki leaves and as many inner nodes, so the cost per call is the cost:
 * the one-shot hash with a 'binary' (latin1) string out, one char per
 * byte, takes ~0.35 us, where createHash().update().digest() into a Buffer
 * takes ~1.4 and crypto.hash into a Buffer ~1.1 (each makes an
 * ArrayBuffer). Node before 20.12 has no crypto.hash; the same string
 * comes from createHash there.
 */
const digestLatin1: (input: Uint8Array) => string = typeof nodeCrypto.hash === 'function'
  ? input => nodeCrypto.hash('sha256', input, 'binary')
  : input => nodeCrypto.createHash('sha256').update(input).digest('binary')

function sha256Into (input: Uint8Array, out: Uint8Array, at: number): void {
  const digest = digestLatin1(input)
  for (let i = 0; i < HASH_SIZE; i++) {
    out[at + i] = digest.charCodeAt(i)
  }
}

/**
 * 0x00 || leaf and 0x01 || left || right are hashed from these (the first
 * byte set once), filled in place: no buffer per hash. Shared by every tree in the thread, which is
 * safe as no hash here yields before it is done.
 */
const LEAF_INPUT = new Uint8Array(1 + LEAF_SIZE)
const NODE_INPUT = Uint8Array.of(1, ...new Uint8Array(2 * HASH_SIZE))

/** SHA-256(0x00 || leaf) at out[at..at+32] */
function leafHashInto (leaf: Uint8Array, out: Uint8Array, at: number): void {
  let input = LEAF_INPUT
  if (leaf.byteLength > LEAF_SIZE) {
    // longer than a shard's leaf (leafHash takes any bytes): still hashed alike
    input = new Uint8Array(1 + leaf.byteLength)
  }
  input.set(leaf, 1)
  sha256Into(input.subarray(0, 1 + leaf.byteLength), out, at)
}

export function leafHash (leaf: Uint8Array): Uint8Array {
  const out = new Uint8Array(HASH_SIZE)
  leafHashInto(leaf, out, 0)
  return out
}

export function nodeHash (left: Uint8Array, right: Uint8Array): Uint8Array {
  const out = new Uint8Array(HASH_SIZE)
  if (left.byteLength === HASH_SIZE && right.byteLength === HASH_SIZE) {
    NODE_INPUT.set(left, 1)
    NODE_INPUT.set(right, 1 + HASH_SIZE)
    sha256Into(NODE_INPUT, out, 0)
  } else {
    const input = new Uint8Array(1 + left.byteLength + right.byteLength)
    input[0] = 1
    input.set(left, 1)
    input.set(right, 1 + left.byteLength)
    sha256Into(input, out, 0)
  }
  return out
}

/** How many leaves a shard of `length` bytes has */
export function leafCount (length: number): number {
  return Math.ceil(length / LEAF_SIZE)
}

/**
 * Hashes a shard as it streams past: leaf hashes are kept (32 bytes per
 * 4 KiB, under 1% of the shard) so proofs need no second pass over the data,
 * and the root is folded from them at the end, so memory is one partial
 * leaf plus the leaf hashes. The hashes live in one flat array, not an
 * array per leaf; `leaves` gives views of it for the callers that want one
 * per leaf.
 */
export class MerkleHasher {
  /** the leaf hashes so far, 32 bytes each, in hashes[0..count*32] */
  private hashes = new Uint8Array(64 * HASH_SIZE)
  private count = 0
  private views: Uint8Array[] = []
  /** 0x00 || the leaf being filled, so a full one hashes without a copy */
  private readonly partial = new Uint8Array(1 + LEAF_SIZE)
  private filled = 0
  length = 0

  /** One 32-byte view per leaf hash (views of the flat array, not copies) */
  get leaves (): Uint8Array[] {
    for (let i = this.views.length; i < this.count; i++) {
      this.views.push(this.hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE))
    }
    return this.views
  }

  /** Every leaf hash so far, concatenated (the host's .leaves file) */
  leafHashes (): Uint8Array {
    return this.hashes.subarray(0, this.count * HASH_SIZE)
  }

  update (chunk: Uint8Array): void {
    this.length += chunk.byteLength
    let offset = 0
    while (offset < chunk.byteLength) {
      const take = Math.min(LEAF_SIZE - this.filled, chunk.byteLength - offset)
      if (this.filled === 0 && take === LEAF_SIZE) {
        leafHashInto(chunk.subarray(offset, offset + LEAF_SIZE), this.next(), this.count++ * HASH_SIZE)
      } else {
        this.partial.set(chunk.subarray(offset, offset + take), 1 + this.filled)
        this.filled += take
        if (this.filled === LEAF_SIZE) {
          this.hashPartial()
        }
      }
      offset += take
    }
  }

  /** The root; call once, after the last chunk */
  digest (): Uint8Array {
    if (this.filled > 0) {
      this.hashPartial()
    }
    return rootOfFlat(this.leafHashes())
  }

  private hashPartial (): void {
    sha256Into(this.partial.subarray(0, 1 + this.filled), this.next(), this.count++ * HASH_SIZE)
    this.filled = 0
  }

  /** The flat array, grown (doubled) to hold one more hash */
  private next (): Uint8Array {
    if ((this.count + 1) * HASH_SIZE > this.hashes.byteLength) {
      const grown = new Uint8Array(this.hashes.byteLength * 2)
      grown.set(this.hashes)
      // views handed out stay valid: they hold the old array, whose hashes do not change
      this.hashes = grown
    }
    return this.hashes
  }
}

/** The RFC 6962 root over leaf hashes; the empty tree's root is SHA-256 of nothing */
export function rootOf (leaves: Uint8Array[]): Uint8Array {
  const flat = new Uint8Array(leaves.length * HASH_SIZE)
  leaves.forEach((leaf, i) => {
    if (leaf.byteLength !== HASH_SIZE) {
      throw new RangeError(`a leaf hash is ${HASH_SIZE} bytes, not ${leaf.byteLength}`)
    }
    flat.set(leaf, i * HASH_SIZE)
  })
  return rootOfFlat(flat)
}

/** rootOf over hashes laid end to end; `flat` is left as it was */
function rootOfFlat (flat: Uint8Array): Uint8Array {
  let n = flat.byteLength / HASH_SIZE
  if (n === 0) {
    const out = new Uint8Array(HASH_SIZE)
    sha256Into(new Uint8Array(0), out, 0)
    return out
  }
  // bottom-up with the odd node promoted: the same tree as RFC 6962's split.
  // Each level is written over the one below it in a copy: node i of the
  // next level goes where node 2i was, after both children are read.
  const work = flat.slice()
  while (n > 1) {
    const pairs = n >> 1
    for (let i = 0; i < pairs; i++) {
      const from = 2 * i * HASH_SIZE
      for (let b = 0; b < 2 * HASH_SIZE; b++) {
        NODE_INPUT[1 + b] = work[from + b]
      }
      sha256Into(NODE_INPUT, work, i * HASH_SIZE)
    }
    if (n % 2 === 1) {
      work.copyWithin(pairs * HASH_SIZE, (n - 1) * HASH_SIZE, n * HASH_SIZE)
    }
    n = pairs + (n % 2)
  }
  return work.slice(0, HASH_SIZE)
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
    const digest = nodeCrypto.createHash('sha256').update(challenge).update(Uint8Array.of(i)).digest()
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
