import { logger } from '@libp2p/logger'
import { Key, type Datastore } from 'interface-datastore'
import { Reader, Writer } from '../protocols/codec.ts'
import { decodeBlock, decodeCommit, decodeMessage, encodeCommit, encodeMessage, hex, LedgerLimits, type Block, type Commit } from './encoding.ts'
import { slotOf, type Equivocation, type SignedMessage } from './consensus.ts'
import type { LedgerState } from './state.ts'
import { MissingBlockError } from './errors.ts'

const log = logger('opencloud:ledger:store')

/** A final block as kept, and as the `blocks` method sends it */
export interface StoredBlock {
  block: Block
  /** the block's encoding, as its proposer made it */
  blockBytes: Uint8Array
  commit: Commit
}

/** bytes block || bytes commit (PROTOCOL.md section 8e, `blocks`) */
export function encodeStored (blockBytes: Uint8Array, commit: Commit): Uint8Array {
  return new Writer().bytes(blockBytes).bytes(encodeCommit(commit)).finish()
}

/** Decode a stored block; `verified` names the transactions whose signatures need no check */
export function decodeStored (bytes: Uint8Array, verified: (id: string) => boolean): StoredBlock {
  const r = new Reader(bytes)
  const blockBytes = r.bytes(LedgerLimits.blockBytes, 'the block')
  const block = decodeBlock(blockBytes, verified)
  const commit = decodeCommit(r.bytes(64 * 1024, 'the commit'))
  r.end('the stored block')
  return { block, blockBytes, commit }
}

export interface BlockStoreComponents {
  datastore: Datastore
}

export interface BlockStoreInit {
  /** the ledger id: its first 8 bytes name the prefix of every key */
  ledger: Uint8Array
}

/**
 * What the ledger keeps in the datastore, under a prefix of its own (a
 * data directory that moves to a new genesis keeps the old ledger apart):
 * the final blocks with their commits, one key per height, replayed at
 * start; what this validator signed at its latest height, so that once
 * restarted it signs nothing else for a slot it signed (that would be
 * equivocation, however honest); the evidence of equivocations seen; and
 * this node's candidacy.
 */
export class BlockStore {
  private readonly c: BlockStoreComponents
  private readonly blocksPrefix: string
  private readonly evidencePrefix: string
  /** one key per slot: varint height || message */
  private readonly signedPrefix: string
  private readonly candidacyKey: Key

  constructor (components: BlockStoreComponents, init: BlockStoreInit) {
    this.c = components
    const prefix = `/ledger/${hex(init.ledger).slice(0, 16)}`
    this.blocksPrefix = `${prefix}/blocks`
    this.evidencePrefix = `${prefix}/evidence`
    this.signedPrefix = `${prefix}/signed`
    this.candidacyKey = new Key(`${prefix}/candidacy`)
  }

  /** Keep a final block; resolves once it is on disk */
  async put (block: Block, blockBytes: Uint8Array, commit: Commit): Promise<void> {
    await this.c.datastore.put(this.blockKey(block.header.height), encodeStored(blockBytes, commit))
  }

  /** The final block at `height`, undefined when this node has none there */
  async get (height: number): Promise<StoredBlock | undefined> {
    try {
      return decodeStored(await this.c.datastore.get(this.blockKey(height)), () => true)
    } catch {
      return undefined
    }
  }

  /** The block at `height` as kept (bytes block || bytes commit); throws when there is none */
  async raw (height: number): Promise<Uint8Array> {
    return this.c.datastore.get(this.blockKey(height))
  }

  /**
   * Apply every block kept to `state`, in order, and say how many. They
   * were checked when they came, so they are applied again without their
   * signatures; a gap is a MissingBlockError, since no state after it can
   * be right.
   */
  async replay (state: Pick<LedgerState, 'height' | 'apply'>): Promise<number> {
    let replayed = 0
    for await (const { value } of this.c.datastore.query({ prefix: this.blocksPrefix })) {
      const { block } = decodeStored(value, () => true)
      if (block.header.height !== state.height + 1) {
        throw new MissingBlockError(`the ledger's block ${state.height + 1} is missing from the datastore (found ${block.header.height})`)
      }
      state.apply(block)
      replayed++
    }
    return replayed
  }

  /** Keep a message this validator signed at `height`, before it is sent */
  async saveSigned (height: number, msg: SignedMessage): Promise<void> {
    await this.c.datastore.put(new Key(`${this.signedPrefix}/${slotOf(msg).slot}`), new Writer().varint(height).raw(encodeMessage(msg)).finish())
  }

  /** What this validator signed at `height` before it stopped (nothing once that height is final) */
  async signedAt (height: number): Promise<SignedMessage[]> {
    const signed: SignedMessage[] = []
    for await (const { key, value } of this.c.datastore.query({ prefix: this.signedPrefix })) {
      try {
        const r = new Reader(value)
        const at = r.varint('the height')
        const m = decodeMessage(r.raw(value.byteLength - r.offset, 'the message'), () => true)
        if (at === height && m.type !== 'commit') {
          signed.push(m)
        }
      } catch (err: any) {
        log.error('a signed message kept at %s does not decode - %s', key.toString(), err.message)
      }
    }
    return signed
  }

  /** Keep the evidence of an equivocation, one key per validator and slot */
  async saveEvidence (e: Equivocation): Promise<void> {
    await this.c.datastore.put(new Key(`${this.evidencePrefix}/${e.height}-${e.round}-${e.what}-${e.validator}`), new TextEncoder().encode(JSON.stringify(e)))
  }

  /** Every equivocation kept */
  async evidence (): Promise<Equivocation[]> {
    const out: Equivocation[] = []
    for await (const { value } of this.c.datastore.query({ prefix: this.evidencePrefix })) {
      out.push(JSON.parse(new TextDecoder().decode(value)))
    }
    return out
  }

  /** Keep this node's signed statement as a validator candidate */
  async saveCandidacy (evidence: Uint8Array): Promise<void> {
    await this.c.datastore.put(this.candidacyKey, evidence)
  }

  /** The statement this node stands with, if it stands */
  async candidacy (): Promise<Uint8Array | undefined> {
    try {
      return await this.c.datastore.get(this.candidacyKey)
    } catch {
      return undefined
    }
  }

  /** heights padded to 12 digits, so the datastore's key order is height order and replay reads them in turn */
  private blockKey (height: number): Key {
    return new Key(`${this.blocksPrefix}/${String(height).padStart(12, '0')}`)
  }
}
