/**
 * The OpenCloud status codes: one table, shared by the server (which maps a
 * thrown error to a code) and the client (which maps a code back to an
 * error). PROTOCOL.md section "Status codes" is generated from the same facts.
 *
 * Codes are grouped by tens like HTTP's hundreds: 0 ok, 1x client-error,
 * 2x server-error, 3x request-declined. A receiver that meets an unknown code
 * treats it as the generic code of its group (`code - code % 10`).
 */
export const Status = {
  OK: 0,
  CLIENT_ERROR: 10,
  BAD_REQUEST: 11,
  INVALID_SIGNATURE: 12,
  SERVICE_UNSUPPORTED: 13,
  METHOD_UNSUPPORTED: 14,
  BODY_TOO_LARGE: 15,
  NOT_FOUND: 16,
  SERVER_ERROR: 20,
  REQUEST_DECLINED: 30,
  REFRESH_NONCE: 31,
  PAYMENT_DECLINED: 32,
  PAYMENT_TOO_LOW: 33,
  PAYMENT_NO_DEFER: 34,
  ACCESS_DENIED: 35,
  RATE_LIMITED: 36,
  INSUFFICIENT_STORAGE: 37
} as const

export type StatusCode = typeof Status[keyof typeof Status]

/** The seed's names: the group, then the detail, then the sub-detail */
export const STATUS_NAMES: Record<StatusCode, string> = {
  [Status.OK]: 'ok',
  [Status.CLIENT_ERROR]: 'client-error',
  [Status.BAD_REQUEST]: 'client-error/bad-request',
  [Status.INVALID_SIGNATURE]: 'client-error/invalid-signature',
  [Status.SERVICE_UNSUPPORTED]: 'client-error/service-unsupported',
  [Status.METHOD_UNSUPPORTED]: 'client-error/method-unsupported',
  [Status.BODY_TOO_LARGE]: 'client-error/body-too-large',
  [Status.NOT_FOUND]: 'client-error/not-found',
  [Status.SERVER_ERROR]: 'server-error',
  [Status.REQUEST_DECLINED]: 'request-declined',
  [Status.REFRESH_NONCE]: 'request-declined/refresh-nonce',
  [Status.PAYMENT_DECLINED]: 'request-declined/payment-declined',
  [Status.PAYMENT_TOO_LOW]: 'request-declined/payment-declined/too-low',
  [Status.PAYMENT_NO_DEFER]: 'request-declined/payment-declined/no-defer',
  [Status.ACCESS_DENIED]: 'request-declined/access-denied',
  [Status.RATE_LIMITED]: 'request-declined/rate-limited',
  [Status.INSUFFICIENT_STORAGE]: 'request-declined/insufficient-storage'
}

export function isStatusCode (code: number): code is StatusCode {
  return Object.hasOwn(STATUS_NAMES, code)
}

/** An unknown code is read as the generic code of its group */
export function normalizeStatus (code: number): StatusCode {
  if (isStatusCode(code)) {
    return code
  }
  const group = code - (code % 10)
  return isStatusCode(group) ? group : Status.SERVER_ERROR
}

export function statusName (code: number): string {
  return STATUS_NAMES[normalizeStatus(code)]
}
