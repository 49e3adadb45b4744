import { prng } from '../utils/prng.ts'

/**
 * The audit and repair policy against host churn and cheating hosts, without
 * a network (npm run sim:durability). Each object has N shards on N hosts,
 * any K of which rebuild it, and is followed through time event by event:
 *
 * - an honest host leaves for good at a constant rate (`churnPerMonth`); it
 *   then cannot be reached, so it is condemned one audit plus the grace
 *   (`auditGraceHours`) later;
 * - a cheating host (a share `cheaters` of all hosts) drops its shard at a
 *   random moment within the year and is caught by the next audit;
 * - audits come every `auditHours` on average (0.5x to 1.5x, as the node
 *   spreads them), so a loss is noticed after a uniform share of that;
 * - once `repairAfterLost` losses are known, a repair runs for
 *   `repairHours`, then every slot known lost at its start holds a new
 *   shard on a new host (drawn from the same population);
 * - the object is lost when more than N - K shards are gone at once.
 *
 * Traffic counts what repairs move, in units of the object's size: K shards
 * of every segment fetched, and each rebuilt shard uploaded.
 */

export interface DurabilityInit {
  objects?: number
  k?: number
  n?: number
  /** probability that an honest host leaves within a month, default 0.02 */
  churnPerMonth?: number
  /** share of hosts that drop their shards, default 0.05 */
  cheaters?: number
  auditHours?: number
  auditGraceHours?: number
  repairHours?: number
  /** known losses that start a repair, default ceil((N-K)/2) */
  repairAfterLost?: number
  years?: number
  seed?: number
}

export interface DurabilityResult {
  objects: number
  k: number
  n: number
  repairAfterLost: number
  auditHours: number
  lost: number
  /** objects lost per object-year, and an upper bound (95%) when none was */
  lossPerYear: number
  lossPerYearUpper95: number
  repairsPerObjectYear: number
  /** bytes moved by repairs per byte stored, per year */
  trafficPerYear: number
}

const HOUR = 1
const MONTH = 30 * 24 * HOUR
const YEAR = 365 * 24 * HOUR

export function simulateDurability (init: DurabilityInit = {}): DurabilityResult {
  const objects = init.objects ?? 20_000
  const k = init.k ?? 4
  const n = init.n ?? 8
  const churn = init.churnPerMonth ?? 0.02
  const cheaters = init.cheaters ?? 0.05
  const auditHours = init.auditHours ?? 6
  const grace = init.auditGraceHours ?? 1
  const repairTime = init.repairHours ?? 1
  const threshold = init.repairAfterLost ?? Math.max(1, Math.ceil((n - k) / 2))
  const horizon = (init.years ?? 1) * YEAR
  const random = prng(init.seed ?? 1)
  const exp = (rate: number): number => rate <= 0 ? Infinity : -Math.log(1 - random()) / rate

  /** when a new shard placed at `t` is gone, and when that is known */
  const place = (t: number): { gone: number, known: number } => {
    if (random() < cheaters) {
      const gone = t + random() * YEAR
      return { gone, known: gone + random() * auditHours }
    }
    const gone = t + exp(-Math.log(1 - churn) / MONTH)
    return { gone, known: gone + random() * auditHours + grace }
  }

  let lost = 0
  let repairs = 0
  let traffic = 0
  for (let o = 0; o < objects; o++) {
    const slots = Array.from({ length: n }, () => place(0))
    let repairEnds = Infinity
    let repairing: number[] = []
    let t = 0
    for (;;) {
      // the next thing to happen: a shard gone, a loss known, a repair done
      const nextGone = Math.min(...slots.map(s => s.gone > t ? s.gone : Infinity))
      const nextKnown = Math.min(...slots.map(s => s.known > t ? s.known : Infinity))
      t = Math.min(nextGone, nextKnown, repairEnds)
      if (t >= horizon) {
        break
      }
      if (t === repairEnds) {
        for (const i of repairing) {
          slots[i] = place(t)
        }
        traffic += (k + repairing.length) / k
        repairEnds = Infinity
        repairing = []
      }
      if (slots.filter(s => s.gone <= t).length > n - k) {
        lost++
        break
      }
      const known = slots.map((s, i) => s.known <= t ? i : -1).filter(i => i >= 0)
      if (repairEnds === Infinity && known.length >= threshold) {
        repairing = known
        repairEnds = t + repairTime
        repairs++
      }
    }
  }
  const objectYears = objects * horizon / YEAR
  return {
    objects,
    k,
    n,
    repairAfterLost: threshold,
    auditHours,
    lost,
    lossPerYear: lost / objectYears,
    // the rule of three: no loss in m trials bounds the rate by 3/m at 95%
    lossPerYearUpper95: lost === 0 ? 3 / objectYears : lost / objectYears,
    repairsPerObjectYear: repairs / objectYears,
    trafficPerYear: traffic / objectYears
  }
}
