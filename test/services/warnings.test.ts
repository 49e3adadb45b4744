import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { tmpdir } from 'node:os'
import { storageWarnings } from '../../src/services/storage/dashboard.ts'
import { ledgerWarnings } from '../../src/services/ledger/index.ts'

/** What the overview's warnings say, from the modules' checks (GET /v1/warnings) */
describe('warnings an operator sees', () => {
  const parts = { tabs: undefined as any, wallet: undefined as any, chain: undefined, dataDir: tmpdir() }

  it('storage: a host nearly full, and nothing when there is room', async () => {
    const client = { list: async () => [] } as any
    const full = await storageWarnings(client, { capacity: 100 * 2 ** 30, reserved: () => 95 * 2 ** 30 } as any, true, parts)
    assert.equal(full.length, 1)
    assert.equal(full[0].module, 'storage')
    assert.match(full[0].text, /hosting is 95% full \(95 GiB of 100 GiB promised\): raise services.storage.capacity/)
    assert.deepEqual(await storageWarnings(client, { capacity: 100, reserved: () => 10 } as any, true, parts), [])
    assert.deepEqual(await storageWarnings(client, { capacity: 100, reserved: () => 100 } as any, false, parts), [], 'a node that hosts nothing is never full')
  })

  it('ledger: no block for ten slots past the idle block time is a stall', () => {
    const at = (msAgo: number): any => ({ status: () => ({ height: 7, slotMs: 1000, lastBlockAt: new Date(Date.now() - msAgo).toISOString() }) })
    assert.deepEqual(ledgerWarnings(at(65_000), 60_000), [])
    const stalled = ledgerWarnings(at(90_000), 60_000)
    assert.equal(stalled.length, 1)
    assert.match(stalled[0].text, /no block for 90 s \(height 7\)/)
  })
})
