/**
 * Gossipsub topic names, built and parsed by one matched pair of functions
 * (PROTOCOL.md, "Market"). The version is part of the name so a future
 * encoding gets a topic of its own instead of confusing old nodes.
 */
export type TopicKind = 'offers' | 'reputation'

const PREFIX = '/opencloud/'

export function topicName (kind: TopicKind, version = 1): string {
  return `${PREFIX}${kind}/${version}`
}

export function parseTopic (topic: string): { kind: TopicKind, version: number } | undefined {
  const match = /^\/opencloud\/(offers|reputation)\/([1-9][0-9]*)$/.exec(topic)
  if (match == null) {
    return undefined
  }
  return { kind: match[1] as TopicKind, version: Number(match[2]) }
}

export const OFFERS_TOPIC = topicName('offers')
export const REPUTATION_TOPIC = topicName('reputation')
