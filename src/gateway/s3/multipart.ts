import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, open, readFile, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { writeFileAtomic } from '../../utils/files.ts'
import { MAX_PARTS, MIN_PART_BYTES } from './constants.ts'
import { EntityTooSmallError, InvalidArgumentError, InvalidPartError, InvalidPartOrderError, NoSuchUploadError } from './errors.ts'
import type { ObjectBody } from './body.ts'

/**
 * Multipart uploads, spooled to disk until they complete: each part is a
 * file under <dir>/<upload id>/, written under a temporary name and renamed
 * once whole and checked, so a client that drops mid-part leaves no part.
 * Complete streams the parts, in order, into one put of the storage client
 * (an object's size and contracts are fixed before its first byte, so the
 * parts cannot go to the hosts as they come); Abort, and the sweep of
 * uploads idle past their expiry, delete the folder. Nothing of an
 * unfinished upload is listed as an object.
 */

export interface UploadRecord {
  id: string
  bucket: string
  key: string
  /** the object's metadata (Content-Type, x-amz-meta-*), given at Create */
  meta: Record<string, string>
  /** the access key that created it (only it, or a key of every bucket, may go on) */
  keyId: string
  createdAt: number
}

export interface PartRecord {
  number: number
  size: number
  /** the part's MD5 in hex (its ETag, unquoted) */
  md5: string
  lastModified: number
}

const UPLOAD_FILE = 'upload.json'
const partPrefix = (n: number): string => `part-${String(n).padStart(5, '0')}`
/**
 * a part's bytes are named by their MD5 as well as their number, and its
 * record names them: two uploads of one part number at once (a client's
 * retry beside its first attempt) each keep their own bytes, so a record
 * never pairs one's ETag with the other's bytes
 */
const partFile = (n: number, md5: string): string => `${partPrefix(n)}-${md5}`

export class MultipartUploads {
  private readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  private folder (id: string): string {
    if (!/^[0-9a-f]{32}$/.test(id)) {
      throw new NoSuchUploadError(`"${id.slice(0, 64)}" is not an upload id of this node (ListMultipartUploads lists them)`, { UploadId: id.slice(0, 64) })
    }
    return join(this.dir, id)
  }

  async create (bucket: string, key: string, meta: Record<string, string>, keyId: string): Promise<UploadRecord> {
    const record: UploadRecord = { id: randomBytes(16).toString('hex'), bucket, key, meta, keyId, createdAt: Date.now() }
    await mkdir(this.folder(record.id), { recursive: true })
    await writeFileAtomic(join(this.folder(record.id), UPLOAD_FILE), JSON.stringify(record))
    return record
  }

  /** An upload under way, or NoSuchUpload (never made, completed, aborted or expired) */
  async get (id: string, bucket?: string, key?: string): Promise<UploadRecord> {
    let record: UploadRecord
    try {
      record = JSON.parse(await readFile(join(this.folder(id), UPLOAD_FILE), 'utf8'))
    } catch {
      throw new NoSuchUploadError('The specified upload does not exist: it may have been aborted, completed, or expired after a day without a part', { UploadId: id })
    }
    if ((bucket != null && record.bucket !== bucket) || (key != null && record.key !== key)) {
      throw new NoSuchUploadError(`The specified upload is of another object (${record.bucket}/${record.key})`, { UploadId: id })
    }
    return record
  }

  /** Store a part (replacing one of the same number), checked as its body is read */
  async putPart (id: string, number: number, body: ObjectBody, signal: AbortSignal): Promise<PartRecord> {
    if (!Number.isSafeInteger(number) || number < 1 || number > MAX_PARTS) {
      throw new InvalidArgumentError(`Part number must be an integer between 1 and ${MAX_PARTS}, inclusive, not "${String(number)}"`, { ArgumentName: 'partNumber' })
    }
    const folder = this.folder(id)
    const partial = join(folder, `${partPrefix(number)}.${randomBytes(4).toString('hex')}.tmp`)
    try {
      await pipeline(Readable.from(body.stream), createWriteStream(partial, { flags: 'wx' }), { signal })
      const part: PartRecord = { number, size: body.size, md5: body.md5(), lastModified: Date.now() }
      // the upload may have been aborted meanwhile: its folder is gone then
      await this.get(id)
      await rename(partial, join(folder, partFile(number, part.md5)))
      await writeFileAtomic(join(folder, `${partPrefix(number)}.json`), JSON.stringify(part))
      // the bytes of this number that its record no longer names (a part sent again); a Complete reading them has them open
      const named = await this.partRecord(folder, number)
      for (const name of await readdir(folder)) {
        if (name.startsWith(`${partPrefix(number)}-`) && !name.endsWith('.tmp') && name !== (named == null ? '' : partFile(number, named.md5))) {
          await unlink(join(folder, name)).catch(() => {})
        }
      }
      return part
    } finally {
      await rm(partial, { force: true })
    }
  }

  private async partRecord (folder: string, number: number): Promise<PartRecord | undefined> {
    try {
      return JSON.parse(await readFile(join(folder, `${partPrefix(number)}.json`), 'utf8'))
    } catch {
      return undefined
    }
  }

  /** The parts stored so far, by number */
  async parts (id: string): Promise<PartRecord[]> {
    const folder = this.folder(id)
    await this.get(id)
    const parts: PartRecord[] = []
    for (const name of await readdir(folder)) {
      if (/^part-\d{5}\.json$/.test(name)) {
        try {
          const part: PartRecord = JSON.parse(await readFile(join(folder, name), 'utf8'))
          // a record whose bytes are gone (replaced by another upload of its number meanwhile) is not a part
          if ((await stat(join(folder, partFile(part.number, part.md5)))).size === part.size) {
            parts.push(part)
          }
        } catch {}
      }
    }
    return parts.sort((a, b) => a.number - b.number)
  }

  /** Every upload under way, oldest first (of one bucket when given) */
  async list (bucket?: string): Promise<UploadRecord[]> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch {
      return []
    }
    const uploads: UploadRecord[] = []
    for (const name of names) {
      try {
        const record = await this.get(name)
        if (bucket == null || record.bucket === bucket) {
          uploads.push(record)
        }
      } catch {}
    }
    return uploads.sort((a, b) => a.createdAt - b.createdAt || a.key.localeCompare(b.key))
  }

  /**
   * The parts a Complete names, checked (each stored, with its ETag, in
   * ascending order, all but the last at least 5 MiB), as one stream of
   * their bytes, with the object's size and its S3 ETag: the MD5 of the
   * parts' MD5s, "-" and their count
   */
  async assemble (id: string, named: Array<{ number: number, etag: string }>): Promise<{ size: number, etag: string, stream: AsyncIterable<Uint8Array>, close: () => Promise<void> }> {
    if (named.length === 0) {
      throw new InvalidArgumentError('a CompleteMultipartUpload names at least one part')
    }
    const stored = new Map((await this.parts(id)).map(p => [p.number, p]))
    const parts: PartRecord[] = []
    let previous = 0
    for (const { number, etag } of named) {
      if (number <= previous) {
        throw new InvalidPartOrderError('The list of parts was not in ascending order: parts must be named by increasing part number')
      }
      previous = number
      const part = stored.get(number)
      if (part == null || etag.replace(/"/g, '').toLowerCase() !== part.md5) {
        throw new InvalidPartError(`Part ${number} could not be found, or its ETag is not the one it was stored with: ListParts lists the parts stored`, { PartNumber: String(number), ETag: etag })
      }
      parts.push(part)
    }
    parts.forEach((part, i) => {
      if (i < parts.length - 1 && part.size < MIN_PART_BYTES) {
        throw new EntityTooSmallError(`Part ${part.number} is ${part.size} bytes: every part but the last is at least 5 MiB`, { PartNumber: String(part.number), ProposedSize: String(part.size), MinSizeAllowed: String(MIN_PART_BYTES) })
      }
    })
    const folder = this.folder(id)
    const md5s = createHash('md5')
    for (const part of parts) {
      md5s.update(Buffer.from(part.md5, 'hex'))
    }
    // every part opened now: a part sent again while the object is stored
    // (or an Abort) cannot change the bytes under the ETag fixed here
    const handles: FileHandle[] = []
    try {
      for (const part of parts) {
        handles.push(await open(join(folder, partFile(part.number, part.md5)), 'r'))
      }
    } catch (err) {
      await Promise.all(handles.map(async h => h.close()))
      throw new InvalidPartError(`a part went away while the upload was completed: ${(err as Error).message}`)
    }
    async function * stream (): AsyncGenerator<Uint8Array> {
      try {
        for (const handle of handles) {
          yield * handle.createReadStream({ highWaterMark: 1024 * 1024, autoClose: false })
        }
      } finally {
        await Promise.all(handles.map(async h => h.close().catch(() => {})))
      }
    }
    // the handles are closed by the stream's end, or by close() when it is never read (a put refused first)
    const close = async (): Promise<void> => { await Promise.all(handles.map(async h => h.close().catch(() => {}))) }
    return { size: parts.reduce((sum, p) => sum + p.size, 0), etag: `${md5s.digest('hex')}-${parts.length}`, stream: stream(), close }
  }

  /** Delete an upload and its parts */
  async remove (id: string): Promise<void> {
    await rm(this.folder(id), { recursive: true, force: true })
  }

  /** Delete the uploads nothing was added to for `expiryMs`; resolves with how many */
  async sweep (expiryMs: number, now = Date.now()): Promise<number> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch {
      return 0
    }
    let removed = 0
    for (const name of names) {
      const folder = join(this.dir, name)
      try {
        // the newest of its files: a part added is activity
        let newest = (await stat(folder)).mtimeMs
        for (const file of await readdir(folder)) {
          newest = Math.max(newest, (await stat(join(folder, file))).mtimeMs)
        }
        if (now - newest > expiryMs) {
          await rm(folder, { recursive: true, force: true })
          removed++
        }
      } catch {}
    }
    return removed
  }
}
