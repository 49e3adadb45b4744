import { DEFAULT_CONFIG, validateConfig, type Config } from '../../src/node/config.ts'

/** Loopback, default limits and policies: what a fresh node runs with */
export function testConfigFor (): Config {
  return validateConfig({ ...structuredClone(DEFAULT_CONFIG), listen: ['/ip4/127.0.0.1/tcp/0'], rpc: { maxBodyBytes: 2 * 1024 * 1024 * 1024 } })
}

/** The baselines: a bare echo for small calls, a byte sink for bulk */
export const ECHO_PROTOCOL = '/bench/echo/1.0.0'
export const SINK_PROTOCOL = '/bench/sink/1.0.0'
