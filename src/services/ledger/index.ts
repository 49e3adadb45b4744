import { AccessDeniedError, BadRequestError, BodyTooLargeError, NotFoundError, RequestDeclinedError } from '../../protocols/rpc/errors.ts'
import { Units } from '../../market/units.ts'
import { LedgerLimits, hex, openTx } from '../../ledger/encoding.ts'
import { LedgerRejectedError, type CloudLedger } from '../../ledger/ledger.ts'
import { MempoolFullError } from '../../ledger/mempool.ts'
import type { Service, ServiceContext } from '../interface.ts'

export const LEDGER_SERVICE = 'ledger'

const HEX32 = /^[0-9a-f]{64}$/

async function bodyBytes (ctx: ServiceContext, max: number): Promise<Uint8Array> {
  if (ctx.body.length > max) {
    throw new BodyTooLargeError(`the body is at most ${max} bytes`)
  }
  const chunks: Uint8Array[] = []
  for await (const chunk of ctx.body) {
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
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
        handle: async () => ({ json: ledger.status() })
      },
      blocks: {
        description: 'final blocks with their commits, from a height on (for syncing)',
        args: '<from height>',
        unit: Units.CALL,
        handle: async ({ args }) => {
          const from = Number(args[0])
          if (!Number.isSafeInteger(from) || from < 1) {
            throw new BadRequestError('blocks takes the first height wanted (1 or more)')
          }
          return { body: await ledger.blocksFrom(from) }
        }
      },
      submit: {
        description: 'queue a signed transaction; with "wait", answer once it is final',
        args: '[wait]',
        unit: Units.CALL,
        handle: async (ctx) => {
          const bytes = await bodyBytes(ctx, LedgerLimits.txBytes)
          let stx
          try {
            stx = openTx(bytes)
          } catch (err: any) {
            throw new BadRequestError(`the transaction does not verify: ${err.message}`)
          }
          try {
            const outcome = await ledger.submit(stx, { wait: ctx.args[0] === 'wait' })
            return { json: { ...outcome, id: hex(stx.id) } }
          } catch (err: any) {
            if (err instanceof LedgerRejectedError) {
              throw new RequestDeclinedError(`the ledger refused transaction ${hex(stx.id)}: ${err.message}`)
            }
            if (err instanceof MempoolFullError) {
              throw new RequestDeclinedError(err.message)
            }
            throw err
          }
        }
      },
      code: {
        description: 'a promo code: valid (and for how long), redeemed or expired',
        args: '<code>',
        unit: Units.CALL,
        handle: async ({ args }) => {
          if (!HEX32.test(args[0] ?? '')) {
            throw new BadRequestError('a promo code is 64 hex digits (the id of its request)')
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
          const [code, authorization] = args
          if (!HEX32.test(code ?? '') || authorization == null) {
            throw new BadRequestError('redeem takes a code (64 hex digits) and its owner\'s authorization (base64)')
          }
          if (!ledger.engine.isValidator()) {
            throw new AccessDeniedError('this node is not a member cloud (a validator of the ledger) and cannot redeem codes')
          }
          try {
            await ledger.submit({ kind: 'redeem', code: Buffer.from(code, 'hex'), authorization: Buffer.from(authorization, 'base64') })
          } catch (err: any) {
            if (err instanceof LedgerRejectedError) {
              throw new RequestDeclinedError(`the ledger refused the redemption: ${err.message}`)
            }
            throw err
          }
          return { json: ledger.codeView(code) }
        }
      },
      candidacy: {
        description: 'this node\'s signed statement as a validator candidate, for validators voting on it',
        unit: Units.CALL,
        handle: async () => {
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
        handle: async () => ({ json: ledger.poolViews() })
      },
      tx: {
        description: 'the outcome of a transaction: final (ok or failed, and why) or pending',
        args: '<id>',
        unit: Units.CALL,
        handle: async ({ args }) => {
          const id = args[0] ?? ''
          if (!HEX32.test(id)) {
            throw new BadRequestError('a transaction id is 64 hex digits')
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
