import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadGenesis, parseGenesis } from '../../src/ledger/genesis.ts'
import { GenesisError } from '../../src/ledger/errors.ts'
import { LedgerLimits } from '../../src/ledger/encoding.ts'
import { tempDir } from '../helpers/nodes.ts'

/** The genesis file's rules, checked before a node starts (no node, no datastore) */
describe('ledger genesis file', () => {
  const validators: string[] = []

  before(async () => {
    for (let i = 0; i < 2; i++) {
      validators.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())
    }
  })

  const refused = (raw: unknown, pattern: RegExp): void => {
    assert.throws(() => parseGenesis(raw, 'g.json'), (err: any) => {
      assert.ok(err instanceof GenesisError, `a GenesisError, not ${String(err?.name)}`)
      assert.match(err.message, pattern)
      return true
    })
  }

  it('fills in the defaults of the optional fields, and keeps what is given', () => {
    assert.deepEqual(parseGenesis({ chain: 'c', time: 5, validators }), {
      chain: 'c', time: 5, validators, slotMs: 1000, checkpointEvery: 100, maxTxsPerBlock: 5000, maxRequestsPerSlot: 10, txTtlMs: 600_000
    })
    const given = { chain: 'c', time: 0, validators, slotMs: 400, checkpointEvery: 1, maxTxsPerBlock: 1, maxRequestsPerSlot: 1, txTtlMs: 10_000 }
    assert.deepEqual(parseGenesis(given), given)
  })

  it('refuses each broken rule, naming the file and the field', () => {
    const ok = { chain: 'c', time: 0, validators }
    refused({ ...ok, chain: '' }, /^g\.json: "chain" names the ledger/)
    refused({ ...ok, chain: undefined }, /"chain" names the ledger/)
    refused({ ...ok, validators: [] }, /^g\.json: "validators" lists the first validators' PeerIds$/)
    refused({ ...ok, validators: 'x' }, /"validators" lists/)
    refused({ ...ok, validators: [validators[0], 'nobody'] }, /^g\.json: validator "nobody" is not a PeerId$/)
    refused({ ...ok, validators: [validators[0], validators[0]] }, /^g\.json: a validator is listed twice$/)
    refused({ ...ok, time: undefined }, /^g\.json: "time" must be a whole number, at least 0$/)
    refused({ ...ok, time: -1 }, /"time" must be a whole number, at least 0/)
    refused({ ...ok, slotMs: 99 }, /"slotMs" must be a whole number, at least 100/)
    refused({ ...ok, slotMs: 150.5 }, /"slotMs" must be a whole number/)
    refused({ ...ok, checkpointEvery: 0 }, /"checkpointEvery" must be a whole number, at least 1/)
    refused({ ...ok, maxTxsPerBlock: 0 }, /"maxTxsPerBlock" must be a whole number, at least 1/)
    refused({ ...ok, maxTxsPerBlock: LedgerLimits.txsPerBlock + 1 }, new RegExp(`"maxTxsPerBlock" is at most ${LedgerLimits.txsPerBlock}$`))
    refused({ ...ok, maxRequestsPerSlot: '3' }, /"maxRequestsPerSlot" must be a whole number, at least 1/)
    refused({ ...ok, txTtlMs: 9_999 }, /"txTtlMs" must be a whole number, at least 10000/)
    refused(null, /"chain" names the ledger/)
    // what PROTOCOL.md's genesis cannot carry: another implementation could not read the ledger's id
    refused({ ...ok, chain: 'x'.repeat(LedgerLimits.name + 1) }, new RegExp(`^g\\.json: the chain name is ${LedgerLimits.name + 1} bytes, over the limit of ${LedgerLimits.name}$`))
    // the largest values allowed pass
    assert.equal(parseGenesis({ ...ok, maxTxsPerBlock: LedgerLimits.txsPerBlock }).maxTxsPerBlock, LedgerLimits.txsPerBlock)
  })

  it('reads a file, and says which one when it cannot', async () => {
    const dir = await tempDir()
    try {
      const path = join(dir.path, 'genesis.json')
      await writeFile(path, JSON.stringify({ chain: 'file', time: 1, validators }))
      assert.equal((await loadGenesis(path)).chain, 'file')
      await writeFile(path, '{ not json')
      await assert.rejects(loadGenesis(path), (err: any) => err instanceof GenesisError && err.message.startsWith(`cannot read the ledger genesis ${path}: `))
      const missing = join(dir.path, 'missing.json')
      await assert.rejects(loadGenesis(missing), (err: any) => err instanceof GenesisError && err.message.startsWith(`cannot read the ledger genesis ${missing}: ENOENT`))
      await writeFile(path, JSON.stringify({ chain: 'file', time: 1, validators: [] }))
      await assert.rejects(loadGenesis(path), new GenesisError(`${path}: "validators" lists the first validators' PeerIds`))
    } finally {
      await dir.cleanup()
    }
  })
})
