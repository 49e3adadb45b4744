import { logger } from '@libp2p/logger'
import { hex, type Block, type TxBody } from './encoding.ts'
import type { LedgerState } from './state.ts'
import type { CheckpointView } from './views.ts'
import { NoBitcoinChainError, NoStateRootError } from './errors.ts'

const log = logger('opencloud:ledger:checkpoints')

/**
 * What a checkpoint puts in bitcoin (an OP_RETURN of 64 bytes): "OCL1",
 * the first 8 bytes of the ledger id, the height (u32 big-endian), and the
 * state root; the remaining 16 bytes are zero.
 */
export function anchorData (ledger: Uint8Array, height: number, stateRoot: Uint8Array): Uint8Array {
  const out = new Uint8Array(64)
  out.set(new TextEncoder().encode('OCL1'))
  out.set(ledger.subarray(0, 8), 4)
  new DataView(out.buffer).setUint32(12, height)
  out.set(stateRoot, 16)
  return out
}

export function parseAnchor (data: Uint8Array): { ledgerPrefix: string, height: number, stateRoot: string } | undefined {
  if (data.byteLength < 48 || new TextDecoder().decode(data.subarray(0, 4)) !== 'OCL1') {
    return undefined
  }
  return { ledgerPrefix: hex(data.subarray(4, 12)), height: new DataView(data.buffer, data.byteOffset).getUint32(12), stateRoot: hex(data.subarray(16, 48)) }
}

export interface CheckpointsComponents {
  /** this node's PeerId: a block's proposer anchors the state it gives */
  self: string
  ledger: Uint8Array
  /** the state roots this node computed, and the checkpoints on the ledger */
  state: Pick<LedgerState, 'roots' | 'checkpoints'>
  /** record the anchor on the ledger as this node (a checkpoint transaction); resolves once final */
  submit: (body: TxBody) => Promise<unknown>
  /** anchor 64 bytes in bitcoin (an OP_RETURN output), resolving with the txid; undefined when there is no chain */
  anchor?: (data: Uint8Array) => Promise<string>
  /** the outputs' scripts (hex) of a bitcoin transaction and its confirmations, to check checkpoints */
  bitcoinTx?: (txid: string) => Promise<{ scripts: string[], confirmations: number }>
}

export interface CheckpointsInit {
  /** the genesis rule: the state is anchored every this many blocks */
  checkpointEvery: number
}

/**
 * Bitcoin anchors of the ledger's state (PROTOCOL.md section 8e): every
 * `checkpointEvery` blocks the block's proposer puts the state root in a
 * bitcoin transaction and records it on the ledger, and any node checks
 * those records against bitcoin and its own history. Signatures prove who
 * signed a history; the anchors prove it is the history they signed then.
 */
export class Checkpoints {
  private readonly c: CheckpointsComponents
  private readonly every: number
  private readonly prefix: string

  constructor (components: CheckpointsComponents, init: CheckpointsInit) {
    this.c = components
    this.every = init.checkpointEvery
    this.prefix = hex(components.ledger).slice(0, 16)
  }

  /** A block is final: its proposer anchors the state at a checkpoint height, in the background */
  onFinal (block: Block): void {
    const h = block.header.height
    if (h % this.every === 0 && block.header.proposer === this.c.self && this.c.anchor != null) {
      void this.checkpoint(h).catch(err => { log.error('anchoring the state at height %d failed - %e', h, err) })
    }
  }

  /** Anchor the state root at `height` in bitcoin, then record the anchor on the ledger */
  async checkpoint (height: number): Promise<{ btcTxid: string, stateRoot: string }> {
    const root = this.c.state.roots.get(height)
    if (root == null) {
      throw new NoStateRootError(`no state root at height ${height}`)
    }
    if (this.c.anchor == null) {
      throw new NoBitcoinChainError('this node has no bitcoin chain (payments.chain)')
    }
    const btcTxid = await this.c.anchor(anchorData(this.c.ledger, height, Buffer.from(root, 'hex')))
    log('state at height %d anchored in bitcoin transaction %s', height, btcTxid)
    await this.c.submit({ kind: 'checkpoint', height, stateRoot: Buffer.from(root, 'hex'), btcTxid })
    return { btcTxid, stateRoot: root }
  }

  /**
   * Every checkpoint on the ledger, checked against bitcoin and this node's
   * own history: the anchor must be in the named bitcoin transaction and
   * hold the state root this node computed at that height. A mismatch means
   * this node's history, or the one the validators anchored, was rewritten.
   */
  async verify (): Promise<CheckpointView[]> {
    const { state, bitcoinTx } = this.c
    const out: CheckpointView[] = []
    for (const cp of [...state.checkpoints.values()].sort((a, b) => a.height - b.height)) {
      const mine = state.roots.get(cp.height)
      const view: CheckpointView = { height: cp.height, stateRoot: cp.stateRoot, btcTxid: cp.btcTxid, by: cp.by, ownRoot: mine, status: 'unchecked' }
      if (bitcoinTx == null) {
        view.problem = 'this node has no bitcoin chain to check with (payments.chain)'
      } else {
        try {
          const tx = await bitcoinTx(cp.btcTxid)
          view.confirmations = tx.confirmations
          // OP_RETURN (6a), then a push of the data: one length byte, or OP_PUSHDATA1 (4c) and one
          const anchors = tx.scripts.filter(s => s.startsWith('6a')).map(s => parseAnchor(Buffer.from(s.replace(/^6a(4c[0-9a-f]{2}|[0-9a-f]{2})/, ''), 'hex'))).filter(a => a != null)
          const a = anchors.find(a => a.height === cp.height && a.ledgerPrefix === this.prefix)
          if (a == null) {
            view.status = 'mismatch'
            view.problem = `bitcoin transaction ${cp.btcTxid} holds no anchor of this ledger at height ${cp.height}`
          } else if (a.stateRoot !== mine || a.stateRoot !== cp.stateRoot) {
            view.status = 'mismatch'
            view.problem = `bitcoin holds state root ${a.stateRoot} for height ${cp.height}; this node's history gives ${mine ?? 'nothing'}`
          } else {
            view.status = 'ok'
          }
        } catch (err: any) {
          view.problem = `cannot fetch bitcoin transaction ${cp.btcTxid}: ${err.message}`
        }
      }
      if (view.status === 'mismatch') {
        log.error('checkpoint at height %d does not match: %s', cp.height, view.problem)
      }
      out.push(view)
    }
    return out
  }
}
