/**
 * The payee of bench/payments, in its own process: an OpenCloud node that
 * sells sha256.hash at a price in sat and takes channel and attached
 * payments on the regtest chain the benchmark runs (its Esplora URL).
 *
 *   node bench/payments/payee.ts <data dir> <regtest url> <price in sat>
 *
 * Prints one line of JSON, {"addr"}, once it listens.
 */
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { payeeConfig } from './config.ts'

const [dataDir, chain, price] = process.argv.slice(2)
const node = await OpenCloudNode.create({ dataDir, config: payeeConfig(chain, Number(price)) })
await node.start()
process.stdout.write(JSON.stringify({ addr: node.libp2p.getMultiaddrs()[0].toString() }) + '\n')
process.on('SIGTERM', () => {
  void node.stop().then(() => process.exit(0))
})
