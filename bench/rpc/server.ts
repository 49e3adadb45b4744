/**
 * The server side of bench/rpc, in its own process: an OpenCloud node that
 * also serves two bare libp2p protocols as baselines on the same connection,
 * an echo (for small calls) and a byte sink (for bulk).
 */
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { ECHO_PROTOCOL, SINK_PROTOCOL, testConfigFor } from './config.ts'
import type { Stream } from '@libp2p/interface'

const node = await OpenCloudNode.create({ dataDir: process.argv[2], config: testConfigFor() })
/**
 * Call `onEnd` once the remote has closed its side and its data is delivered.
 * `for await (const chunk of stream)` is not used: in libp2p 3 it hangs when
 * the remote closed before the loop began, which a fast client makes common.
 */
function onRemoteEnd (stream: Stream, onEnd: () => void): void {
  if (stream.remoteWriteStatus !== 'writable') {
    // queued data is dispatched in a microtask when a listener is added: end after it
    queueMicrotask(() => { queueMicrotask(onEnd) })
  } else {
    stream.addEventListener('remoteCloseWrite', onEnd, { once: true })
  }
}

await node.libp2p.handle(ECHO_PROTOCOL, (stream) => {
  stream.addEventListener('message', (evt) => { stream.send(evt.data) })
  onRemoteEnd(stream, () => { void stream.close().catch(() => {}) })
}, { maxInboundStreams: 1024 })

await node.libp2p.handle(SINK_PROTOCOL, (stream) => {
  let received = 0
  stream.addEventListener('message', (evt) => { received += evt.data.byteLength })
  // ready: until this handler runs, what arrives piles up in the stream's
  // read buffer (yamux opens the window as bytes arrive, not as they are
  // read), and past its limit the stream is reset. OpenCloud's CONTINUE
  // waits the same way.
  stream.send(Uint8Array.of(1))
  onRemoteEnd(stream, () => {
    const reply = Buffer.alloc(8)
    reply.writeBigUInt64BE(BigInt(received))
    try {
      stream.send(reply)
    } catch {}
    void stream.close().catch(() => {})
  })
})
await node.start()
process.stdout.write(JSON.stringify({ addr: node.libp2p.getMultiaddrs()[0].toString() }) + '\n')
process.on('SIGTERM', () => {
  void node.stop().then(() => process.exit(0))
})
