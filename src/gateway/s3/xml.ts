import { XMLBuilder, XMLParser } from 'fast-xml-parser'
import { MalformedXMLError, type S3Error } from './errors.ts'

/**
 * S3's XML documents, built and read with fast-xml-parser rather than by
 * string concatenation: every key and every message is escaped by it, and
 * a hostile document (entities, deep nesting) meets a parser made for one.
 */

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/'

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@', suppressEmptyNode: false, format: false })
// values are not trimmed: a key may begin or end with a space ("notes " is
// not "notes"); the readers trim the fields that are numbers or words.
// XML's own entities and character references (&amp;, &#34; as Go's encoder
// writes a quote) are expanded: a document with a
// DOCTYPE is refused before it is parsed, which keeps declared entities (a
// billion laughs) out
const parser = new XMLParser({ ignoreAttributes: true, processEntities: true, htmlEntities: true, parseTagValue: false, trimValues: false, isArray: (name) => ['Object', 'Part'].includes(name) })

/** A document whose root element is `root`, in S3's namespace */
export function xmlDocument (root: string, body: Record<string, unknown>): string {
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + builder.build({ [root]: { '@xmlns': NS, ...body } })
}

/** A document without its XML declaration, for an answer whose declaration went first (a long CompleteMultipartUpload) */
export function xmlElement (root: string, body: Record<string, unknown>): string {
  return builder.build({ [root]: { '@xmlns': NS, ...body } })
}

export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

/** S3's error document */
export function errorDocument (err: S3Error, resource: string, requestId: string, declaration = true): string {
  return (declaration ? XML_DECLARATION : '') + builder.build({ Error: { Code: err.code, Message: err.message, ...err.extra, Resource: resource, RequestId: requestId } })
}

/** A request's XML document as an object, or MalformedXML */
export function parseXml (text: string, root: string): Record<string, any> {
  let parsed: Record<string, any>
  if (/<!(DOCTYPE|ENTITY)/i.test(text)) {
    throw new MalformedXMLError('The XML you provided has a DOCTYPE: S3 documents have none')
  }
  try {
    parsed = parser.parse(text, true)
  } catch (err: any) {
    throw new MalformedXMLError(`The XML you provided was not well-formed: ${String(err.message).split('\n')[0]}`)
  }
  const doc = parsed[root]
  if (doc == null || typeof doc !== 'object') {
    throw new MalformedXMLError(`The XML you provided was not a ${root} document`)
  }
  return doc
}
