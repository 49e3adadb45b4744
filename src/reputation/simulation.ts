import { agreement, globalTrust } from './eigentrust.ts'
import { prng } from '../utils/prng.ts'

/**
 * A deterministic simulation of reputation-guided provider selection under
 * the threat models of the EigenTrust paper, with no network:
 *
 *   individual   malicious providers serve badly and rate truthfully
 *   collective   malicious providers serve badly and praise each other
 *   camouflage   malicious providers serve well part of the time (25%) and
 *                praise each other
 *   spies        half the malicious peers serve well, to earn trust, and lie:
 *                they praise the other half (which serve badly) and run
 *                down honest providers
 *
 * Honest peers serve well 95% of the time and rate what they get. Each round
 * every honest peer requests a service once; the share of those requests
 * served badly is the measure, with providers chosen by reputation or at
 * random.
 */

export type ThreatModel = 'individual' | 'collective' | 'camouflage' | 'spies'
export const THREAT_MODELS: ThreatModel[] = ['individual', 'collective', 'camouflage', 'spies']

export interface SimulationInit {
  peers: number
  /** share of malicious peers, 0..1 */
  malicious: number
  model: ThreatModel
  rounds?: number
  pretrusted?: number
  seed?: number
  /** global trust is recomputed every this many rounds, default 2 */
  recomputeEvery?: number
  /**
   * Weigh each rater by how well its opinions agree with the pre-trusted
   * peers' experience, as the node does, default true
   */
  credibility?: boolean
}

export interface SimulationResult {
  model: ThreatModel
  peers: number
  malicious: number
  requests: number
  /** share served badly with trust-guided selection, raters weighted by credibility */
  badWithReputation: number
  /**
   * The same with plain EigenTrust: no pre-trusted peers and no credibility
   * weighting. A collective's praise of itself shows here; with the node's
   * defences a malicious rater has no trust, so its praise weighs nothing
   * and "individual" and "collective" give the same figure.
   */
  badWithPlainEigenTrust: number
  badWithRandom: number
}

interface Peer {
  id: string
  malicious: boolean
  spy: boolean
}

function run (init: SimulationInit, guided: boolean): { requests: number, bad: number } {
  const random = prng(init.seed ?? 1)
  const rounds = init.rounds ?? 40
  const pretrustedCount = init.pretrusted ?? 3
  const recomputeEvery = init.recomputeEvery ?? 2
  const maliciousCount = Math.round(init.peers * init.malicious)
  const peers: Peer[] = Array.from({ length: init.peers }, (_, i) => {
    // honest peers first, so the pre-trusted ones are honest
    const malicious = i >= init.peers - maliciousCount
    return { id: `p${i}`, malicious, spy: malicious && init.model === 'spies' && i % 2 === 0 }
  })
  const honest = peers.filter(p => !p.malicious)
  const pretrusted = honest.slice(0, pretrustedCount).map(p => p.id)
  const opinions = new Map<string, Map<string, number>>(peers.map(p => [p.id, new Map()]))
  const rate = (rater: string, peer: string, delta: number): void => {
    const row = opinions.get(rater) as Map<string, number>
    row.set(peer, (row.get(peer) ?? 0) + delta)
  }

  const servesWell = (provider: Peer): boolean => {
    if (!provider.malicious) {
      return random() < 0.95
    }
    switch (init.model) {
      case 'camouflage': return random() < 0.25
      case 'spies': return provider.spy
      default: return false
    }
  }

  // malicious peers' ratings, per model
  const rateAsMalicious = (rater: Peer, provider: Peer, good: boolean): void => {
    switch (init.model) {
      case 'individual':
        rate(rater.id, provider.id, good ? 1 : -1)
        break
      default:
        // praise the collective, run down everyone else
        rate(rater.id, provider.id, provider.malicious ? 1 : -1)
    }
  }

  let trust = new Map<string, number>()
  let requests = 0
  let bad = 0
  for (let round = 0; round < rounds; round++) {
    if (guided && round % recomputeEvery === 0) {
      // credibility from the pre-trusted peers' combined experience
      const mine = new Map<string, number>()
      for (const id of pretrusted) {
        for (const [peer, v] of opinions.get(id) ?? []) {
          mine.set(peer, (mine.get(peer) ?? 0) + v)
        }
      }
      let credibility: Map<string, number> | undefined
      if (init.credibility !== false) {
        credibility = new Map()
        for (const [rater, row] of opinions) {
          credibility.set(rater, pretrusted.includes(rater) ? 1 : agreement(mine, row))
        }
      }
      trust = globalTrust({ opinions, pretrusted, credibility }).trust
    }
    for (const requester of peers) {
      const candidates = peers.filter(p => p !== requester)
      let provider: Peer
      const trusted = candidates.filter(p => (trust.get(p.id) ?? 0) > 0)
      if (!guided || trusted.length === 0 || random() < 0.05) {
        // random selection, and a little exploration so newcomers get a chance
        provider = candidates[Math.floor(random() * candidates.length)]
      } else {
        // the most trusted of a few candidates drawn in proportion to trust
        let best: Peer | undefined
        for (let k = 0; k < 3; k++) {
          let r = random() * trusted.reduce((s, p) => s + (trust.get(p.id) ?? 0), 0)
          let pick = trusted[trusted.length - 1]
          for (const p of trusted) {
            r -= trust.get(p.id) ?? 0
            if (r <= 0) {
              pick = p
              break
            }
          }
          if (best == null || (trust.get(pick.id) ?? 0) > (trust.get(best.id) ?? 0)) {
            best = pick
          }
        }
        provider = best as Peer
      }
      const good = servesWell(provider)
      if (requester.malicious) {
        rateAsMalicious(requester, provider, good)
      } else {
        requests++
        if (!good) {
          bad++
        }
        rate(requester.id, provider.id, good ? 1 : -1)
      }
    }
  }
  return { requests, bad }
}

export function simulate (init: SimulationInit): SimulationResult {
  const guided = run(init, true)
  const plain = run({ ...init, credibility: false, pretrusted: 0 }, true)
  const random = run(init, false)
  return {
    model: init.model,
    peers: init.peers,
    malicious: init.malicious,
    requests: guided.requests,
    badWithReputation: guided.bad / guided.requests,
    badWithPlainEigenTrust: plain.bad / plain.requests,
    badWithRandom: random.bad / random.requests
  }
}
