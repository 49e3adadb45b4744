/** Why a chain refused a transaction; each has its own class so callers can tell them apart */

export class TransactionRejectedError extends Error {
  override name = 'TransactionRejectedError'
}

export class MalformedTransactionError extends TransactionRejectedError {
  override name = 'MalformedTransactionError'
}

export class UnknownInputError extends TransactionRejectedError {
  override name = 'UnknownInputError'
}

export class SpentInputError extends TransactionRejectedError {
  override name = 'SpentInputError'
}

export class InvalidSignatureError extends TransactionRejectedError {
  override name = 'InvalidSignatureError'
}

export class OverspendError extends TransactionRejectedError {
  override name = 'OverspendError'
}

export class FeeTooLowError extends TransactionRejectedError {
  override name = 'FeeTooLowError'
}

export class NonStandardError extends TransactionRejectedError {
  override name = 'NonStandardError'
}

/** A witness script ran and failed: a false OP_VERIFY, an unbalanced OP_IF, a stack left unclean */
export class ScriptFailedError extends TransactionRejectedError {
  override name = 'ScriptFailedError'
}

/** OP_CHECKLOCKTIMEVERIFY refused the spend: the output is locked later than the transaction says */
export class LockTimeError extends TransactionRejectedError {
  override name = 'LockTimeError'
}

/** The transaction's lock time is still ahead of the chain: it may be broadcast again once the chain reaches it */
export class NonFinalError extends TransactionRejectedError {
  override name = 'NonFinalError'
}

export class ChainUnavailableError extends Error {
  override name = 'ChainUnavailableError'
}

export class TransactionNotFoundError extends Error {
  override name = 'TransactionNotFoundError'
}
