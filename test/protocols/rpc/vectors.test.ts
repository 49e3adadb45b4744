import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { computeVectors } from '../../../scripts/protocol-vectors.ts'
import { decodeRequest, decodeResponse } from '../../../src/protocols/rpc/messages.ts'
import { CredentialVerifier, credentialText } from '../../../src/protocols/rpc/credentials.ts'
import { verifyMessage } from '../../../src/protocols/rpc/bip137.ts'

const fixture = JSON.parse(await readFile(new URL('../../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const protocolDoc = await readFile(new URL('../../../PROTOCOL.md', import.meta.url), 'utf8')

function flatten (value: any, prefix = ''): Array<[string, string]> {
  return Object.entries(value).flatMap(([k, v]) => typeof v === 'object' ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, String(v)]])
}

describe('PROTOCOL.md test vectors', () => {
  it('are what this implementation computes', async () => {
    assert.deepEqual(await computeVectors(), fixture)
  })

  it('are printed in PROTOCOL.md, every value', () => {
    for (const [name, value] of flatten(fixture)) {
      assert.ok(protocolDoc.replace(/\s+/g, '').includes(value), `PROTOCOL.md lacks ${name}`)
    }
  })

  it('decode and verify from the frame bytes alone', () => {
    const requestFrame = Buffer.from(fixture.request.frame, 'hex')
    // varint length (2 bytes here), then the type byte 1
    assert.equal(requestFrame[2], 1)
    const { head, signing } = decodeRequest(requestFrame.subarray(3))
    assert.equal(Buffer.from(signing).toString('hex'), fixture.request.signingBytes)
    assert.deepEqual(head.credentials.map(credentialText), [`oc:${fixture.keys.clientPeerId}`, `btc:${fixture.keys.bitcoinAddress}`])
    new CredentialVerifier().verifyAll(head.credentials, head.signatures, signing)
    assert.ok(verifyMessage(fixture.keys.bitcoinAddress, fixture.request.bitcoinMessage, Buffer.from(fixture.request.bitcoinSignature, 'hex')))

    const responseFrame = Buffer.from(fixture.response.frame, 'hex')
    const response = decodeResponse(responseFrame.subarray(3))
    assert.equal(Buffer.from(response.head.requestDigest).toString('hex'), fixture.request.signingDigest)
    new CredentialVerifier().verifyAll(response.head.credentials, response.head.signatures, response.signing)
  })

  it('stop verifying when any signed byte changes', () => {
    const requestFrame = Buffer.from(fixture.request.frame, 'hex')
    const { head, signing } = decodeRequest(requestFrame.subarray(3))
    const tampered = Buffer.from(signing)
    tampered[tampered.length - 1] ^= 1
    assert.throws(() => { new CredentialVerifier().verifyAll(head.credentials, head.signatures, tampered) }, { name: 'InvalidSignatureError' })
  })
})
