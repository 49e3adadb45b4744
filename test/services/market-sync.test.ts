import { Registry } from 'prom-client'
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { marketModule } from '../../src/services/market/index.ts'
import { waitFor } from '../helpers/nodes.ts'

/**
 * The market module pulls a newly met peer's offers (market.prices) once;
 * a pull that fails is tried again while the peer stays connected, since
 * gossip does not always make up for it (two machines with the same words
 * share one identity, and the peer's pubsub stream goes to the other).
 */
describe('the market module: offers pulled from a newly met peer', () => {
  const setUp = async (failures: number, connected = true): Promise<{ calls: () => number, imported: Uint8Array[][], connect: () => void, stop: () => Promise<void> }> => {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const libp2p = Object.assign(new EventTarget(), {
      status: 'started',
      peerId: peerIdFromPrivateKey(await generateKeyPair('Ed25519')),
      getConnections: () => connected ? [{ remotePeer: peer }] : []
    })
    let calls = 0
    const imported: Uint8Array[][] = []
    const caller = {
      plainCall: async () => {
        calls++
        if (calls <= failures) {
          throw new Error('cannot write to a stream that is closed')
        }
        const body = new TextEncoder().encode(JSON.stringify([{ signed: Buffer.from('an offer').toString('base64') }]))
        return { body: { bytes: async () => body } }
      }
    }
    const market = { importOffers: (list: Uint8Array[]) => { imported.push(list); return list.length }, index: { stats: () => [] } }
    const module = await marketModule.create({ market, libp2p, caller, registry: {}, saveConfig: async () => true, metrics: new Registry(), options: {} } as any)
    await module.start?.()
    return {
      calls: () => calls,
      imported,
      connect: () => { libp2p.dispatchEvent(new CustomEvent('peer:connect', { detail: peer })) },
      stop: async () => { await module.stop?.() }
    }
  }

  it('tries a failed pull again, and takes the offers from the attempt that succeeds', async () => {
    const t = await setUp(1)
    try {
      t.connect()
      await waitFor(() => t.imported.length === 1, 5000, 'the second attempt')
      assert.equal(t.calls(), 2)
      assert.equal(Buffer.from(t.imported[0][0]).toString(), 'an offer')
    } finally {
      await t.stop()
    }
  })

  it('gives up after three attempts, and does not retry a peer that is gone', async () => {
    const t = await setUp(10)
    try {
      t.connect()
      await waitFor(() => t.calls() === 3, 6000, 'three attempts')
      await new Promise(resolve => setTimeout(resolve, 4500))
      assert.equal(t.calls(), 3, 'no fourth attempt')
      assert.equal(t.imported.length, 0)
    } finally {
      await t.stop()
    }
    const gone = await setUp(10, false)
    try {
      gone.connect()
      await new Promise(resolve => setTimeout(resolve, 1500))
      assert.equal(gone.calls(), 1, 'not retried once disconnected')
    } finally {
      await gone.stop()
    }
  })
})
