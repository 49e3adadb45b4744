/**
 * bench/s3's S3 client: the AWS SDK in a process of its own, as aws,
 * rclone or a backup program is beside the node (and as `store put`'s file
 * is read by the node, not by the CLI). It reads one JSON command a line on
 * stdin ({"op":"put"|"get"|"multipart","key","path","size","partSize"})
 * and answers {"ok":true} or {"error":"..."} a line on stdout.
 *
 *   node bench/s3/tool.ts ENDPOINT ACCESS_KEY_ID SECRET BUCKET
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import { S3Client, PutObjectCommand, GetObjectCommand, CreateBucketCommand } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'

const [endpoint, accessKeyId, secretAccessKey, bucket] = process.argv.slice(2)
const sdk = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } })

const run = async (command: { op: string, key: string, path: string, size?: number, partSize?: number }): Promise<void> => {
  switch (command.op) {
    case 'bucket':
      await sdk.send(new CreateBucketCommand({ Bucket: bucket }))
      return
    case 'put':
      await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: command.key, Body: createReadStream(command.path), ContentLength: command.size }))
      return
    case 'get': {
      const res = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: command.key }))
      await pipeline(res.Body as Readable, createWriteStream(command.path))
      return
    }
    case 'multipart':
      await new Upload({ client: sdk, params: { Bucket: bucket, Key: command.key, Body: createReadStream(command.path) }, partSize: command.partSize }).done()
      return
    default:
      throw new Error(`unknown op ${command.op}`)
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  try {
    await run(JSON.parse(line))
    process.stdout.write('{"ok":true}\n')
  } catch (err: any) {
    process.stdout.write(JSON.stringify({ error: `${err.name as string}: ${err.message as string}` }) + '\n')
  }
}
sdk.destroy()
