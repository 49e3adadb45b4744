import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'

/**
 * The rules every OpenCloud gossip message meets, for offers and reputation
 * summaries alike: it is signed by its originator (gossipsub StrictSign),
 * its content decodes and verifies, its own signer is that originator, its
 * issue time is plausible, and it is not older than the one held from the
 * same signer (a replay). Breaking a rule is a *reject*, which charges the
 * sending peer's gossipsub score; a copy of the message held is *ignored*,
 * since honest peers forward those.
 */

export interface SignedContent {
  /** PeerId of whoever signed the content */
  signer: string
  issuedAt: number
}

export interface GossipRules<T extends SignedContent> {
  /** decode and verify the content; throws to reject */
  decode: (data: Uint8Array) => T
  /** how far ahead of our clock issued-at may be, default 60 s */
  maxSkewMs?: number
  /** more rules; a string is the reason to reject */
  check?: (content: T, now: number) => string | undefined
  /** issued-at of the content held from the same signer (and subject), if any */
  held?: (content: T) => number | undefined
}

export interface GossipVerdict<T> {
  result: TopicValidatorResult
  reason?: string
  content?: T
}

export function checkSignedGossip<T extends SignedContent> (msg: Message, rules: GossipRules<T>): GossipVerdict<T> {
  const reject = (reason: string): GossipVerdict<T> => ({ result: TopicValidatorResult.Reject, reason })
  if (msg.type !== 'signed') {
    return reject('unsigned message')
  }
  let content: T
  try {
    content = rules.decode(msg.data)
  } catch (err: any) {
    return reject(err.message)
  }
  if (content.signer !== msg.from.toString()) {
    return reject(`signed by ${content.signer}, not by the originator ${msg.from.toString()}`)
  }
  const now = Date.now()
  if (content.issuedAt > now + (rules.maxSkewMs ?? 60_000)) {
    return reject('issued in the future')
  }
  const broken = rules.check?.(content, now)
  if (broken != null) {
    return reject(broken)
  }
  const held = rules.held?.(content)
  if (held != null && held > content.issuedAt) {
    return reject('older than the one held: a replay')
  }
  if (held != null && held === content.issuedAt) {
    return { result: TopicValidatorResult.Ignore, content }
  }
  return { result: TopicValidatorResult.Accept, content }
}

/** Rejected messages per sending peer, for operators and tests */
export class RejectionCounter extends Map<string, number> {
  count (peer: PeerId, msg: Message): void {
    const from = msg.type === 'signed' ? msg.from.toString() : peer.toString()
    this.set(from, (this.get(from) ?? 0) + 1)
  }
}
