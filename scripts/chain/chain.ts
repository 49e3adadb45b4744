/**
 * A local bitcoin regtest chain with the Esplora HTTP API, for development:
 *
 *   npm run chain -- [--dir .chain] [--port 3002] [--block-interval 10]
 *
 * Point a node at it with "payments": {"chain": "http://127.0.0.1:3002"} in
 * config.json. POST /regtest/faucet {"address": "...", "amount": "0.1 BTC"} pays
 * from its faucet; POST /regtest/mine?blocks=N mines. Ctrl-C stops it; its
 * blocks and UTXO set stay in --dir.
 */
import { parseArgs } from 'node:util'
import { resolve } from 'node:path'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'

const HELP = `Usage: npm run chain -- [--dir DIR] [--port PORT] [--block-interval SECONDS]

Runs a local bitcoin regtest chain serving the Esplora HTTP API on 127.0.0.1.

Options:
  --dir DIR                 where the chain keeps its data, default .chain
  --port PORT               default 3002 (0 picks a free port)
  --block-interval SECONDS  mine a block this often when the mempool has
                            transactions, default 10 (0: only on request)
  --json                    print {"url", "faucetAddress", "height"} and nothing else
  -h, --help                show this help`

let values
try {
  values = parseArgs({
    options: {
      dir: { type: 'string', default: '.chain' },
      port: { type: 'string', default: '3002' },
      'block-interval': { type: 'string', default: '10' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' }
    }
  }).values
} catch (err: any) {
  process.stderr.write(`chain: ${err.message}\n\n${HELP}\n`)
  process.exit(2)
}
if (values.help === true) {
  process.stdout.write(HELP + '\n')
  process.exit(0)
}
const port = Number(values.port)
const interval = Number(values['block-interval'])
if (!Number.isSafeInteger(port) || port < 0 || port > 65535 || !(interval >= 0)) {
  process.stderr.write('chain: --port takes 0 to 65535 and --block-interval a number of seconds\n')
  process.exit(2)
}
const server = new RegtestServer({ dir: resolve(values.dir as string), port, blockIntervalMs: interval * 1000 })
try {
  await server.start()
} catch (err: any) {
  process.stderr.write(`chain: ${err.code === 'EADDRINUSE' ? `port ${port} is in use; pass another --port` : err.message}\n`)
  process.exit(1)
}
if (values.json === true) {
  process.stdout.write(JSON.stringify({ url: server.url, faucetAddress: server.faucetAddress, height: server.chain.height }) + '\n')
} else {
  process.stdout.write(`regtest chain at ${server.url} (height ${server.chain.height})\nfaucet: curl -X POST ${server.url}/regtest/faucet -d '{"address":"bcrt1...","amount":"0.1 BTC"}'\nCtrl-C stops it.\n`)
}
const stop = (): void => {
  void server.stop().then(() => process.exit(0))
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
