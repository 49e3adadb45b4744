import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDecipheriv, createHmac, hkdfSync } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryDatastore } from 'datastore-core'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { identityKeyFromSeed } from '../../src/node/data-dir.ts'
import { boot } from '../../src/node/boot.ts'
import { testConfig } from '../helpers/nodes.ts'
import { Wallet } from '../../src/payments/wallet/wallet.ts'
import { AccessDeniedError, BadRequestError, BodyTooLargeError, InsufficientStorageError } from '../../src/protocols/rpc/errors.ts'
import { indexKeyFromSeed, MAX_NOTE_BYTES, NoteOpenError, noteIdOf, openNote, sealNote } from '../../src/storage/protocol/index-notes.ts'
import { ContractBook, type HostContract } from '../../src/storage/host/contract-book.ts'
import { NoteStore } from '../../src/storage/host/note-store.ts'
import { Sweeper } from '../../src/storage/host/sweeper.ts'
import { ShardStore } from '../../src/storage/host/shard-store.ts'
import { NoteQuotaError, NoteWithoutContractError } from '../../src/storage/host/errors.ts'
import { checkNoteCall, contracts, noteBytesCap, noteDelete, noteList, notePut } from '../../src/storage/host/handlers/notes.ts'
import { assertPrinted, readProtocolDoc, sectionOf, type PrintedKind, type Vector } from '../helpers/protocol-doc.ts'
import type { ContractTerms } from '../../src/storage/protocol/contract.ts'
import type { HostRequest } from '../../src/storage/host/request.ts'

const fixture = JSON.parse(await readFile(new URL('../fixtures/protocol-vectors.json', import.meta.url), 'utf8'))
const v = fixture.index
const bytes = (h: string): Buffer => Buffer.from(h, 'hex')
const KIB = 1024
const MIB = 1024 * KIB

describe('the object index: identity, index key, note ids and sealing (PROTOCOL.md 8g)', () => {
  it('derive from the words by the byte rules alone, as the vectors say', async () => {
    const seed = bytes(v.seed)
    // the identity: Ed25519 from HKDF-SHA256(seed, "opencloud-identity", "v1")
    const identitySeed = Buffer.from(hkdfSync('sha256', seed, 'opencloud-identity', 'v1', 32))
    assert.equal(identitySeed.toString('hex'), v.identitySeed)
    assert.equal(peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', identitySeed)).toString(), v.identityPeerId)
    assert.equal(peerIdFromPrivateKey(await identityKeyFromSeed(seed)).toString(), v.identityPeerId)
    // the index key and a note id
    const indexKey = Buffer.from(hkdfSync('sha256', seed, 'opencloud-index', 'v1', 32))
    assert.equal(indexKey.toString('hex'), v.indexKey)
    assert.equal(Buffer.from(indexKeyFromSeed(seed)).toString('hex'), v.indexKey)
    assert.equal(createHmac('sha256', indexKey).update(`object:${v.objectId as string}`).digest('hex'), v.noteId)
    assert.equal(noteIdOf(indexKey, v.objectId), v.noteId)
    // the sealed note: 0x01 || nonce || ciphertext || tag, the note id as additional data
    const sealed = bytes(v.sealedNote)
    assert.equal(sealed[0], 1)
    assert.equal(sealed.subarray(1, 13).toString('hex'), v.nonce)
    const decipher = createDecipheriv('aes-256-gcm', indexKey, sealed.subarray(1, 13))
    decipher.setAAD(bytes(v.noteId))
    decipher.setAuthTag(sealed.subarray(sealed.byteLength - 16))
    assert.equal(Buffer.concat([decipher.update(sealed.subarray(13, sealed.byteLength - 16)), decipher.final()]).toString('utf8'), v.plaintext)
    assert.equal(Buffer.from(sealNote(indexKey, v.noteId, new TextEncoder().encode(v.plaintext), bytes(v.nonce))).toString('hex'), v.sealedNote)
    assert.equal(Buffer.from(openNote(indexKey, v.noteId, sealed)).toString('utf8'), v.plaintext)
  })

  it('are the wallet\'s: the mnemonic gives the seed, the index key and the identity', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oc-index-'))
    try {
      const wallet = await Wallet.open({ path: join(dir, 'wallet.json'), network: 'regtest', mnemonic: v.mnemonic })
      assert.equal(Buffer.from(wallet.seed()).toString('hex'), v.seed)
      assert.equal(Buffer.from(wallet.indexKey()).toString('hex'), v.indexKey)
      // an encrypted wallet gives the same (its passphrase opens the words, it is not the BIP39 passphrase)
      const locked = await Wallet.open({ path: join(dir, 'locked.json'), network: 'regtest', mnemonic: v.mnemonic, passphrase: 'correct horse' })
      const reopened = await Wallet.open({ path: join(dir, 'locked.json'), network: 'regtest', passphrase: 'correct horse' })
      assert.equal(locked.encrypted, true)
      assert.equal(Buffer.from(reopened.indexKey()).toString('hex'), v.indexKey)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('an encrypted wallet boots, and the identity it makes is its words\' (again after identity.key is gone)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oc-boot-'))
    try {
      await Wallet.open({ path: join(dir, 'wallet.json'), network: 'regtest', mnemonic: v.mnemonic, passphrase: 'correct horse' })
      const once = await boot({ dataDir: dir, config: testConfig(), walletPassphrase: 'correct horse' })
      await once.datastore.close()
      assert.equal(once.wallet.encrypted, true)
      assert.equal(peerIdFromPrivateKey(once.privateKey).toString(), v.identityPeerId)
      await rm(join(dir, 'identity.key'))
      const twice = await boot({ dataDir: dir, config: testConfig(), walletPassphrase: 'correct horse' })
      await twice.datastore.close()
      assert.equal(peerIdFromPrivateKey(twice.privateKey).toString(), v.identityPeerId)
      await assert.rejects(boot({ dataDir: dir, config: testConfig(), walletPassphrase: 'wrong' }), /passphrase is wrong/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuse a note with a changed byte, under another id, under another key or of another format', () => {
    const key = bytes(v.indexKey)
    const sealed = bytes(v.sealedNote)
    for (const at of [13, sealed.byteLength - 1, 5]) {
      const changed = Buffer.from(sealed)
      changed[at] ^= 1
      assert.throws(() => openNote(key, v.noteId, changed), NoteOpenError, `byte ${at}`)
    }
    assert.throws(() => openNote(key, noteIdOf(key, 'ffeeddccbbaa99887766554433221100'), sealed), NoteOpenError)
    assert.throws(() => openNote(indexKeyFromSeed(new Uint8Array(64)), v.noteId, sealed), NoteOpenError)
    const v2 = Buffer.from(sealed)
    v2[0] = 2
    assert.throws(() => openNote(key, v.noteId, v2), /not a sealed note of format 1/)
  })

  it('are printed in PROTOCOL.md 8g, each on its own, in order', async () => {
    const doc = await readProtocolDoc()
    const section = sectionOf(sectionOf(doc, '## 8g. The object index'), '### Vectors of the index')
    const as = (kind: PrintedKind, ...names: string[]): Vector[] => names.map(name => ({ name: `index.${name}`, value: String(v[name]), kind }))
    assertPrinted(section, [
      ...as('code', 'mnemonic'), ...as('block', 'seed', 'identitySeed'), ...as('code', 'identityPeerId'), ...as('block', 'indexKey'),
      ...as('code', 'objectId'), ...as('block', 'noteId'), ...as('code', 'plaintext', 'nonce'), ...as('block', 'sealedNote')
    ], 'PROTOCOL.md 8g')
    // the four methods are in 8d's table too
    const methods = sectionOf(doc, '## 8d. Storage')
    for (const method of ['note-put', 'note-list', 'note-delete', 'contracts']) {
      assert.match(methods, new RegExp(`^\\| \`${method}\` \\|`, 'm'), method)
    }
  })
})

/** A request as the pipeline hands it to the host */
function request (caller: string, args: string[], body: Uint8Array = new Uint8Array(0)): HostRequest {
  const chunks = async function * (): AsyncGenerator<Uint8Array> {
    if (body.byteLength > 0) {
      yield body
    }
  }
  return { caller, args, signal: new AbortController().signal, body: Object.assign(chunks(), { length: body.byteLength }) }
}

const RENTER = '12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB'
const OTHER = '12D3KooWCd3eX8r5ihRvzK7P1yPq5aakaBJhG5GNj18YTztPhoCa'
const NOW = Date.parse('2031-03-01T12:00:00Z')
const id = (n: number): string => n.toString(16).padStart(64, '0')

/** A contract in the host's book, as far as the note methods read it */
function contract (n: number, renter: string, maxBytes: number, endedAt?: number): HostContract {
  const terms = { renter, host: 'host', start: NOW - 1000, end: NOW + 30 * 86_400_000, maxBytes, rentPeriodMs: 86_400_000 } as unknown as ContractTerms
  return { id: id(n), terms, signed: new Uint8Array(0), revision: 0, shards: new Map(), bytes: 0, rentPaidPeriods: 1, rentAccrued: 0n, rentPaid: 0n, ...(endedAt == null ? {} : { endedAt }) }
}

describe('a host\'s notes: who may keep them, the caps, paging and the sweep', () => {
  const host = async (): Promise<{ book: ContractBook, notes: NoteStore, datastore: MemoryDatastore }> => {
    const datastore = new MemoryDatastore()
    const book = new ContractBook({ datastore, now: () => NOW })
    const notes = new NoteStore(datastore)
    await notes.load()
    return { book, notes, datastore }
  }

  it('keeps notes only for a renter with a live contract, only its own, and refuses a malformed call before reading the body', async () => {
    const h = await host()
    await assert.rejects(notePut(h, request(RENTER, [id(1)], new Uint8Array(10))), (err: any) => err instanceof NoteWithoutContractError && err instanceof AccessDeniedError && /only for renters with a live contract here/.test(err.message))
    h.book.add(contract(1, OTHER, 10 * MIB, NOW - 1))
    await assert.rejects(notePut(h, request(OTHER, [id(1)], new Uint8Array(10))), NoteWithoutContractError, 'an ended contract is not live')
    h.book.add(contract(2, RENTER, 10 * MIB))
    assert.deepEqual(await notePut(h, request(RENTER, [id(7)], new Uint8Array(10).fill(1))), { id: id(7), bytes: 10 })
    // replaced in place: still one note
    await notePut(h, request(RENTER, [id(7)], new Uint8Array(20).fill(2)))
    assert.deepEqual(h.notes.usage(RENTER), { count: 1, bytes: 20 })
    const mine = await noteList(h, request(RENTER, []))
    assert.deepEqual(mine, { notes: [{ id: id(7), note: Buffer.alloc(20, 2).toString('base64') }], more: false })
    assert.deepEqual(await noteList(h, request(OTHER, [])), { notes: [], more: false }, 'another renter sees none of them')
    assert.deepEqual(await noteDelete(h, request(OTHER, [id(7)])), { id: id(7), deleted: false }, 'nor deletes them')
    assert.throws(() => checkNoteCall(h.book, 'note-put', { caller: RENTER, args: ['XYZ'], bodyLength: 1 }), BadRequestError)
    assert.throws(() => checkNoteCall(h.book, 'note-put', { caller: RENTER, args: [id(8)], bodyLength: MAX_NOTE_BYTES + 1 }), BodyTooLargeError)
    assert.throws(() => checkNoteCall(h.book, 'note-put', { caller: RENTER, args: [id(8)], bodyLength: 0 }), BadRequestError)
    assert.throws(() => checkNoteCall(h.book, 'note-list', { caller: RENTER, args: [id(1), id(2)], bodyLength: 0 }), BadRequestError)
    assert.deepEqual(await noteDelete(h, request(RENTER, [id(7)])), { id: id(7), deleted: true })
    assert.deepEqual(h.notes.usage(RENTER), { count: 0, bytes: 0 })
  })

  it('holds a renter to max(16 MiB, 1% of its live contracts\' room), and the notes survive a restart', async () => {
    const h = await host()
    h.book.add(contract(1, RENTER, 100 * MIB))
    const note = new Uint8Array(MAX_NOTE_BYTES).fill(3)
    // 16 MiB of 256 KiB notes: 64 fit, the 65th is over
    for (let i = 0; i < 64; i++) {
      await notePut(h, request(RENTER, [id(i)], note))
    }
    await assert.rejects(notePut(h, request(RENTER, [id(64)], note)), (err: any) => err instanceof NoteQuotaError && err instanceof InsufficientStorageError && /at most 16777216 bytes of notes/.test(err.message))
    // replacing one within the cap is fine
    await notePut(h, request(RENTER, [id(3)], note))
    // a contract of 10 GiB more: 1% of 10.1 GiB is over 16 MiB
    assert.equal(noteBytesCap(h.book, RENTER), 16 * MIB, 'the floor: 1% of 100 MiB is less')
    h.book.add(contract(2, RENTER, 10 * 1024 * MIB))
    assert.equal(noteBytesCap(h.book, RENTER), Math.floor((100 + 10 * 1024) * MIB / 100), '1% of its contracts\' room')
    await notePut(h, request(RENTER, [id(64)], note))
    const again = new NoteStore(h.datastore)
    await again.load()
    assert.deepEqual(again.usage(RENTER), { count: 65, bytes: 65 * MAX_NOTE_BYTES })
  })

  it('answers about 1 MiB of notes at a time, in id order, and the caller\'s contracts', async () => {
    const h = await host()
    h.book.add(contract(1, RENTER, MIB))
    h.book.add(contract(2, RENTER, MIB, NOW - 5))
    h.book.add(contract(3, OTHER, MIB))
    for (const n of [6, 2, 5, 1, 4, 3]) {
      await notePut(h, request(RENTER, [id(n)], new Uint8Array(MAX_NOTE_BYTES).fill(n)))
    }
    const first = await noteList(h, request(RENTER, []))
    assert.deepEqual([first.notes.map(n => n.id), first.more], [[id(1), id(2), id(3), id(4)], true])
    const second = await noteList(h, request(RENTER, [id(4)]))
    assert.deepEqual([second.notes.map(n => n.id), second.more], [[id(5), id(6)], false])
    assert.equal(Buffer.from(second.notes[1].note, 'base64')[0], 6)
    const listed = await contracts(h, request(RENTER, []))
    assert.deepEqual(listed.contracts.map(c => [c.id, c.ended]), [[id(1), false]], 'only its own, and not the ended one')
  })

  it('deletes a renter\'s notes once it has no contract here, at the sweep', async () => {
    const h = await host()
    const c = contract(1, RENTER, MIB)
    h.book.add(c)
    h.book.add(contract(2, OTHER, MIB))
    await notePut(h, request(RENTER, [id(1)], new Uint8Array(5)))
    await notePut(h, request(OTHER, [id(1)], new Uint8Array(5)))
    const dir = await mkdtemp(join(tmpdir(), 'oc-notes-'))
    try {
      const sweeper = new Sweeper({ book: h.book, store: new ShardStore(dir), notes: h.notes }, { graceMs: 1000, intervalMs: 60_000 })
      assert.equal(await sweeper.pruneNotes(), 0, 'both renters have a contract')
      c.endedAt = NOW
      assert.equal(await sweeper.pruneNotes(), 1)
      assert.deepEqual((await noteList(h, request(RENTER, []))).notes, [])
      assert.equal((await noteList(h, request(OTHER, []))).notes.length, 1, 'the other renter keeps its own')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
