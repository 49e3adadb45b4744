import { Status, normalizeStatus } from '../../protocols/rpc/status.ts'

/** Headers of /v1/call responses (README, "Control API") */
export const API_HEADERS = {
  status: 'opencloud-status',
  message: 'opencloud-message',
  server: 'opencloud-server',
  proof: 'opencloud-proof',
  bodySha256: 'opencloud-body-sha256',
  /** paid calls: what was paid and what the bidding strategy did (URI-encoded JSON) */
  payment: 'opencloud-payment'
} as const

/** The HTTP status a refused call is reported with by the control API */
export function httpStatusFor (code: number): number {
  switch (normalizeStatus(code)) {
    case Status.OK: return 200
    case Status.INVALID_SIGNATURE: return 401
    case Status.SERVICE_UNSUPPORTED:
    case Status.METHOD_UNSUPPORTED: return 404
    case Status.BODY_TOO_LARGE: return 413
    case Status.SERVER_ERROR: return 502
    case Status.REFRESH_NONCE: return 409
    case Status.PAYMENT_DECLINED:
    case Status.PAYMENT_TOO_LOW:
    case Status.PAYMENT_NO_DEFER: return 402
    case Status.ACCESS_DENIED: return 403
    case Status.RATE_LIMITED: return 429
    case Status.REQUEST_DECLINED: return 403
    default: return 400
  }
}
