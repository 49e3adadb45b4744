import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { EsploraClient } from '../../src/payments/chain/esplora.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { parseAmount } from '../../src/protocols/units.ts'
import { payoutScript } from '../../src/payments/channels/channel-script.ts'
import { hasEnded, nodeApi, startNode, type Started } from '../../scripts/testnet/network.ts'
import { tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import type { ChannelRecord } from '../../src/payments/channels/channel-store.ts'

/** what testnet node 2 asks for sha256.hash of a small body (scripts/testnet/network.ts) */
const PRICE = 100n

/**
 * A payee killed with SIGKILL while a payer pays it through a channel, many
 * calls in flight: after its restart the payer goes on from the state the
 * payee holds, and the close pays the payee exactly its latest state, which
 * covers every call the payer saw served and never more than the payer signed.
 */
describe('a payment channel survives kill -9 of its payee', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  let chain: EsploraClient
  let payee: Started
  let payer: OpenCloudNode

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: join(dir.path, 'chain'), blockIntervalMs: 0 })
    await regtest.start()
    chain = new EsploraClient({ url: regtest.url })
    payee = await startNode(2, dir.path, undefined, regtest.url)
    payer = await OpenCloudNode.create({ dataDir: join(dir.path, 'payer'), config: testConfig({ payments: { network: 'regtest', chain: regtest.url }, channels: { lifeBlocks: 20 } }) })
    await payer.start()
    await regtest.faucet(await payer.wallet.newAddress(), 5_000_000n)
    await regtest.chain.mine(1, regtest.faucetAddress)
  })

  after(async () => {
    await payer?.stop()
    if (payee?.child != null && !hasEnded(payee.child)) {
      payee.child.kill('SIGKILL')
    }
    await regtest?.stop()
    await dir?.cleanup()
  })

  it('loses neither side\'s money', { timeout: 120_000 }, async () => {
    const hash = (i: number) => ({ service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode(`call ${i}`)) })
    const target = (): string => payee.addrs.find(a => a.includes('/127.0.0.1/')) as string
    let served = 0
    const first = await payer.paidCall(target(), hash(0), { pay: { kind: 'channel', sats: PRICE } })
    assert.equal(first.payment?.type, 'channel')
    served++
    const id = first.payment?.id as string

    // eight in flight at a time; the payee is killed while they run
    let killed = false
    let calls = 1
    const worker = async (): Promise<void> => {
      while (!killed) {
        const i = calls++
        try {
          await payer.paidCall(target(), hash(i), { pay: { kind: 'channel', sats: PRICE } })
          served++
        } catch {}
        if (i === 120) {
          payee.child.kill('SIGKILL')
          killed = true
        }
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
    await waitFor(() => hasEnded(payee.child), 10_000, 'the payee to die')
    const signed = (payer.channels?.store.get('payer', id) as ChannelRecord).total
    assert.ok(signed >= BigInt(served) * PRICE, 'the payer signed at least what was served')

    // restarted from its data directory: it holds a state, never more than the payer signed
    payee = await startNode(2, dir.path, undefined, regtest.url)
    const held = await nodeApi(payee, '/v1/payments/channels')
    const theirs = held.channels.find((c: any) => c.id === id)
    const heldTotal = parseAmount(theirs.paid)
    assert.ok(heldTotal >= BigInt(served) * PRICE, `every call the payer saw served is in the payee's state: ${heldTotal} sat for ${served} calls`)
    assert.ok(heldTotal <= signed, 'and nothing the payer did not sign')

    // the payer goes on: it asks the payee first, and the totals agree again
    for (let i = 0; i < 5; i++) {
      const r = await payer.paidCall(target(), hash(1000 + i), { pay: { kind: 'channel', sats: PRICE } })
      assert.equal(r.payment?.id, id, 'the same channel')
    }
    const mine = payer.channels?.store.get('payer', id) as ChannelRecord
    assert.equal(mine.total, heldTotal + 5n * PRICE, 'the payer continued from the payee\'s state: nothing paid twice')

    // the close pays the payee exactly its latest state
    const closed = await payer.channels?.closeWith(payee.peerId)
    await regtest.chain.mine(1, regtest.faucetAddress)
    const close = await chain.transaction(closed?.[0].txid as string)
    assert.equal(close.outputs.find(o => o.scriptPubKey === Buffer.from(payoutScript(mine.payeeKey)).toString('hex'))?.value, mine.total)
  })
})
