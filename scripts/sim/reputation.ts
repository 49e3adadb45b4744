/**
 * npm run sim:reputation -- --peers 100 --malicious 0.4 [--rounds 40] [--seed 1] [--json]
 *
 * The share of requests served badly with reputation-guided and with random
 * provider selection, for each threat model (src/reputation/simulation.ts).
 * Deterministic: the same arguments print the same figures.
 */
import { parseArgs } from 'node:util'
import { simulate, THREAT_MODELS } from '../../src/reputation/simulation.ts'

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '100' },
    malicious: { type: 'string', default: '0.4' },
    rounds: { type: 'string', default: '40' },
    seed: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false }
  }
})
const peers = Number(values.peers)
const malicious = Number(values.malicious)
if (!Number.isSafeInteger(peers) || peers < 5 || !(malicious >= 0 && malicious < 1)) {
  process.stderr.write('sim:reputation: --peers takes a whole number of at least 5, --malicious a share from 0 to below 1\n')
  process.exit(2)
}
const results = THREAT_MODELS.map(model => simulate({ peers, malicious, model, rounds: Number(values.rounds), seed: Number(values.seed) }))
if (values.json === true) {
  process.stdout.write(JSON.stringify(results, null, 2) + '\n')
} else {
  process.stdout.write(`reputation simulation: ${peers} peers, ${(malicious * 100).toFixed(0)}% malicious, ${values.rounds} rounds\n\n`)
  process.stdout.write('model        requests  bad with reputation  bad with random\n')
  for (const r of results) {
    process.stdout.write(`${r.model.padEnd(11)}  ${String(r.requests).padStart(8)}  ${(r.badWithReputation * 100).toFixed(1).padStart(18)}%  ${(r.badWithRandom * 100).toFixed(1).padStart(14)}%\n`)
  }
  process.stdout.write('\ntarget: at most 10% bad with reputation in every model\n')
}
