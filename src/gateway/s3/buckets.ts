import { Key, type Datastore } from 'interface-datastore'
import { checkName, InvalidNameError } from '../../storage/client/storage-client.ts'
import { InvalidArgumentError, InvalidBucketNameError, KeyTooLongError } from './errors.ts'

/**
 * Buckets and keys onto the storage namespace: a bucket is a top-level
 * folder, and the object `photos/2026/a.jpg` is the key `2026/a.jpg` of the
 * bucket `photos`. So `store ls photos/` lists what S3 put there, and a
 * `store put --name photos/b.jpg` is in the bucket. A folder has no record
 * of its own (it is the prefix of its names), so an empty bucket is kept
 * here, in the gateway's records; a bucket is any folder with objects, or
 * one created empty.
 */

export interface BucketRecord {
  name: string
  createdAt: number
}

const PREFIX = '/s3/buckets'
const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

/** A name CreateBucket takes, as S3's rules for new buckets: 3 to 63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit */
export function checkBucketName (name: string): string {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) || name.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(name)) {
    throw new InvalidBucketNameError(`"${name.slice(0, 80)}" is not a bucket name: 3 to 63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit`, { BucketName: name.slice(0, 80) })
  }
  return name
}

/** The storage name of a bucket's key, or the S3 error its key earns ('..', control characters, too long) */
export function objectName (bucket: string, key: string): string {
  if (key === '') {
    throw new InvalidArgumentError('the request names a bucket but no key')
  }
  if (Buffer.byteLength(key) > 1024) {
    throw new KeyTooLongError('Your key is too long: at most 1,024 bytes', { Key: key.slice(0, 80) })
  }
  try {
    return checkName(`${bucket}/${key}`)
  } catch (err) {
    if (err instanceof InvalidNameError) {
      throw new InvalidArgumentError(`the key is not taken: ${err.message.replace(`"${bucket}/${key}"`, `"${key}"`)}`, { Key: key.slice(0, 80) })
    }
    throw err
  }
}

export class Buckets {
  private readonly datastore: Datastore

  constructor (datastore: Datastore) {
    this.datastore = datastore
  }

  async get (name: string): Promise<BucketRecord | undefined> {
    try {
      return dec<BucketRecord>(await this.datastore.get(new Key(`${PREFIX}/${name}`)))
    } catch (err: any) {
      if (err.name === 'NotFoundError') {
        return undefined
      }
      throw err
    }
  }

  async put (name: string): Promise<BucketRecord> {
    const record: BucketRecord = { name, createdAt: Date.now() }
    await this.datastore.put(new Key(`${PREFIX}/${name}`), enc(record))
    return record
  }

  async delete (name: string): Promise<void> {
    await this.datastore.delete(new Key(`${PREFIX}/${name}`))
  }

  async list (): Promise<BucketRecord[]> {
    const out: BucketRecord[] = []
    for await (const { value } of this.datastore.query({ prefix: PREFIX })) {
      out.push(dec<BucketRecord>(value))
    }
    return out
  }
}
