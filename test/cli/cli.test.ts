import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, stat, writeFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'node:http'
import { Writable } from 'node:stream'
import { spawn } from 'node:child_process'
import { tempDir } from '../helpers/nodes.ts'
import { BIN, runCli, startDaemon, type Daemon } from '../helpers/cli.ts'
import { CLI } from '../../src/utils/cli-name.ts'
import { CLOSED_PIPE_EXIT, main } from '../../src/cli/main.ts'

const sha256hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex')

/** The CLI's main() in this process, with what it wrote */
async function runMain (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  const written = { stdout: '', stderr: '' }
  const sink = (key: 'stdout' | 'stderr'): Writable => new Writable({ write (chunk, _enc, done) { written[key] += String(chunk); done() } })
  const code = await main(args, sink('stdout'), sink('stderr'))
  return { code, ...written }
}

describe('the opencloud-node command line against running daemons', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let server: Daemon
  let client: Daemon
  let serverDir: string
  let clientDir: string

  before(async () => {
    dir = await tempDir()
    serverDir = join(dir.path, 'server')
    clientDir = join(dir.path, 'client')
    server = await startDaemon(serverDir)
    client = await startDaemon(clientDir, ['--bootstrap', server.addrs[0]])
  })

  after(async () => {
    await client?.stop()
    await server?.stop()
    await dir?.cleanup()
  })

  it('shows who the node is', async () => {
    const { code, stdout } = await runCli(['id', '--json', '--data-dir', clientDir])
    assert.equal(code, 0)
    const info = JSON.parse(stdout)
    assert.equal(info.peerId, client.peerId)
    assert.deepEqual(info.services, ['info', 'peers', 'payments', 'market', 'reputation', 'sha256', 'storage'])
    const human = await runCli(['--data-dir', clientDir, 'id'])
    assert.match(human.stdout, new RegExp(`PeerId\\s+${client.peerId}`))

    // --listen and --api given at start are kept for the next start
    const config = JSON.parse(await readFile(join(clientDir, 'config.json'), 'utf8'))
    assert.deepEqual(config.listen, ['/ip4/127.0.0.1/tcp/0'])
    assert.equal(config.api, '127.0.0.1:0')
  })

  it('calls sha256.hash on a peer with a file body, with stdin, and into a file', async () => {
    const file = join(dir.path, 'body.txt')
    await writeFile(file, 'the quick brown fox')
    const fromFile = await runCli(['--data-dir', clientDir, 'call', server.peerId, 'sha256.hash', '--body', file, '--json'])
    assert.equal(fromFile.code, 0, fromFile.stderr)
    const answer = JSON.parse(fromFile.stdout)
    assert.equal(answer.status, 'ok')
    assert.equal(answer.server, server.peerId)
    assert.equal(answer.bodyHex, sha256hex('the quick brown fox'))

    const fromStdin = await runCli(['call', server.addrs[0], 'sha256.hash', '--body', '-', '--data-dir', clientDir], { stdin: 'from stdin' })
    assert.equal(fromStdin.code, 0, fromStdin.stderr)
    // stdout is a pipe here, so the 32 raw bytes come out as they are
    assert.equal(fromStdin.stdoutBytes.toString('hex'), sha256hex('from stdin'))

    const out = join(dir.path, 'digest.bin')
    const toFile = await runCli(['call', server.peerId, 'sha256.hash', '--body', file, '--out', out, '--data-dir', clientDir])
    assert.equal(toFile.code, 0, toFile.stderr)
    assert.equal((await readFile(out)).toString('hex'), sha256hex('the quick brown fox'))
  })

  it('shows methods with their pricing units and quotes', async () => {
    const methods = await runCli(['call', server.peerId, 'sha256.methods', '--json', '--data-dir', clientDir])
    const hash = JSON.parse(methods.stdout).body.find((m: any) => m.name === 'hash')
    assert.equal(hash.unit, 'MiB')
    const quote = await runCli(['call', server.peerId, 'sha256.quote', 'hash', '3', '--json', '--data-dir', clientDir])
    assert.equal(JSON.parse(quote.stdout).body.units, 3)
  })

  it('lists peers and finds the peers offering a service', async () => {
    const peers = JSON.parse((await runCli(['peers', '--json', '--data-dir', clientDir])).stdout)
    assert.ok(peers.some((p: any) => p.id === server.peerId && p.connected))
    const services = JSON.parse((await runCli(['services', '--json', '--data-dir', serverDir])).stdout)
    assert.deepEqual(services.map((s: any) => s.name), ['info', 'peers', 'payments', 'market', 'reputation', 'sha256', 'storage'])
  })

  it('reports a refused call in one sentence with a non-zero exit code', async () => {
    const refused = await runCli(['call', server.peerId, 'compute.run', '--data-dir', clientDir])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^opencloud-node: client-error\/service-unsupported: this node does not run a "compute" service/)
    const json = await runCli(['call', server.peerId, 'compute.run', '--json', '--data-dir', clientDir])
    assert.equal(json.code, 1)
    // errors stay on stderr with --json, so stdout only ever carries answers
    assert.equal(json.stdout, '')
    assert.equal(JSON.parse(json.stderr).error.status, 'client-error/service-unsupported')
  })

  it('explains usage mistakes with exit code 2', async () => {
    const bad = await runCli(['call', server.peerId, 'nodot', '--data-dir', clientDir])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /is not <service>\.<method>/)
    const unknownFlag = await runCli(['id', '--bogus', '--data-dir', clientDir])
    assert.equal(unknownFlag.code, 2)
    assert.match(unknownFlag.stderr, /--bogus/)
    const help = await runCli(['call', '--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /Usage: (npx )?opencloud-node call <peer>/)
    // a subcommand's help is its own part of the command's help
    const putHelp = await runCli(['store', 'put', '--help'])
    assert.equal(putHelp.code, 0)
    assert.match(putHelp.stdout, /^Usage: (npx )?opencloud-node store put <file\|folder>\.\.\. .*\n\n {2}store put <file\|folder>\.\.\.\n(?: {26}.*\n)+ {4}--name N/)
    assert.match(putHelp.stdout, /--duration D .*90min, 12h, 30d/)
    assert.doesNotMatch(putHelp.stdout, /store get|store rm/)
    assert.match(putHelp.stdout, /All of "store": (npx )?opencloud-node store --help/)
    assert.match((await runCli(['store', 'frob', '--help'])).stdout, /store get <name\|id>/, 'an unknown subcommand gets the whole help')
    // mistakes in what a call pays or a wallet sends are usage mistakes too,
    // caught before anything is sent
    const mistakes: Array<[string[], RegExp]> = [
      [['call', server.peerId, 'sha256.hash', '--pay', 'bogus'], /--pay takes auto, none, attached:<amount>, defer:<amount>, channel:<amount> (.*) or promo:<code>/],
      [['call', server.peerId, 'sha256.hash', '--pay', 'promo:abc'], /--pay promo:<code> takes a promo code of 64 hex digits/],
      [['call', server.peerId, 'sha256.hash', '--pay', 'auto', '--max-price', 'lots'], /--max-price "lots" is not an amount/],
      [['call', server.peerId, 'sha256.hash', '--pay', 'auto'], /--pay auto needs --max-price/],
      [['call', server.peerId, 'sha256.hash', '--pay', 'auto', '--max-price', '0.0001'], /--max-price "0.0001" has no unit: write "0.0001 BTC" or a whole number of satoshis such as "10000 sat"/],
      [['call', server.peerId, 'sha256.hash', '--pay', 'attached:-5sat'], /can't be negative/],
      [['call', server.peerId, 'sha256.hash', '--pay', 'auto', '--max-price', '21000001 BTC'], /more than the 21,000,000 BTC/],
      [['wallet', 'send', 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080', 'abc'], /the amount to send "abc" is not an amount/],
      [['market', 'price', 'set', 'sha256.hash', '-3'], /a price can't be negative/],
      [['reputation', 'show', 'notapeer'], /"notapeer" is not a PeerId/]
    ]
    for (const [args, message] of mistakes) {
      const result = await runCli([...args, '--data-dir', clientDir])
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, message)
    }
  })

  it('finds every usage mistake it can see before it asks the daemon, names the flag as typed, and exits 2', async () => {
    // no daemon has ever run here: a mistake must be found before the CLI looks for one
    const nowhere = join(dir.path, 'no-node')
    const file = join(dir.path, 'body.txt')
    await writeFile(file, 'x')
    const mistakes: Array<[string[], RegExp]> = [
      [['store', 'put', file, '--redundancy', '9-of-4'], /^opencloud-node: --redundancy takes K-of-N with 1 <= K <= N <= 255, e\.g\. 4-of-8 .*not "9-of-4"\n$/],
      [['store', 'put', file, '--duration', 'forever'], /^opencloud-node: --duration takes a period such as 90min, 12h or 30d, not "forever"\n$/],
      [['store', 'put', file, '--duration', '400d'], /^opencloud-node: --duration "400d" is longer than hosts sign contracts for: at most 366 days\n$/],
      [['store', 'put', file, '--max-price=0.0001'], /^opencloud-node: --max-price "0\.0001" has no unit: write "0\.0001 BTC" or a whole number of satoshis such as "10000 sat"\n$/],
      [['store', 'put', join(dir.path, 'nosuchfile')], /^opencloud-node: there is no file "[^"(]*nosuchfile": give the path of the file to store\n$/],
      [['store', 'put', file, '--max-price', '-5'], /^opencloud-node: --max-price can't be negative\n$/],
      [['store', 'put', file, '--link'], /^opencloud-node: --link does not apply to "store put"; see: .*store --help\n$/],
      [['store', 'ls', '--expires', '7d'], /^opencloud-node: --expires does not apply to "store ls"; see: .*store --help\n$/],
      [['store', 'get', 'x', '--out', join(dir.path, 'no-such-folder', 'x')], /^opencloud-node: --out ".*no-such-folder\/x": there is no folder .*no-such-folder to write it in\n$/],
      [['call', '12D3KooWnotapeerid', 'info.node'], /^opencloud-node: "12D3KooWnotapeerid" is not a peer: give a PeerId \(they look like 12D3KooW\.\.\.\), a multiaddr ending in \/p2p\/<PeerId>, or auto\n$/],
      [['call', 'auto', 'sha256.hash', '--body', dir.path], /^opencloud-node: --body .* is not a file: give a file, or - for standard input\n$/],
      [['peers', 'bogus'], /usage: opencloud-node peers \[find <service>\]/],
      [['market', 'bogus'], /usage: opencloud-node market/],
      [['id', 'extra'], /"id" takes no arguments, not "extra"/],
      [['id', '--api', 'nowhere'], /--api "nowhere" is not where a node's control API listens: give HOST:PORT such as 127\.0\.0\.1:4101/],
      [['daemon', '--api', '0.0.0.0:4101'], /^opencloud-node: --api "0\.0\.0\.0:4101" must be a loopback host and port/],
      [['daemon', '--log-level', 'loud'], /--log-level must be one of error, warn, info, debug, trace, not "loud"/]
    ]
    // in this process (main() is what the bin runs and returns its exit
    // code): a process each took 11 s for these
    for (const [args, message] of mistakes) {
      const result = await runMain([...args, '--data-dir', nowhere])
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, message, args.join(' '))
    }
    // nothing was made in the data directory of a refused daemon
    await assert.rejects(access(nowhere))
    // (a folder is stored now, one object per file: test/storage/folders.test.ts)
  })

  it('prints hints that run as printed, with the --data-dir they need', async () => {
    const empty = await runCli(['--data-dir', clientDir, 'store', 'ls'])
    assert.equal(empty.code, 0, empty.stderr)
    assert.equal(empty.stdout, `nothing stored yet; store a file with: ${CLI} --data-dir ${clientDir} store put <file>\n`)
    const status = await runCli(['store', 'status', '--data-dir', clientDir])
    assert.equal(status.stdout, `nothing stored yet; store a file with: ${CLI} --data-dir ${clientDir} store put <file>\n`)
    const fresh = join(dir.path, 'restored')
    const restore = await runCli(['wallet', 'restore', '--data-dir', fresh])
    assert.equal(restore.code, 2)
    assert.equal(restore.stderr, `opencloud-node: give the mnemonic on standard input, e.g.: ${CLI} --data-dir ${fresh} wallet restore < words.txt\n`)
  })

  it('ends quietly when its output is closed under it (| head)', async () => {
    for (const args of [['store', 'ls'], ['id'], ['call', server.peerId, 'sha256.hash', '--body', '-']]) {
      const child = spawn(process.execPath, [BIN, ...args, '--data-dir', clientDir], { stdio: ['pipe', 'pipe', 'pipe'] })
      // the reader has gone before the first line is written
      child.stdout.destroy()
      let stderr = ''
      child.stderr.on('data', d => { stderr += d })
      child.stdin.end('x')
      const code = await new Promise<number | null>(resolve => child.once('close', resolve))
      assert.equal(stderr, '', args.join(' '))
      assert.equal(code, CLOSED_PIPE_EXIT, `${args.join(' ')}: ${stderr}`)
    }
  })

  it('says in one sentence when an address is for another bitcoin network', async () => {
    // a mainnet address given to a regtest node's wallet: the address is checked before anything else
    const sent = await runCli(['wallet', 'send', 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', '1000sat', '--data-dir', clientDir])
    assert.equal(sent.code, 1)
    assert.match(sent.stderr, /^opencloud-node: that address is for mainnet, this node runs regtest\n$/)
  })

  it('protects the control API with the token from the data directory', async () => {
    const res = await fetch(`${client.api}/v1/id`)
    assert.equal(res.status, 401)
    const token = (await readFile(join(clientDir, 'api.token'), 'utf8')).trim()
    const ok = await fetch(`${client.api}/v1/id`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(ok.status, 200)
    assert.equal((await stat(join(clientDir, 'api.token'))).mode & 0o777, 0o600)

    // a DNS-rebinding page sends the right token to 127.0.0.1 under its own name
    const raw = async (path: string, headers: Record<string, string>, method = 'GET', body?: string): Promise<{ status: number, text: string }> => {
      const url = new URL(path, client.api)
      return new Promise((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers: { authorization: `Bearer ${token}`, ...headers } }, res => {
          let text = ''
          res.on('data', d => { text += d })
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, text }) })
        })
        req.on('error', reject)
        req.end(body)
      })
    }
    assert.equal((await raw('/v1/id', { host: 'evil.example:80' })).status, 403)
    assert.equal((await raw('/v1/id', { host: `127.0.0.1:${new URL(client.api).port}`, origin: 'http://evil.example' })).status, 403)
    assert.equal((await raw('/v1/id', { host: `localhost:${new URL(client.api).port}` })).status, 200)
    // mistakes in a request are the caller's: 4xx with the reason, never 500
    for (const [path, status, reason] of [
      ['/v1/peers/find?service=sha256&timeout=abc', 400, /timeout must be a whole number above 0, not "abc"/],
      ['/v1/peers/find?service=sha256&timeout=-5', 400, /timeout must be a whole number above 0/],
      ['/v1/reputation?peer=notapeer', 400, /"notapeer" is not a PeerId/]
    ] as const) {
      const answer = await raw(path, {})
      assert.equal(answer.status, status, path)
      assert.match(JSON.parse(answer.text).error.message, reason)
    }
    // a put's options are checked before any host is asked, each named as the API calls it
    for (const [body, reason] of [
      [{ path: '/x', redundancy: '9-of-4' }, /^redundancy takes K-of-N/],
      [{ path: '/x', duration: '400d' }, /^duration "400d" is longer than hosts sign contracts for: at most 366 days$/],
      [{ path: '/x', maxPrice: '0.0001' }, /^maxPrice "0\.0001" has no unit/]
    ] as const) {
      const answer = await raw('/v1/store/put', { 'content-type': 'application/json' }, 'POST', JSON.stringify(body))
      assert.equal(answer.status, 400, answer.text)
      assert.match(JSON.parse(answer.text).error.message, reason)
    }
    const big = await raw('/v1/market/price', { 'content-type': 'application/json' }, 'POST', JSON.stringify({ service: 'sha256', method: 'hash', amount: '1 sat', pad: 'x'.repeat(100_000) }))
    assert.equal(big.status, 413)
    const send = await raw('/v1/wallet/send', { 'content-type': 'application/json' }, 'POST', '[1,2]')
    assert.equal(send.status, 400)
  })

  it('refuses a second daemon on a data directory in use', async () => {
    const second = await runCli(['daemon', '--data-dir', serverDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0'])
    assert.equal(second.code, 1)
    assert.match(second.stderr, /another node is running with the data directory/)
  })
})

describe('the daemon', () => {
  it('keeps its identity across a restart and shuts down cleanly', async () => {
    const dir = await tempDir()
    try {
      const first = await startDaemon(dir.path)
      const { code, signal, lines, stderr } = await first.stop()
      assert.equal(code, 0, `exit code ${code}, signal ${signal}, stderr: ${stderr}`)
      assert.deepEqual(lines.at(-1), { event: 'stopped', peerId: first.peerId })
      await assert.rejects(access(join(dir.path, 'api.json')), 'api.json is removed on stop')
      assert.equal((await stat(join(dir.path, 'identity.key'))).mode & 0o777, 0o600)

      const second = await startDaemon(dir.path)
      assert.equal(second.peerId, first.peerId)
      await second.stop()
    } finally {
      await dir.cleanup()
    }
  })

  it('stops when `stop` asks it from another terminal, and gives the address to join it through', async () => {
    const dir = await tempDir()
    let daemon: Daemon | undefined
    try {
      daemon = await startDaemon(dir.path)
      const { child } = daemon
      const address = await runCli(['id', '--address', '--data-dir', dir.path])
      assert.equal(address.code, 0, address.stderr)
      assert.equal(address.stdout, `${daemon.addrs[0].replace(/\/p2p\/.*$/, '')}/p2p/${daemon.peerId}\n`)

      const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
      const stopped = await runCli(['stop', '--json', '--data-dir', dir.path])
      assert.equal(stopped.code, 0, stopped.stderr)
      assert.deepEqual(JSON.parse(stopped.stdout), { stopped: true, peerId: daemon.peerId, dataDir: dir.path })
      // it returns once the daemon is gone, and the daemon stopped cleanly
      assert.equal(child.exitCode ?? child.signalCode ?? 'running', 0)
      assert.equal(await exited, 0)
      await assert.rejects(access(join(dir.path, 'api.json')), 'api.json is removed on stop')

      const again = await runCli(['stop', '--data-dir', dir.path])
      assert.equal(again.code, 0, again.stderr)
      assert.match(again.stdout, /no node is running with the data directory/)
    } finally {
      if (daemon != null && daemon.child.exitCode == null) {
        await daemon.stop()
      }
      await dir.cleanup()
    }
  })

  it('refuses a garbage config with the field that is wrong', async () => {
    const dir = await tempDir()
    try {
      await writeFile(join(dir.path, 'config.json'), JSON.stringify({ listen: 5 }))
      const bad = await runCli(['daemon', '--data-dir', dir.path])
      assert.equal(bad.code, 1)
      assert.match(bad.stderr, /config\.json: listen must be a list of strings/)

      await writeFile(join(dir.path, 'config.json'), '{ not json')
      const notJson = await runCli(['daemon', '--data-dir', dir.path])
      assert.match(notJson.stderr, /is not valid JSON/)

      await writeFile(join(dir.path, 'config.json'), JSON.stringify({ policies: { method: { 'sha256.hash': { 'rate-limit': 'fast' } } } }))
      const badPolicy = await runCli(['daemon', '--data-dir', dir.path])
      assert.match(badPolicy.stderr, /rate-limit: "fast" is not a rate limit/)
    } finally {
      await dir.cleanup()
    }
  })
})
