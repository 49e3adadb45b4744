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

export class ChainUnavailableError extends Error {
  override name = 'ChainUnavailableError'
}

export class TransactionNotFoundError extends Error {
  override name = 'TransactionNotFoundError'
}
