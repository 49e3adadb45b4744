import { connectApi } from '../api-client.ts'
import { checkBucketName } from '../../gateway/s3/buckets.ts'
import { CLI } from '../../utils/cli-name.ts'
import { hintLine, printJson, table, UsageError, type Command } from '../command.ts'

/** s3 keys create|ls|revoke, and s3 status: the access keys of the node's S3 gateway (README, "S3 gateway") */
export const s3Command: Command = {
  name: 's3',
  summary: 'the S3 gateway: access keys for aws, rclone and the SDKs, and where it listens',
  usage: `${CLI} s3 status
       ${CLI} s3 keys create [--bucket NAME] [--read-only] [--label TEXT] [--env]
       ${CLI} s3 keys ls
       ${CLI} s3 keys revoke <access key id>`,
  help: `The node serves an S3-compatible endpoint when it is started with
--s3 HOST:PORT (e.g. --s3 127.0.0.1:4102; kept in config.json as s3.listen).
Every request is signed (AWS Signature Version 4) with an access key the
node issued; a bucket is a top-level folder of "store ls", and a key the
rest of the name.

  s3 status               where the gateway listens (or that it is off), and
                          how many keys are live
  s3 keys create          issue an access key and print its secret (shown
                          once: keep it, e.g. in ~/.aws/credentials)
    --bucket NAME         the key may use this bucket only
    --read-only           the key may list and read, never write or delete
    --label TEXT          a note to say what the key is for
    --env                 print only the shell's export line for aws and
                          rclone (eval "$(... s3 keys create --env)")
  s3 keys ls              every key issued here (never the secrets), revoked
                          ones with when
  s3 keys revoke <access key id>
                          refuse every request signed with the key from now
                          on`,
  options: {
    bucket: { type: 'string' },
    'read-only': { type: 'boolean' },
    label: { type: 'string' },
    env: { type: 'boolean' }
  },
  run: async ({ values, positionals, json, dataDir, out }) => {
    const [what, action, id, ...extra] = positionals
    const usage = (why: string): UsageError => new UsageError(`${why}; see: ${CLI} s3 --help`)
    if (what === 'status' && action == null) {
      const api = await connectApi(dataDir, values.api)
      const status = await api.get<{ url: string | null, loopbackOnly: boolean, keys: number }>('/v1/s3')
      if (json) {
        printJson(out, status)
        return
      }
      if (status.url == null) {
        out.write(`the S3 gateway is off: start the node with --s3 127.0.0.1:4102 to serve it\n`)
        return
      }
      out.write(table([['endpoint', status.url], ['from', status.loopbackOnly ? 'this machine only (loopback)' : 'any address'], ['live keys', String(status.keys)]]))
      if (status.keys === 0) {
        out.write(`no key yet: ${hintLine(values, ['s3', 'keys', 'create'])}\n`)
      }
      return
    }
    if (what !== 'keys' || action == null) {
      throw usage(what == null ? 'name a subcommand: status or keys' : `"${what}${action == null ? '' : ' ' + action}" is not an s3 subcommand`)
    }
    if (extra.length > 0) {
      throw usage(`unexpected "${extra.join(' ')}"`)
    }
    if (action !== 'create' && (values.bucket != null || values['read-only'] != null || values.label != null || values.env != null)) {
      throw usage('--bucket, --read-only, --label and --env go with s3 keys create')
    }
    switch (action) {
      case 'create': {
        if (id != null) {
          throw usage(`unexpected "${id}"`)
        }
        if (values.bucket != null) {
          try {
            checkBucketName(values.bucket)
          } catch (err: any) {
            throw new UsageError(`--bucket: ${err.message as string}`)
          }
        }
        const api = await connectApi(dataDir, values.api)
        const key = await api.post<any>('/v1/s3/keys', { bucket: values.bucket, readOnly: values['read-only'] === true, label: values.label })
        // what aws, rclone (env_auth) and the SDKs read from the environment
        const exports = `export AWS_ACCESS_KEY_ID=${key.id} AWS_SECRET_ACCESS_KEY=${key.secret} AWS_DEFAULT_REGION=${key.region}`
        if (json) {
          printJson(out, key)
          return
        }
        if (values.env === true) {
          out.write(exports + '\n')
          return
        }
        out.write(table([
          ['access key id', key.id],
          ['secret access key', key.secret],
          ['bucket', key.bucket ?? 'every bucket'],
          ['access', key.readOnly === true ? 'read-only' : 'read and write'],
          ['endpoint', key.endpoint ?? 'off: start the node with --s3 127.0.0.1:4102']
        ]))
        out.write(`The secret is shown only now. For aws, rclone and the SDKs:\n  ${exports}\n`)
        return
      }
      case 'ls': {
        if (id != null) {
          throw usage(`unexpected "${id}"`)
        }
        const api = await connectApi(dataDir, values.api)
        const keys = await api.get<any[]>('/v1/s3/keys')
        if (json) {
          printJson(out, keys)
          return
        }
        if (keys.length === 0) {
          out.write(`no access keys; issue one with: ${hintLine(values, ['s3', 'keys', 'create'])}\n`)
          return
        }
        out.write(table([['ACCESS KEY ID', 'BUCKET', 'ACCESS', 'CREATED', 'REVOKED', 'LABEL'], ...keys.map(k => [k.id, k.bucket ?? '*', k.readOnly === true ? 'read-only' : 'read-write', new Date(k.createdAt).toISOString(), k.revokedAt == null ? '' : new Date(k.revokedAt).toISOString(), k.label ?? ''])]))
        return
      }
      case 'revoke': {
        if (id == null) {
          throw usage('name the access key id to revoke (s3 keys ls lists them)')
        }
        const api = await connectApi(dataDir, values.api)
        const key = await api.post<any>('/v1/s3/keys/revoke', { id })
        if (json) {
          printJson(out, key)
          return
        }
        out.write(`revoked ${key.id} at ${new Date(key.revokedAt).toISOString()}: requests signed with it are refused\n`)
        return
      }
      default:
        throw usage(`"keys ${action}" is not an s3 subcommand`)
    }
  }
}
