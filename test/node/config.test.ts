import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_CONFIG, configPrices, loadConfig, validateConfig, checkApiAddress } from '../../src/node/config.ts'
import { parseBtc, formatAmount, formatBtc, formatSignedAmount, parseAmount } from '../../src/protocols/units.ts'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { startTestNode, tempDir, testConfig } from '../helpers/nodes.ts'

describe('config', () => {
  it('writes the defaults on first start and reads them back', async () => {
    const dir = await tempDir()
    try {
      const path = join(dir.path, 'config.json')
      assert.deepEqual(await loadConfig(path), DEFAULT_CONFIG)
      assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), DEFAULT_CONFIG)
      await writeFile(path, JSON.stringify({ services: { sha256: { prices: { hash: '0.0000001 BTC' } } } }))
      const config = await loadConfig(path)
      assert.deepEqual(configPrices(config), { sha256: { hash: 10n }, storage: { rent: 0n, put: 0n, get: 0n } })
      assert.equal(config.services.sha256.enabled, true, 'fields not given keep their defaults')
    } finally {
      await dir.cleanup()
    }
  })

  it('names the field that is wrong', () => {
    const cases: Array<[unknown, RegExp]> = [
      [[], /must be a JSON object/],
      [{ lisen: [] }, /unknown config field "lisen"/],
      [{ storage: { auditIntervalMs: 0 } }, /storage\.auditIntervalMs must be a whole number of milliseconds, at least 100/],
      [{ storage: { auditInterval: '6h' } }, /unknown config field "storage\.auditInterval"/],
      [{ listen: ['not a multiaddr'] }, /listen: "not a multiaddr" is not valid/],
      [{ bootstrap: ['/ip4/1.2.3.4/tcp/1'] }, /must end in \/p2p\/<PeerId>/],
      [{ api: '0.0.0.0:4101' }, /loopback/],
      [{ rpc: { maxBodyBytes: -1 } }, /rpc.maxBodyBytes must be a positive whole number/],
      [{ dht: { addresses: 'some' } }, /dht.addresses/],
      [{ services: { sha256: { prices: { hash: 0.5 } } } }, /services.sha256.prices.hash/],
      [{ logLevel: 'loud' }, /logLevel must be one of/],
      [{ policies: { global: { deny: 'yes' } } }, /policies.global.deny must be true or false/],
      [{ channels: { use: 'sometimes' } }, /channels\.use is "auto" \(a channel where it costs less on chain\), "always" or "never"/],
      [{ channels: { capacity: '0.0005' } }, /channels\.capacity "0\.0005" has no unit/],
      [{ channels: { closeMarginBlocks: 0 } }, /channels\.closeMarginBlocks must be a whole number of blocks, at least 1/],
      [{ channels: { accept: 'yes' } }, /channels\.accept is true or false/],
      [{ channels: { margin: 6 } }, /unknown config field "channels\.margin"/]
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

  it('follow one rule: the unit is named, a number without one is satoshis, a bare decimal is refused', () => {
    for (const [text, sats] of [['100 sat', 100n], ['100sat', 100n], ['100 SATS', 100n], ['100', 100n], [100, 100n], ['0.000001 BTC', 100n], ['0.000001btc', 100n], ['21000000 BTC', 2_100_000_000_000_000n]] as const) {
      assert.equal(parseAmount(text), sats, String(text))
    }
    assert.throws(() => parseAmount('0.0001', 'a price'), /a price "0.0001" has no unit: write "0.0001 BTC" or a whole number of satoshis such as "10000 sat"/)
    assert.throws(() => parseAmount('-5', 'a price'), /^InvalidAmountError: a price can't be negative$/)
    assert.throws(() => parseAmount(-5, 'a price'), /a price can't be negative/)
    assert.throws(() => parseAmount(0.5, 'a price'), /not a whole number of satoshis/)
    assert.throws(() => parseAmount('21000000.00000001 BTC'), /more than the 21,000,000 BTC/)
    assert.throws(() => parseAmount('2100000000000001 sat'), /more than the 21,000,000 BTC/)
    assert.throws(() => parseAmount('lots'), /is not an amount/)
    assert.equal(formatAmount(100n), '0.000001 BTC')
    assert.equal(parseAmount(formatAmount(123_456_789n)), 123_456_789n, 'what is shown reads back')
    // an unconfirmed balance is below zero while a spend waits in the mempool: GET /v1/wallet answered 400 for it
    assert.equal(formatSignedAmount(-501_800n), '-0.005018 BTC')
    assert.equal(formatSignedAmount(501_800n), '0.005018 BTC')
    assert.throws(() => formatAmount(-1n), /never negative/)
  })
})

describe('a node\'s config against its services', () => {
  it('refuses a misspelt service or method, and a price a node with payments off could never be paid', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ services: { sha265: { enabled: true } } }, /services.sha265: there is no service "sha265"; the services are .*sha256/],
      [{ services: { sha256: { prices: { hsah: 1 } } } }, /services.sha256.prices.hsah: the sha256 service has no method "hsah"/],
      [{ services: { sha256: { prices: { hash: '100 sat' } } } }, /services.sha256.prices.hash is 0.000001 BTC, but payments are off \(payments.chain is empty\), so no call could pay it/],
      [{ policies: { service: { sha256: { 'min-payment': '10 sat' } } } }, /policies.service\["sha256"\] sets a min-payment, but payments are off/]
    ]
    for (const [changes, message] of cases) {
      const dir = await tempDir()
      try {
        await assert.rejects(OpenCloudNode.create({ dataDir: dir.path, config: testConfig(changes) }), message, JSON.stringify(changes))
      } finally {
        await dir.cleanup()
      }
    }
  })

  it('keeps a price set at run time in config.json, and refuses one when payments are off', async () => {
    const dir = await tempDir()
    try {
      // as the daemon does: config.json is the node's settings
      await writeFile(join(dir.path, 'config.json'), JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], payments: { chain: 'http://127.0.0.1:9' } }))
      let node = await OpenCloudNode.create({ dataDir: dir.path })
      await node.start()
      try {
        const set = await node.setPrice('sha256', 'hash', 250n)
        assert.equal(set.persisted, true)
        await assert.rejects(node.setPrice('sha256', 'hash', -1n), /can't be negative|negative/)
      } finally {
        await node.stop()
      }
      const saved = JSON.parse(await readFile(join(dir.path, 'config.json'), 'utf8'))
      assert.deepEqual(saved.services, { sha256: { prices: { hash: '250 sat' } } })
      assert.deepEqual(saved.payments, { chain: 'http://127.0.0.1:9' }, 'the rest of the file is left as written')
      node = await OpenCloudNode.create({ dataDir: dir.path })
      try {
        assert.equal(node.registry.priceOf('sha256', 'hash', node.registry.resolve('sha256', 'hash').method), 250n, 'the price survives a restart')
      } finally {
        await node.stop().catch(() => {})
      }
    } finally {
      await dir.cleanup()
    }
    const free = await startTestNode()
    try {
      await assert.rejects(free.node.setPrice('sha256', 'hash', 100n), /payments are off \(payments.chain is empty\), so no call could pay a price/)
      assert.equal((await free.node.setPrice('sha256', 'hash', 0n)).offer, undefined, 'making a method free needs no chain')
    } finally {
      await free.destroy()
    }
  })
})
