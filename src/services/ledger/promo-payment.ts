import { PaymentDeclinedError, PaymentTooLowError } from '../../protocols/rpc/errors.ts'
import { formatAmount } from '../../protocols/units.ts'
import { hex } from '../../ledger/encoding.ts'
import { LedgerRejectedError, LedgerTimeoutError } from '../../ledger/errors.ts'
import type { CloudLedger } from '../../ledger/cloud-ledger.ts'
import type { PaymentCheck, PaymentHook } from '../interface.ts'

/**
 * Promo codes as payment (PROTOCOL.md section 8e, "Paying with a code"): a
 * member cloud checks the code against its copy of the ledger, then redeems
 * it and waits until the redemption is final before it serves, so a code
 * pays for exactly one call however many servers it is sent to at once.
 * A code pays for one call of its pool's service costing up to its credit.
 */
export function promoPayments (ledger: CloudLedger): PaymentHook {
  return {
    check: async ({ required, ctx }: PaymentCheck) => {
      const payment = ctx.payment
      if (payment.type !== 'promo') {
        return
      }
      if (!ledger.engine.isValidator()) {
        throw new PaymentDeclinedError('this node is not a member cloud (a validator) of its Cloud Ledger, so it cannot redeem promo codes')
      }
      const code = hex(payment.code)
      const view = ledger.codeView(code)
      if (view == null) {
        throw new PaymentDeclinedError(`promo code ${code} is not on the ledger (at height ${ledger.state.height})`)
      }
      if (view.state === 'redeemed') {
        throw new PaymentDeclinedError(`promo code ${code} is spent: redeemed at height ${view.redeemed!.height} by ${view.redeemed!.by}`)
      }
      if (view.state === 'expired') {
        throw new PaymentDeclinedError(`promo code ${code} expired at ${view.expiresAt}`)
      }
      if (view.service !== ctx.service) {
        throw new PaymentDeclinedError(`promo code ${code} pays for ${view.service} calls, not ${ctx.service}`)
      }
      const credit = ledger.state.pools.get(view.pool)!.creditSat
      if (credit < required) {
        throw new PaymentTooLowError(`${ctx.service}.${ctx.method} costs ${formatAmount(required)}; promo code ${code} is worth ${formatAmount(credit)}`)
      }
      try {
        // checks the owner's authorization for this node before signing anything
        await ledger.redeem(code, payment.authorization)
      } catch (err: any) {
        if (err instanceof LedgerRejectedError) {
          throw new PaymentDeclinedError(`promo code ${code} was not redeemed: ${err.message}`)
        }
        if (err instanceof LedgerTimeoutError) {
          throw new PaymentDeclinedError(`promo code ${code} could not be redeemed in time: ${err.message}`)
        }
        throw err
      }
    }
  }
}
