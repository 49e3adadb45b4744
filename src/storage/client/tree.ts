import { lstat, mkdir, open, readdir, stat } from 'node:fs/promises'
import { basename, dirname, join, resolve, sep } from 'node:path'
import { InvalidNameError, ObjectUnchangedError, OutputExistsError, TreeIncompleteError, TreeRefusedError } from '../errors.ts'
import { checkName, checkPrefix } from './names.ts'
import type { GetOptions, Progress, PutOptions } from './interface.ts'
import type { StoredObject } from './record-types.ts'

/**
 * Folders: a directory stored as one object per file, named by its path
 * ('/' separated) under a prefix, and a folder fetched back as a tree.
 * There are no folder records: a folder is the names under a prefix. The
 * walk happens here, in the daemon's engine, so the control API stores a
 * directory as the CLI does.
 */

/** A file a tree put stores */
export interface TreeFile {
  /** where it is on disk */
  path: string
  /** the object name it is stored under */
  name: string
  size: number
}

/** What a tree put leaves out, and why (a symlink, a name that is not UTF-8 or not usable, not a regular file) */
export interface TreeSkip {
  path: string
  why: string
}

/** What a tree put did with each file */
export interface TreeFileResult {
  name: string
  path: string
  size: number
  status: 'stored' | 'unchanged' | 'skipped'
  /** skipped: why; unchanged: what it matched */
  why?: string
  object?: StoredObject
}

/** The file system calls a walk makes (tests inject failures root would not see) */
export interface TreeFs {
  /** open a file for reading and close it again: refused before anything is stored when it cannot */
  probe: (path: string) => Promise<void>
  readdir: (path: string) => Promise<Array<{ name: Buffer, isFile: () => boolean, isDirectory: () => boolean, isSymbolicLink: () => boolean }>>
}

export const nodeTreeFs: TreeFs = {
  probe: async (path) => { await (await open(path, 'r')).close() },
  readdir: async (path) => readdir(path, { encoding: 'buffer', withFileTypes: true })
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Every file to store from `paths` (files and directories), with its
 * name: a directory's files are `<prefix>/<path under it>`, the prefix
 * being `name` or the directory's own name; a lone file is `name` or its
 * own name; with several paths, or a `name` ending with '/', `name` is a
 * folder they go under, each with its own name.
 * Symlinks, entries that are not regular files and names that are not
 * valid UTF-8 (read as bytes, so none is mangled) or not usable are
 * skipped and said. A file or directory that cannot be read refuses the
 * whole put (TreeRefusedError) before anything is stored.
 */
export async function walkTree (paths: string[], name: string | undefined, fs: TreeFs = nodeTreeFs): Promise<{ files: TreeFile[], skipped: TreeSkip[] }> {
  const files: TreeFile[] = []
  const skipped: TreeSkip[] = []
  const unreadable: string[] = []
  const lone = paths.length === 1
  const visit = async (path: string, objectName: string): Promise<void> => {
    let kind
    try {
      kind = await lstat(path)
    } catch (err: any) {
      unreadable.push(`${path} (${err.code ?? err.message})`)
      return
    }
    if (kind.isSymbolicLink()) {
      skipped.push({ path, why: 'a symbolic link (not followed: it may lead out of the folder or round in a loop)' })
      return
    }
    if (kind.isDirectory()) {
      let entries
      try {
        entries = await fs.readdir(path)
      } catch (err: any) {
        unreadable.push(`${path}/ (${err.code ?? err.message})`)
        return
      }
      for (const entry of entries.sort((a, b) => Buffer.compare(a.name, b.name))) {
        let child: string
        try {
          child = utf8.decode(entry.name)
        } catch {
          skipped.push({ path: join(path, entry.name.toString('latin1')), why: 'its name is not valid UTF-8 (rename it to store it)' })
          continue
        }
        await visit(join(path, child), `${objectName}/${child}`)
      }
      return
    }
    if (!kind.isFile()) {
      skipped.push({ path, why: 'not a regular file (a pipe, socket or device)' })
      return
    }
    try {
      checkName(objectName)
    } catch (err: any) {
      skipped.push({ path, why: err.message })
      return
    }
    try {
      await fs.probe(path)
    } catch (err: any) {
      unreadable.push(`${path} (${err.code ?? err.message})`)
      return
    }
    files.push({ path, name: objectName, size: kind.size })
  }
  // a lone path takes `name` as its own ("--name docs": the folder is docs),
  // unless it ends with '/' ("--name docs/": it goes under docs/, as several paths do)
  const prefix = name?.replace(/\/+$/, '')
  for (const given of paths) {
    const path = resolve(given)
    const top = prefix == null || prefix === '' ? basename(path) : lone && !name?.endsWith('/') ? prefix : `${prefix}/${basename(path)}`
    await visit(path, top)
  }
  if (unreadable.length > 0) {
    throw new TreeRefusedError(`nothing is stored: ${unreadable.length} file${unreadable.length === 1 ? '' : 's'} or folder${unreadable.length === 1 ? '' : 's'} cannot be read by the daemon's user:\n  ${unreadable.join('\n  ')}\nmake them readable, or move them out of the folder, and put it again`)
  }
  const seen = new Map<string, string>()
  for (const f of files) {
    const other = seen.get(f.name)
    if (other != null) {
      throw new TreeRefusedError(`nothing is stored: ${other} and ${f.path} would both be stored as "${f.name}"; put them under different --name prefixes`)
    }
    seen.set(f.name, f.path)
  }
  return { files, skipped }
}

/** What putTree needs of the client */
export interface TreeClient {
  put: (path: string, options: PutOptions) => Promise<StoredObject>
  current: (prefix?: string) => Promise<Array<{ object: StoredObject, versions: number }>>
  get: (nameOrId: string, out: string, options: GetOptions) => Promise<StoredObject>
}

export interface PutTreeOptions extends Omit<PutOptions, 'name' | 'onProgress'> {
  name?: string
  /** progress over the whole tree's bytes */
  onProgress?: (p: Progress) => void
  /** each file as it is done */
  onFile?: (result: TreeFileResult) => void
  fs?: TreeFs
}

/**
 * Store files and directories (walkTree), one object per file, each a new
 * version of its name unless it is unchanged. A failure stops the put:
 * what was stored stays stored (each file is whole), and the error says
 * what was and was not (TreeIncompleteError); the same put again skips
 * what is unchanged.
 */
export async function putTree (client: TreeClient, paths: string[], options: PutTreeOptions = {}): Promise<{ files: TreeFileResult[] }> {
  const { files, skipped } = await walkTree(paths, options.name, options.fs)
  const results: TreeFileResult[] = skipped.map(s => ({ name: '', path: s.path, size: 0, status: 'skipped', why: s.why }))
  for (const r of results) {
    options.onFile?.(r)
  }
  const total = files.reduce((sum, f) => sum + f.size, 0)
  let base = 0
  options.onProgress?.({ phase: 'upload', done: 0, total })
  for (let i = 0; i < files.length; i++) {
    const file = files[i]
    let result: TreeFileResult
    try {
      const object = await client.put(file.path, {
        ...options,
        name: file.name,
        onProgress: p => { if (p.phase === 'upload') options.onProgress?.({ phase: 'upload', done: base + p.done, total }) }
      })
      result = { name: file.name, path: file.path, size: file.size, status: 'stored', object }
    } catch (err: any) {
      if (err instanceof ObjectUnchangedError) {
        result = { name: file.name, path: file.path, size: file.size, status: 'unchanged', why: err.message, object: err.object as StoredObject }
      } else {
        const stored = results.filter(r => r.status !== 'skipped').map(r => r.name)
        const left = files.slice(i + 1).map(f => f.name)
        throw new TreeIncompleteError(`${file.name} failed: ${err.message}\n` +
          `stored or unchanged (${stored.length}): ${stored.length === 0 ? 'none' : stored.join(', ')}\n` +
          `not stored (${left.length + 1}): ${[file.name, ...left].join(', ')}\n` +
          'put the same paths again once that is fixed: what is unchanged is skipped')
      }
    }
    base += file.size
    options.onProgress?.({ phase: 'upload', done: base, total })
    results.push(result)
    options.onFile?.(result)
  }
  return { files: results }
}

/** What is under a folder: the objects directly in it, and its sub-folders with how many objects and bytes each holds */
export interface FolderListing {
  prefix: string
  objects: Array<{ object: StoredObject, versions: number }>
  folders: Array<{ name: string, objects: number, size: number }>
}

export async function listFolder (client: Pick<TreeClient, 'current'>, prefix: string): Promise<FolderListing> {
  checkPrefix(prefix)
  const objects: FolderListing['objects'] = []
  const folders = new Map<string, { name: string, objects: number, size: number }>()
  for (const entry of await client.current(prefix)) {
    const rest = entry.object.name.slice(prefix.length)
    const slash = rest.indexOf('/')
    if (slash < 0) {
      objects.push(entry)
      continue
    }
    const name = `${prefix}${rest.slice(0, slash + 1)}`
    const folder = folders.get(name) ?? { name, objects: 0, size: 0 }
    folder.objects++
    folder.size += entry.object.size
    folders.set(name, folder)
  }
  return { prefix, objects, folders: [...folders.values()] }
}

export interface GetTreeOptions extends Omit<GetOptions, 'version'> {
  onFile?: (object: StoredObject, out: string) => void
}

/**
 * Fetch every current object under a folder into `out`, each at its path
 * under the folder. Every path is checked before anything is fetched: no
 * name may lead out of `out` (names are checked when stored, and again
 * here), and no file there is replaced without `overwrite`.
 */
export async function getTree (client: TreeClient, prefix: string, out: string, options: GetTreeOptions = {}): Promise<{ files: Array<{ object: StoredObject, out: string }> }> {
  checkPrefix(prefix)
  const root = resolve(out)
  const entries = await client.current(prefix)
  if (entries.length === 0) {
    throw new InvalidNameError(`nothing is stored under "${prefix}"; "store ls" lists what is`)
  }
  const planned: Array<{ object: StoredObject, out: string }> = []
  const existing: string[] = []
  const names = new Set(entries.map(e => e.object.name.slice(prefix.length)))
  for (const { object } of entries) {
    const rel = object.name.slice(prefix.length)
    try {
      checkName(rel)
    } catch (err: any) {
      throw new TreeRefusedError(`nothing is fetched: "${object.name}" cannot be written under ${root} (${err.message})`)
    }
    const target = resolve(root, ...rel.split('/'))
    if (!target.startsWith(root + sep)) {
      throw new TreeRefusedError(`nothing is fetched: "${object.name}" would be written outside ${root}`)
    }
    // "a" and "a/b" both stored: a file where a folder must be
    const parts = rel.split('/')
    for (let i = 1; i < parts.length; i++) {
      if (names.has(parts.slice(0, i).join('/'))) {
        throw new TreeRefusedError(`nothing is fetched: "${prefix}${parts.slice(0, i).join('/')}" is both a file and a folder; fetch the file alone with store get --out`)
      }
    }
    const there = await stat(target).catch(() => undefined)
    if (there != null && (there.isDirectory() || options.overwrite !== true)) {
      existing.push(target)
    }
    planned.push({ object, out: target })
  }
  if (existing.length > 0) {
    throw new OutputExistsError(`nothing is fetched: ${existing.length} of the ${planned.length} files exist already under ${root} (${existing.slice(0, 5).join(', ')}${existing.length > 5 ? ', ...' : ''}); choose another --out or pass --force to replace them`)
  }
  const total = planned.reduce((sum, p) => sum + p.object.size, 0)
  let base = 0
  for (const p of planned) {
    await mkdir(dirname(p.out), { recursive: true })
    await client.get(p.object.id, p.out, {
      ...options,
      onProgress: pr => { options.onProgress?.({ phase: 'download', done: base + pr.done, total }) }
    })
    base += p.object.size
    options.onProgress?.({ phase: 'download', done: base, total })
    options.onFile?.(p.object, p.out)
  }
  return { files: planned }
}
