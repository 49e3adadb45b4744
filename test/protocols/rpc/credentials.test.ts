import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { credentialText, openCloudCredential } from '../../../src/protocols/rpc/credentials.ts'

describe('credential texts', () => {
  it('name each OpenCloud ID by its own PeerId, the first time and every time after (they are kept)', async () => {
    const ids = await Promise.all(Array.from({ length: 5 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    for (let round = 0; round < 3; round++) {
      for (const id of ids) {
        // a fresh copy of the bytes each time: what a decoded head holds
        const credential = openCloudCredential(id)
        const copy = { type: credential.type, value: Uint8Array.from(credential.value) }
        assert.equal(credentialText(copy), `oc:${id}`)
      }
    }
  })

  it('call malformed bytes malformed, also after a good ID with the same prefix', async () => {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const good = openCloudCredential(id)
    assert.equal(credentialText(good), `oc:${id}`)
    const cut = { type: good.type, value: good.value.subarray(0, good.value.byteLength - 1) }
    assert.equal(credentialText(cut), 'oc:<malformed>')
    assert.equal(credentialText(cut), 'oc:<malformed>')
  })
})
