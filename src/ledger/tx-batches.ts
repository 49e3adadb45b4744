import { DecodeError, Reader, Writer } from '../protocols/codec.ts'
import { hex, LedgerLimits, openTx, verifyTx, type SignedTx } from './encoding.ts'

/**
 * Transactions travel on the ledger's transaction topic in batches
 * (PROTOCOL.md section 8e, "Gossip and methods"): `list<bytes signed-tx>`
 * of 1 to 500. Each gossip message costs every node a signature check and
 * a round of gossipsub bookkeeping whatever it holds, so under load a few
 * large messages beat many small ones (bench:ledger at 1,000 a second
 * offered: 425 final a second with 5 ms batches, 564 with 50 ms); 50 ms
 * adds a twentieth of a slot to the time to finality.
 */

/** Transactions in one gossip message at most (the wire's limit) */
export const TX_BATCH = 500
/** How long a transaction waits for others to join its batch, by default */
export const TX_BATCH_MS = 50
/** Signature checks between turns of the event loop: about 5 ms of one core */
const VERIFY_SLICE = 32

/** A gossip message of the transaction topic: list<bytes signed-tx>, 1 to 500 */
export function encodeTxBatch (txs: Uint8Array[]): Uint8Array {
  const w = new Writer().varint(txs.length)
  for (const t of txs) {
    w.bytes(t)
  }
  return w.finish()
}

/**
 * Decode a batch and check the signatures of the transactions not checked
 * before (a copy relayed by another peer is not checked again). The checks
 * run a few dozen at a time with a turn of the event loop between: a batch
 * of 500 is a tenth of a second of one core, and consensus votes waiting
 * behind a flood of batches were what made blocks late under load.
 */
export async function decodeTxBatch (bytes: Uint8Array, verified?: (id: string) => boolean, signal?: AbortSignal): Promise<SignedTx[]> {
  const r = new Reader(bytes)
  const n = r.count(TX_BATCH, 'the transactions')
  if (n === 0) {
    throw new DecodeError('an empty batch')
  }
  const out: SignedTx[] = []
  for (let i = 0; i < n; i++) {
    out.push(openTx(r.bytes(LedgerLimits.txBytes + 80, 'a transaction'), false))
  }
  r.end('the batch')
  let since = 0
  for (const stx of out) {
    if (verified?.(hex(stx.id)) === true) {
      continue
    }
    verifyTx(stx)
    if (++since === VERIFY_SLICE) {
      since = 0
      await new Promise(resolve => setImmediate(resolve))
      signal?.throwIfAborted()
    }
  }
  return out
}

export interface TxBatcherComponents {
  /** send one encoded batch on the transaction topic */
  publish: (batch: Uint8Array) => void
}

export interface TxBatcherInit {
  /** how long the first transaction of a batch waits for others, default TX_BATCH_MS (50 ms) */
  delayMs?: number
}

/**
 * The transactions this node gossips (its own and those its clients
 * submit), gathered into batches: a batch goes out once it is TX_BATCH
 * long or `delayMs` after its first transaction, whichever comes first.
 */
export class TxBatcher {
  private readonly c: TxBatcherComponents
  private readonly delayMs: number
  private readonly outbox: Uint8Array[] = []
  private timer?: ReturnType<typeof setTimeout>

  constructor (components: TxBatcherComponents, init: TxBatcherInit = {}) {
    this.c = components
    this.delayMs = init.delayMs ?? TX_BATCH_MS
  }

  /** Queue a transaction for the next batch (sent within `delayMs`, or at once when the batch is full) */
  add (stx: SignedTx): void {
    this.outbox.push(stx.bytes)
    if (this.outbox.length >= TX_BATCH) {
      this.flush()
    } else {
      this.timer ??= setTimeout(() => { this.flush() }, this.delayMs)
    }
  }

  /** Send what is queued now (at stop, so nothing submitted is left unsent) */
  flush (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    const batch = this.outbox.splice(0)
    if (batch.length > 0) {
      this.c.publish(encodeTxBatch(batch))
    }
  }
}
