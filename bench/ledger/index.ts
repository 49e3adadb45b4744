/**
 * bench/ledger: promo transactions per second and the time from submission
 * to finality on a local Cloud Ledger of 4 validators.
 *
 *   npm run bench:ledger [-- --rate 1000 --seconds 10 --flood 20000 --slot-ms 1000 --json --keep]
 *
 * The validators run as daemons (one process each, as on the testnet); this
 * process is a node that follows the ledger and submits promo requests
 * signed by many identities, through its own node as a user would. Two
 * phases: a steady `--rate` for `--seconds` (finality p50/p95, and whether
 * the ledger keeps up), then `--flood` transactions at once (the most it
 * finalizes per second). Baseline, measured in the same run: Ed25519
 * verifications per second on one core of this machine, divided by the 5
 * nodes that each verify every transaction, the ceiling if verifying were
 * all they did. Targets (issue 11): at least 1,000 tx/s, p95 finality
 * within two slots.
 */
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { DEFAULT_CONFIG, validateConfig } from '../../src/node/config.ts'
import { openCloudSigner } from '../../src/protocols/rpc/credentials.ts'
import { hex, signTx, type SignedTx } from '../../src/ledger/encoding.ts'
import { nodeApi, startNode, stopAll, writeLedgerGenesis, type Started } from '../../scripts/testnet/network.ts'

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    flood: { type: 'string', default: '20000' },
    'slot-ms': { type: 'string', default: '1000' },
    json: { type: 'boolean', default: false },
    /** keep the validators' data directories (their daemon.log says how each block went) */
    keep: { type: 'boolean', default: false }
  }
})
const RATE = Number(values.rate)
const SECONDS = Number(values.seconds)
const FLOOD = Number(values.flood)
const SLOT_MS = Number(values['slot-ms'])
const VALIDATORS = 4
const progress = (s: string): void => { if (values.json !== true) process.stderr.write(s) }

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/** Ed25519 verifications per second on this core: the baseline */
function verifyRate (): number {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const msg = Buffer.alloc(200, 7)
  const sig = sign(null, msg, privateKey)
  const key = createPublicKey({ key: publicKey.export({ type: 'spki', format: 'der' }), format: 'der', type: 'spki' })
  const start = performance.now()
  let n = 0
  while (performance.now() - start < 1000) {
    for (let i = 0; i < 100; i++) {
      verify(null, msg, key, sig)
    }
    n += 100
  }
  return n / ((performance.now() - start) / 1000)
}

const dir = await mkdtemp(join(tmpdir(), 'oc-bench-ledger-'))
const daemons: Started[] = []
let client: OpenCloudNode | undefined
try {
  progress('baseline: Ed25519 verifications on one core... ')
  const verifies = verifyRate()
  const ceiling = verifies / (VALIDATORS + 1)
  progress(`${Math.round(verifies)}/s\n`)

  const genesisPath = await writeLedgerGenesis(dir, VALIDATORS)
  const genesis = JSON.parse(await readFile(genesisPath, 'utf8'))
  await writeFile(genesisPath, JSON.stringify({ ...genesis, slotMs: SLOT_MS, maxTxsPerBlock: 10_000, maxRequestsPerSlot: 10 }))
  progress(`starting ${VALIDATORS} validators (${SLOT_MS} ms slots)\n`)
  // this process submits for thousands of users from one node: the
  // validators let it (a member cloud would do the same for its own gateway)
  for (let i = 1; i <= VALIDATORS; i++) {
    await writeFile(join(dir, `node-${i}`, 'config.json'), JSON.stringify({ ledger: { txRateLimit: '20000/s burst 40000' } }))
  }
  daemons.push(await startNode(1, dir, undefined, undefined, genesisPath))
  const bootstrap = daemons[0].addrs.find(a => a.includes('/127.0.0.1/')) ?? daemons[0].addrs[0]
  for (let i = 2; i <= VALIDATORS; i++) {
    daemons.push(await startNode(i, dir, bootstrap, undefined, genesisPath))
  }
  client = await OpenCloudNode.create({
    dataDir: join(dir, 'client'),
    config: validateConfig({ ...structuredClone(DEFAULT_CONFIG), listen: ['/ip4/127.0.0.1/tcp/0'], api: '127.0.0.1:0', dht: { addresses: 'private', protocol: DEFAULT_CONFIG.dht.protocol }, ledger: { genesis: genesisPath, idleBlockMs: 2000 } }),
    bootstrap: [bootstrap]
  })
  await client.start()
  for (const d of daemons) {
    await client.libp2p.dial(multiaddr(d.addrs.find(a => a.includes('/127.0.0.1/')) ?? d.addrs[0]))
  }
  const ledger = client.cloudLedger!

  // a pool big enough for the run, from validator 1
  const { pool } = await nodeApi(daemons[0], '/v1/ledger/pools', { method: 'POST', body: JSON.stringify({ name: 'bench', service: 'sha256', credit: '1000 sat', quantity: 10_000_000, ttl: '1d', perRequester: 1000 }) }) as { pool: string }
  const poolId = Buffer.from(pool, 'hex')
  const started = Date.now()
  while (!ledger.state.pools.has(pool)) {
    if (Date.now() - started > 30_000) throw new Error('the pool did not reach the client')
    await new Promise(resolve => setTimeout(resolve, 50))
  }

  // requesters: one identity per 5 transactions, each under the per-block limit
  const total = RATE * SECONDS + FLOOD
  progress(`signing ${total} promo requests from ${Math.ceil(total / 5)} identities\n`)
  const signers = []
  for (let i = 0; i < Math.ceil(total / 5); i++) {
    const key = await generateKeyPair('Ed25519')
    signers.push({ id: peerIdFromPrivateKey(key).toString(), signer: openCloudSigner(key) })
  }
  let time = Date.now()
  const txs: SignedTx[] = []
  for (let i = 0; i < total; i++) {
    const s = signers[i % signers.length]
    txs.push(signTx({ ledger: ledger.id, sender: s.id, time: time++, body: { kind: 'request', pool: poolId } }, s.signer))
  }

  const run = async (batch: SignedTx[], rate: number | undefined): Promise<{ latencies: number[], elapsed: number, failed: number }> => {
    const submitted = new Map<string, number>()
    const finals: Array<Promise<void>> = []
    const latencies: number[] = []
    let failed = 0
    const begin = performance.now()
    let last = begin
    for (let i = 0; i < batch.length; i++) {
      if (rate != null) {
        const due = begin + (i / rate) * 1000
        const wait = due - performance.now()
        if (wait > 2) await new Promise(resolve => setTimeout(resolve, wait))
      } else if (i % 500 === 0) {
        await new Promise(resolve => setImmediate(resolve))
      }
      const id = hex(batch[i].id)
      submitted.set(id, performance.now())
      await ledger.submit(batch[i], { wait: false })
      finals.push(ledger.outcome(id, 60_000).then(o => {
        const t = performance.now()
        latencies.push(t - submitted.get(id)!)
        last = Math.max(last, t)
        if (!o.ok) failed++
      }))
    }
    await Promise.all(finals)
    return { latencies: latencies.sort((a, b) => a - b), elapsed: (last - begin) / 1000, failed }
  }

  progress(`steady: ${RATE} tx/s for ${SECONDS} s\n`)
  const steady = await run(txs.slice(0, RATE * SECONDS), RATE)
  progress(`flood: ${FLOOD} transactions at once\n`)
  const flood = await run(txs.slice(RATE * SECONDS), undefined)

  const result = {
    validators: VALIDATORS,
    slotMs: SLOT_MS,
    baseline: { ed25519VerifiesPerSecond: Math.round(verifies), ceilingTxPerSecond: Math.round(ceiling) },
    steady: {
      offeredTxPerSecond: RATE,
      finalTxPerSecond: Math.round(steady.latencies.length / steady.elapsed),
      failed: steady.failed,
      finalityP50Ms: Math.round(percentile(steady.latencies, 0.5)),
      finalityP95Ms: Math.round(percentile(steady.latencies, 0.95)),
      p95InSlots: +(percentile(steady.latencies, 0.95) / SLOT_MS).toFixed(2)
    },
    flood: {
      transactions: FLOOD,
      finalTxPerSecond: Math.round(FLOOD / flood.elapsed),
      failed: flood.failed,
      ratioToCeiling: +((FLOOD / flood.elapsed) / ceiling).toFixed(2)
    },
    targets: { txPerSecond: 1000, p95Slots: 2 }
  }
  if (values.json === true) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  } else {
    process.stdout.write(`
Cloud Ledger, ${VALIDATORS} validators, ${SLOT_MS} ms slots
  baseline      ${result.baseline.ed25519VerifiesPerSecond} Ed25519 verifications/s on one core; / ${VALIDATORS + 1} nodes = ${result.baseline.ceilingTxPerSecond} tx/s ceiling
  steady        offered ${RATE} tx/s: final ${result.steady.finalTxPerSecond} tx/s, p50 ${result.steady.finalityP50Ms} ms, p95 ${result.steady.finalityP95Ms} ms = ${result.steady.p95InSlots} slots (target <= 2)${steady.failed > 0 ? `, ${steady.failed} failed` : ''}
  flood         ${FLOOD} at once: ${result.flood.finalTxPerSecond} tx/s final (target >= 1000) = ${result.flood.ratioToCeiling} of the ceiling${flood.failed > 0 ? `, ${flood.failed} failed` : ''}
`)
  }
} finally {
  await client?.stop().catch(() => {})
  await stopAll(daemons)
  if (values.keep === true) {
    process.stderr.write(`kept ${dir} (node-N/daemon.log)\n`)
  } else {
    await rm(dir, { recursive: true, force: true })
  }
}
