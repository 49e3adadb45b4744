import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { canonicalDecimal } from '../../src/protocols/args.ts'
import { base64Signature } from '../../src/protocols/signed.ts'
import { DecodeError } from '../../src/protocols/codec.ts'
import { authorizationFromBase64 } from '../../src/ledger/encoding.ts'

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/**
 * The one spelling of a number and of a 64-byte signature in args, shared
 * by the storage host (its offsets, lengths, periods and revision
 * signatures) and the ledger (its heights and redeem authorizations)
 */
describe('args: one spelling per value', () => {
  it('reads a number only in its canonical decimal form, within its bounds', () => {
    for (const [text, n] of [['0', 0], ['7', 7], ['1024', 1024], [String(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER]] as const) {
      assert.equal(canonicalDecimal(text), n, text)
    }
    for (const text of ['', '007', '00', '+1', '-0', '-1', '1e3', '1.0', ' 1', '1 ', '0x10', '１', String(Number.MAX_SAFE_INTEGER + 1), '9999999999999999', undefined]) {
      assert.equal(canonicalDecimal(text), undefined, String(text))
    }
    assert.equal(canonicalDecimal('0', 1), undefined, 'below min')
    assert.equal(canonicalDecimal('65', 1, 64), undefined, 'above max')
    assert.equal(canonicalDecimal('64', 1, 64), 64)
  })

  it('reads a 64-byte signature only as its one base64 text, for the storage host and the ledger alike', () => {
    for (let i = 0; i < 64; i++) {
      const bytes = randomBytes(64)
      const text = bytes.toString('base64')
      assert.deepEqual(Buffer.from(base64Signature(text, 'the signature')), bytes)
      assert.deepEqual(Buffer.from(authorizationFromBase64(text)!), bytes)
    }
    const text = randomBytes(64).toString('base64')
    // the 86th digit holds 2 bits of the last byte and 4 unused ones: the
    // 15 other digits with the same 2 bits decode to the same bytes
    const last = BASE64.indexOf(text[85])
    const others = [...BASE64].filter((d, i) => (i >> 4) === (last >> 4) && i !== last)
    assert.equal(others.length, 15)
    for (const d of others) {
      const other = `${text.slice(0, 85)}${d}==`
      assert.deepEqual(Buffer.from(other, 'base64'), Buffer.from(text, 'base64'), 'a decoder reads it as the same bytes')
      assert.throws(() => base64Signature(other, 'the signature'), DecodeError, other)
      assert.equal(authorizationFromBase64(other), undefined, other)
    }
    for (const bad of [text.slice(0, 86), `${text.slice(0, 86)}=`, `${text}=`, text.replace(/=+$/, ''), text.replace(/[+/]/g, '-').replace(/^[^-]/, '-'), randomBytes(65).toString('base64'), '']) {
      assert.throws(() => base64Signature(bad, 'the signature'), /the signature is a 64-byte signature in standard base64 \(88 characters ending in "=="\)/, bad)
      assert.equal(authorizationFromBase64(bad), undefined, bad)
    }
  })
})
