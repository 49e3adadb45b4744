import { logger } from '@libp2p/logger'
import { Reader, Writer } from '../protocols/codec.ts'
import { LedgerLimits, type Block, type Commit } from './encoding.ts'
import { decodeStored, type BlockStore } from './block-store.ts'
import type { ConsensusEngine } from './consensus.ts'
import type { LedgerState } from './state.ts'
import type { Mempool } from './mempool.ts'

const log = logger('opencloud:ledger:sync')

export interface LedgerSyncComponents {
  /** this node's PeerId: it never syncs from itself */
  self: string
  state: Pick<LedgerState, 'height'>
  /** transactions whose signatures were checked already, so a synced block does not check them again */
  mempool: Pick<Mempool, 'verified'>
  /** applies a final block after checking its certificate against the validators of its height */
  engine: Pick<ConsensusEngine, 'applyFinal' | 'resync'>
  /** the final blocks this node serves to peers that sync from it */
  blocks: Pick<BlockStore, 'raw'>
  /** ask a peer for final blocks from `from` on (the ledger service's `blocks`); without it the node does not sync */
  fetchBlocks?: (peer: string, from: number, options: { signal: AbortSignal }) => Promise<Uint8Array>
  /** the peers to sync from, at start and now and then */
  peers?: () => string[]
}

export interface LedgerSyncInit {
  /** the genesis slot: a sync runs every ten slots (5 s at least), and a peer has as long to answer */
  slotMs: number
}

/**
 * Catching up: a node that falls behind (or starts late) fetches final
 * blocks from a peer, in order, and applies each only once its certificate
 * holds against the validators of its height, so a peer can withhold
 * blocks but never forge or change one. The serving half is `blocksFrom`.
 */
export class LedgerSync {
  private readonly c: LedgerSyncComponents
  private readonly everyMs: number
  private syncing?: Promise<void>
  private timer?: ReturnType<typeof setInterval>
  /** aborted at stop: a sync under way gives up at once */
  private shutdown = new AbortController()

  constructor (components: LedgerSyncComponents, init: LedgerSyncInit) {
    this.c = components
    this.everyMs = Math.max(5_000, init.slotMs * 10)
  }

  /** Catch up with whoever is connected, then now and then */
  start (): void {
    this.shutdown = new AbortController()
    void this.syncFromPeers()
    this.timer = setInterval(() => { void this.syncFromPeers() }, this.everyMs)
    this.timer.unref()
  }

  /** Resolves once the sync under way, if any, has given up */
  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.shutdown.abort()
    await this.syncing
  }

  /** A peer sent something of `height`, past the next one: it has blocks this node lacks */
  behind (height: number, from: string): void {
    if (from === '' || from === this.c.self || height <= this.c.state.height + 1) {
      return
    }
    void this.syncFrom(from)
  }

  /** Fetch and apply final blocks from each peer in turn until none has more */
  async syncFromPeers (): Promise<void> {
    for (const peer of this.c.peers?.() ?? []) {
      await this.syncFrom(peer)
    }
  }

  /** Fetch and apply final blocks from `peer` until it has no more or sends one that fails; resolves with how many were applied */
  async syncFrom (peer: string): Promise<number> {
    if (this.c.fetchBlocks == null) {
      return 0
    }
    // one sync at a time: two would fetch the same blocks and race to apply them
    while (this.syncing != null) {
      await this.syncing
    }
    let applied = 0
    this.syncing = (async () => {
      for (;;) {
        let body: Uint8Array
        try {
          if (this.shutdown.signal.aborted) {
            return
          }
          // a peer that does not answer in a few slots is left for the next
          body = await this.c.fetchBlocks!(peer, this.c.state.height + 1, { signal: AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.everyMs)]) })
        } catch (err: any) {
          log('syncing from %s failed - %s', peer, err.message)
          return
        }
        const r = new Reader(body)
        let n: number
        try {
          n = r.count(1000, 'the blocks')
        } catch (err: any) {
          log.error('%s sent blocks that do not decode - %s', peer, err.message)
          return
        }
        if (n === 0) {
          return
        }
        for (let i = 0; i < n; i++) {
          let block: Block
          let blockBytes: Uint8Array
          let commit: Commit
          try {
            ({ block, blockBytes, commit } = decodeStored(r.bytes(LedgerLimits.blockBytes + 70_000, 'a block'), (id) => this.c.mempool.verified(id)))
          } catch (err: any) {
            // a forged or changed transaction fails its signature here
            log.error('block %d from %s is refused - %s', this.c.state.height + 1, peer, err.message)
            return
          }
          if (block.header.height <= this.c.state.height) {
            continue
          }
          try {
            await this.c.engine.applyFinal(block, commit, blockBytes)
          } catch (err: any) {
            log.error('block %d from %s is refused - %s', block.header.height, peer, err.message)
            return
          }
          applied++
        }
      }
    })().finally(() => { this.syncing = undefined })
    await this.syncing
    if (applied > 0) {
      log('synced %d blocks from %s, at height %d', applied, peer, this.c.state.height)
      this.c.engine.resync()
    }
    return applied
  }

  /** Final blocks from `from` on, for a peer that syncs: varint n || n x bytes (block || commit) */
  async blocksFrom (from: number, max = 100, maxBytes = 4 * 1024 * 1024): Promise<Uint8Array> {
    const out: Uint8Array[] = []
    let bytes = 0
    for (let h = from; h <= this.c.state.height && out.length < max && bytes < maxBytes; h++) {
      const stored = await this.c.blocks.raw(h)
      out.push(stored)
      bytes += stored.byteLength
    }
    const w = new Writer().varint(out.length)
    for (const b of out) {
      w.bytes(b)
    }
    return w.finish()
  }
}
