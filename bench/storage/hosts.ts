/**
 * One host of bench/storage, in a process of its own (as real hosts are
 * machines of their own, and so one host can be frozen with SIGSTOP while
 * the others answer): a storage host on loopback (free, so the bench
 * measures storage and not the chain), or with `--sink` a bare libp2p byte
 * sink, the raw baseline, which the other hosts bootstrap from.
 *
 *   node bench/storage/hosts.ts <data dir> [--sink | <bootstrap multiaddr>]
 */
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { DEFAULT_CONFIG, validateConfig } from '../../src/node/config.ts'

import { SINK_PROTOCOL } from './sink.ts'

const [dir, role] = process.argv.slice(2)
const sink = role === '--sink'
const config = validateConfig({ ...structuredClone(DEFAULT_CONFIG), listen: ['/ip4/127.0.0.1/tcp/0'], dht: { addresses: 'private', protocol: DEFAULT_CONFIG.dht.protocol }, services: { storage: sink ? { enabled: false } : { capacity: '4 GiB' } } })

const node = await OpenCloudNode.create({ dataDir: dir, config, bootstrap: sink || role == null ? [] : [role] })
if (sink) {
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
process.stdout.write(JSON.stringify({ addr: node.libp2p.getMultiaddrs()[0].toString(), peer: node.peerId.toString() }) + '\n')
process.on('SIGTERM', () => {
  void node.stop().then(() => process.exit(0))
})
