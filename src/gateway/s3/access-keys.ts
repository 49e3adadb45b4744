import { randomBytes } from 'node:crypto'
import { Key, type Datastore } from 'interface-datastore'
import { InvalidArgumentError } from './errors.ts'

/**
 * The access keys the node issues for its S3 gateway (`s3 keys create`).
 * The secret is kept as issued: SigV4 is an HMAC under a key derived from
 * it, so the gateway must hold it to check a signature (S3 does too); it is
 * printed once, at creation, and the datastore is the node's own. A revoked
 * key is kept, marked, so `s3 keys ls` says when, and it is refused.
 */

export interface AccessKey {
  /** 20 characters, "OC" and 18 of base32, as AWS's AKIA... are 20 */
  id: string
  /** 40 characters, as AWS's */
  secret: string
  /** only this bucket (absent: every bucket, and creating buckets) */
  bucket?: string
  /** reads only: no put, copy, delete or bucket change */
  readOnly: boolean
  /** a note to say what it is for */
  label?: string
  createdAt: number
  revokedAt?: number
}

export interface AccessKeyOptions {
  bucket?: string
  readOnly?: boolean
  label?: string
}

const PREFIX = '/s3/keys'
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const dec = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes))

function keyId (): string {
  return 'OC' + [...randomBytes(18)].map(b => BASE32[b & 31]).join('')
}

export class AccessKeys {
  private readonly datastore: Datastore
  /** id -> key, read once: every request looks its key up */
  private readonly cache = new Map<string, AccessKey>()

  constructor (datastore: Datastore) {
    this.datastore = datastore
  }

  async create (options: AccessKeyOptions = {}): Promise<AccessKey> {
    if (options.label != null && options.label.length > 200) {
      throw new InvalidArgumentError('a key\'s label is at most 200 characters')
    }
    const key: AccessKey = {
      id: keyId(),
      // base64url without padding: 30 bytes are 40 characters, and none needs quoting in a shell or a config file
      secret: randomBytes(30).toString('base64url'),
      ...(options.bucket != null ? { bucket: options.bucket } : {}),
      readOnly: options.readOnly === true,
      ...(options.label != null ? { label: options.label } : {}),
      createdAt: Date.now()
    }
    await this.datastore.put(new Key(`${PREFIX}/${key.id}`), enc(key))
    this.cache.set(key.id, key)
    return key
  }

  /** The key of this id, or undefined (never issued here); a revoked one is returned with revokedAt */
  async get (id: string): Promise<AccessKey | undefined> {
    if (!/^[A-Z0-9]{16,128}$/.test(id)) {
      return undefined
    }
    const cached = this.cache.get(id)
    if (cached != null) {
      return cached
    }
    let key: AccessKey | null = null
    try {
      key = dec<AccessKey>(await this.datastore.get(new Key(`${PREFIX}/${id}`)))
    } catch (err: any) {
      if (err.name !== 'NotFoundError') {
        throw err
      }
    }
    // only keys issued here are kept: an id nobody issued is not, or
    // requests with random ids (checked before their signature can be)
    // would grow the cache without end
    if (key != null) {
      this.cache.set(id, key)
    }
    return key ?? undefined
  }

  /** Every key issued here, oldest first, revoked ones included */
  async list (): Promise<AccessKey[]> {
    const keys: AccessKey[] = []
    for await (const { value } of this.datastore.query({ prefix: PREFIX })) {
      keys.push(dec<AccessKey>(value))
    }
    return keys.sort((a, b) => a.createdAt - b.createdAt)
  }

  /** Revoke a key: every request signed with it is refused from now on. Resolves with it, or undefined when there is none of that id */
  async revoke (id: string): Promise<AccessKey | undefined> {
    const key = await this.get(id)
    if (key == null) {
      return undefined
    }
    if (key.revokedAt == null) {
      key.revokedAt = Date.now()
      await this.datastore.put(new Key(`${PREFIX}/${key.id}`), enc(key))
      this.cache.set(key.id, key)
    }
    return key
  }
}

/** A key as `s3 keys ls` shows it: everything but the secret */
export function keyView (key: AccessKey): Omit<AccessKey, 'secret'> {
  const { secret: _secret, ...rest } = key
  return rest
}
