/**
 * npm run sim:reputation -- --peers 100 --malicious 0.4 [--rounds 40] [--seed 1] [--json]
 *
 * The share of requests served badly with reputation-guided and with random
 * provider selection, for each threat model (src/reputation/simulation.ts).
 * Deterministic: the same arguments print the same figures.
 */
import { parseArgs } from 'node:util'
import { simulate, THREAT_MODELS } from '../../src/reputation/simulation.ts'

const HELP = `Usage: npm run sim:reputation -- [--peers N] [--malicious SHARE] [--rounds R] [--seed S] [--json]

Runs the EigenTrust paper's threat models without a network and prints, for
each, the share of honest peers' requests served badly when providers are
chosen by trust as a node chooses them (pre-trusted peers, raters weighted by
credibility), by plain EigenTrust (neither defence), and at random. The
collective's praise of itself shows in the plain column; with the defences a
malicious rater has no trust, so "individual" and "collective" match there.

  individual   malicious providers serve badly and rate truthfully
  collective   malicious providers serve badly and praise each other
  camouflage   malicious providers serve well 25% of the time and praise each other
  spies        half the malicious peers serve well and praise the other half

Options:
  --peers N          how many peers, default 100 (at least 5)
  --malicious SHARE  the share of malicious peers, default 0.4 (0 to below 1)
  --rounds R         requests per peer, default 40
  --seed S           the random seed, default 1 (the same seed gives the same figures)
  --json             print the results as JSON
  -h, --help         show this help`

function fail (message: string): never {
  process.stderr.write(`sim:reputation: ${message}\n\n${HELP}\n`)
  process.exit(2)
}

let values
try {
  values = parseArgs({
    options: {
      peers: { type: 'string', default: '100' },
      malicious: { type: 'string', default: '0.4' },
      rounds: { type: 'string', default: '40' },
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
const peers = Number(values.peers)
const malicious = Number(values.malicious)
const rounds = Number(values.rounds)
const seed = Number(values.seed)
if (!Number.isSafeInteger(peers) || peers < 5 || !(malicious >= 0 && malicious < 1)) {
  fail('--peers takes a whole number of at least 5, --malicious a share from 0 to below 1')
}
if (!Number.isSafeInteger(rounds) || rounds < 1 || !Number.isSafeInteger(seed)) {
  fail('--rounds takes a whole number of at least 1, --seed a whole number')
}
const results = THREAT_MODELS.map(model => simulate({ peers, malicious, model, rounds, seed }))
const pct = (x: number, width: number): string => `${(x * 100).toFixed(1).padStart(width)}%`
if (values.json === true) {
  process.stdout.write(JSON.stringify(results, null, 2) + '\n')
} else {
  process.stdout.write(`reputation simulation: ${peers} peers, ${(malicious * 100).toFixed(0)}% malicious, ${rounds} rounds, seed ${seed}\n\n`)
  process.stdout.write('model        requests  bad with reputation  plain EigenTrust  random\n')
  for (const r of results) {
    process.stdout.write(`${r.model.padEnd(11)}  ${String(r.requests).padStart(8)}  ${pct(r.badWithReputation, 18)}  ${pct(r.badWithPlainEigenTrust, 15)}  ${pct(r.badWithRandom, 5)}\n`)
  }
  process.stdout.write('\ntarget: at most 10% bad with reputation in every model\n')
}
