import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { readFile } from 'node:fs/promises'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { payments } from 'bitcoinjs-lib'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { logger } from '@libp2p/logger'
import { RegtestChain, COINBASE_MATURITY } from './chain.ts'
import { TransactionRejectedError, TransactionNotFoundError } from '../errors.ts'
import { buildTransaction } from '../../wallet/tx-builder.ts'
import { writeFileAtomic } from '../../../utils/files.ts'
import { parseAmount } from '../../../protocols/units.ts'
import { HttpError, readSmallBody } from '../../../utils/http-body.ts'

const log = logger('opencloud:regtest:server')

export interface RegtestServerInit {
  /** Where the chain keeps its LevelDB and its faucet key */
  dir: string
  /** default 127.0.0.1 */
  host?: string
  /** default 0: any free port */
  port?: number
  /** Mine a block this often when the mempool is not empty, default 10 s; 0 disables */
  blockIntervalMs?: number
}

/**
 * The local regtest chain behind the Esplora HTTP API (the API of public
 * block explorers and of electrs), plus two development routes:
 * `POST /regtest/mine` and `POST /regtest/faucet`. Nodes talk to it with the
 * same Esplora client they use for the real networks.
 */
export class RegtestServer {
  readonly chain: RegtestChain
  private readonly init: RegtestServerInit
  private server?: Server
  private timer?: ReturnType<typeof setInterval>
  private faucetKey!: Uint8Array
  faucetAddress = ''
  url = ''

  constructor (init: RegtestServerInit) {
    this.init = init
    this.chain = new RegtestChain({ path: join(init.dir, 'chain') })
  }

  async start (): Promise<void> {
    await mkdir(this.init.dir, { recursive: true })
    await this.chain.open()
    const keyPath = join(this.init.dir, 'faucet.key')
    try {
      this.faucetKey = Uint8Array.from(Buffer.from((await readFile(keyPath, 'utf8')).trim(), 'hex'))
    } catch {
      this.faucetKey = Uint8Array.from(randomBytes(32))
      await writeFileAtomic(keyPath, Buffer.from(this.faucetKey).toString('hex') + '\n', 0o600)
    }
    this.faucetAddress = payments.p2wpkh({ pubkey: secp256k1.getPublicKey(this.faucetKey, true), network: this.chain.network }).address as string
    if (this.chain.height < COINBASE_MATURITY + 10) {
      // mature coinbase outputs for the faucet to spend
      await this.chain.mine(COINBASE_MATURITY + 10 - this.chain.height, this.faucetAddress)
    }
    const server = createServer((req, res) => {
      this.route(req, res).catch((err: any) => {
        const status = err instanceof HttpError ? err.status : err instanceof TransactionRejectedError ? 400 : err instanceof TransactionNotFoundError ? 404 : 500
        if (status === 500) {
          log.error('%s %s - %e', req.method, req.url, err)
        }
        res.writeHead(status, { 'content-type': 'text/plain' })
        res.end(err instanceof TransactionRejectedError ? `${err.name}: ${err.message}` : err.message)
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.init.port ?? 0, this.init.host ?? '127.0.0.1', () => { resolve() })
    })
    this.server = server
    const address = server.address()
    if (address == null || typeof address === 'string') {
      throw new Error('the regtest server has no address')
    }
    this.url = `http://${address.address}:${address.port}`
    const interval = this.init.blockIntervalMs ?? 10_000
    if (interval > 0) {
      this.timer = setInterval(() => {
        if (this.chain.mempoolSize > 0) {
          void this.chain.mine(1, this.faucetAddress).catch(err => { log.error('mining failed - %e', err) })
        }
      }, interval)
    }
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    const server = this.server
    if (server != null) {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
    await this.chain.close()
  }

  /** Pay `amount` satoshis from the faucet; the transaction waits in the mempool */
  async faucet (address: string, amount: bigint): Promise<string> {
    // mature coinbase outputs and the faucet's own unconfirmed change
    const coins = this.chain.utxosOf(this.faucetAddress)
      .filter(u => !u.status.confirmed || this.chain.height + 1 - (u.status.blockHeight ?? 0) >= COINBASE_MATURITY)
      .map(u => ({ ...u, privateKey: this.faucetKey }))
    const built = buildTransaction({ coins, payees: [{ address, value: amount }], changeAddress: this.faucetAddress, feeRate: 2, network: this.chain.network })
    return this.chain.submit(built.hex)
  }

  private json (res: ServerResponse, value: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(value, (_k, v) => typeof v === 'bigint' ? Number(v) : v))
  }

  private text (res: ServerResponse, value: string): void {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(value)
  }

  private status (height?: number): Record<string, unknown> {
    if (height == null) {
      return { confirmed: false }
    }
    return { confirmed: true, block_height: height, block_time: this.chain.blockTime(height) }
  }

  private esploraTx (txid: string): Record<string, unknown> {
    const tx = this.chain.transaction(txid)
    return {
      txid,
      vin: tx.inputs.map(i => ({ txid: i.txid, vout: i.vout, prevout: { scriptpubkey_address: i.address, value: i.value } })),
      vout: tx.outputs.map(o => ({ scriptpubkey: o.scriptPubKey, scriptpubkey_address: o.address, value: o.value })),
      fee: tx.fee,
      status: this.status(tx.status.blockHeight)
    }
  }

  private async route (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const parts = url.pathname.split('/').filter(p => p !== '')
    const route = `${req.method} /${parts.map((p, i) => (i === 1 && (parts[0] === 'address' || parts[0] === 'tx')) ? ':id' : (i === 3 && parts[0] === 'tx' && parts[2] === 'outspend') ? ':vout' : p).join('/')}`
    const id = parts[1]
    switch (route) {
      case 'GET /blocks/tip/height': return this.text(res, String(this.chain.height))
      case 'GET /blocks/tip/hash': return this.text(res, this.chain.tipHash)
      case 'GET /fee-estimates': return this.json(res, { 1: 2, 3: 1.5, 6: 1, 144: 1 })
      case 'GET /address/:id': {
        const { chain, mempool } = this.chain.addressStats(id)
        return this.json(res, {
          address: id,
          chain_stats: { funded_txo_sum: chain.funded, spent_txo_sum: chain.spent, tx_count: chain.txCount },
          mempool_stats: { funded_txo_sum: mempool.funded, spent_txo_sum: mempool.spent, tx_count: mempool.txCount }
        })
      }
      case 'GET /address/:id/utxo':
        return this.json(res, this.chain.utxosOf(id).map(u => ({ txid: u.txid, vout: u.vout, value: u.value, status: this.status(u.status.blockHeight) })))
      case 'GET /address/:id/txs':
        return this.json(res, this.chain.transactionsOf(id).map(t => this.esploraTx(t.txid)))
      case 'GET /tx/:id': return this.json(res, this.esploraTx(id))
      case 'GET /tx/:id/hex': return this.text(res, this.chain.transaction(id).hex as string)
      case 'GET /tx/:id/status': return this.json(res, this.status(this.chain.transaction(id).status.blockHeight))
      case 'GET /tx/:id/outspend/:vout': {
        if (!/^\d{1,9}$/.test(parts[3])) {
          throw new HttpError(400, 'the output index must be a whole number')
        }
        const o = this.chain.outspend(id, Number(parts[3]))
        return this.json(res, o.spent ? { spent: true, txid: o.txid, vin: o.vin, status: this.status(o.blockHeight) } : { spent: false })
      }
      case 'POST /tx': return this.text(res, await this.chain.submit((await readSmallBody(req, 1_000_000)).trim()))
      case 'POST /regtest/mine': {
        const blocks = Number(url.searchParams.get('blocks') ?? 1)
        if (!Number.isSafeInteger(blocks) || blocks < 1 || blocks > 1000) {
          throw new HttpError(400, 'blocks must be a whole number from 1 to 1000')
        }
        return this.json(res, { hashes: await this.chain.mine(blocks, url.searchParams.get('address') ?? this.faucetAddress), height: this.chain.height })
      }
      case 'POST /regtest/faucet': {
        let request: { address?: string, amount?: string | number }
        try {
          request = JSON.parse(await readSmallBody(req))
        } catch {
          throw new HttpError(400, 'send JSON: {"address": "bcrt1...", "amount": "0.5 BTC"}')
        }
        if (typeof request.address !== 'string' || request.amount == null) {
          throw new HttpError(400, 'send JSON: {"address": "bcrt1...", "amount": "0.5 BTC"}')
        }
        let amount: bigint
        try {
          amount = parseAmount(request.amount, 'the faucet amount')
        } catch (err: any) {
          throw new HttpError(400, err.message)
        }
        return this.json(res, { txid: await this.faucet(request.address, amount) })
      }
      default:
        throw new HttpError(404, `no such route: ${req.method} ${url.pathname}`)
    }
  }
}
