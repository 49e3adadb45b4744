/**
 * Gossipsub topic names, built and parsed by one matched pair of functions
 * (PROTOCOL.md sections 8b, 8c and 8e): `/opencloud/<kind>/<version>`, and
 * for a Cloud Ledger's topics a last part naming the ledger (the first 16
 * hex digits of its id). The version is part of the name so a future
 * encoding gets a topic of its own instead of confusing old nodes.
 */
export type TopicKind = 'offers' | 'reputation' | 'ledger' | 'ledger-tx'

export interface Topic {
  kind: TopicKind
  version: number
  /** the ledger's id, 16 hex digits, for the ledger kinds */
  ledger?: string
}

const PREFIX = '/opencloud/'
const LEDGER_KINDS = new Set<TopicKind>(['ledger', 'ledger-tx'])

export function topicName (kind: TopicKind, version = 1, ledger?: string): string {
  if (LEDGER_KINDS.has(kind) !== (ledger != null)) {
    throw new TypeError(`the ${kind} topic ${ledger == null ? 'names a ledger' : 'names no ledger'}`)
  }
  return `${PREFIX}${kind}/${version}${ledger == null ? '' : `/${ledger}`}`
}

export function parseTopic (topic: string): Topic | undefined {
  const match = /^\/opencloud\/(offers|reputation|ledger|ledger-tx)\/([1-9][0-9]*)(?:\/([0-9a-f]{16}))?$/.exec(topic)
  if (match == null || LEDGER_KINDS.has(match[1] as TopicKind) !== (match[3] != null)) {
    return undefined
  }
  return { kind: match[1] as TopicKind, version: Number(match[2]), ...(match[3] == null ? {} : { ledger: match[3] }) }
}

export const OFFERS_TOPIC = topicName('offers')
export const REPUTATION_TOPIC = topicName('reputation')

/** A Cloud Ledger's two topics: consensus messages, and transactions in batches */
export function ledgerTopics (ledgerId: Uint8Array): { consensus: string, txs: string } {
  const id = Buffer.from(ledgerId).toString('hex').slice(0, 16)
  return { consensus: topicName('ledger', 1, id), txs: topicName('ledger-tx', 1, id) }
}
