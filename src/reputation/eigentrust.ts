/**
 * EigenTrust (Kamvar, Schlosser, Garcia-Molina 2003): global trust as the
 * stationary distribution of "ask the peers you trust whom they trust",
 * mixed with a pre-trusted set so that a collective that only praises itself
 * cannot capture the walk.
 *
 *   c_ij  = max(s_ij, 0) / sum_j max(s_ij, 0)        (a rater's normalized opinions)
 *   t'    = (1 - a) * sum_i w_i t_i c_i  +  a * p    (then scaled to sum 1)
 *
 * p is uniform over the pre-trusted peers (over everyone when there are
 * none). w_i is the rater's credibility: how well its opinions matched our
 * own experience (1 for ourselves and pre-trusted peers), so a peer that
 * lies about others loses the weight of its word even while it serves well.
 * A rater with no opinions gives its weight to p, as in the paper.
 */

export interface GlobalTrustInput {
  /** rater -> rated peer -> local trust (satisfactory minus unsatisfactory; negatives count as 0) */
  opinions: Map<string, Map<string, number>>
  pretrusted: string[]
  /** rater -> weight in [0, 1], default 1 */
  credibility?: Map<string, number>
  /** mixing weight of the pre-trusted distribution, default 0.15 */
  alpha?: number
  /** default 50 */
  maxIterations?: number
  /** stop when the L1 change is below this, default 1e-9 */
  epsilon?: number
}

export interface GlobalTrust {
  trust: Map<string, number>
  iterations: number
}

export function normalize (row: Map<string, number>): Map<string, number> {
  let sum = 0
  for (const v of row.values()) {
    sum += Math.max(0, v)
  }
  const out = new Map<string, number>()
  if (sum <= 0) {
    return out
  }
  for (const [k, v] of row) {
    if (v > 0) {
      out.set(k, v / sum)
    }
  }
  return out
}

export function globalTrust (input: GlobalTrustInput): GlobalTrust {
  const alpha = input.alpha ?? 0.15
  const maxIterations = input.maxIterations ?? 50
  const epsilon = input.epsilon ?? 1e-9
  const peers = new Set<string>(input.pretrusted)
  const rows = new Map<string, Map<string, number>>()
  for (const [rater, row] of input.opinions) {
    peers.add(rater)
    for (const peer of row.keys()) {
      peers.add(peer)
    }
    rows.set(rater, normalize(row))
  }
  const base = input.pretrusted.length > 0 ? input.pretrusted : [...peers]
  const p = new Map<string, number>(base.map(id => [id, 1 / base.length]))
  let t = new Map(p)
  let iterations = 0
  for (; iterations < maxIterations; iterations++) {
    const next = new Map<string, number>()
    const add = (peer: string, v: number): void => { next.set(peer, (next.get(peer) ?? 0) + v) }
    for (const [rater, ti] of t) {
      if (ti === 0) {
        continue
      }
      const w = input.credibility?.get(rater) ?? 1
      const row = rows.get(rater)
      if (row == null || row.size === 0) {
        // no opinions: defer to the pre-trusted peers
        for (const [peer, pv] of p) {
          add(peer, (1 - alpha) * w * ti * pv)
        }
        continue
      }
      for (const [peer, c] of row) {
        add(peer, (1 - alpha) * w * ti * c)
      }
    }
    for (const [peer, pv] of p) {
      add(peer, alpha * pv)
    }
    let sum = 0
    for (const v of next.values()) {
      sum += v
    }
    let delta = 0
    for (const peer of new Set([...t.keys(), ...next.keys()])) {
      const v = (next.get(peer) ?? 0) / sum
      next.set(peer, v)
      delta += Math.abs(v - (t.get(peer) ?? 0))
    }
    t = next
    if (delta < epsilon) {
      iterations++
      break
    }
  }
  return { trust: t, iterations }
}

/**
 * How far a rater's opinions agree with ours, in [0, 1]: one minus half the
 * L1 distance of the two normalized opinion vectors over the peers both
 * rated (renormalized to that overlap). No overlap gives `neutral`.
 */
export function agreement (mine: Map<string, number>, theirs: Map<string, number>, neutral = 0.5): number {
  const common = [...mine.keys()].filter(k => theirs.has(k))
  if (common.length === 0) {
    return neutral
  }
  const a = normalize(new Map(common.map(k => [k, Math.max(0, mine.get(k) ?? 0)])))
  const b = normalize(new Map(common.map(k => [k, Math.max(0, theirs.get(k) ?? 0)])))
  if (a.size === 0 && b.size === 0) {
    return 1
  }
  let distance = 0
  for (const k of common) {
    distance += Math.abs((a.get(k) ?? 0) - (b.get(k) ?? 0))
  }
  return Math.max(0, 1 - distance / 2)
}
