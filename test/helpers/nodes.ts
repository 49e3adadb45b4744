import { multiaddr } from '@multiformats/multiaddr'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { DEFAULT_CONFIG, validateConfig, type Config } from '../../src/node/config.ts'

/** A fresh temporary directory, removed by the returned cleanup */
export async function tempDir (prefix = 'oc-test-'): Promise<{ path: string, cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, cleanup: async () => rm(path, { recursive: true, force: true }) }
}

/** A config on loopback with some fields changed; validated like a real config.json */
export function testConfig (changes: Record<string, unknown> = {}): Config {
  return validateConfig({ ...structuredClone(DEFAULT_CONFIG), listen: ['/ip4/127.0.0.1/tcp/0'], dht: { addresses: 'private', protocol: DEFAULT_CONFIG.dht.protocol }, ...changes })
}

export interface TestNode {
  node: OpenCloudNode
  dataDir: string
  /** stop the node and remove its data directory */
  destroy: () => Promise<void>
}

/** A started node with its own data directory */
export async function startTestNode (options: { config?: Config, dataDir?: string, bootstrap?: string[] } = {}): Promise<TestNode> {
  const dir = options.dataDir == null ? await tempDir() : { path: options.dataDir, cleanup: async () => {} }
  const node = await OpenCloudNode.create({ dataDir: dir.path, config: options.config ?? testConfig(), bootstrap: options.bootstrap })
  await node.start()
  let destroyed = false
  return {
    node,
    dataDir: dir.path,
    destroy: async () => {
      if (destroyed) {
        return
      }
      destroyed = true
      await node.stop()
      await dir.cleanup()
    }
  }
}

export function addrOf (node: OpenCloudNode): string {
  const addr = node.libp2p.getMultiaddrs().find(a => a.toString().includes('/127.0.0.1/'))
  if (addr == null) {
    throw new Error('the node has no loopback address')
  }
  return addr.toString()
}

/** Resolve when `check` returns true, polling; fails after `timeoutMs` */
export async function waitFor (check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check()) {
      return
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/**
 * Connect `from` to `to` over loopback, trying three times: a dial can fail
 * on a loaded machine ("remote closed connection during opening"), and the
 * tests that connect up front are about something else
 */
export async function connect (from: OpenCloudNode, to: OpenCloudNode): Promise<void> {
  let last: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await from.libp2p.dial(multiaddr(addrOf(to)))
      return
    } catch (err) {
      last = err
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }
  throw last
}
