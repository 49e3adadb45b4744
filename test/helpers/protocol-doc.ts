import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'

/**
 * Reading PROTOCOL.md the way an implementer does: a section under its
 * heading, and the values printed in it, each one a whole code block, a
 * whole `code span` (a table cell holds one) or a whole word of the text.
 * A substring search of the whole document cannot tell a value from part of
 * another (`39` is inside most signatures); these helpers can.
 */

/** PROTOCOL.md of this checkout */
export async function readProtocolDoc (): Promise<string> {
  return readFile(new URL('../../PROTOCOL.md', import.meta.url), 'utf8')
}

/**
 * The text of PROTOCOL.md from a heading to the next heading of that level
 * or above; with `subsections: false`, only to the next heading of any level
 * (a section's own text before its first subsection)
 */
export function sectionOf (doc: string, heading: string, options: { subsections?: boolean } = {}): string {
  const start = doc.indexOf(`\n${heading}\n`)
  assert.ok(start >= 0, `PROTOCOL.md has no heading "${heading}"`)
  // a heading printed twice (section 10 and 11 both have "Service
  // discovery") is found inside its parent section instead
  assert.equal(doc.indexOf(`\n${heading}\n`, start + 1), -1, `PROTOCOL.md has "${heading}" twice: look it up inside its parent section`)
  const level = options.subsections === false ? 6 : heading.split(' ')[0].length
  const rest = doc.slice(start + heading.length + 2)
  const next = rest.search(new RegExp(`^#{1,${level}} `, 'm'))
  return next < 0 ? rest : rest.slice(0, next)
}

/** The fenced code blocks of a text, each with its white space taken out */
export function codeBlocks (text: string): string[] {
  return printedValues(text).filter(p => p.kind === 'block').map(p => p.text)
}

export type PrintedKind = 'block' | 'code' | 'word'

export interface Printed {
  kind: PrintedKind
  /** a block without its white space, a code span's content, a word without the punctuation around it */
  text: string
}

/** Every fenced code block, code span and word of a text, in the order they are printed */
export function printedValues (text: string): Printed[] {
  const printed: Printed[] = []
  for (const m of text.matchAll(/^```[^\n]*\n([\s\S]*?)^```$|`([^`\n]+)`|[^\s`]+/gm)) {
    if (m[1] != null) {
      printed.push({ kind: 'block', text: m[1].replace(/\s+/g, '') })
    } else if (m[2] != null) {
      printed.push({ kind: 'code', text: m[2] })
    } else {
      const word = m[0].replace(/^[("[]+|[)"\],.:;!?]+$/g, '')
      if (word !== '') {
        printed.push({ kind: 'word', text: word })
      }
    }
  }
  return printed
}

export interface Vector {
  /** its name in test/fixtures/protocol-vectors.json, for messages */
  name: string
  value: string
  /** how PROTOCOL.md prints it */
  kind: PrintedKind
}

/**
 * Assert that `text` (a section of PROTOCOL.md) prints `vectors` in this
 * order, each a whole block, code span or word of its own, and that every
 * code block of the text is one of them: a changed digit, a value merged
 * into its neighbour's block, a block with no vector, or two swapped fail.
 */
export function assertPrinted (text: string, vectors: Vector[], where: string): void {
  const printed = printedValues(text)
  const blocks = printed.filter(p => p.kind === 'block').map(p => p.text)
  const expected = vectors.filter(v => v.kind === 'block')
  for (let i = 0; i < Math.max(blocks.length, expected.length); i++) {
    assert.equal(blocks[i], expected[i]?.value,
      `${where}: code block ${i + 1} of ${blocks.length} should be ${expected[i]?.name ?? 'nothing (a block no vector names)'} on its own`)
  }
  let at = 0
  let previous = 'the start of the section'
  for (const vector of vectors) {
    const found = printed.findIndex((p, i) => i >= at && p.kind === vector.kind && p.text === vector.value)
    assert.ok(found >= 0, `${where}: ${vector.name} (${vector.value}) is not printed as a ${vector.kind} of its own after ${previous}`)
    at = found + 1
    previous = vector.name
  }
}
