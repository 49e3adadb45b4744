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
 * Shards on disk: `<dir>/<contract id>/<shard root>` holds the bytes and
 * `<...>.leaves` the leaf hashes (32 bytes per 4 KiB leaf), both in hex
 * names. A shard is written to a temporary name, fsynced and renamed, so a
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
  async write (contract: string, root: Uint8Array, body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<number> {
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
      await rename(tmp, final)
      await syncDir(join(this.dir, contract))
      log('shard %s of %d bytes: received and hashed in %d ms, synced in %d ms', rootHex, hasher.length, Math.round(received - started), Math.round(performance.now() - received))
      return hasher.length
    } catch (err) {
      await handle.close().catch(() => {})
      await rm(tmp, { force: true })
      await rm(`${tmp}.leaves`, { force: true })
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
   * the signed response head carries), then read again as it is sent.
   */
  async range (contract: string, root: string, offset: number, length: number, size: number, signal: AbortSignal): Promise<OutgoingBody> {
    if (offset + length > size) {
      throw new RangeError(`bytes ${offset}-${offset + length} are past the end of the ${size}-byte shard`)
    }
    const leaves = await this.leaves(contract, root)
    const path = this.pathOf(contract, root)
    const first = Math.floor(offset / LEAF_SIZE)
    const last = Math.ceil((offset + length) / LEAF_SIZE)
    const hash = createHash('sha256')
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
        const from = Math.max(offset, start) - start
        const to = Math.min(offset + length, start + want) - start
        hash.update(buf.subarray(from, to))
      }
    } finally {
      await handle.close()
    }
    return {
      length,
      sha256: Uint8Array.from(hash.digest()),
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
