import { InvalidArgumentError } from './errors.ts'

/**
 * A bucket's listing as S3 answers it: keys in UTF-8 byte order, after a
 * start (start-after, marker, a continuation token), under a prefix, rolled
 * up into CommonPrefixes at a delimiter, at most max-keys entries (keys and
 * prefixes together), and where the next page starts.
 */

export interface ListInput<T> {
  entries: Array<{ key: string, value: T }>
  prefix: string
  delimiter?: string
  /** list keys after this one (not itself) */
  after?: string
  maxKeys: number
}

export interface ListOutput<T> {
  contents: Array<{ key: string, value: T }>
  commonPrefixes: string[]
  truncated: boolean
  /** the last key or prefix answered: the next page starts after it */
  last?: string
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b))

export function listKeys<T> ({ entries, prefix, delimiter, after, maxKeys }: ListInput<T>): ListOutput<T> {
  if (maxKeys === 0) {
    // S3 answers max-keys=0 with nothing, and says nothing is left out
    return { contents: [], commonPrefixes: [], truncated: false }
  }
  const sorted = entries.filter(e => e.key.startsWith(prefix)).sort((a, b) => byteOrder(a.key, b.key))
  const contents: ListOutput<T>['contents'] = []
  const commonPrefixes: string[] = []
  let last: string | undefined
  for (const entry of sorted) {
    let item = entry.key
    let rolled = false
    if (delimiter != null && delimiter !== '') {
      const at = entry.key.indexOf(delimiter, prefix.length)
      if (at >= 0) {
        item = entry.key.slice(0, at + delimiter.length)
        rolled = true
      }
    }
    // after a key: the keys past it (start-after "a/1" still rolls "a/2"
    // up into "a/"); after a prefix a page ended on, nothing under it again
    if (after != null && (byteOrder(entry.key, after) <= 0 || (rolled && item === after))) {
      continue
    }
    if (rolled && commonPrefixes[commonPrefixes.length - 1] === item) {
      continue
    }
    if (contents.length + commonPrefixes.length >= maxKeys) {
      return { contents, commonPrefixes, truncated: true, last }
    }
    if (rolled) {
      commonPrefixes.push(item)
    } else {
      contents.push(entry)
    }
    last = item
  }
  return { contents, commonPrefixes, truncated: false, last }
}

/** max-keys as a client gives it: 0 to 1,000 (more is answered as 1,000, as S3 does) */
export function maxKeysOf (text: string | null, cap: number): number {
  if (text == null || text === '') {
    return cap
  }
  if (!/^\d{1,9}$/.test(text)) {
    throw new InvalidArgumentError(`max-keys must be a whole number, not "${text.slice(0, 40)}"`, { ArgumentName: 'max-keys' })
  }
  return Math.min(Number(text), cap)
}

/** A continuation token: the key a page ended on, opaque to the client */
export function continuationToken (last: string): string {
  return Buffer.from(last).toString('base64url')
}

export function parseContinuationToken (token: string): string {
  const key = Buffer.from(token, 'base64url').toString()
  if (token === '' || Buffer.from(key).toString('base64url') !== token) {
    throw new InvalidArgumentError('The continuation token provided is incorrect', { ArgumentName: 'continuation-token' })
  }
  return key
}
