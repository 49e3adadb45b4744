import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { enable, disable } from '@libp2p/logger'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { ApiServer } from '../../src/node/api/api-server.ts'
import { ApiClient } from '../../src/cli/api-client.ts'
import { dataDirPaths, loadOrCreateToken } from '../../src/node/data-dir.ts'
import { RegtestServer } from '../../src/payments/chain/regtest/regtest-server.ts'
import { EsploraClient } from '../../src/payments/chain/esplora.ts'
import { PaymentAgent } from '../../src/payments/payment-agent.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { BadRequestError, NoDeferError, PaymentDeclinedError } from '../../src/protocols/rpc/errors.ts'
import { settlementLine } from '../../src/cli/commands/wallet.ts'
import { formatAmount } from '../../src/protocols/units.ts'
import { testConfig, tempDir } from '../helpers/nodes.ts'
import { runCli, runShell } from '../helpers/cli.ts'
import { readProtocolDoc, sectionOf } from '../helpers/protocol-doc.ts'
import type { CallRequest } from '../../src/protocols/rpc/rpc-client.ts'

/** sat per call of sha256.hash on the server: what a storage put paid a host in issue 17 */
const PRICE = 48n

/**
 * Settling deferred payments under faults (issue 8, items 1 and 2): any
 * number of promises in one transaction, a lost answer that must not make
 * the client pay twice, and a payment that pays off nothing. And when to
 * settle (issue 17, "Money"): only when the fee is in proportion or the debt
 * must be paid, never a fee over the amount, and a tab that cannot be
 * settled said once in the log and where the user looks.
 */
describe('settling deferred payments', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let regtest: RegtestServer
  let chain: EsploraClient
  let server: OpenCloudNode
  const callers: OpenCloudNode[] = []

  const mine = async (): Promise<void> => { await regtest.chain.mine(1, regtest.faucetAddress) }
  const payments = (): Record<string, unknown> => ({ network: 'regtest', chain: regtest.url, settleIntervalMs: 3_600_000, graceMs: 600_000 })

  /** A funded caller whose own settle timer stays out of the way */
  const caller = async (name: string, funds = 2_000_000n): Promise<OpenCloudNode> => {
    const node = await OpenCloudNode.create({ dataDir: `${dir.path}/${name}`, config: testConfig({ payments: payments() }) })
    await node.start()
    callers.push(node)
    // as after the calls that made the promises: the two are connected
    await node.libp2p.dial(server.libp2p.getMultiaddrs()[0])
    await regtest.faucet(await node.wallet.newAddress(), funds)
    await mine()
    return node
  }

  /** `count` promises of `sats` each, due at once (made `ago` ms ago), on both sides' ledgers */
  const owe = async (from: OpenCloudNode, count: number, sats: bigint, ago = 1000, prefix = 'p'): Promise<void> => {
    const createdAt = Date.now() - ago
    for (let i = 0; i < count; i++) {
      const promise = { id: `${prefix}${i}`, sats, threshold: 'completion', service: 'sha256', method: 'hash', createdAt: createdAt + i }
      await from.tabs.addPromise({ ...promise, role: 'payable', peer: server.peerId.toString() })
      await server.tabs.addPromise({ ...promise, role: 'receivable', peer: from.peerId.toString() })
    }
  }

  before(async () => {
    dir = await tempDir()
    regtest = new RegtestServer({ dir: `${dir.path}/chain`, blockIntervalMs: 0 })
    await regtest.start()
    chain = new EsploraClient({ url: regtest.url })
    server = await OpenCloudNode.create({ dataDir: `${dir.path}/server`, config: testConfig({ payments: payments(), services: { sha256: { prices: { hash: Number(PRICE) } } }, policies: { global: { 'max-tab': '1 BTC' } } }) })
    await server.start()
  })

  after(async () => {
    for (const node of callers) {
      await node.stop()
    }
    await server?.stop()
    await regtest?.stop()
    await dir?.cleanup()
  })

  it('settles 10,000 promises with one transaction, far past the 64 ids a call can name', async () => {
    const alice = await caller('alice')
    await owe(alice, 10_000, 30n)
    const [settled] = await alice.payments?.settleDue() ?? []
    assert.equal(settled.ids.length, 10_000)
    const serverTab = await server.tabs.tab('receivable', alice.peerId.toString())
    assert.equal(serverTab.outstanding, 0n)
    assert.equal(serverTab.paid, 300_000n)
    assert.equal((await alice.tabs.tab('payable', server.peerId.toString())).outstanding, 0n)
    const sent = (await alice.tabs.payments()).filter(p => p.direction === 'sent')
    assert.equal(sent.length, 1, 'one transaction')
    assert.equal(sent[0].sats, 300_000n)
  })

  it('pays once when the answer to a settlement is lost, by sending the same transaction again', async () => {
    const bob = await caller('bob')
    await owe(bob, 5, 200n)
    let dropped = 0
    // the server settles, but its answer never reaches the client
    const lossy = async (peer: any, request: CallRequest): Promise<any> => {
      const response = await bob.call(peer, request)
      if (request.method === 'settle' && dropped === 0) {
        dropped++
        throw new Error('connection reset: the answer was lost')
      }
      return response
    }
    const agent = new PaymentAgent({ call: lossy, wallet: bob.wallet, chain, tabs: bob.tabs })
    const before = (await bob.wallet.balance(chain)).confirmed + (await bob.wallet.balance(chain)).unconfirmed
    assert.deepEqual(await agent.settleDue(), [], 'the first round fails')
    assert.equal(dropped, 1)
    const pending = await bob.tabs.pendingSettlement(server.peerId.toString())
    assert.ok(pending != null, 'the transaction is kept for the retry')
    assert.equal((await server.tabs.tab('receivable', bob.peerId.toString())).outstanding, 0n, 'the server did settle')

    const [again] = await agent.settleDue()
    assert.equal(again.txid, pending.txid, 'the same transaction went again')
    assert.deepEqual(again.ids.sort(), ['p0', 'p1', 'p2', 'p3', 'p4'])
    assert.equal((await bob.tabs.tab('payable', server.peerId.toString())).outstanding, 0n)
    assert.equal(await bob.tabs.pendingSettlement(server.peerId.toString()), undefined)
    const received = (await server.tabs.payments()).filter(p => p.peer === bob.peerId.toString() && p.method === 'settle' && !p.txid.endsWith(':settle'))
    assert.equal(received.length, 1, 'the server counted one payment')
    await mine()
    const after = (await bob.wallet.balance(chain)).confirmed
    // 1000 sat owed and paid once, plus that one transaction's fee
    assert.equal(before - after, 1000n + (await chain.transaction(pending.txid)).fee)
  })

  it('refuses, without broadcasting, a settlement that pays off nothing', async () => {
    const carol = await caller('carol')
    const address = JSON.parse(new TextDecoder().decode(await (await carol.call(server.peerId, { service: 'payments', method: 'address' })).body.bytes())).address
    const tx = await carol.wallet.createPayment(chain, [{ address, value: 1000n }])
    await assert.rejects(carol.call(server.peerId, { service: 'payments', method: 'settle', payment: { type: 'attached', currency: 'BTC', amount: '0.00001', txn: Uint8Array.from(Buffer.from(tx.hex, 'hex')) } }), (err: any) => {
      assert.ok(err instanceof PaymentDeclinedError)
      assert.match(err.message, /pays off none of your unpaid deferred payments.*not broadcast/)
      return true
    })
    await assert.rejects(chain.transaction(tx.txid), { name: 'TransactionNotFoundError' })
  })
  const hash = (text: string): CallRequest => ({ service: 'sha256', method: 'hash', body: bodyFromBytes(new TextEncoder().encode(text)) })
  const wallet = async (node: OpenCloudNode): Promise<bigint> => {
    const b = await node.wallet.balance(chain)
    return b.confirmed + b.unconfirmed
  }
  const settlements = async (node: OpenCloudNode) => (await node.tabs.payments()).filter(p => p.direction === 'sent' && p.method === 'settle')

  it('pays small deferred payments once they are worth a settlement, and the summaries show what left the wallet', async () => {
    const dave = await caller('dave')
    const before = await wallet(dave)
    const put = async (i: number) => dave.paidCall(server.peerId, hash(`put ${i}`), { pay: { kind: 'defer', sats: PRICE }, maxPrice: PRICE })
    // ten puts owe 480 sat, less than a settlement is worth at 1 sat/vB (564 sat): nothing is due
    for (let i = 0; i < 10; i++) {
      await put(i)
    }
    assert.deepEqual(await dave.payments?.settleDue(), [])
    assert.equal((await dave.tabs.tab('payable', server.peerId.toString())).due, 0n)
    assert.deepEqual(dave.payments?.settlementStates(), [], 'nothing to explain: nothing is due')
    assert.equal((await server.tabs.tab('receivable', dave.peerId.toString())).due, 0n, 'the server sees the same threshold')
    // two more reach it: one settlement of exactly what is owed
    await put(10)
    await put(11)
    const done = await dave.payments?.settleDue() ?? []
    assert.equal(done.length, 1)
    assert.equal(done[0].ids.length, 12)
    const [sent] = await settlements(dave)
    assert.equal(sent.sats, 12n * PRICE)
    const fee = (await chain.transaction(sent.txid)).fee
    assert.equal(sent.fee, fee)
    assert.ok(fee * 4n <= sent.sats, `a fee of ${fee} sat is at most a quarter of ${sent.sats} sat`)
    assert.equal(before - await wallet(dave), 12n * PRICE + fee, 'what left the wallet')
    const [onChain] = await dave.tabs.onChain()
    assert.deepEqual(onChain, { peer: server.peerId.toString(), sent: 12n * PRICE, fees: fee, received: 0n, transactions: 1 })
    assert.deepEqual(await dave.tabs.costs({ service: 'sha256' }), { promised: 12n * PRICE, unpaid: 0n, paidOnChain: 12n * PRICE, fees: fee, throughChannels: 0n })
    assert.deepEqual(await dave.tabs.costs({ service: 'storage' }), { promised: 0n, unpaid: 0n, paidOnChain: 0n, fees: 0n, throughChannels: 0n })
  })

  it('waits while a settlement\'s fee is more than a quarter of the tab, and pays before it goes overdue', async () => {
    const frank = await caller('frank')
    // fees at 10 sat/vB: a settlement costs 1410 sat, worth it from 5640 sat
    const dear = Object.assign(Object.create(chain), { feeRate: async () => 10 })
    const agent = new PaymentAgent({ call: async (peer, request) => frank.call(peer, request), wallet: frank.wallet, chain: dear, tabs: frank.tabs })
    await owe(frank, 2, 1000n)
    assert.deepEqual(await agent.settleDue(), [])
    const [waiting] = agent.settlementStates()
    assert.equal(waiting.state, 'waiting')
    assert.equal(waiting.code, 'fee-out-of-proportion')
    assert.match(waiting.reason, /fee of about 0.0000141 BTC would be more than a quarter of the 0.00002 BTC owed: it waits for more promises, or until \S+ when it must be paid/)
    assert.equal((await server.tabs.tab('receivable', frank.peerId.toString())).overdue, 0n)
    // a promise due for over half the grace period (5 of 10 minutes): the tab must be paid now, fee and all
    await owe(frank, 1, 100n, 400_000, 'old')
    const [done] = await agent.settleDue()
    assert.equal(done.ids.length, 3)
    const [sent] = await settlements(frank)
    assert.equal(sent.sats, 2100n)
    assert.equal(sent.fee, 1410n)
    assert.deepEqual(agent.settlementStates(), [])
  })

  it('counts a due debt below the dust limit as never overdue, and one that reaches it as overdue past the grace period', async () => {
    const gina = await caller('gina')
    const ask = async (id: string) => gina.call(server.peerId, { ...hash(id), payment: { type: 'defer', currency: 'BTC', amount: '0.00000048', id, threshold: 'time:3600' } })
    const twoHours = 2 * 3600_000
    await server.tabs.addPromise({ role: 'receivable', peer: gina.peerId.toString(), id: 'small', sats: 100n, threshold: 'completion', service: 'sha256', method: 'hash', createdAt: Date.now() - twoHours })
    assert.equal((await ask('g1')).statusName, 'ok', 'due for two hours, but 100 sat cannot be paid on its own: credit as before')
    await server.tabs.addPromise({ role: 'receivable', peer: gina.peerId.toString(), id: 'more', sats: 200n, threshold: 'completion', service: 'sha256', method: 'hash', createdAt: Date.now() - twoHours })
    await assert.rejects(ask('g2'), (err: any) => {
      assert.ok(err instanceof NoDeferError)
      assert.match(err.message, /you owe this node 0.000003 BTC in overdue deferred payments/)
      return true
    })
  })

  describe('when a server refuses credit', () => {
    let picky: OpenCloudNode
    let hal: OpenCloudNode
    const ask = async (what: string, sats: bigint, agent?: PaymentAgent) => {
      const [service, method] = what.split('.')
      const request = { service, method, body: bodyFromBytes(new TextEncoder().encode(`${what} ${sats}`)) }
      const options = { pay: { kind: 'defer' as const, sats }, threshold: 'time:3600' }
      return agent == null ? hal.paidCall(picky.peerId, request, options) : agent.call(picky.peerId, request, options)
    }
    const tabAt = async (node: OpenCloudNode, ...args: string[]): Promise<any> =>
      JSON.parse(new TextDecoder().decode(await (await node.call(picky.peerId, { service: 'payments', method: 'tab', args })).body.bytes()))
    /** a promise of `sats` to picky on both sides, made `ago` ms ago, due in an hour (or at once, `threshold`) */
    const promise = async (id: string, sats: bigint, ago = 0, threshold = 'time:3600'): Promise<void> => {
      const made = { id, sats, threshold, service: 'sha256', method: 'hash', createdAt: Date.now() - ago }
      await hal.tabs.addPromise({ ...made, role: 'payable', peer: picky.peerId.toString() })
      await picky.tabs.addPromise({ ...made, role: 'receivable', peer: hal.peerId.toString() })
    }

    before(async () => {
      // credit up to 3000 sat, but none at all for peers (no-defer), for
      // reputation (a trust score no peer has), or for info.node (max-tab 0)
      picky = await OpenCloudNode.create({
        dataDir: `${dir.path}/picky`,
        config: testConfig({
          payments: payments(),
          services: { sha256: { prices: { hash: Number(PRICE) } } },
          policies: { global: { 'max-tab': '0.00003 BTC' }, service: { peers: { 'no-defer': true }, reputation: { 'defer-min-trust': 50 } }, method: { 'info.node': { 'max-tab': 0 } } }
        })
      })
      await picky.start()
      callers.push(picky)
      hal = await caller('hal')
      await hal.libp2p.dial(picky.libp2p.getMultiaddrs()[0])
      await promise('h1', 1000n)
      await promise('h2', 1000n)
    })

    it('says in payments.tab, for a method named, the credit it gives the caller (PROTOCOL.md 8a)', async () => {
      const documented = JSON.parse(/```json\n([\s\S]*?)```/.exec(sectionOf(await readProtocolDoc(), '### payments service'))?.[1] ?? 'null')
      const answer = await tabAt(hal, 'sha256.hash')
      assert.deepEqual({ ...answer, peer: documented.peer }, documented, 'the answer PROTOCOL.md prints for 0.00002 BTC owed under a max-tab of 0.00003 BTC')
      assert.equal(answer.peer, hal.peerId.toString())
      assert.deepEqual((await tabAt(hal, 'peers.list')).credit, { maxTab: '0.00003 BTC', refused: true }, 'no-defer')
      assert.deepEqual((await tabAt(hal, 'reputation.show')).credit, { maxTab: '0.00003 BTC', refused: true }, 'defer-min-trust')
      assert.deepEqual((await tabAt(hal, 'info.node')).credit, { maxTab: '0 BTC', refused: false }, 'max-tab 0')
      assert.equal((await tabAt(hal)).credit, undefined, 'without a method, the tab alone')
      for (const args of [['sha256'], ['sha256.hash', 'peers.list'], ['Sha256.hash']]) {
        await assert.rejects(tabAt(hal, ...args), BadRequestError, args.join(' '))
      }
    })

    it('settles for credit only when the refusal is about the tab, by the fee-share rule unless the tab must be paid', async () => {
      const settled = async (): Promise<number> => (await settlements(hal)).length
      const owed = async (): Promise<bigint> => (await picky.tabs.tab('receivable', hal.peerId.toString())).outstanding
      // 2000 sat owed, nothing due, a settlement worth its fee (141 sat): but
      // none of these refusals is about the tab
      const refusals: Array<[string, bigint, RegExp]> = [
        ['peers.list', 100n, /does not accept deferred payment for peers.list; the server gives this node no credit for peers.list whatever it owes/],
        ['reputation.show', 100n, /trust score of at least 50; yours is .*; the server gives this node no credit for reputation.show whatever it owes/],
        ['info.node', 100n, /max-tab 0.*; the server gives this node no credit for info.node whatever it owes/],
        ['sha256.hash', 4000n, /over this node's max-tab of 0.00003 BTC; the promise of 0.00004 BTC is over the server's max-tab of 0.00003 BTC for sha256.hash: settling would not make room/]
      ]
      for (const [what, sats, message] of refusals) {
        await assert.rejects(ask(what, sats), (err: any) => {
          assert.equal(err.name, 'BiddingError')
          assert.match(err.message, message)
          return true
        }, what)
        assert.equal(await settled(), 0, `${what}: nothing was settled`)
      }
      // an older server, whose payments.tab says nothing of credit
      const older = new PaymentAgent({
        call: async (peer, request) => {
          const response = await hal.call(peer, request)
          if (request.method !== 'tab') {
            return response
          }
          const { credit, ...tab } = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
          const bytes = new TextEncoder().encode(JSON.stringify(tab))
          return { ...response, body: { ...response.body, length: bytes.byteLength, bytes: async () => bytes } }
        },
        wallet: hal.wallet,
        chain,
        tabs: hal.tabs
      })
      await assert.rejects(ask('sha256.hash', 1500n, older), /over this node's max-tab of 0.00003 BTC; the server does not say what credit it gives for sha256.hash/)
      assert.equal(await settled(), 0, 'nothing was settled')
      assert.equal(await owed(), 2000n)

      // over max-tab: settled (a fee of 141 sat, under a quarter of 2000), and asked again
      const room = await ask('sha256.hash', 1500n)
      assert.equal(room.payment?.type, 'defer')
      assert.match(room.decisions[0], /^no-defer: your tab would reach 0.000035 BTC, over this node's max-tab of 0.00003 BTC; settled 0.00002 BTC owed in [0-9a-f]{64} and asking again$/)
      assert.equal(await settled(), 1)
      assert.equal(await owed(), 1500n)

      // at 10 sat/vB a settlement (1410 sat) is more than a quarter of the 1500 owed: it waits
      const dear = Object.assign(Object.create(chain), { feeRate: async () => 10 })
      const dearAgent = new PaymentAgent({ call: async (peer, request) => hal.call(peer, request), wallet: hal.wallet, chain: dear, tabs: hal.tabs })
      await assert.rejects(ask('sha256.hash', 2000n, dearAgent), /over this node's max-tab of 0.00003 BTC; the tab with it is not settled now: the fee would be 0.0000141 BTC, more than a quarter of the 0.000015 BTC owed/)
      assert.equal(await settled(), 1)
      // ...until the tab must be paid: 600 sat overdue, and the fee may be up to the whole tab
      await promise('late', 600n, 700_000, 'completion')
      const paid = await ask('sha256.hash', PRICE, dearAgent)
      assert.match(paid.decisions[0], /^no-defer: you owe this node 0.000006 BTC in overdue deferred payments; .*; settled 0.000021 BTC owed in [0-9a-f]{64} and asking again$/)
      const [last] = await settlements(hal)
      assert.equal(last.sats, 2100n)
      assert.equal(last.fee, 1410n)
      assert.equal(await settled(), 2)
      assert.equal(await owed(), PRICE)
    })
  })

  it('never pays a fee over the amount; says why a tab cannot be settled once in the log, in payments tabs with a hint that runs, and for store status', async () => {
    // a nearly empty wallet: one coin of 700 sat
    const erin = await caller('erin', 700n)
    const paths = dataDirPaths(`${dir.path}/erin`)
    const token = await loadOrCreateToken(paths.apiToken)
    const api = new ApiServer(erin, { host: '127.0.0.1', port: 0, token })
    await api.start()
    const lines: string[] = []
    const write = process.stderr.write
    // the agent's log on top of whatever DEBUG the run has, and that again after
    const debug = process.env.DEBUG
    enable([debug, 'opencloud:payments:agent*'].filter(d => d != null && d !== '').join(','))
    process.stderr.write = ((chunk: any, ...rest: any[]) => {
      lines.push(String(chunk))
      return write.call(process.stderr, chunk, ...rest)
    }) as typeof process.stderr.write
    try {
      // 300 sat due for over half the grace period: it must be paid, but its
      // fee would be 141 sat plus the 259 sat change too small to keep
      await owe(erin, 1, 300n, 400_000, 'e')
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await erin.payments?.settleDue(), [])
      }
      assert.equal((await settlements(erin)).length, 0)
      assert.equal(await wallet(erin), 700n, 'nothing was spent')
      const [state] = erin.payments?.settlementStates() ?? []
      assert.equal(state.code, 'fee-over-amount')
      assert.match(state.reason, /the fee would be 0.000004 BTC \(0.00000259 BTC of it change too small to keep\), more than the 0.000003 BTC it may be/)
      // more owed than the wallet holds: another reason, said once more
      await owe(erin, 1, 2000n, 1000, 'f')
      for (let i = 0; i < 2; i++) {
        await erin.payments?.settleDue()
      }
      const said = lines.filter(l => /cannot settle with/.test(l))
      assert.equal(said.length, 2, `one line per reason, not one per round: ${said.join('')}`)
      assert.match(said[1], /the wallet has 0.000007 BTC spendable; 0.000023 BTC plus a fee of about 0.00000141 BTC is needed: fund the wallet/)
      assert.doesNotMatch(said.join(''), / sat\b.*needed|about 0 sat/)

      const tabs = await (await fetch(`${api.url}/v1/payments/tabs`, { headers: { authorization: `Bearer ${token}` } })).json() as any
      assert.equal(tabs.payable[0].settlement.state, 'failing')
      assert.equal(tabs.payable[0].settlement.code, 'insufficient-funds')
      assert.deepEqual(tabs.payable[0].settlement.hint.command, ['wallet', 'address'])
      const cli = await runCli(['--data-dir', paths.root, '--api', api.url, 'payments', 'tabs'])
      assert.equal(cli.code, 0, cli.stderr)
      assert.match(cli.stdout, /I owe .* cannot settle/)
      const hint = /^ {2}send bitcoin to the address this prints: (.*)$/m.exec(cli.stdout)?.[1]
      assert.ok(hint != null, cli.stdout)
      const address = await runShell(hint)
      assert.equal(address.code, 0, address.stderr)
      assert.equal(address.stdout.trim(), erin.wallet.identityAddress)
      const line = await settlementLine(new ApiClient({ url: api.url, token }), { 'data-dir': paths.root })
      assert.match(line ?? '', /^payments: the tab with \S+ cannot be settled: the wallet has .*; see: .* --data-dir \S+ payments tabs$/)

      // funded, it pays, and says so
      await regtest.faucet(erin.wallet.identityAddress, 10_000n)
      await mine()
      const [done] = await erin.payments?.settleDue() ?? []
      assert.equal(done.ids.length, 2)
      assert.deepEqual(erin.payments?.settlementStates(), [])
      assert.equal(await settlementLine(new ApiClient({ url: api.url, token }), {}), undefined)
      assert.ok(lines.some(l => /is settled again/.test(l)))

      // the summary shows what left the wallet: the settlement and its fee
      const [sent] = await settlements(erin)
      const summary = await (await fetch(`${api.url}/v1/payments/summary`, { headers: { authorization: `Bearer ${token}` } })).json() as any
      assert.equal(summary.since, new Date((await erin.tabs.promises('payable'))[0].createdAt).toISOString(), 'from the first promise, not 1970')
      assert.deepEqual([summary.total.spent, summary.total.paidOnChain, summary.total.fees, summary.total.paidWithFees], ['0.000023 BTC', '0.000023 BTC', formatAmount(sent.fee ?? 0n), formatAmount(2300n + (sent.fee ?? 0n))])
      const text = await runCli(['--data-dir', paths.root, '--api', api.url, 'payments', 'summary'])
      assert.match(text.stdout, /^since the first payment, \S+, to \S+\n/)
      const literal = (amount: bigint): string => formatAmount(amount).replace('.', '\\.')
      assert.match(text.stdout, new RegExp(`\\ntotal +0\\.000023 BTC +${literal(sent.fee ?? 0n)} +${literal(2300n + (sent.fee ?? 0n))} +0 BTC\\n$`))
    } finally {
      process.stderr.write = write
      if (debug == null || debug === '') {
        disable()
      } else {
        enable(debug)
      }
      await api.stop()
    }
    // the run's own DEBUG namespaces are on again, and no others
    assert.equal(process.env.DEBUG ?? '', debug ?? '')
  })
})
