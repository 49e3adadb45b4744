import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Reader, Writer } from '../../../src/protocols/codec.ts'
import { decodeRequest, encodeHead, encodeRequestSigned } from '../../../src/protocols/rpc/messages.ts'
import { EMPTY_SHA256 } from '../../../src/protocols/rpc/constants.ts'

describe('wire encoding', () => {
  it('round-trips varints at the edges of each byte length', () => {
    for (const n of [0, 1, 127, 128, 16383, 16384, 2 ** 21 - 1, 2 ** 21, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      const bytes = new Writer().varint(n).finish()
      const r = new Reader(bytes)
      assert.equal(r.varint('n'), n)
      r.end('n')
    }
    assert.deepEqual([...new Writer().varint(300).finish()], [0xac, 0x02])
  })

  it('refuses a varint that is not in its shortest form, runs past the end, or is too large', () => {
    assert.throws(() => new Reader(Uint8Array.from([0x80, 0x00])).varint('n'), /shortest form/)
    assert.throws(() => new Reader(Uint8Array.from([0x80])).varint('n'), /ends inside/)
    assert.throws(() => new Reader(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])).varint('n'), /too large/)
  })

  it('refuses lengths over their limit before reading them', () => {
    const bytes = new Writer().varint(1_000_000).finish()
    assert.throws(() => new Reader(bytes).bytes(64, 'the nonce'), /the nonce is 1000000 bytes, over the limit of 64/)
  })

  it('refuses invalid UTF-8 and trailing bytes', () => {
    assert.throws(() => new Reader(Uint8Array.from([0x01, 0xff])).string(10, 'the service'), /not valid UTF-8/)
    const head = encodeHead([], encodeRequestSigned({ credentials: [], nonce: new Uint8Array(0), service: 'a', method: 'b', args: [], payment: { type: 'none' }, bodyLength: 0, bodySha256: EMPTY_SHA256 }))
    assert.doesNotThrow(() => decodeRequest(head))
    assert.throws(() => decodeRequest(Uint8Array.from([...head, 0])), /unexpected bytes after the request head/)
  })

  it('round-trips every payment type and refuses float-like amounts', () => {
    const base = { credentials: [], nonce: new Uint8Array(3), service: 'storage', method: 'put', args: ['a', 'ü'], bodyLength: 7, bodySha256: EMPTY_SHA256 }
    for (const payment of [
      { type: 'none' as const },
      { type: 'attached' as const, currency: 'BTC', amount: '0.00012', txn: Uint8Array.from([1, 2, 3]) },
      { type: 'defer' as const, currency: 'BTC', amount: '1', id: 'tab-7', threshold: 'amount:0.001' },
      { type: 'promo' as const, code: new Uint8Array(32).fill(7), authorization: new Uint8Array(64).fill(9) }
    ] as const) {
      const { head } = decodeRequest(encodeHead([], encodeRequestSigned({ ...base, payment })))
      assert.deepEqual(head.payment, payment)
      assert.deepEqual(head.args, ['a', 'ü'])
    }
    for (const amount of ['1e-5', '-1', '0.000000001', '01', '.5']) {
      const bytes = encodeHead([], encodeRequestSigned({ ...base, payment: { type: 'defer', currency: 'BTC', amount, id: 'x', threshold: '' } }))
      assert.throws(() => decodeRequest(bytes), /plain decimal/, amount)
    }
  })

  it('refuses names that are not lowercase words', () => {
    assert.throws(() => encodeRequestSigned({ credentials: [], nonce: new Uint8Array(0), service: 'Sha256', method: 'hash', args: [], payment: { type: 'none' }, bodyLength: 0, bodySha256: EMPTY_SHA256 }), /lowercase/)
  })
})
