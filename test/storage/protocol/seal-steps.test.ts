import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, randomBytes } from 'node:crypto'
import { CIPHER_STEP, openSegment, sealSegment } from '../../../src/storage/protocol/crypto.ts'

/** The seal as it was before it went in steps: one cipher.update over the whole segment */
function oneCallSeal (key: Uint8Array, objectId: Uint8Array, segment: number, plain: Uint8Array): Buffer {
  const nonce = Buffer.alloc(12)
  nonce.writeBigUInt64BE(BigInt(segment), 4)
  const aad = Buffer.alloc(objectId.byteLength + 8)
  aad.set(objectId)
  aad.writeBigUInt64BE(BigInt(segment), objectId.byteLength)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(aad)
  return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
}

describe('sealing a segment in steps', () => {
  it('gives the one-call bytes on each side of every step boundary, and opens back', () => {
    const key = randomBytes(32)
    const id = randomBytes(16)
    const STEP = CIPHER_STEP
    for (const size of [0, 1, 15, 16, 17, STEP - 1, STEP, STEP + 1, 3 * STEP + 7, 8 * STEP]) {
      const backing = randomBytes(size + 3)
      const plain = backing.subarray(3) // a view at an odd offset, as a segment slice can be
      const sealed = sealSegment(key, id, size, plain)
      assert.equal(Buffer.from(sealed).toString('hex'), oneCallSeal(key, id, size, plain).toString('hex'), `${size} bytes`)
      assert.ok(Buffer.from(openSegment(key, id, size, sealed)).equals(plain), `${size} bytes open back`)
    }
  })
})
