/**
 * npm run sim:durability -- [--objects N] [--k 4 --n 8] [--churn 0.02] [--cheaters 0.05] [--json]
 *
 * The audit and repair policy against host churn and cheating hosts, without
 * a network (src/storage/durability.ts): the chance of losing an object in a
 * year and the repair traffic, for the defaults and beside other repair
 * thresholds and audit intervals, so the defaults are chosen from a figure.
 * Deterministic: the same arguments print the same figures.
 */
import { parseArgs } from 'node:util'
import { simulateDurability, type DurabilityResult } from '../../src/storage/durability.ts'

const HELP = `Usage: npm run sim:durability -- [options]

Follows each object's N shards through a year: honest hosts leave at --churn
per month (noticed one audit plus the grace later), a --cheaters share of
hosts drop their shards at a random moment (noticed at the next audit), and
a repair starts once --repair-after shards are known lost and takes
--repair-hours. Prints objects lost per object-year (with a 95% upper bound
when none was lost), repairs, and the bytes repairs move per byte stored,
for the policy and its alternatives, then again on a stressed network (10x
the churn, 4x the cheaters), where the differences show.

Options:
  --objects N        objects simulated, default 20000
  --k K, --n N       the redundancy, default 4-of-8
  --churn P          the chance an honest host leaves within a month, default 0.02
  --cheaters SHARE   the share of hosts that drop their shards, default 0.05
  --audit-hours H    the mean audit interval, default 6 (the node's default)
  --grace-hours H    how long an unreachable host is waited for, default 1
  --repair-hours H   how long a repair takes, default 1
  --repair-after L   known losses that start a repair, default ceil((N-K)/2)
  --years Y          default 1
  --seed S           default 1
  --json             print the results as JSON
  -h, --help         show this help`

function fail (message: string): never {
  process.stderr.write(`sim:durability: ${message}\n\n${HELP}\n`)
  process.exit(2)
}

let values: Record<string, any>
try {
  values = parseArgs({
    options: {
      objects: { type: 'string', default: '20000' },
      k: { type: 'string', default: '4' },
      n: { type: 'string', default: '8' },
      churn: { type: 'string', default: '0.02' },
      cheaters: { type: 'string', default: '0.05' },
      'audit-hours': { type: 'string', default: '6' },
      'grace-hours': { type: 'string', default: '1' },
      'repair-hours': { type: 'string', default: '1' },
      'repair-after': { type: 'string' },
      years: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    }
  }).values
} catch (err: any) {
  fail(err.message)
}
if (values.help === true) {
  process.stdout.write(HELP + '\n')
  process.exit(0)
}
const number = (name: string, min: number, max: number, integer = false): number => {
  const v = Number(values[name])
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    fail(`--${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, not "${String(values[name])}"`)
  }
  return v
}
const n = number('n', 1, 255, true)
const k = number('k', 1, n, true)
const base = {
  objects: number('objects', 1, 10_000_000, true),
  k,
  n,
  churnPerMonth: number('churn', 0, 0.999),
  cheaters: number('cheaters', 0, 1),
  auditHours: number('audit-hours', 0.01, 24 * 365),
  auditGraceHours: number('grace-hours', 0, 24 * 365),
  repairHours: number('repair-hours', 0, 24 * 365),
  repairAfterLost: values['repair-after'] == null ? undefined : number('repair-after', 1, Math.max(1, n - k), true),
  years: number('years', 0.01, 100),
  seed: number('seed', 0, 2 ** 32, true)
}

function policies (params: typeof base): Array<{ label: string, result: DurabilityResult }> {
  const rows = [{ label: 'this policy', result: simulateDurability(params) }]
  for (let after = 1; after <= Math.max(1, n - k); after++) {
    if (after !== rows[0].result.repairAfterLost) {
      rows.push({ label: `repair after ${after} lost`, result: simulateDurability({ ...params, repairAfterLost: after }) })
    }
  }
  for (const hours of [1, 24, 168]) {
    if (hours !== params.auditHours) {
      rows.push({ label: `audits every ${hours} h`, result: simulateDurability({ ...params, auditHours: hours }) })
    }
  }
  return rows
}

// losses are rare on a healthy network: a stressed one (10x the churn, 4x
// the cheaters) shows how the policies rank where the first loses nothing
const stressed = { ...base, churnPerMonth: Math.min(0.9, base.churnPerMonth * 10), cheaters: Math.min(1, base.cheaters * 4) }
const tables = [{ params: base, rows: policies(base) }, { params: stressed, rows: policies(stressed) }]

if (values.json === true) {
  process.stdout.write(JSON.stringify(tables.map(t => ({ parameters: t.params, rows: t.rows.map(r => ({ label: r.label, ...r.result })) })), null, 2) + '\n')
} else {
  const p = (r: DurabilityResult): string => r.lost === 0 ? `< ${r.lossPerYearUpper95.toExponential(1)} (none lost)` : r.lossPerYear.toExponential(2)
  for (const [i, { params, rows }] of tables.entries()) {
    const table = [['', 'LOST/OBJECT-YEAR', 'REPAIRS/YEAR', 'TRAFFIC/YEAR'], ...rows.map(r => [
      `${r.label} (${r.result.k}-of-${r.result.n}, repair after ${r.result.repairAfterLost}, audits ${r.result.auditHours} h)`,
      p(r.result),
      r.result.repairsPerObjectYear.toFixed(2),
      `${r.result.trafficPerYear.toFixed(2)}x the object`
    ])]
    const widths = table[0].map((_, c) => Math.max(...table.map(r => r[c].length)))
    process.stdout.write(`${i === 0 ? '' : '\n'}${i === 0 ? 'sim:durability' : 'stressed'}: ${params.objects} objects for ${params.years} year(s); hosts leave at ${params.churnPerMonth} a month, ${Math.round(params.cheaters * 100)}% of hosts cheat\n\n`)
    process.stdout.write(table.map(r => r.map((c, j) => c.padEnd(widths[j])).join('  ').trimEnd()).join('\n') + '\n')
  }
}
