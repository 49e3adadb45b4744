import { DEFAULT_CONFIG, validateConfig, type Config } from '../../src/node/config.ts'

/**
 * Channels are watched by hand only: the benchmark closes them itself, and
 * a watcher waking in the middle of a timed run would be timed with it
 */
const WATCH_MS = 3_600_000

/** A node on loopback that pays and is paid on the regtest chain at `chain`; default limits and policies otherwise */
function regtestConfig (chain: string, changes: Record<string, unknown>): Config {
  return validateConfig({
    ...structuredClone(DEFAULT_CONFIG),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    dht: { addresses: 'private', protocol: DEFAULT_CONFIG.dht.protocol },
    payments: { network: 'regtest', chain },
    ...changes
  })
}

/** The payee: sha256.hash at `price` sat a call */
export function payeeConfig (chain: string, price: number): Config {
  return regtestConfig(chain, { channels: { watchIntervalMs: WATCH_MS }, services: { sha256: { prices: { hash: price } } } })
}

/** The payer: the channels it opens hold `capacity` sat at least */
export function payerConfig (chain: string, capacity: bigint): Config {
  return regtestConfig(chain, { channels: { watchIntervalMs: WATCH_MS, capacity: `${capacity} sat` } })
}
