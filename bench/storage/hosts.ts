/**
 * The hosts of bench/storage, in their own process: N storage hosts on
 * loopback (free, so the bench measures storage and not the chain), the first
 * also serving a bare libp2p byte sink as the raw baseline.
 */
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { DEFAULT_CONFIG, validateConfig } from '../../src/node/config.ts'

import { SINK_PROTOCOL } from './sink.ts'

const [dir, countText] = process.argv.slice(2)
const count = Number(countText)
const config = validateConfig({ ...structuredClone(DEFAULT_CONFIG), listen: ['/ip4/127.0.0.1/tcp/0'], dht: { addresses: 'private', protocol: DEFAULT_CONFIG.dht.protocol }, services: { storage: { capacity: '4 GiB' } } })

const nodes: OpenCloudNode[] = []
for (let i = 0; i < count; i++) {
  const node = await OpenCloudNode.create({ dataDir: join(dir, `host${i}`), config, bootstrap: i === 0 ? [] : [nodes[0].libp2p.getMultiaddrs()[0].toString()] })
  if (i === 0) {
    // the sender announces the byte count first (8 bytes, big-endian), so
    // the sink answers when it has them all without relying on half-close
    await node.libp2p.handle(SINK_PROTOCOL, async (stream) => {
      // one byte says the sink reads: bytes sent before the handler runs
      // pile up in the stream's read buffer, which resets the stream at 4 MB
      stream.send(Uint8Array.of(1))
      let expected = -1n
      let received = 0n
      for await (const chunk of stream) {
        const data = chunk.subarray()
        if (expected < 0n) {
          expected = Buffer.from(data.subarray(0, 8)).readBigUInt64BE()
          received += BigInt(data.byteLength - 8)
        } else {
          received += BigInt(data.byteLength)
        }
        if (received >= expected) {
          break
        }
      }
      const reply = Buffer.alloc(8)
      reply.writeBigUInt64BE(received)
      stream.send(reply)
      await stream.close()
    })
  }
  await node.start()
  nodes.push(node)
}
process.stdout.write(JSON.stringify({ addrs: nodes.map(n => n.libp2p.getMultiaddrs()[0].toString()) }) + '\n')
process.on('SIGTERM', () => {
  void Promise.all(nodes.map(async n => n.stop())).then(() => process.exit(0))
})
