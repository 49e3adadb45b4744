import { startTestNode } from './test/helpers/nodes.ts'
const a = await startTestNode(); const b = await startTestNode()
await b.node.libp2p.handle('/bench/echo/1.0.0', async (stream) => {
  for await (const chunk of stream) stream.send(chunk)
  await stream.close()
}, { maxInboundStreams: 1024 })
const conn = await a.node.libp2p.dial(b.node.libp2p.getMultiaddrs()[0])
let done = 0
const one = async () => {
  const s = await conn.newStream('/bench/echo/1.0.0', { maxOutboundStreams: 1024 } as any)
  const reading = (async () => { let g = 0; for await (const c of s) g += c.byteLength; return g })()
  s.send(new Uint8Array(64))
  await s.close()
  await reading
  done++
}
const iv = setInterval(() => console.log('done', done), 1000)
await Promise.all(Array.from({ length: 16 }, async () => { for (let i = 0; i < 20; i++) await one() }))
clearInterval(iv)
console.log('all', done)
await a.destroy(); await b.destroy()
