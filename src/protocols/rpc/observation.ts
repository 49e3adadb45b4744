/**
 * One call as a meter sees it (the node's metrics): which method, how it
 * ended and how long it took. The RPC server and client report each call
 * to an observer given in their Init, so the wire floor knows nothing of
 * what counts them.
 */
export interface CallObservation {
  service: string
  method: string
  /** the status name the call ended with ("ok", "request-declined/payment-declined"), or "unanswered" when no answer came */
  status: string
  /** from the request read (server) or sent (client) to the answer's head written or read */
  seconds: number
  /** bytes of the request body */
  requestBytes: number
  /** bytes of the answer's body; 0 when there was none */
  responseBytes: number
}

export type CallObserver = (call: CallObservation) => void
