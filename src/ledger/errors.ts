import type { TxOutcome } from './state.ts'

/**
 * The Cloud Ledger's errors, one class per condition. Callers tell them
 * apart by class: the ledger service maps a refusal to request-declined and
 * a timeout to a server error (PROTOCOL.md section 8e), the control API to
 * 409 and 504, the promo payment hook to payment-declined.
 */

/** The genesis file cannot be read or breaks a rule; the message names the file and the field to fix */
export class GenesisError extends Error {
  override name = 'GenesisError'
}

/** The ledger refused a transaction: it failed the rules in its block, or this node would not queue it; the message says why */
export class LedgerRejectedError extends Error {
  override name = 'LedgerRejectedError'
}

/**
 * A transaction submitted again once final: refused like any replay (the
 * rules refuse a tx-id already on the ledger), with the outcome it had, so
 * a client retrying after a lost answer learns what became of it.
 */
export class LedgerReplayError extends LedgerRejectedError {
  override name = 'LedgerReplayError'
  readonly outcome: TxOutcome

  constructor (outcome: TxOutcome) {
    super(`transaction ${outcome.id} is on the ledger already (a replay): final at height ${outcome.height}, ${outcome.ok ? 'passed' : `failed: ${outcome.reason ?? 'refused'}`}`)
    this.outcome = outcome
  }
}

/**
 * A transaction not final in the time given: it stays queued (and may yet
 * be final); the message says what looks wrong with the ledger, if anything
 */
export class LedgerTimeoutError extends Error {
  override name = 'LedgerTimeoutError'
}

/**
 * A final block is missing from the datastore at start (the next one kept
 * is further on), so the state cannot be rebuilt: the ledger's records in
 * the data directory were damaged or cut short
 */
export class MissingBlockError extends Error {
  override name = 'MissingBlockError'
}

/** A checkpoint asked for at a height whose state root this node has not computed (not final here, or not a checkpoint height) */
export class NoStateRootError extends Error {
  override name = 'NoStateRootError'
}

/** A checkpoint asked of a node without a bitcoin chain to anchor it in: payments.chain in config.json names one */
export class NoBitcoinChainError extends Error {
  override name = 'NoBitcoinChainError'
}
