import { peerIdFromString } from '@libp2p/peer-id'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import { parseAmount } from '../../protocols/units.ts'
import { parseDuration } from '../../utils/duration.ts'
import { LedgerRejectedError, LedgerTimeoutError } from '../../ledger/errors.ts'
import type { CloudLedger } from '../../ledger/cloud-ledger.ts'
import { MempoolFullError } from '../../ledger/mempool.ts'
import { authorizationFromBase64, majority, type TxBody } from '../../ledger/encoding.ts'
import type { ModuleComponents, RouteTable } from '../module.ts'

const HEX32 = /^[0-9a-f]{64}$/

function ledgerOf (ledger: CloudLedger | undefined): CloudLedger {
  if (ledger == null) {
    throw new HttpError(409, 'this node runs no Cloud Ledger: set ledger.genesis in config.json to the ledger\'s genesis file (the testnet does this with --ledger-validators)')
  }
  return ledger
}

function code (value: unknown): string {
  if (typeof value !== 'string' || !HEX32.test(value)) {
    throw new HttpError(400, 'a promo code is 64 hex digits (the id of the request that made it)')
  }
  return value
}

function peer (value: unknown, what: string): string {
  try {
    return peerIdFromString(String(value)).toString()
  } catch {
    throw new HttpError(400, `${what} is a PeerId (12D3KooW...), not "${String(value)}"`)
  }
}

function count (value: unknown, what: string, min = 1): number {
  const n = typeof value === 'string' ? Number(value) : value
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) {
    throw new HttpError(400, `${what} is a whole number, at least ${min}`)
  }
  return n
}

/** Wait for the ledger; its refusals are the caller's (409), a full queue 503, a stalled ledger 504 */
async function settle<T> (pending: Promise<T>): Promise<T> {
  try {
    return await pending
  } catch (err: any) {
    if (err instanceof LedgerRejectedError) {
      throw new HttpError(409, `the ledger refused it: ${err.message}`)
    }
    if (err instanceof MempoolFullError) {
      throw new HttpError(503, err.message)
    }
    if (err instanceof LedgerTimeoutError) {
      throw new HttpError(504, err.message)
    }
    throw err
  }
}

/** Submit and wait for finality */
async function submit (ledger: CloudLedger, body: TxBody): Promise<{ id: string, height: number }> {
  const outcome = await settle(ledger.submit(body)) as { id: string, height: number }
  return { id: outcome.id, height: outcome.height }
}

/** An authorization as `ledger promo authorize` prints it */
function authorization (value: string): Uint8Array {
  const bytes = authorizationFromBase64(value)
  if (bytes == null) {
    throw new HttpError(400, 'an authorization is 64 bytes in base64 (88 characters), as `ledger promo authorize` prints it')
  }
  return bytes
}

/**
 * The control API's /v1/ledger routes (README, "Cloud Ledger"); on a node
 * without a ledger each answers 409 saying how to follow one
 */
export function ledgerRoutes (cloudLedger: CloudLedger | undefined, { peerId, caller }: Pick<ModuleComponents, 'peerId' | 'caller'>): RouteTable {
  const me = peerId.toString()
  return {
    'GET /v1/ledger': async ({ json }) => {
      const ledger = ledgerOf(cloudLedger)
      json(200, ledger.status())
    },
    'GET /v1/ledger/validators': async ({ json }) => {
      const ledger = ledgerOf(cloudLedger)
      json(200, { validators: ledger.state.validators, votes: ledger.voteViews(), equivocations: ledger.equivocations })
    },
    'GET /v1/ledger/pools': async ({ json }) => {
      const ledger = ledgerOf(cloudLedger)
      json(200, ledger.poolViews())
    },
    'POST /v1/ledger/pools': async ({ req, json }) => {
      const ledger = ledgerOf(cloudLedger)
      const usage = 'send JSON: {"name": "starter", "service": "sha256", "credit": "1000 sat", "quantity": 100, "ttl": "30d", "perRequester": 1}'
      const body = await readJsonBody(req, usage)
      if (typeof body.name !== 'string' || typeof body.service !== 'string' || (typeof body.credit !== 'string' && typeof body.credit !== 'number')) {
        throw new HttpError(400, usage)
      }
      let creditSat: bigint
      try {
        creditSat = parseAmount(body.credit, 'a code\'s credit')
      } catch (err: any) {
        throw new HttpError(400, err.message)
      }
      const ttlMs = parseDuration(String(body.ttl ?? '30d'), 'ttl')
      const done = await submit(ledger, { kind: 'pool', name: body.name, service: body.service, creditSat, quantity: count(body.quantity, 'quantity'), ttlMs, perRequester: count(body.perRequester ?? 1, 'perRequester') })
      json(200, { pool: done.id, height: done.height })
    },
    'POST /v1/ledger/promo/request': async ({ req, json }) => {
      const ledger = ledgerOf(cloudLedger)
      const body = await readJsonBody(req, 'send JSON: {"pool": "<pool id>"}')
      if (typeof body.pool !== 'string' || !HEX32.test(body.pool)) {
        throw new HttpError(400, 'name the pool by its id (64 hex digits; `ledger pools` lists them)')
      }
      const done = await submit(ledger, { kind: 'request', pool: Buffer.from(body.pool, 'hex') })
      json(200, ledger.codeView(done.id))
    },
    'GET /v1/ledger/promo': async ({ url, json }) => {
      const ledger = ledgerOf(cloudLedger)
      const c = code(url.searchParams.get('code'))
      const view = ledger.codeView(c)
      if (view == null) {
        throw new HttpError(404, `no promo code ${c} on the ledger (at height ${ledger.state.height})`)
      }
      json(200, view)
    },
    'POST /v1/ledger/promo/transfer': async ({ req, json }) => {
      const ledger = ledgerOf(cloudLedger)
      const body = await readJsonBody(req, 'send JSON: {"code": "...", "to": "<PeerId>"}')
      const c = code(body.code)
      await submit(ledger, { kind: 'transfer', code: Buffer.from(c, 'hex'), to: peer(body.to, 'to') })
      json(200, ledger.codeView(c))
    },
    'POST /v1/ledger/promo/authorize': async ({ req, json }) => {
      const ledger = ledgerOf(cloudLedger)
      const body = await readJsonBody(req, 'send JSON: {"code": "...", "redeemer": "<PeerId of the member cloud>"}')
      const c = code(body.code)
      const redeemer = peer(body.redeemer, 'redeemer')
      const view = ledger.codeView(c)
      if (view != null && view.owner !== me) {
        throw new HttpError(409, `code ${c} belongs to ${view.owner}, not to this node: only its owner can authorize a redemption`)
      }
      json(200, { code: c, redeemer, authorization: ledger.authorizeRedeem(c, redeemer) })
    },
    'GET /v1/ledger/promo/mine': async ({ json }) => {
      const ledger = ledgerOf(cloudLedger)
      json(200, ledger.ownCodes())
    },
    'POST /v1/ledger/promo/redeem': async ({ req, json }) => {
      const ledger = ledgerOf(cloudLedger)
      const body = await readJsonBody(req, 'send JSON: {"code": "...", "at": "<PeerId of the member cloud>"} (as the owner), or {"code": "...", "authorization": "<base64>"} (as the member cloud)')
      const c = code(body.code)
      const view = ledger.codeView(c)
      if (body.at != null && peer(body.at, 'at') !== me) {
        // the owner asks a member cloud to redeem: it signs the authorization for that cloud alone
        const at = peer(body.at, 'at')
        if (view != null && view.owner !== me) {
          throw new HttpError(409, `code ${c} belongs to ${view.owner}, not to this node`)
        }
        let answer
        try {
          const response = await caller.ratedCall(at, { service: 'ledger', method: 'redeem', args: [c, ledger.authorizeRedeem(c, at)] })
          answer = JSON.parse(new TextDecoder().decode(await response.body.bytes()))
        } catch (err: any) {
          throw new HttpError(409, `${at} did not redeem it: ${err.message}`)
        }
        json(200, answer)
        return
      }
      // a member cloud redeeming its own code signs for itself
      const signed = typeof body.authorization === 'string'
        ? body.authorization
        : view?.owner === me ? ledger.authorizeRedeem(c, me) : undefined
      if (signed == null) {
        throw new HttpError(400, `code ${c} belongs to ${view?.owner ?? 'someone else'}: pass the owner's authorization (they run \`ledger promo authorize ${c} ${me}\`)`)
      }
      // checked here (owner's signature, the code's state) before this node signs a redemption
      await settle(ledger.redeem(c, authorization(signed)))
      json(200, ledger.codeView(c))
    },
    'POST /v1/ledger/candidate': async ({ req, json }) => {
      const ledger = ledgerOf(cloudLedger)
      const body = await readJsonBody(req, 'send JSON: {"statement": "who runs this node, and where its membership was approved"}')
      if (typeof body.statement !== 'string' || body.statement.length === 0) {
        throw new HttpError(400, 'a statement says who runs this node')
      }
      const evidence = Buffer.from(await ledger.standAsCandidate(body.statement)).toString('base64')
      const validators = ledger.state.validators.length
      json(200, { candidate: me, statement: body.statement, evidence, validators, votesNeeded: majority(validators) })
    },
    'POST /v1/ledger/vote': async ({ req, json }) => {
      const ledger = ledgerOf(cloudLedger)
      const body = await readJsonBody(req, 'send JSON: {"action": "add" or "remove", "candidate": "<PeerId>", "evidence": "<base64, for add>"}')
      if (body.action !== 'add' && body.action !== 'remove') {
        throw new HttpError(400, 'action is "add" or "remove"')
      }
      const candidate = peer(body.candidate, 'candidate')
      let evidence = Buffer.from(typeof body.evidence === 'string' ? body.evidence : '', 'base64')
      if (body.action === 'add' && typeof body.evidence !== 'string') {
        // the candidate hands out its own signed statement
        try {
          const response = await caller.ratedCall(candidate, { service: 'ledger', method: 'candidacy' })
          evidence = Buffer.from(await response.body.bytes())
        } catch (err: any) {
          throw new HttpError(409, `cannot get ${candidate}'s statement: ${err.message}`)
        }
      }
      const done = await submit(ledger, { kind: 'vote', add: body.action === 'add', candidate, evidence })
      json(200, { height: done.height, validators: ledger.state.validators, votes: ledger.voteViews() })
    },
    'GET /v1/ledger/checkpoints': async ({ json }) => {
      const ledger = ledgerOf(cloudLedger)
      json(200, await ledger.verifyCheckpoints())
    },
  }
}
