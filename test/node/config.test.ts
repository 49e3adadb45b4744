import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_CONFIG, configPrices, loadConfig, validateConfig, checkApiAddress } from '../../src/node/config.ts'
import { parseBtc, formatBtc, parseAmount } from '../../src/market/units.ts'
import { tempDir } from '../helpers/nodes.ts'

describe('config', () => {
  it('writes the defaults on first start and reads them back', async () => {
    const dir = await tempDir()
    try {
      const path = join(dir.path, 'config.json')
      assert.deepEqual(await loadConfig(path), DEFAULT_CONFIG)
      assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), DEFAULT_CONFIG)
      await writeFile(path, JSON.stringify({ services: { sha256: { prices: { hash: '0.0000001 BTC' } } } }))
      const config = await loadConfig(path)
      assert.deepEqual(configPrices(config), { sha256: { hash: 10n } })
      assert.equal(config.services.sha256.enabled, true, 'fields not given keep their defaults')
    } finally {
      await dir.cleanup()
    }
  })

  it('names the field that is wrong', () => {
    const cases: Array<[unknown, RegExp]> = [
      [[], /must be a JSON object/],
      [{ lisen: [] }, /unknown config field "lisen"/],
      [{ listen: ['not a multiaddr'] }, /listen: "not a multiaddr" is not valid/],
      [{ bootstrap: ['/ip4/1.2.3.4/tcp/1'] }, /must end in \/p2p\/<PeerId>/],
      [{ api: '0.0.0.0:4101' }, /loopback/],
      [{ rpc: { maxBodyBytes: -1 } }, /rpc.maxBodyBytes must be a positive whole number/],
      [{ dht: { addresses: 'some' } }, /dht.addresses/],
      [{ services: { sha256: { prices: { hash: 0.5 } } } }, /services.sha256.prices.hash/],
      [{ logLevel: 'loud' }, /logLevel must be one of/],
      [{ policies: { global: { deny: 'yes' } } }, /policies.global.deny must be true or false/]
    ]
    for (const [input, message] of cases) {
      assert.throws(() => validateConfig(input), message, JSON.stringify(input))
    }
  })

  it('keeps the control API on loopback', () => {
    assert.deepEqual(checkApiAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 })
    assert.deepEqual(checkApiAddress('[::1]:5000'), { host: '::1', port: 5000 })
    assert.throws(() => checkApiAddress('192.168.1.2:80'), /never exposed/)
  })
})

describe('amounts', () => {
  it('turn BTC decimals into satoshis and back without floats', () => {
    assert.equal(parseBtc('0.00000001'), 1n)
    assert.equal(parseBtc('21000000'), 2_100_000_000_000_000n)
    assert.equal(parseBtc('0.1'), 10_000_000n)
    assert.equal(formatBtc(10_000_000n), '0.1')
    assert.equal(formatBtc(2_100_000_000_000_001n), '21000000.00000001')
    assert.equal(parseAmount('1500 sat'), 1500n)
    assert.equal(parseAmount('0.0001 BTC'), 10_000n)
    assert.throws(() => parseBtc('0.000000001'), /at most 8 decimals/)
    assert.throws(() => parseBtc('1e-8'), /plain decimal/)
  })
})
