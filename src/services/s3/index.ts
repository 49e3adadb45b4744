import { join } from 'node:path'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import { S3Gateway } from '../../gateway/s3/s3-gateway.ts'
import { checkBucketName } from '../../gateway/s3/buckets.ts'
import { keyView } from '../../gateway/s3/access-keys.ts'
import { DEFAULT_UPLOAD_EXPIRY_MS, DEFAULT_REGION } from '../../gateway/s3/constants.ts'
import { S3Error } from '../../gateway/s3/errors.ts'
import { ConfigError, objectSection, stringField, wholeNumber, type ConfigSection } from '../config-section.ts'
import type { StorageEngines } from '../storage/index.ts'
import type { ServiceModuleDefinition, RouteTable } from '../module.ts'

/**
 * The S3 gateway's module: the gateway (src/gateway/s3) in front of the
 * storage module's client, its config section, and the control-API routes
 * of its access keys (`s3 keys create|ls|revoke`).
 *
 * Off by default: it is a second way into the node's files, over plain
 * HTTP, and an operator turns it on knowingly (`--s3 127.0.0.1:4102` or
 * s3.listen). Given a host, loopback is what README shows: the tools run on
 * the same machine, and a request from elsewhere is refused even if it
 * reaches the port. Another address (a NAS serving its LAN) is taken, and
 * logged: requests are signed, but bodies travel unencrypted.
 */

/** config.json's "s3" */
export interface S3Config {
  /** HOST:PORT to serve S3 on, e.g. "127.0.0.1:4102"; "" (the default): off */
  listen: string
  /** the region it answers as (GetBucketLocation), default "us-east-1"; requests signed for any region are taken */
  region: string
  /** an unfinished multipart upload with no part for this long is deleted, default 86400000 ms (24 h) */
  uploadExpiryMs: number
}

/** "127.0.0.1:4102", "[::1]:4102", "0.0.0.0:4102" as host and port */
export function parseS3Address (value: string): { host: string, port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value.trim())
  if (match == null || Number(match[2]) > 65535) {
    throw new ConfigError(`"${value}" is not HOST:PORT, such as 127.0.0.1:4102`)
  }
  return { host: match[1].replace(/^\[|\]$/g, ''), port: Number(match[2]) }
}

export const s3Settings: ConfigSection<S3Config> = {
  key: 's3',
  defaults: { listen: '', region: DEFAULT_REGION, uploadExpiryMs: DEFAULT_UPLOAD_EXPIRY_MS },
  validate: (raw, path) => objectSection(raw, path, s3Settings.defaults, {
    listen: stringField(value => { if (value !== '') parseS3Address(value) }),
    region: stringField(value => { if (!/^[a-z0-9-]{1,32}$/.test(value)) throw new Error('a region is a name such as us-east-1') }),
    uploadExpiryMs: wholeNumber(60_000, 'milliseconds')
  })
}

function routes (gateway: S3Gateway, listening: () => string | undefined, region: string): RouteTable {
  return {
    'GET /v1/s3': async ({ json }) => {
      json(200, { url: listening() ?? null, loopbackOnly: gateway.loopbackOnly, region, keys: (await gateway.keys.list()).filter(k => k.revokedAt == null).length })
    },
    'GET /v1/s3/keys': async ({ json }) => {
      json(200, (await gateway.keys.list()).map(keyView))
    },
    'POST /v1/s3/keys': async ({ req, json }) => {
      const usage = 'send {"bucket"?: NAME, "readOnly"?: true|false, "label"?: TEXT}'
      const body = await readJsonBody(req, usage)
      const bucket = body.bucket == null ? undefined : String(body.bucket)
      if (bucket != null) {
        try {
          checkBucketName(bucket)
        } catch (err: any) {
          throw new HttpError(400, err.message)
        }
      }
      if (body.readOnly != null && typeof body.readOnly !== 'boolean') {
        throw new HttpError(400, `readOnly is true or false; ${usage}`)
      }
      const key = await gateway.keys.create({ bucket, readOnly: body.readOnly === true, label: body.label == null ? undefined : String(body.label) })
      json(200, { ...key, endpoint: listening() ?? null, region })
    },
    'POST /v1/s3/keys/revoke': async ({ req, json }) => {
      const body = await readJsonBody(req, 'send {"id": ACCESS_KEY_ID}')
      const key = await gateway.keys.revoke(String(body.id ?? ''))
      if (key == null) {
        throw new HttpError(404, `no access key ${String(body.id ?? '')} was issued here (s3 keys ls lists them)`)
      }
      json(200, keyView(key))
    }
  }
}

export const s3Module: ServiceModuleDefinition = {
  name: 's3',
  config: [s3Settings],
  create: ({ section, engine, datastore, dataDir, peerId, options }) => {
    const settings = section(s3Settings)
    const storage = engine<StorageEngines>('storage')
    if (storage == null) {
      throw new Error('the s3 module needs the storage module before it in the list')
    }
    // the listen address of a test or an embedder (modules.s3.listen) before config.json's
    const listen = (options.s3 as { listen?: string } | undefined)?.listen ?? settings.listen
    const address = listen === '' ? undefined : parseS3Address(listen)
    const gateway = new S3Gateway({ storage: storage.client, datastore, dir: join(dataDir, 's3'), owner: peerId.toString() }, { ...address, region: settings.region, uploadExpiryMs: settings.uploadExpiryMs })
    let running = false
    return {
      routes: routes(gateway, () => running ? gateway.url : undefined, settings.region),
      errors: [[S3Error, 400]],
      engine: gateway,
      start: async () => {
        if (address != null) {
          await gateway.start()
          running = true
        }
      },
      stop: async () => {
        running = false
        await gateway.stop()
      }
    }
  }
}
