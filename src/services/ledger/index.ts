import { AccessDeniedError, BadRequestError, NotFoundError, RequestDeclinedError, ServerError } from '../../protocols/rpc/errors.ts'
import { bodyBytes } from '../../protocols/rpc/rpc-server.ts'
import { Units } from '../../protocols/units.ts'
import { canonicalDecimal } from '../../protocols/args.ts'
import { LedgerLimits, authorizationFromBase64, hex, openTx } from '../../ledger/encoding.ts'
import { CloudLedger } from '../../ledger/cloud-ledger.ts'
import { LedgerRejectedError, LedgerTimeoutError } from '../../ledger/errors.ts'
import { loadGenesis } from '../../ledger/genesis.ts'
import { MempoolFullError } from '../../ledger/mempool.ts'
import { resolve } from 'node:path'
import { ledgerTopics } from '../../protocols/topics.ts'
import { parseRateLimit } from '../../utils/rate-limiter.ts'
import { ledgerIdOf, type Genesis } from '../../ledger/encoding.ts'
import { ConfigError, objectSection, stringField, wholeNumber, type ConfigSection } from '../config-section.ts'
import { promoPayments } from './promo-payment.ts'
import { ledgerRoutes } from './routes.ts'
import { Gauge, Histogram, type Registry } from 'prom-client'
import type { Warning } from '../module.ts'
import type { Service } from '../interface.ts'
import type { ServiceModuleDefinition } from '../module.ts'

export const LEDGER_SERVICE = 'ledger'

const HEX32 = /^[0-9a-f]{64}$/

/** The methods without arguments refuse any, as the others refuse extra ones: one spelling per call */
function noArgs (args: string[], method: string): void {
  if (args.length > 0) {
    throw new BadRequestError(`${method} takes no arguments`)
  }
}

/**
 * The ledger's refusals as wire statuses (PROTOCOL.md section 8e): a
 * refused transaction, a replay and a full queue are request-declined with
 * the reason; a ledger that makes no block in time is a server error that
 * says so (the transaction stays queued).
 */
function refusal (err: any, what: string): Error {
  if (err instanceof LedgerRejectedError) {
    return new RequestDeclinedError(`the ledger refused ${what}: ${err.message}`)
  }
  if (err instanceof MempoolFullError) {
    return new RequestDeclinedError(err.message)
  }
  if (err instanceof LedgerTimeoutError) {
    return new ServerError(`${err.message}; it stays queued, and \`tx\` tells what became of it`)
  }
  return err
}


/**
 * The Cloud Ledger over OpenCloud RPC (PROTOCOL.md section 8e): anyone may
 * read the state and the final blocks (a late joiner syncs through
 * `blocks`) and submit a signed transaction; every method is free.
 */
export function ledgerService (ledger: CloudLedger): Service {
  return {
    name: LEDGER_SERVICE,
    version: '1.0.0',
    description: 'the Cloud Ledger: promo codes every member cloud accepts, on a proof-of-authority ledger checkpointed to bitcoin',
    methods: {
      status: {
        description: 'height, validators, whose turn it is',
        unit: Units.CALL,
        handle: async ({ args }) => {
          noArgs(args, 'status')
          return { json: ledger.status() }
        }
      },
      blocks: {
        description: 'final blocks with their commits, from a height on (for syncing)',
        args: '<from height>',
        unit: Units.CALL,
        handle: async ({ args }) => {
          // a height as decimal digits without leading zeros: one spelling per number
          const from = canonicalDecimal(args[0], 1)
          if (args.length !== 1 || from == null) {
            throw new BadRequestError('blocks takes one argument, the first height wanted (1 or more, decimal digits without leading zeros)')
          }
          return { body: await ledger.blocksFrom(from) }
        }
      },
      submit: {
        description: 'queue a signed transaction; with "wait", answer once it is final',
        args: '[wait]',
        unit: Units.CALL,
        handle: async (ctx) => {
          if (ctx.args.length > 1 || (ctx.args.length === 1 && ctx.args[0] !== 'wait')) {
            throw new BadRequestError('submit takes no argument, or the one word "wait" to answer once the transaction is final')
          }
          const bytes = await bodyBytes(ctx.body, LedgerLimits.txBytes)
          let stx
          try {
            stx = openTx(bytes)
          } catch (err: any) {
            // not a transaction anyone signed: nothing the ledger could refuse
            throw new BadRequestError(`the body is not a signed transaction of this ledger's encoding (PROTOCOL.md section 8e), or its signature does not verify: ${err.message}`)
          }
          try {
            const outcome = await ledger.submit(stx, { wait: ctx.args[0] === 'wait' })
            return { json: { ...outcome, id: hex(stx.id) } }
          } catch (err: any) {
            throw refusal(err, `transaction ${hex(stx.id)}`)
          }
        }
      },
      code: {
        description: 'a promo code: valid (and for how long), redeemed or expired',
        args: '<code>',
        unit: Units.CALL,
        handle: async ({ args }) => {
          if (args.length !== 1 || !HEX32.test(args[0])) {
            throw new BadRequestError('code takes one argument, a promo code: 64 lowercase hex digits (the id of its request)')
          }
          const view = ledger.codeView(args[0])
          if (view == null) {
            throw new NotFoundError(`no promo code ${args[0]} on the ledger (at height ${ledger.state.height})`)
          }
          return { json: view }
        }
      },
      redeem: {
        description: '(a member cloud) redeem a code with its owner\'s authorization for this node; answers once final',
        args: '<code> <authorization, base64>',
        unit: Units.CALL,
        handle: async ({ args }) => {
          const [code, text] = args
          const authorization = authorizationFromBase64(text)
          if (args.length !== 2 || !HEX32.test(code) || authorization == null) {
            throw new BadRequestError('redeem takes a code (64 hex digits) and its owner\'s authorization (64 bytes, in base64: 88 characters)')
          }
          if (!ledger.engine.isValidator()) {
            throw new AccessDeniedError('this node is not a member cloud (a validator of the ledger) and cannot redeem codes')
          }
          try {
            await ledger.redeem(code, authorization)
          } catch (err: any) {
            throw refusal(err, 'the redemption')
          }
          return { json: ledger.codeView(code) }
        }
      },
      candidacy: {
        description: 'this node\'s signed statement as a validator candidate, for validators voting on it',
        unit: Units.CALL,
        handle: async ({ args }) => {
          noArgs(args, 'candidacy')
          const evidence = await ledger.candidacy()
          if (evidence == null) {
            throw new NotFoundError('this node does not stand as a validator (its operator runs `ledger candidate "<statement>"` to stand)')
          }
          return { body: evidence }
        }
      },
      pools: {
        description: 'the promo code pools',
        unit: Units.CALL,
        handle: async ({ args }) => {
          noArgs(args, 'pools')
          return { json: ledger.poolViews() }
        }
      },
      tx: {
        description: 'the outcome of a transaction: final (ok or failed, and why) or pending',
        args: '<id>',
        unit: Units.CALL,
        handle: async ({ args }) => {
          const id = args[0] ?? ''
          if (args.length !== 1 || !HEX32.test(id)) {
            throw new BadRequestError('tx takes one argument, a transaction id: 64 lowercase hex digits')
          }
          const o = ledger.state.outcomes.get(id)
          if (o != null) {
            return { json: { ...o, final: true } }
          }
          if (ledger.mempool.has(id)) {
            return { json: { id, final: false } }
          }
          throw new NotFoundError(`no transaction ${id} on the ledger or waiting for it`)
        }
      }
    }
  }
}

/** config.json's "ledger": which Cloud Ledger this node follows, if any */
export interface LedgerConfig {
  /** the ledger's genesis file (JSON), relative to the data directory or absolute; "" (the default): no ledger */
  genesis: string
  /** an idle ledger makes an empty block this often, default 60000 ms */
  idleBlockMs: number
  /** transactions a node that is not a validator may gossip, default "200/s burst 2000" */
  txRateLimit: string
}

export const ledgerSettings: ConfigSection<LedgerConfig> = {
  key: 'ledger',
  defaults: { genesis: '', idleBlockMs: 60_000, txRateLimit: '200/s burst 2000' },
  validate: (raw, path) => objectSection(raw, path, ledgerSettings.defaults, {
    genesis: (value, where) => {
      if (typeof value !== 'string') {
        throw new ConfigError(`${where} must be the path of the ledger's genesis file, or "" for no ledger`)
      }
      return value
    },
    idleBlockMs: wholeNumber(100, 'milliseconds'),
    txRateLimit: stringField(text => { parseRateLimit(text) })
  })
}

/** The genesis config.json names, read once per start (the topics need it before libp2p is made) */
async function genesisOf (config: LedgerConfig, dataDir: string): Promise<Genesis | undefined> {
  return config.genesis === '' ? undefined : loadGenesis(resolve(dataDir, config.genesis))
}

/**
 * The ledger module: on a node whose config.json names a genesis, the Cloud
 * Ledger (its blocks synced from peers, its consensus when this node is a
 * validator, checkpoints in bitcoin when payments are on), the `ledger`
 * service, promo codes as a payment (a member cloud redeems them), paying
 * with one (`--pay promo:<code>`), and the /v1/ledger routes
 */
export const ledgerModule: ServiceModuleDefinition = {
  name: LEDGER_SERVICE,
  config: [ledgerSettings],
  topics: async (section, dataDir) => {
    const genesis = await genesisOf(section(ledgerSettings), dataDir)
    return genesis == null ? [] : Object.values(ledgerTopics(ledgerIdOf(genesis)))
  },
  create: async (components) => {
    const { peerId, signer, datastore, pubsub, libp2p, caller, wallet, chain, reputation, section, dataDir } = components
    const config = section(ledgerSettings)
    const genesis = await genesisOf(config, dataDir)
    const finality = new Histogram({
      name: 'opencloud_ledger_finality_seconds',
      help: 'Time from a Cloud Ledger block\'s proposal (its proposer\'s clock) to its being final on this node; blocks fetched while catching up count as late',
      buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300],
      registers: genesis == null ? [] : [components.metrics]
    })
    const ledger = genesis == null
      ? undefined
      : new CloudLedger({
        peerId,
        signer,
        datastore,
        pubsub,
        fetchBlocks: async (peer, from, options) => {
          const response = await caller.plainCall(peer, { service: LEDGER_SERVICE, method: 'blocks', args: [String(from)], signal: options.signal })
          return response.body.bytes()
        },
        peers: () => [...new Set(libp2p.getConnections().map(c => c.remotePeer.toString()))],
        anchor: chain == null ? undefined : async (data) => (await wallet.anchor(chain, data)).txid,
        bitcoinTx: chain == null
          ? undefined
          : async (txid) => {
            const tx = await chain.transaction(txid)
            return { scripts: tx.outputs.map(o => o.scriptPubKey), confirmations: await chain.confirmations(txid) }
          },
        recordEquivocation: (e) => {
          void reputation.record({ peer: e.validator, role: 'server', outcome: 'unsatisfactory', event: 'ledger-equivocation', service: LEDGER_SERVICE, method: e.what }).catch(() => {})
        }
      }, { genesis, idleBlockMs: config.idleBlockMs, txRateLimit: config.txRateLimit, onFinal: (_block, ms) => { finality.observe(ms / 1000) } })
    if (ledger != null) {
      ledgerMetrics(components.metrics, ledger)
    }
    return {
      services: ledger == null ? [] : [ledgerService(ledger)],
      payments: ledger == null ? {} : { promo: promoPayments(ledger) },
      payWith: ledger == null
        ? {}
        : {
            // the owner's authorization names this one server: no other can redeem it
            promo: (mode, server) => mode.kind === 'promo' ? { type: 'promo', code: Buffer.from(mode.code, 'hex'), authorization: Buffer.from(ledger.authorizeRedeem(mode.code, server), 'base64') } : undefined
          },
      routes: ledgerRoutes(ledger, components),
      warnings: async () => ledger == null ? [] : ledgerWarnings(ledger, config.idleBlockMs),
      engine: ledger,
      start: async () => { await ledger?.start() },
      stop: async () => { await ledger?.stop() }
    }
  }
}

/** A ledger that made no block for this many slots past its idle block time has stalled */
const STALLED_SLOTS = 10

/** What is wrong with the ledger: blocks that stopped coming */
export function ledgerWarnings (ledger: Pick<CloudLedger, 'status'>, idleBlockMs: number): Warning[] {
  const status = ledger.status()
  const age = Date.now() - Date.parse(status.lastBlockAt)
  const limit = idleBlockMs + STALLED_SLOTS * status.slotMs
  if (age <= limit) {
    return []
  }
  return [{
    module: LEDGER_SERVICE,
    severity: 'warning',
    text: `the Cloud Ledger has made no block for ${Math.round(age / 1000)} s (height ${status.height}): fewer than two thirds of its validators may be online, or this node cannot reach them`
  }]
}

/** The ledger's figures in the node's registry, read when Prometheus scrapes */
function ledgerMetrics (registry: Registry, ledger: CloudLedger): void {
  const registers = [registry]
  new Gauge({ name: 'opencloud_ledger_height', help: 'Height of the last final Cloud Ledger block on this node', registers, collect () { this.set(ledger.status().height) } })
  new Gauge({ name: 'opencloud_ledger_last_block_timestamp_seconds', help: 'Proposer\'s time of the last final block, seconds since the epoch', registers, collect () { this.set(Date.parse(ledger.status().lastBlockAt) / 1000) } })
  new Gauge({ name: 'opencloud_ledger_pending_transactions', help: 'Transactions waiting for a block', registers, collect () { this.set(ledger.status().pending) } })
  new Gauge({ name: 'opencloud_ledger_validator', help: '1 when this node is one of the ledger\'s validators', registers, collect () { this.set(ledger.status().validator ? 1 : 0) } })
}
