import { stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { InvalidPutOptionError, parsePutOptions } from '../storage/put-options.ts'
import { UsageError } from './command.ts'

/**
 * Arguments the CLI can check itself: a mistake in them is a usage error
 * (exit 2) named as the user typed it, found before the daemon (and, for a
 * put, every host after it) is asked.
 */

/** `store put <file|folder>...`: regular files or folders, and options a host could take; resolves with whether it is a folder */
export async function checkPutArguments (target: string, file: string, values: Record<string, any>): Promise<'file' | 'folder'> {
  try {
    parsePutOptions({ redundancy: values.redundancy, duration: values.duration, maxPrice: values['max-price'] }, { redundancy: '--redundancy', duration: '--duration', maxPrice: '--max-price' })
  } catch (err) {
    if (err instanceof InvalidPutOptionError) {
      throw new UsageError(err.message)
    }
    throw err
  }
  let kind
  try {
    kind = await stat(file)
  } catch (err: any) {
    throw new UsageError(err.code === 'ENOENT'
      ? `there is no file "${target}"${file === target ? '' : ` (${file})`}: give the path of the file to store`
      : `cannot read "${target}" (${err.code ?? err.message}): store put needs a file this user can read`)
  }
  if (kind.isDirectory()) {
    // stored recursively by the daemon, one object per file (issue 21)
    return 'folder'
  }
  if (!kind.isFile()) {
    throw new UsageError(`"${target}" is not a regular file (a pipe or a device): store put reads a file from disk, so copy it into one first`)
  }
  return 'file'
}

/** `--out FILE` of store get or call: somewhere a file can be written (a paid answer is not lost) */
export async function checkOutputFile (out: string, given: string): Promise<void> {
  let folder
  try {
    folder = await stat(dirname(out))
  } catch {
    throw new UsageError(`--out "${given}": there is no folder ${dirname(out)} to write it in`)
  }
  if (!folder.isDirectory()) {
    throw new UsageError(`--out "${given}": ${dirname(out)} is not a folder`)
  }
  const existing = await stat(out).catch(() => undefined)
  if (existing?.isDirectory() === true) {
    throw new UsageError(`--out "${given}" is a folder: give the path of the file to write, e.g. --out ${given.replace(/\/*$/, '')}/<name>`)
  }
}
