import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, readdir, rename, rm, stat, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { leafHash, MerkleHasher, LEAF_SIZE, HASH_SIZE, rootOf, equalBytes, auditPath, challengeLeaves } from '../protocol/merkle.ts'
import { MAX_DATA_FRAME } from '../../protocols/rpc/constants.ts'
import type { OutgoingBody } from '../../protocols/rpc/body.ts'
import { ShardCorruptError, ShardMismatchError } from './errors.ts'

const log = logger('opencloud:storage:shards')

/** Bytes gathered before one write to disk */
const WRITE_BATCH = 1024 * 1024

export interface ShardProof {
  index: number
  leaf: Uint8Array
  path: Uint8Array[]
}

/**
 * Shards on disk: `<dir>/<contract id>/<shard root>` holds the bytes,
 * `<...>.leaves` the leaf hashes (32 bytes per 4 KiB leaf) and
 * `<...>.sha256` the whole shard's SHA-256 (see digestFile), in hex names. A shard is written to a temporary name, fsynced and renamed, so a
 * crash leaves a whole shard or none; a read checks every leaf it serves
 * against the leaf hashes, and the leaf hashes against the root, so a host
 * never serves bytes it knows are corrupt.
 */
export class ShardStore {
  private readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  async start (): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    // half-written shards of a crash
    for (const contract of await readdir(this.dir).catch(() => [])) {
      for (const name of await readdir(join(this.dir, contract)).catch(() => [])) {
        if (name.endsWith('.tmp')) {
          await rm(join(this.dir, contract, name), { force: true })
        }
      }
    }
  }

  private pathOf (contract: string, root: string): string {
    return join(this.dir, contract, root)
  }

  /**
   * Write a shard from a stream, checking it hashes to `root`; nothing is
   * kept when it does not. `limit` is the most bytes the contract allows.
   */
  async write (contract: string, root: Uint8Array, body: AsyncIterable<Uint8Array> & { readonly sha256?: Uint8Array }, signal: AbortSignal): Promise<number> {
    const rootHex = Buffer.from(root).toString('hex')
    await mkdir(join(this.dir, contract), { recursive: true, mode: 0o700 })
    const final = this.pathOf(contract, rootHex)
    const tmp = `${final}.${randomBytes(4).toString('hex')}.tmp`
    const handle = await open(tmp, 'wx', 0o600)
    const hasher = new MerkleHasher()
    try {
      // RPC data frames are small: gather them so the disk sees megabyte
      // writes, not thousands of 64 KiB ones through the thread pool
      let pending: Uint8Array[] = []
      let pendingBytes = 0
      const flush = async (): Promise<void> => {
        if (pendingBytes > 0) {
          await handle.writev(pending)
          pending = []
          pendingBytes = 0
        }
      }
      const started = performance.now()
      for await (const chunk of body) {
        signal.throwIfAborted()
        hasher.update(chunk)
        pending.push(chunk)
        pendingBytes += chunk.byteLength
        if (pendingBytes >= WRITE_BATCH) {
          await flush()
        }
      }
      await flush()
      const received = performance.now()
      const got = hasher.digest()
      if (!equalBytes(got, root)) {
        throw new ShardMismatchError(`the shard's bytes hash to the Merkle root ${Buffer.from(got).toString('hex')}, not ${rootHex} as named`)
      }
      // only the shard's bytes must survive a crash: the leaf hashes are a
      // cache that leaves() rebuilds from them, so they skip the fsync
      // (each one costs a quarter second on a busy disk)
      await handle.datasync()
      await handle.close()
      await writeFile(`${tmp}.leaves`, hasher.leafHashes(), { mode: 0o600 })
      await rename(`${tmp}.leaves`, `${final}.leaves`)
      // the body's SHA-256, which the RPC server checked as it read it (an
      // RPC request body carries it): a get of the whole shard signs it
      // without hashing the shard again. A cache as the leaf hashes are.
      if (body.sha256?.byteLength === HASH_SIZE) {
        await writeFile(`${tmp}.sha256.tmp`, digestFile(root, body.sha256), { mode: 0o600 })
        await rename(`${tmp}.sha256.tmp`, `${final}.sha256`)
      }
      await rename(tmp, final)
      await syncDir(join(this.dir, contract))
      log('shard %s of %d bytes: received and hashed in %d ms, synced in %d ms', rootHex, hasher.length, Math.round(received - started), Math.round(performance.now() - received))
      return hasher.length
    } catch (err) {
      await handle.close().catch(() => {})
      await rm(tmp, { force: true })
      await rm(`${tmp}.leaves`, { force: true })
      await rm(`${tmp}.sha256.tmp`, { force: true })
      throw err
    }
  }

  async has (contract: string, root: string): Promise<boolean> {
    return stat(this.pathOf(contract, root)).then(() => true, () => false)
  }

  /**
   * The leaf hashes, checked against the root. When the cached hashes are
   * missing or do not match (a crash after the shard was synced, a bad
   * sector), they are rebuilt from the shard itself, which must then hash
   * to its root.
   */
  private async leaves (contract: string, root: string): Promise<Uint8Array[]> {
    const rootBytes = Buffer.from(root, 'hex')
    const bytes = await readFile(`${this.pathOf(contract, root)}.leaves`).catch(() => undefined)
    if (bytes != null) {
      const leaves: Uint8Array[] = []
      for (let i = 0; i + HASH_SIZE <= bytes.byteLength; i += HASH_SIZE) {
        leaves.push(bytes.subarray(i, i + HASH_SIZE))
      }
      if (equalBytes(rootOf(leaves), rootBytes)) {
        return leaves
      }
    }
    let hasher: MerkleHasher
    try {
      hasher = await hashFile(this.pathOf(contract, root))
    } catch (err: any) {
      throw missing(err, root)
    }
    if (!equalBytes(hasher.digest(), rootBytes)) {
      throw new ShardCorruptError(`shard ${root} is corrupt on this host: its bytes do not hash to its root`)
    }
    log('rebuilt the leaf hashes of shard %s', root)
    await writeFile(`${this.pathOf(contract, root)}.leaves`, Buffer.concat(hasher.leaves), { mode: 0o600 }).catch(() => {})
    return hasher.leaves
  }

  /**
   * A byte range of a shard as a response body. The range is read and
   * checked leaf by leaf first (that also gives the body's SHA-256, which
   * the signed response head carries), then read again as it is sent. The
   * whole shard's SHA-256 is kept from its put (or its first whole get),
   * so a get of the whole shard hashes each byte once here, not twice.
   */
  async range (contract: string, root: string, offset: number, length: number, size: number, signal: AbortSignal): Promise<OutgoingBody> {
    if (offset + length > size) {
      throw new RangeError(`bytes ${offset}-${offset + length} are past the end of the ${size}-byte shard`)
    }
    const leaves = await this.leaves(contract, root)
    const path = this.pathOf(contract, root)
    const first = Math.floor(offset / LEAF_SIZE)
    const last = Math.ceil((offset + length) / LEAF_SIZE)
    const whole = offset === 0 && length === size
    const kept = whole ? await this.wholeDigest(contract, root) : undefined
    const hash = kept == null ? createHash('sha256') : undefined
    const handle = await open(path, 'r').catch(err => { throw missing(err, root) })
    try {
      const chunkLeaves = MAX_DATA_FRAME / LEAF_SIZE
      const buf = Buffer.allocUnsafe(chunkLeaves * LEAF_SIZE)
      for (let leaf = first; leaf < last; leaf += chunkLeaves) {
        signal.throwIfAborted()
        const count = Math.min(chunkLeaves, last - leaf)
        const start = leaf * LEAF_SIZE
        const want = Math.min(count * LEAF_SIZE, size - start)
        const { bytesRead } = await handle.read(buf, 0, want, start)
        if (bytesRead !== want) {
          throw new ShardCorruptError(`shard ${root} is shorter on disk than it was stored`)
        }
        for (let i = 0; i < count; i++) {
          const bytes = buf.subarray(i * LEAF_SIZE, Math.min((i + 1) * LEAF_SIZE, want))
          if (!equalBytes(leafHash(bytes), leaves[leaf + i])) {
            throw new ShardCorruptError(`shard ${root} is corrupt on this host: leaf ${leaf + i} does not match`)
          }
        }
        if (hash != null) {
          const from = Math.max(offset, start) - start
          const to = Math.min(offset + length, start + want) - start
          hash.update(buf.subarray(from, to))
        }
      }
    } finally {
      await handle.close()
    }
    const sha256 = kept ?? Uint8Array.from(hash!.digest())
    if (whole && kept == null) {
      // the next get of it signs this without hashing (a shard put before the digest was kept)
      await writeFile(`${path}.sha256`, digestFile(Buffer.from(root, 'hex'), sha256), { mode: 0o600 }).catch(() => {})
    }
    return {
      length,
      sha256,
      open: async function * (s) {
        const h = await open(path, 'r')
        try {
          let position = offset
          while (position < offset + length) {
            s?.throwIfAborted()
            const chunk = Buffer.allocUnsafe(Math.min(MAX_DATA_FRAME, offset + length - position))
            const { bytesRead } = await h.read(chunk, 0, chunk.byteLength, position)
            if (bytesRead === 0) {
              throw new ShardCorruptError(`shard ${root} shrank while it was being sent`)
            }
            position += bytesRead
            yield chunk.subarray(0, bytesRead)
          }
        } finally {
          await h.close()
        }
      }
    }
  }

  /**
   * The whole shard's SHA-256 as kept beside it, or undefined when there
   * is none or it does not check (a torn write, a bad sector): the range
   * is hashed then, and the digest kept again
   */
  private async wholeDigest (contract: string, root: string): Promise<Uint8Array | undefined> {
    const bytes = await readFile(`${this.pathOf(contract, root)}.sha256`).catch(() => undefined)
    if (bytes?.byteLength !== 2 * HASH_SIZE) {
      return undefined
    }
    const sha256 = bytes.subarray(0, HASH_SIZE)
    return equalBytes(digestFile(Buffer.from(root, 'hex'), sha256), bytes) ? Uint8Array.from(sha256) : undefined
  }

  /** Merkle proofs of the leaves `challenge` picks */
  async prove (contract: string, root: string, challenge: Uint8Array, count: number, size: number): Promise<ShardProof[]> {
    const leaves = await this.leaves(contract, root)
    const handle = await open(this.pathOf(contract, root), 'r').catch(err => { throw missing(err, root) })
    try {
      const proofs: ShardProof[] = []
      for (const index of challengeLeaves(challenge, leaves.length, count)) {
        const want = Math.min(LEAF_SIZE, size - index * LEAF_SIZE)
        const leaf = Buffer.alloc(want)
        await handle.read(leaf, 0, want, index * LEAF_SIZE)
        if (!equalBytes(leafHash(leaf), leaves[index])) {
          throw new ShardCorruptError(`shard ${root} is corrupt on this host: leaf ${index} does not match`)
        }
        proofs.push({ index, leaf, path: auditPath(leaves, index) })
      }
      return proofs
    } finally {
      await handle.close()
    }
  }

  async delete (contract: string, root: string): Promise<void> {
    await rm(this.pathOf(contract, root), { force: true })
    await rm(`${this.pathOf(contract, root)}.leaves`, { force: true })
    await rm(`${this.pathOf(contract, root)}.sha256`, { force: true })
  }

  /** A renewed contract's shards pass to its successor: one rename, no copy */
  async moveContract (from: string, to: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    try {
      await rename(join(this.dir, from), join(this.dir, to))
    } catch (err: any) {
      if (err.code !== 'ENOENT') {
        throw err
      }
    }
    await syncDir(this.dir)
  }

  async deleteContract (contract: string): Promise<void> {
    await rm(join(this.dir, contract), { recursive: true, force: true })
    log('deleted the shards of contract %s', contract)
  }
}

/**
 * A shard file that is not there is a shard this host lost
 * (ShardCorruptError); any other failure to read it (too many open files,
 * an I/O error) says nothing about its bytes and is thrown as it is
 */
function missing (err: any, root: string): Error {
  return err?.code === 'ENOENT' ? new ShardCorruptError(`shard ${root} is missing on this host`) : err
}

/**
 * `<shard>.sha256`: the shard's SHA-256, then the SHA-256 of its root and
 * that digest, so a damaged file is told from a good one (a wrong digest
 * signed would have every get of the shard refused by its renter)
 */
function digestFile (root: Uint8Array, sha256: Uint8Array): Uint8Array {
  return Buffer.concat([sha256, createHash('sha256').update(root).update(sha256).digest()])
}

async function hashFile (path: string): Promise<MerkleHasher> {
  const hasher = new MerkleHasher()
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    hasher.update(chunk)
  }
  return hasher
}

async function syncDir (dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } catch {
    // some filesystems cannot fsync a directory; the rename is still atomic
  } finally {
    await handle.close()
  }
}
