import { InvalidNameError } from '../errors.ts'

/**
 * Object names. A name with '/' is a path: its folders are the prefixes
 * before each '/' (there are no folder records), so `store ls docs/` lists
 * what is under docs/ and `store get docs/ --out DIR` writes each name as
 * a path under DIR. Only names that are safe as relative paths on any
 * machine are taken: no '..' or '.' segment, no empty one (a leading or
 * trailing '/', or '//'), no control characters, no backslash (a separator
 * on Windows).
 */

/** a whole path's length, and one segment's (what file systems take) */
const MAX_NAME = 1024
const MAX_SEGMENT = 255

/** The name, or InvalidNameError saying what is wrong with it */
export function checkName (name: string): string {
  const refuse = (why: string): never => {
    throw new InvalidNameError(`"${name}" is not a usable name: ${why} (names are paths of 1 to ${MAX_SEGMENT} printable characters per '/'-separated part)`)
  }
  if (name === '') {
    refuse('it is empty')
  }
  if (name.length > MAX_NAME) {
    refuse(`it is longer than ${MAX_NAME} characters`)
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    refuse('it holds a control character')
  }
  if (name.includes('\\')) {
    refuse("it holds a backslash: folders are separated by '/'")
  }
  if (name.startsWith('/')) {
    refuse("it starts with '/': names are relative paths")
  }
  for (const segment of name.split('/')) {
    if (segment === '') {
      refuse("it has an empty part (a trailing '/' or '//')")
    }
    if (segment === '..' || segment === '.') {
      refuse(`it has a "${segment}" part`)
    }
    if (segment.length > MAX_SEGMENT) {
      refuse(`a part is longer than ${MAX_SEGMENT} characters`)
    }
  }
  return name
}

/** A folder prefix as `store ls docs/` takes it: "docs/" (the empty prefix is the top) */
export function checkPrefix (prefix: string): string {
  if (prefix === '' || prefix === '/') {
    return ''
  }
  if (!prefix.endsWith('/')) {
    throw new InvalidNameError(`"${prefix}" is not a folder: a folder ends with '/'`)
  }
  checkName(prefix.slice(0, -1))
  return prefix
}

/** Whether `name` names a folder (ends with '/') */
export function isFolder (name: string): boolean {
  return name.endsWith('/')
}
