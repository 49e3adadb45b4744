import { open, rename, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'

/**
 * Write a file so that a crash leaves either the old file or the new one,
 * never half of either: write a temporary file beside it, fsync, rename.
 */
export async function writeFileAtomic (path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
  const handle = await open(tmp, 'wx', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}
