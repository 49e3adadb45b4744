import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { dataDirPaths, ensureDataDir, loadOrCreateIdentity, loadOrCreateToken } from '../../src/node/data-dir.ts'
import { ApiServer } from '../../src/node/api/api-server.ts'
import { main } from '../../src/cli/main.ts'
import { Writable } from 'node:stream'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { hex, openEvidence, verifyRedeemAuthorization, signProposal, signTx, signVote, txRootOf, sha256, encodeHeader, encodeBlock, encodeCommit, encodeMessage, type Block, type SignedTx } from '../../src/ledger/encoding.ts'
import { LedgerState } from '../../src/ledger/state.ts'
import { CloudLedger } from '../../src/ledger/cloud-ledger.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { LevelDatastore } from 'datastore-level'
import { openCloudSigner } from '../../src/protocols/rpc/credentials.ts'
import { Reader, Writer } from '../../src/protocols/codec.ts'
import { addrOf, connect, tempDir, testConfig, waitFor } from '../helpers/nodes.ts'
import { RawRpc } from '../helpers/raw-rpc.ts'
import { Status } from '../../src/protocols/rpc/status.ts'
import type { TxOutcome } from '../../src/ledger/state.ts'

const SLOT_MS = 400

async function identityOf (dir: string): Promise<string> {
  const paths = await ensureDataDir(dir)
  return peerIdFromPrivateKey(await loadOrCreateIdentity(paths.identity)).toString()
}

const L = (n: OpenCloudNode): CloudLedger => n.cloudLedger!

/** pubsub for a ledger that is handed its blocks directly (a late node under test): takes nothing in, sends nothing */
const noPubsub: any = { topicValidators: new Map(), subscribe () {}, unsubscribe () {}, publish: async () => {}, addEventListener () {}, removeEventListener () {} }

/**
 * The Cloud Ledger on real nodes over TCP: four validators and a node that
 * only follows, a regtest chain for the checkpoints, 400 ms slots.
 */
describe('cloud ledger: promo codes on a 4-validator ledger', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  const nodes: OpenCloudNode[] = []
  let genesisPath: string
  let config: ReturnType<typeof testConfig>
  let pool: string
  const codes: string[] = []

  const start = async (i: number): Promise<OpenCloudNode> => {
    const node = await OpenCloudNode.create({ dataDir: join(dir.path, `node${i}`), config, bootstrap: i === 0 ? [] : [addrOf(nodes[0])] })
    await node.start()
    nodes[i] = node
    for (const other of nodes.slice(0, i)) {
      if (other != null && other !== node && other.libp2p.status === 'started') {
        await connect(node, other)
      }
    }
    return node
  }

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: join(dir.path, 'chain'), blockIntervalMs: 0 })
    await regtest.start()
    const validators: string[] = []
    for (let i = 0; i < 4; i++) {
      validators.push(await identityOf(join(dir.path, `node${i}`)))
    }
    genesisPath = join(dir.path, 'genesis.json')
    await writeFile(genesisPath, JSON.stringify({ chain: 'test', time: Date.now() - 1000, validators, slotMs: SLOT_MS, checkpointEvery: 5, maxTxsPerBlock: 500, maxRequestsPerSlot: 5, txTtlMs: 60_000 }))
    config = testConfig({ payments: { network: 'regtest', chain: regtest.url, settleIntervalMs: 500, graceMs: 600_000 }, ledger: { genesis: genesisPath, idleBlockMs: 1000 } })
    for (let i = 0; i < 5; i++) {
      await start(i)
    }
    for (let i = 0; i < 4; i++) {
      await regtest.faucet(await nodes[i].wallet.newAddress(), 1_000_000n)
    }
    await regtest.chain.mine(1, regtest.faucetAddress)
  })

  after(async () => {
    for (const n of nodes) {
      await n?.stop().catch(() => {})
    }
    await regtest?.stop()
    await dir?.cleanup()
  })

  it('makes blocks that every node holds alike, four validators taking turns', async () => {
    await waitFor(() => nodes.every(n => L(n).state.height >= 3), 20_000, 'three blocks on every node')
    const h = Math.min(...nodes.map(n => L(n).state.height))
    const block = await L(nodes[4]).block(h)
    for (const n of nodes) {
      assert.equal(hex((await L(n).block(h))!.block.hash), hex(block!.block.hash))
    }
    assert.equal(L(nodes[4]).status().validator, false)
    // no validator proposes two blocks in a row
    for (let k = 2; k <= h; k++) {
      assert.notEqual((await L(nodes[0]).block(k))!.block.header.proposer, (await L(nodes[0]).block(k - 1))!.block.header.proposer)
    }
  })

  it('runs the promo workflow: pool, request, check, transfer, and one redemption when two clouds race', async () => {
    const created = await L(nodes[0]).submit({ kind: 'pool', name: 'starter', service: 'sha256', creditSat: 1000n, quantity: 3, ttlMs: 600_000, perRequester: 2 })
    pool = (created as any).id
    // a user that is not a member cloud asks for codes (through its own node)
    const user = nodes[4]
    for (let i = 0; i < 2; i++) {
      codes.push(((await L(user).submit({ kind: 'request', pool: Buffer.from(pool, 'hex') })) as any).id)
    }
    await assert.rejects(L(user).submit({ kind: 'request', pool: Buffer.from(pool, 'hex') }), /has 2 codes from this pool, the most it allows/)
    // any node can check a code
    await waitFor(() => L(nodes[2]).codeView(codes[0]) != null, 10_000, 'the code on node 2')
    const view = L(nodes[2]).codeView(codes[0])!
    assert.equal(view.state, 'valid')
    assert.equal(view.owner, user.peerId.toString())
    assert.equal(view.credit, '0.00001 BTC')
    assert.ok(view.remainingMs > 500_000)
    // only a member cloud creates pools
    await assert.rejects(L(user).submit({ kind: 'pool', name: 'mine', service: 'sha256', creditSat: 1n, quantity: 1, ttlMs: 600_000, perRequester: 1 }), /only a member cloud/)
    // transfer to another identity, then the old owner cannot use it
    const newOwner = nodes[3]
    await L(user).submit({ kind: 'transfer', code: Buffer.from(codes[0], 'hex'), to: newOwner.peerId.toString() })
    await waitFor(() => L(nodes[1]).codeView(codes[0])?.owner === newOwner.peerId.toString(), 10_000, 'the transfer seen')
    await assert.rejects(L(user).submit({ kind: 'transfer', code: Buffer.from(codes[0], 'hex'), to: user.peerId.toString() }), /only the code's owner/)
    // the owner authorizes two clouds; both redeem at once: exactly one wins
    const auth1 = L(newOwner).authorizeRedeem(codes[0], nodes[1].peerId.toString())
    const auth2 = L(newOwner).authorizeRedeem(codes[0], nodes[2].peerId.toString())
    const results = await Promise.allSettled([
      L(nodes[1]).submit({ kind: 'redeem', code: Buffer.from(codes[0], 'hex'), authorization: Buffer.from(auth1, 'base64') }),
      L(nodes[2]).submit({ kind: 'redeem', code: Buffer.from(codes[0], 'hex'), authorization: Buffer.from(auth2, 'base64') })
    ])
    assert.equal(results.filter(r => r.status === 'fulfilled').length, 1, 'one redemption is final')
    const lost = results.find(r => r.status === 'rejected') as PromiseRejectedResult
    assert.match(lost.reason.message, /the code was redeemed at height \d+ by /)
    await waitFor(() => nodes.every(n => L(n).codeView(codes[0])?.state === 'redeemed'), 10_000, 'redeemed everywhere')
    // a redemption without the owner's authorization fails
    const forged = L(nodes[3]).authorizeRedeem(codes[1], nodes[1].peerId.toString())
    await assert.rejects(L(nodes[1]).submit({ kind: 'redeem', code: Buffer.from(codes[1], 'hex'), authorization: Buffer.from(forged, 'base64') }), /did not authorize/)
    // an unknown code
    await assert.rejects(L(nodes[1]).submit({ kind: 'redeem', code: sha256(new Uint8Array([1])), authorization: Buffer.from(forged, 'base64') }), /no such code/)
  })

  it('answers submit as PROTOCOL.md 8e says, in raw frames: 11 for what no one signed, 30 for what the ledger refuses, a replay included', async () => {
    const raw = new RawRpc(nodes[4], nodes[0])
    const signer = nodes[4].signer
    const challenge = await raw.challenge(signer)
    let counter = 0
    const submit = async (body: Uint8Array, args: string[] = ['wait']): Promise<{ status: number, message: string, json?: any }> => {
      const { response, body: answer } = await raw.exchange(RawRpc.request(signer, { service: 'ledger', method: 'submit', args, body, nonce: RawRpc.nonce(challenge, counter++) }))
      return { status: response.head.status, message: response.head.message, json: response.head.status === Status.OK ? JSON.parse(new TextDecoder().decode(answer)) : undefined }
    }
    // bytes that are no signed-tx, and a signed-tx whose signature was changed: nothing to refuse, the request is bad
    const garbage = await submit(new TextEncoder().encode('not a transaction'))
    assert.equal(garbage.status, Status.BAD_REQUEST, garbage.message)
    const stx = L(nodes[4]).sign({ kind: 'request', pool: Buffer.from(pool, 'hex') })
    const forged = Uint8Array.from(stx.bytes)
    forged[forged.length - 1] ^= 1
    const unsigned = await submit(forged)
    assert.equal(unsigned.status, Status.BAD_REQUEST)
    assert.match(unsigned.message, /signature does not verify/)
    // the one argument is the word "wait"
    for (const args of [['now'], ['wait', 'wait']]) {
      const odd = await submit(stx.bytes, args)
      assert.equal(odd.status, Status.BAD_REQUEST, `args ${JSON.stringify(args)}`)
      assert.match(odd.message, /the one word "wait"/)
    }
    // a signed transaction for another ledger
    const elsewhere = signTx({ ledger: sha256(new TextEncoder().encode('another ledger')), sender: nodes[4].peerId.toString(), time: Date.now(), body: { kind: 'request', pool: Buffer.from(pool, 'hex') } }, nodes[4].signer)
    const foreign = await submit(elsewhere.bytes)
    assert.equal(foreign.status, Status.REQUEST_DECLINED)
    assert.match(foreign.message, /for another ledger/)
    // one that fails the rules in its block: the user holds the 2 codes the pool allows
    const refused = await submit(stx.bytes)
    assert.equal(refused.status, Status.REQUEST_DECLINED)
    assert.match(refused.message, /the ledger refused transaction [0-9a-f]{64}: this requester has 2 codes from this pool, the most it allows/)
    // a transaction final once: refused as a replay, with what became of it, and never applied twice
    const request = await L(nodes[3]).submit({ kind: 'request', pool: Buffer.from(pool, 'hex') }) as TxOutcome
    await waitFor(() => L(nodes[0]).state.outcomes.has(request.id), 10_000, 'the request final on node 0')
    const issued = L(nodes[0]).poolViews().find(p => p.id === pool)!.issued
    const replayed = await submit(await findTx(L(nodes[3]), request.id))
    assert.equal(replayed.status, Status.REQUEST_DECLINED)
    assert.match(replayed.message, new RegExp(`transaction ${request.id} is on the ledger already \\(a replay\\): final at height ${request.height}, passed`))
    assert.equal((await submit(stx.bytes, [])).status, Status.REQUEST_DECLINED, 'a failed one, without wait too')
    assert.equal(L(nodes[0]).poolViews().find(p => p.id === pool)!.issued, issued, 'issued once, not twice')
    // and `tx` tells what became of each, in the fields 8e lists
    const tx = async (id: string): Promise<any> => {
      const { response, body } = await raw.exchange(RawRpc.request(signer, { service: 'ledger', method: 'tx', args: [id], nonce: RawRpc.nonce(challenge, counter++) }))
      assert.equal(response.head.status, Status.OK, response.head.message)
      return JSON.parse(new TextDecoder().decode(body))
    }
    assert.deepEqual(await tx(request.id), { id: request.id, ok: true, height: request.height, final: true })
    const failed = await tx(hex(stx.id))
    assert.deepEqual(Object.keys(failed), ['id', 'ok', 'reason', 'height', 'final'])
    assert.equal(failed.ok, false)
    // and a fresh one is queued: without wait, its id at once
    const fresh = L(nodes[3]).sign({ kind: 'transfer', code: Buffer.from(codes[1], 'hex'), to: nodes[2].peerId.toString() })
    const queued = await submit(fresh.bytes, [])
    assert.equal(queued.status, Status.OK, queued.message)
    assert.deepEqual(queued.json, { id: hex(fresh.id) })
  })

  it('signs no redemption it can see would fail: a forged authorization or a code redeemed already is refused before anything is queued', async () => {
    const code = codes[1]
    const raw = new RawRpc(nodes[4], nodes[1])
    const challenge = await raw.challenge(nodes[4].signer)
    let counter = 0
    const redeem = async (args: string[]): Promise<{ status: number, message: string }> => {
      const { response } = await raw.exchange(RawRpc.request(nodes[4].signer, { service: 'ledger', method: 'redeem', args, nonce: RawRpc.nonce(challenge, counter++) }))
      return { status: response.head.status, message: response.head.message }
    }
    const queued = await redemptionsQueued(nodes[1], async () => {
      // signed by someone who does not own the code, and by the owner for another cloud
      for (const authorization of [L(nodes[2]).authorizeRedeem(code, nodes[1].peerId.toString()), L(nodes[4]).authorizeRedeem(code, nodes[2].peerId.toString())]) {
        const forged = await redeem([code, authorization])
        assert.equal(forged.status, Status.REQUEST_DECLINED)
        assert.match(forged.message, new RegExp(`the code's owner ${nodes[4].peerId.toString()} did not authorize ${nodes[1].peerId.toString()} to redeem it`))
      }
      const unknown = await redeem([hex(sha256(new Uint8Array([7]))), L(nodes[4]).authorizeRedeem(code, nodes[1].peerId.toString())])
      assert.equal(unknown.status, Status.REQUEST_DECLINED)
      assert.match(unknown.message, /no promo code [0-9a-f]{64} on the ledger/)
      assert.equal((await redeem([code, 'not base64 of 64 bytes'])).status, Status.BAD_REQUEST)
      // the code the promo workflow redeemed
      const spent = await redeem([codes[0], L(nodes[3]).authorizeRedeem(codes[0], nodes[1].peerId.toString())])
      assert.equal(spent.status, Status.REQUEST_DECLINED)
      assert.match(spent.message, /the code was redeemed at height \d+ by /)
    })
    assert.deepEqual(queued, [], 'the validator signed none of them')
  })

  it('shows amounts in BTC through the CLI and the control API, counts in the singular when one, and labels what it prints in base64', async () => {
    const user = nodes[4]
    const dataDir = join(dir.path, 'node4')
    const api = new ApiServer(user, { host: '127.0.0.1', port: 0, token: await loadOrCreateToken(dataDirPaths(dataDir).apiToken) })
    await api.start()
    const cli = async (...args: string[]): Promise<string> => {
      let out = ''
      let err = ''
      const sink = (write: (s: string) => void): any => new Writable({ write (chunk, _, done) { write(String(chunk)); done() } })
      const code = await main(['ledger', ...args, '--data-dir', dataDir, '--api', api.url], sink(s => { out += s }), sink(s => { err += s }))
      assert.equal(code, 0, err)
      return out
    }
    try {
      await waitFor(() => L(user).state.codes.size === 3 && L(user).state.pools.size === 1, 10_000, 'the three codes on node 4')
      assert.match(await cli('status'), /^promo\s+1 pool, 3 codes$/m)
      const pools = await cli('pools')
      assert.match(pools, /starter\s+sha256\s+0\.00001 BTC\s+0\/3/)
      assert.doesNotMatch(pools, /sat/)
      const json = JSON.parse(await cli('pools', '--json'))
      assert.equal(json[0].credit, '0.00001 BTC')
      assert.equal(json[0].creditSat, undefined)
      assert.match(await cli('promo', 'show', codes[1]), /^worth\s+0\.00001 BTC of sha256 calls$/m)
      assert.match(await cli('promo', 'mine'), /valid\s+0\.00001 BTC of sha256/)
      // an authorization: for whom, and the command line that uses it
      const authorized = await cli('promo', 'authorize', codes[1], nodes[1].peerId.toString())
      const b64 = /^authorization for (\S+) to redeem code ([0-9a-f]{64}), signed by this node \(its owner\), in base64:\n(\S{88})$/m.exec(authorized)
      assert.ok(b64 != null, authorized)
      assert.deepEqual([b64[1], b64[2]], [nodes[1].peerId.toString(), codes[1]])
      assert.ok(verifyRedeemAuthorization(L(user).id, Buffer.from(codes[1], 'hex'), nodes[1].peerId.toString(), user.peerId.toString(), Buffer.from(b64[3], 'base64')))
      assert.ok(authorized.includes(`ledger promo redeem ${codes[1]} --authorization ${b64[3]}\n`))
      // a candidacy: what it is, what the validators run, and the evidence labelled
      const stood = await cli('candidate', 'node 4, run by the test suite')
      assert.match(stood, new RegExp(`^${user.peerId.toString()} stands as a validator candidate with the statement "node 4, run by the test suite"\\.$`, 'm'))
      assert.match(stood, /^A majority of the 4 validators \(3\) adds it, each on its own node with:$/m)
      assert.match(stood, new RegExp(`^  (npx )?opencloud-node ledger vote add ${user.peerId.toString()}$`, 'm'))
      const evidence = new RegExp(`^  (?:npx )?opencloud-node ledger vote add ${user.peerId.toString()} --evidence (\\S+)$`, 'm').exec(stood)
      assert.ok(evidence != null, stood)
      assert.equal(openEvidence(L(user).id, user.peerId.toString(), Buffer.from(evidence[1], 'base64')), 'node 4, run by the test suite')
    } finally {
      await api.stop()
    }
  })

  it('pays for a call with a promo code: redeemed once before serving, refused when spent, foreign or unauthorized', async () => {
    const user = nodes[4]
    const code = codes[1]
    assert.equal(L(user).codeView(code)?.state, 'valid')
    const pay = (server: OpenCloudNode, c = code, authorizeFor = server): any => ({ type: 'promo', code: Buffer.from(c, 'hex'), authorization: Buffer.from(L(user).authorizeRedeem(c, authorizeFor.peerId.toString()), 'base64') })
    // an authorization for another server does not pay this one, and is refused before the server signs a redemption
    assert.deepEqual(await redemptionsQueued(nodes[1], async () => {
      await assert.rejects(user.call(nodes[1].peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode('x')), payment: pay(nodes[1], code, nodes[2]) }), /did not authorize/)
    }), [])
    const response = await user.call(nodes[1].peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode('paid with a code')), payment: pay(nodes[1]) })
    assert.equal(Buffer.from(await response.body.bytes()).toString('hex'), hex(sha256(new TextEncoder().encode('paid with a code'))))
    assert.equal(L(nodes[1]).codeView(code)?.state, 'redeemed', 'redeemed before it was served')
    // spent: refused by every member cloud, with the height and who redeemed it
    await waitFor(() => L(nodes[2]).codeView(code)?.state === 'redeemed', 10_000, 'the redemption on node 2')
    await assert.rejects(user.call(nodes[2].peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(new Uint8Array(1)), payment: pay(nodes[2]) }), /is spent: redeemed at height \d+ by/)
    // a code for another service, and a node that is not a member cloud
    const other = (await L(nodes[0]).submit({ kind: 'pool', name: 'storage-trial', service: 'storage', creditSat: 5000n, quantity: 5, ttlMs: 600_000, perRequester: 1 })) as any
    const storageCode = ((await L(user).submit({ kind: 'request', pool: Buffer.from(other.id, 'hex') })) as any).id
    await waitFor(() => L(nodes[1]).codeView(storageCode) != null, 10_000, 'the code on node 1')
    await assert.rejects(user.call(nodes[1].peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(new Uint8Array(1)), payment: pay(nodes[1], storageCode) }), /pays for storage calls, not sha256/)
    await assert.rejects(nodes[3].call(user.peerId, { service: 'sha256', method: 'hash', body: bodyFromBytes(new Uint8Array(1)), payment: pay(user, storageCode) }), /not a member cloud/)
    // one validator redeems a code once at a time: the second of two at once is refused, not left to fail in the block
    const authorization = pay(nodes[1], storageCode).authorization
    const both = await Promise.allSettled([L(nodes[1]).redeem(storageCode, authorization), L(nodes[1]).redeem(storageCode, authorization)])
    assert.equal(both[0].status, 'fulfilled')
    assert.match((both[1] as PromiseRejectedResult).reason.message, new RegExp(`a redemption of code ${storageCode} by this node is waiting for its block already`))
  })

  it('lets a member cloud redeem within two blocks while a flood of requests waits', async () => {
    const pool = (await L(nodes[0]).submit({ kind: 'pool', name: 'flood', service: 'sha256', creditSat: 1n, quantity: 100_000, ttlMs: 600_000, perRequester: 100 })) as any
    const user = nodes[4]
    const code = ((await L(user).submit({ kind: 'request', pool: Buffer.from(pool.id, 'hex') })) as any).id
    await waitFor(() => L(nodes[2]).codeView(code) != null, 10_000, 'the code on node 2')
    // 2,000 requests from 200 identities, more than two blocks of this ledger hold (500 each)
    const senders = await Promise.all(Array.from({ length: 200 }, async () => generateKeyPair('Ed25519')))
    let time = Date.now()
    const flood: string[] = []
    for (let i = 0; i < 2000; i++) {
      const key = senders[i % senders.length]
      flood.push((await L(nodes[3]).submit(signTx({ ledger: L(nodes[3]).id, sender: peerIdFromPrivateKey(key).toString(), time: time++, body: { kind: 'request', pool: Buffer.from(pool.id, 'hex') } }, openCloudSigner(key)), { wait: false })).id)
    }
    const before = L(nodes[2]).state.height
    const redeemed = await L(nodes[2]).submit({ kind: 'redeem', code: Buffer.from(code, 'hex'), authorization: Buffer.from(L(user).authorizeRedeem(code, nodes[2].peerId.toString()), 'base64') }) as any
    assert.ok(redeemed.height <= before + 2, `redeemed at height ${redeemed.height}, more than two blocks after ${before}`)
    const finalBefore = flood.filter(id => { const o = L(nodes[2]).state.outcomes.get(id); return o != null && o.height <= redeemed.height }).length
    assert.ok(finalBefore < flood.length, `the redemption did not wait for the flood (${finalBefore} of ${flood.length} final with it)`)
  })

  it('refuses a tampered history from a peer: a changed transaction or a forged commit stops the sync there', async () => {
    const honest = await L(nodes[0]).blocksFrom(1, 3)
    const r = new Reader(honest)
    const n = r.count(1000, 'blocks')
    const stored = Array.from({ length: n }, () => Uint8Array.from(r.bytes(10_000_000, 'block')))
    const pack = (blocks: Uint8Array[]): Uint8Array => {
      const w = new Writer().varint(blocks.length)
      blocks.forEach(b => w.bytes(b))
      return w.finish()
    }
    const stores: LevelDatastore[] = []
    const lateLedger = async (blocks: Uint8Array[]): Promise<CloudLedger> => {
      const store = new LevelDatastore(join(dir.path, `late-${Math.random().toString(16).slice(2)}`))
      await store.open()
        const key = await generateKeyPair('Ed25519')
      stores.push(store)
      let served = false
      return new CloudLedger({ peerId: peerIdFromPrivateKey(key), signer: openCloudSigner(key), datastore: store, pubsub: noPubsub, fetchBlocks: async () => { const out = served ? pack([]) : pack(blocks); served = true; return out } }, { genesis: L(nodes[0]).genesis })
    }
    // honest blocks sync
    const ok = await lateLedger(stored)
    assert.equal(await ok.syncFrom('peer'), 3)
    // block 2 with one byte of its last transaction's signature changed
    const outer = new Reader(stored[1])
    const blockBytes = Uint8Array.from(outer.bytes(10_000_000, 'block'))
    const commitBytes = outer.bytes(100_000, 'commit')
    const changedTx = Uint8Array.from(blockBytes)
    changedTx[changedTx.length - 1] ^= 1
    const tampered = await lateLedger([stored[0], new Writer().bytes(changedTx).bytes(commitBytes).finish(), stored[2]])
    assert.equal(await tampered.syncFrom('peer'), 1, 'one block, then the sync stops without throwing')
    assert.equal(tampered.state.height, 1, 'stopped before the changed block')
    // block 2 with a commit signature changed
    const forgedCommit = Uint8Array.from(commitBytes)
    forgedCommit[forgedCommit.length - 1] ^= 1
    const forged = await lateLedger([stored[0], new Writer().bytes(blockBytes).bytes(forgedCommit).finish()])
    assert.equal(await forged.syncFrom('peer'), 1)
    assert.equal(forged.state.height, 1, 'stopped before the block with a forged commit')
    await Promise.all(stores.map(async s => s.close()))
  })

  it('keeps going with one validator of four killed, and the restarted one catches up', async () => {
    const victim = 2
    await nodes[victim].stop()
    const before = L(nodes[0]).state.height
    // a pool from a validator that is up, final with 3 of 4
    await L(nodes[1]).submit({ kind: 'pool', name: 'second', service: 'sha256', creditSat: 500n, quantity: 10, ttlMs: 600_000, perRequester: 1 })
    await waitFor(() => L(nodes[0]).state.height > before, 10_000, 'the block on node 0')
    await start(victim)
    await waitFor(() => L(nodes[victim]).state.height >= L(nodes[0]).state.height && L(nodes[0]).state.height > before, 30_000, 'the restarted validator caught up')
    assert.equal(hex(L(nodes[victim]).state.appHash), hex((L(nodes[0]).state.height === L(nodes[victim]).state.height ? L(nodes[0]) : L(nodes[victim])).state.appHash))
    assert.ok(L(nodes[victim]).poolViews().some(p => p.name === 'second'))
  })

  it('records a validator that signs two blocks for one slot, and counts neither', async () => {
    const target = L(nodes[1])
    const engine = target.engine
    const height = engine.height
    // a round of this height ahead of everyone, and the validator whose round it is
    let round = engine.round + 5
    if (engine.proposerOf(height, round) === nodes[1].peerId.toString()) {
      round++
    }
    const cheat = nodes.find(n => n.peerId.toString() === engine.proposerOf(height, round))!
    const proposal = (time: number): any => {
      const header = { ledger: target.id, height, round, time, prev: target.state.lastHash, proposer: cheat.peerId.toString(), txRoot: txRootOf([]), appHash: target.state.appHash }
      const block: Block = { header, txs: [], hash: sha256(encodeHeader(header)) }
      return { type: 'proposal', proposal: signProposal(target.id, { height, round, validRound: -1, block, blockBytes: encodeBlock(block), proposer: cheat.peerId.toString() }, cheat.signer) }
    }
    const before = target.equivocations.length
    engine.receive(proposal(Date.now()), cheat.peerId.toString())
    engine.receive(proposal(Date.now() + 1), cheat.peerId.toString())
    assert.equal(target.equivocations.length, before + 1)
    assert.equal(target.equivocations.at(-1)!.validator, cheat.peerId.toString())
    // and it is on record in reputation, which gossips
    await waitFor(async () => (await nodes[1].reputation.store.records(cheat.peerId.toString())).some(r => r.event === 'ledger-equivocation' && r.outcome === 'unsatisfactory'), 5000, 'the equivocation in reputation')
  })

  it('anchors the state root in bitcoin and checks every checkpoint against its own history', async () => {
    await waitFor(() => L(nodes[0]).state.checkpoints.size > 0, 30_000, 'a checkpoint on the ledger')
    await regtest.chain.mine(1, regtest.faucetAddress)
    const checks = await L(nodes[4]).verifyCheckpoints()
    assert.ok(checks.length > 0)
    assert.ok(checks.every(c => c.status === 'ok'), JSON.stringify(checks))
    assert.ok((checks[0].confirmations ?? 0) >= 1)
  })

  it('catches a history the validators rewrote: every signature holds, the bitcoin anchor does not', async () => {
    // the first checkpoint of the real ledger, anchored in bitcoin
    const cp = [...L(nodes[0]).state.checkpoints.values()].sort((a, b) => a.height - b.height)[0]
    assert.ok(cp != null, 'a checkpoint on the ledger')
    // three of the four validators (enough for any commit) sign another
    // history from genesis: block 1 makes a different pool, the rest are
    // empty, and the checkpoint names the real bitcoin transaction
    const genesis = L(nodes[0]).genesis
    const id = L(nodes[0]).id
    const state = new LedgerState(genesis, id)
    const colluders = nodes.slice(0, 3)
    let time = genesis.time + 1
    const forged: Uint8Array[] = []
    const makeBlock = (txs: SignedTx[]): void => {
      const height = state.height + 1
      const eligible = state.validators.filter(v => v !== state.lastProposer)
      const proposer = eligible[height % eligible.length]
      time += 10
      const dryRun = state.dryRun({ txs, header: { time, height } })
      const header = { ledger: id, height, round: 0, time, prev: state.lastHash, proposer, txRoot: txRootOf(txs), appHash: dryRun.appHash }
      const block: Block = { header, txs, hash: sha256(encodeHeader(header)) }
      const votes = colluders.map(n => signVote(id, { type: 'precommit', height, round: 0, block: block.hash, voter: n.peerId.toString() }, n.signer))
      forged.push(new Writer().bytes(encodeBlock(block)).bytes(encodeCommit({ round: 0, votes: votes.map(v => ({ voter: v.voter, signature: v.signature })) })).finish())
      state.apply(block, dryRun)
    }
    makeBlock([signTx({ ledger: id, sender: nodes[0].peerId.toString(), time: time++, body: { kind: 'pool', name: 'rewritten', service: 'sha256', creditSat: 1_000_000n, quantity: 1, ttlMs: 600_000, perRequester: 1 } }, nodes[0].signer)])
    while (state.height < cp.height) {
      makeBlock([])
    }
    const forgedRoot = state.roots.get(cp.height)!
    assert.notEqual(forgedRoot, cp.stateRoot)
    makeBlock([signTx({ ledger: id, sender: nodes[1].peerId.toString(), time: time++, body: { kind: 'checkpoint', height: cp.height, stateRoot: Buffer.from(forgedRoot, 'hex'), btcTxid: cp.btcTxid } }, nodes[1].signer)])

    // a node that joins late is handed the rewritten history: it syncs (the signatures are real) ...
    const store = new LevelDatastore(join(dir.path, 'late-rewritten'))
    await store.open()
    const key = await generateKeyPair('Ed25519')
    const chain = nodes[0].chain!
    let served = false
    const late = new CloudLedger({
      peerId: peerIdFromPrivateKey(key),
      signer: openCloudSigner(key),
      datastore: store,
      pubsub: noPubsub,
      fetchBlocks: async () => { const w = new Writer().varint(served ? 0 : forged.length); if (!served) forged.forEach(b => w.bytes(b)); served = true; return w.finish() },
      bitcoinTx: async (txid) => ({ scripts: (await chain.transaction(txid)).outputs.map(o => o.scriptPubKey), confirmations: await chain.confirmations(txid) })
    }, { genesis })
    try {
      assert.equal(await late.syncFrom('colluders'), cp.height + 1)
      assert.ok(late.poolViews().some(p => p.name === 'rewritten'))
      // ... and bitcoin says otherwise
      const checks = await late.verifyCheckpoints()
      assert.equal(checks.length, 1)
      assert.equal(checks[0].status, 'mismatch')
      assert.equal(checks[0].problem, `bitcoin holds state root ${cp.stateRoot} for height ${cp.height}; this node's history gives ${forgedRoot}`)
    } finally {
      await store.close()
    }
  })

  it('takes gossip score from a peer that sends a forged proposal or a forged final block, and nothing of it reaches the ledger', async () => {
    // a node outside the ledger's validators, connected to all of them
    const mallory = await OpenCloudNode.create({ dataDir: join(dir.path, 'mallory'), config, bootstrap: [addrOf(nodes[0])] })
    await mallory.start()
    try {
      for (const n of nodes.slice(0, 4)) {
        await connect(mallory, n)
      }
      const ledger = L(nodes[0])
      const topic = ledger.topics.consensus
      await waitFor(() => mallory.libp2p.services.pubsub.getSubscribers(topic).length >= 4, 10_000, 'mallory to see the validators on the topic')
      const scored = nodes[0].libp2p.services.pubsub as unknown as { getScore: (peer: string) => number }
      const rejected = (): number => ledger.rejections.get(mallory.peerId.toString()) ?? 0
      const forged: Block[] = []
      // messages for a height that became final meanwhile are ignored unread,
      // so mallory tries again at the next height (a block comes about each second)
      for (let attempt = 0; attempt < 5 && rejected() < 2; attempt++) {
        const height = ledger.state.height + 1
        const header = { ledger: ledger.id, height, round: 0, time: Date.now(), prev: ledger.state.lastHash, proposer: nodes[1].peerId.toString(), txRoot: txRootOf([]), appHash: ledger.state.appHash }
        const block: Block = { header, txs: [], hash: sha256(encodeHeader(header)) }
        forged.push(block)
        // a proposal in validator 1's name, signed by mallory
        const proposal = signProposal(ledger.id, { height, round: 0, validRound: -1, block, blockBytes: encodeBlock(block), proposer: nodes[1].peerId.toString() }, mallory.signer)
        await mallory.libp2p.services.pubsub.publish(topic, encodeMessage({ type: 'proposal', proposal }))
        // a "final" block whose commit mallory signed for three validators
        const votes = nodes.slice(0, 3).map(n => signVote(ledger.id, { type: 'precommit', height, round: 0, block: block.hash, voter: n.peerId.toString() }, mallory.signer))
        await mallory.libp2p.services.pubsub.publish(topic, encodeMessage({ type: 'commit', block, blockBytes: encodeBlock(block), commit: { round: 0, votes: votes.map(v => ({ voter: v.voter, signature: v.signature })) } }))
        await waitFor(() => rejected() >= 2, 2000, 'both messages rejected').catch(() => {})
      }
      assert.ok(rejected() >= 2, `${rejected()} of mallory's messages rejected`)
      // gossipsub recomputes scores at its heartbeat
      await waitFor(() => scored.getScore(mallory.peerId.toString()) < 0, 5000, `mallory's score below zero (it is ${scored.getScore(mallory.peerId.toString())})`)
      for (const n of nodes.slice(0, 4)) {
        for (const block of forged) {
          const b = await L(n).block(block.header.height)
          assert.notEqual(b == null ? '' : hex(b.block.hash), hex(block.hash), 'the forged block is on no node')
        }
      }
    } finally {
      await mallory.stop()
    }
  })

  it('adds a validator by a majority vote with its signed statement, and a late node syncs everything', async () => {
    const candidate = nodes[4]
    const evidence = L(candidate).candidateEvidence('node 4 of the test network, run by the test suite')
    await L(nodes[0]).submit({ kind: 'vote', add: true, candidate: candidate.peerId.toString(), evidence })
    assert.equal(L(nodes[0]).state.validators.length, 4, 'one vote of four is not a majority')
    await L(nodes[1]).submit({ kind: 'vote', add: true, candidate: candidate.peerId.toString(), evidence })
    assert.equal(L(nodes[0]).state.validators.length, 4, 'two of four is not a majority')
    await L(nodes[3]).submit({ kind: 'vote', add: true, candidate: candidate.peerId.toString(), evidence })
    assert.ok(L(nodes[3]).state.validators.includes(candidate.peerId.toString()))
    await waitFor(() => nodes.every(n => L(n).state.validators.length === 5), 10_000, 'every node sees five validators')
    assert.equal(L(candidate).status().validator, true)
    // a vote with a statement the candidate did not sign fails
    const bogus = L(nodes[0]).candidateEvidence('someone else')
    await assert.rejects(L(nodes[0]).submit({ kind: 'vote', add: true, candidate: nodes[3].peerId.toString(), evidence: bogus }), /is a validator already|evidence does not verify/)
    // blocks still become final with five validators
    await L(candidate).submit({ kind: 'pool', name: 'by-new-member', service: 'sha256', creditSat: 10n, quantity: 1, ttlMs: 600_000, perRequester: 1 })
    // a node that joins now syncs the whole history, checking each certificate
    const late = await start(5)
    await waitFor(() => L(late).state.height >= L(nodes[0]).state.height - 1 && L(late).state.height > 5, 30_000, 'the late node synced')
    const h = L(late).state.height
    assert.equal(hex((await L(late).block(h))!.block.hash), hex((await L(nodes[0]).block(h))!.block.hash))
    assert.equal(L(late).state.validators.length, 5)
    assert.equal(L(late).codeView(codes[0])?.state, 'redeemed')
  })
})

/** The redemptions `node` queued, signed by itself, while `run` ran */
async function redemptionsQueued (node: OpenCloudNode, run: () => Promise<void>): Promise<string[]> {
  const queued: string[] = []
  const watch = (evt: CustomEvent<SignedTx>): void => {
    if (evt.detail.tx.sender === node.peerId.toString() && evt.detail.tx.body.kind === 'redeem') {
      queued.push(hex(evt.detail.id))
    }
  }
  L(node).mempool.addEventListener('tx', watch)
  try {
    await run()
  } finally {
    L(node).mempool.removeEventListener('tx', watch)
  }
  return queued
}

async function findTx (ledger: CloudLedger, id: string): Promise<Uint8Array> {
  for (let h = ledger.state.height; h >= 1; h--) {
    const b = await ledger.block(h)
    const t = b?.block.txs.find(t => hex(t.id) === id)
    if (t != null) {
      return t.bytes
    }
  }
  throw new Error(`no transaction ${id}`)
}
