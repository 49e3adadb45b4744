import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { DecodeError } from '../../src/protocols/codec.ts'
import { peerBytes } from '../../src/protocols/signed.ts'
import { decodeGrant, decodeGrantBody, decodeShareText, encodeGrant, encodeShareText, grantOpens, verifyGrant } from '../../src/storage/protocol/share.ts'
import { pathUnder } from '../../src/storage/client/shares.ts'
import { AccessDeniedError } from '../../src/protocols/rpc/errors.ts'
import { InvalidShareError, SHARE_REASONS, shareRefusalOf, ShareRevokedError, ShareScopeError } from '../../src/storage/errors.ts'
import { ARGS } from '../../src/storage/host/args.ts'
import { codeBlocks, readProtocolDoc, sectionOf } from '../helpers/protocol-doc.ts'

const fixture = JSON.parse(await readFile(new URL('../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const doc = await readProtocolDoc()
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const varint = (n: number): number[] => { const out: number[] = []; while (n >= 0x80) { out.push((n % 128) | 0x80); n = Math.floor(n / 128) } out.push(n); return out }
const bytes = (b: Uint8Array): number[] => [...varint(b.byteLength), ...b]

/**
 * PROTOCOL.md 8h's vectors read as an outside implementer would: the grant
 * rebuilt from the byte rules alone (no encoder of the project), its
 * signature checked against the renter's PeerId, the body and the share text
 * taken apart by the layout the section gives
 */
describe('shares: PROTOCOL.md 8h vectors', () => {
  const [domain, grantHex, signatureHex, bodyHex, text] = codeBlocks(sectionOf(sectionOf(doc, '## 11. Test vectors'), '### Shares'))
  const grant = Buffer.from(grantHex, 'hex')
  const signature = Buffer.from(signatureHex, 'hex')

  it('are the grant the byte rules give, signed by the renter', () => {
    assert.equal(Buffer.from(domain, 'hex').toString(), 'opencloud-storage-share-v1\n')
    const storage = fixture.storage
    const roots = [Buffer.from(storage.shardRoot, 'hex'), createHash('sha256').update('another shard').digest()].sort(Buffer.compare)
    const expires = 1_767_225_600_000 + 7 * 86_400_000
    const rebuilt = Buffer.from([
      1,
      ...bytes(peerBytes(fixture.keys.clientPeerId)),
      ...bytes(Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i)),
      ...varint(expires),
      ...bytes(peerBytes(fixture.keys.serverPeerId)),
      ...varint(2), ...roots[0], ...roots[1]
    ])
    assert.equal(hex(rebuilt), grantHex)
    verifyGrant(grant, fixture.keys.clientPeerId, signature)
    // one bit changed anywhere and the signature no longer covers it
    const changed = Buffer.from(grant)
    changed[changed.length - 1] ^= 1
    assert.throws(() => { verifyGrant(changed, fixture.keys.clientPeerId, signature) }, { name: 'InvalidSignatureError' })
    const g = decodeGrant(grant)
    assert.equal(g.renter, fixture.keys.clientPeerId)
    assert.equal(g.holder, fixture.keys.serverPeerId)
    assert.equal(g.expires, expires)
    assert.ok(grantOpens(g, roots[0]) && grantOpens(g, roots[1]))
    assert.ok(!grantOpens(g, new Uint8Array(32)))
    // the body of shared-get is bytes grant || bytes signature
    assert.equal(bodyHex, hex(Buffer.from([...bytes(grant), ...bytes(signature)])))
    const body = decodeGrantBody(Buffer.from(bodyHex, 'hex'))
    assert.deepEqual([hex(body.grant), hex(body.signature)], [grantHex, signatureHex])
  })

  it('refuse a grant in any other form: roots out of order or twice, no roots, bytes left over', () => {
    const g = decodeGrant(grant)
    const swapped = Buffer.from(grant)
    // the two roots are the last 64 bytes: swap them
    const tail = swapped.subarray(swapped.length - 64)
    const [a, b] = [Buffer.from(tail.subarray(0, 32)), Buffer.from(tail.subarray(32))]
    b.copy(tail, 0)
    a.copy(tail, 32)
    assert.throws(() => decodeGrant(swapped), (err: any) => err instanceof DecodeError && /sorted and distinct/.test(err.message))
    assert.throws(() => encodeGrant({ ...g, roots: [g.roots[1], g.roots[0]] }), RangeError)
    assert.throws(() => encodeGrant({ ...g, roots: [] }), RangeError)
    assert.throws(() => decodeGrant(Buffer.concat([grant, Buffer.from([0])])), DecodeError)
  })

  it('take the share text apart by the layout of 8h, "The share text"', () => {
    assert.equal(text, fixture.share.text)
    const share = decodeShareText(text)
    assert.equal(hex(share.grant), grantHex)
    assert.equal(hex(share.signature), signatureHex)
    assert.equal(share.folder, '')
    assert.equal(share.objects.length, 1)
    const [o] = share.objects
    assert.deepEqual({ name: o.name, size: o.size, k: o.k, n: o.n, segmentSize: o.segmentSize, id: o.id }, { name: 'hello.txt', size: 13, k: 1, n: 2, segmentSize: 4 * 1024 ** 2, id: '909192939495969798999a9b9c9d9e9f' })
    assert.equal(o.sha256, createHash('sha256').update('hello storage').digest('hex'))
    assert.equal(hex(o.key), fixture.storage.objectKey)
    assert.deepEqual(o.segments[0].shards.map(s => s.host), [fixture.keys.serverPeerId, fixture.keys.clientPeerId])
    // the host table: the server's get price under the contract of the storage example, the client's not known
    assert.deepEqual([...share.prices!], [[fixture.keys.serverPeerId, { version: 2, downloadPrice: 2000n }]])
    // a folder's share names only objects under it
    assert.throws(() => decodeShareText(encodeShareText({ ...share, folder: 'docs/' })), /names an object outside it/)
    assert.equal(decodeShareText(encodeShareText({ ...share, folder: 'hello' + '/', objects: [{ ...o, name: 'hello/x.txt' }] })).objects[0].name, 'hello/x.txt')
    // what a pasted text loses is said, not misread
    assert.throws(() => decodeShareText(text.slice(0, -10)), DecodeError)
    assert.throws(() => decodeShareText('ocshare2' + text.slice(8)), /starts with "ocshare1"/)
    assert.throws(() => decodeShareText(text.slice(0, 40) + ' ' + text.slice(40)), /base64url/)
  })

  it('are the methods and reason words of the code: both methods in 8d\'s and 8h\'s tables, each reason word of SHARE_REASONS in 8h', () => {
    const shares = sectionOf(doc, '## 8h. Shares')
    for (const method of ['shared-get', 'unshare']) {
      assert.ok(ARGS[method as keyof typeof ARGS] != null, method)
      assert.match(sectionOf(doc, '## 8d. Storage'), new RegExp(`^\\| \`${method}\` \\|`, 'm'), method)
      assert.match(shares, new RegExp(`^\\| \`${method}\` \\|`, 'm'), method)
    }
    const printed = [...shares.matchAll(/\| `(share-[a-z]+): ` \|$/gm)].map(m => m[1])
    assert.deepEqual(printed.sort(), Object.keys(SHARE_REASONS).sort())
  })

  it('read a host\'s refusal back into its class by the reason word, and keep a holder\'s files inside its directory', () => {
    const revoked = shareRefusalOf(new AccessDeniedError('share-revoked: the owner revoked share 00 before its expiry: ask them for a new one'))
    assert.ok(revoked instanceof ShareRevokedError)
    assert.equal((revoked as Error).message, 'the owner revoked share 00 before its expiry: ask them for a new one')
    assert.ok(shareRefusalOf(new AccessDeniedError('share-scope: no')) instanceof ShareScopeError)
    const other = new AccessDeniedError('contract x belongs to another renter')
    assert.equal(shareRefusalOf(other), other)
    assert.equal(pathUnder('/tmp/out', 'photos/2024/a.jpg'), '/tmp/out/photos/2024/a.jpg')
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'a//b', 'a/./b', 'a\\..\\b', 'a\u0001b']) {
      assert.throws(() => pathUnder('/tmp/out', bad), InvalidShareError, bad)
    }
  })
})
