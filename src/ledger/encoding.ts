import { createHash } from 'node:crypto'
import { DecodeError, Reader, Writer } from '../protocols/codec.ts'

import type { CredentialSigner } from '../protocols/rpc/credentials.ts'
import { base64Signature, peerBytes, peerText, verifySignedBy, withDomain } from '../protocols/signed.ts'

/**
 * The Cloud Ledger's bytes (PROTOCOL.md section 8e): genesis, transactions,
 * blocks, consensus votes and commits. Everything signed is signed by an
 * OpenCloud ID (Ed25519) over a domain string and the encoding, like the
 * rest of the protocol; hashes are SHA-256.
 */

export const LEDGER_VERSION = 1
const TX_DOMAIN = new TextEncoder().encode('opencloud-ledger-tx-v1\n')
const PROPOSAL_DOMAIN = new TextEncoder().encode('opencloud-ledger-proposal-v1\n')
const VOTE_DOMAIN = new TextEncoder().encode('opencloud-ledger-vote-v1\n')
const REDEEM_DOMAIN = new TextEncoder().encode('opencloud-ledger-redeem-v1\n')
const EVIDENCE_DOMAIN = new TextEncoder().encode('opencloud-ledger-candidate-v1\n')

/** Limits every decoder enforces, so a hostile peer cannot make us allocate */
export const LedgerLimits = {
  name: 128,
  reason: 256,
  evidence: 4096,
  txBytes: 8192,
  /** transactions in one block: the per-slot signing limit's hard ceiling */
  txsPerBlock: 10_000,
  validators: 256,
  /** a block on the wire: well under gossipsub's 4 MB message limit */
  blockBytes: 3 * 1024 * 1024
} as const

export function sha256 (...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256')
  for (const p of parts) {
    h.update(p)
  }
  return Uint8Array.from(h.digest())
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

// ---------------------------------------------------------------- genesis

/**
 * The ledger's first facts, as a genesis file names them. Its hash is the
 * ledger's id: every transaction and vote names it, so nothing signed for
 * one ledger counts on another.
 */
export interface Genesis {
  /** a name for people, e.g. "opencloud-testnet" */
  chain: string
  /** ms since the epoch; nothing on the ledger is older */
  time: number
  /** the first validators' PeerIds (the member clouds) */
  validators: string[]
  /** how long a validator has to propose before the next one's turn, ms */
  slotMs: number
  /** the state root is anchored in bitcoin every this many blocks */
  checkpointEvery: number
  /** transactions one block may carry: the per-slot signing limit */
  maxTxsPerBlock: number
  /** promo requests one requester may have in one block */
  maxRequestsPerSlot: number
  /** how long a transaction stays valid after its time, ms (replays older than this are refused outright) */
  txTtlMs: number
}

export function encodeGenesis (g: Genesis): Uint8Array {
  const w = new Writer().u8(LEDGER_VERSION).string(g.chain).varint(g.time).varint(g.validators.length)
  for (const v of g.validators) {
    w.bytes(peerBytes(v))
  }
  return w.varint(g.slotMs).varint(g.checkpointEvery).varint(g.maxTxsPerBlock).varint(g.maxRequestsPerSlot).varint(g.txTtlMs).finish()
}

export function decodeGenesis (bytes: Uint8Array): Genesis {
  const r = new Reader(bytes)
  r.version(LEDGER_VERSION, 'genesis')
  const chain = r.string(LedgerLimits.name, 'the chain name')
  const time = r.varint('the genesis time')
  const n = r.count(LedgerLimits.validators, 'the validators')
  const validators: string[] = []
  for (let i = 0; i < n; i++) {
    validators.push(peerText(r.bytes(64, 'a validator'), 'a validator'))
  }
  const g: Genesis = { chain, time, validators, slotMs: r.varint('the slot time'), checkpointEvery: r.varint('the checkpoint interval'), maxTxsPerBlock: r.varint('the transactions per block'), maxRequestsPerSlot: r.varint('the requests per slot'), txTtlMs: r.varint('the transaction ttl') }
  r.end('the genesis')
  return g
}

export function ledgerIdOf (g: Genesis): Uint8Array {
  return sha256(encodeGenesis(g))
}

// ---------------------------------------------------------------- transactions

export const TxKind = { POOL: 1, REQUEST: 2, TRANSFER: 3, REDEEM: 4, VOTE: 5, CHECKPOINT: 6 } as const

export type TxBody =
  /** a member cloud puts codes on the ledger: each is worth `creditSat` of `service` calls */
  | { kind: 'pool', name: string, service: string, creditSat: bigint, quantity: number, ttlMs: number, perRequester: number }
  /** anyone asks a pool for a code; the code is this transaction's id */
  | { kind: 'request', pool: Uint8Array }
  /** the code's owner gives it to another identity */
  | { kind: 'transfer', code: Uint8Array, to: string }
  /** a member cloud spends the code, with its owner's authorization (signRedeemAuthorization) */
  | { kind: 'redeem', code: Uint8Array, authorization: Uint8Array }
  /** a validator votes to add or remove a validator; an addition carries the candidate's signed statement */
  | { kind: 'vote', add: boolean, candidate: string, evidence: Uint8Array }
  /** a validator records the bitcoin transaction that anchors the state root at `height` */
  | { kind: 'checkpoint', height: number, stateRoot: Uint8Array, btcTxid: string }

export interface Tx {
  ledger: Uint8Array
  sender: string
  /** ms since the epoch: with the sender, it makes every transaction unique */
  time: number
  body: TxBody
}

export interface SignedTx {
  tx: Tx
  /** the encoded transaction (what the signature covers, after the domain) */
  encoded: Uint8Array
  signature: Uint8Array
  /** SHA-256 of `encoded`: the transaction id (a request's id is the promo code) */
  id: Uint8Array
  /** the signed-tx bytes as sent */
  bytes: Uint8Array
}

export function encodeTx (tx: Tx): Uint8Array {
  const w = new Writer().u8(LEDGER_VERSION).raw(tx.ledger).bytes(peerBytes(tx.sender)).varint(tx.time)
  const b = tx.body
  switch (b.kind) {
    case 'pool':
      w.u8(TxKind.POOL).string(b.name).string(b.service).varint(Number(b.creditSat)).varint(b.quantity).varint(b.ttlMs).varint(b.perRequester)
      break
    case 'request':
      w.u8(TxKind.REQUEST).raw(b.pool)
      break
    case 'transfer':
      w.u8(TxKind.TRANSFER).raw(b.code).bytes(peerBytes(b.to))
      break
    case 'redeem':
      w.u8(TxKind.REDEEM).raw(b.code).bytes(b.authorization)
      break
    case 'vote':
      w.u8(TxKind.VOTE).u8(b.add ? 1 : 0).bytes(peerBytes(b.candidate)).bytes(b.evidence)
      break
    case 'checkpoint':
      w.u8(TxKind.CHECKPOINT).varint(b.height).raw(b.stateRoot).string(b.btcTxid)
      break
  }
  return w.finish()
}

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/
const TXID = /^[0-9a-f]{64}$/

export function decodeTx (bytes: Uint8Array): Tx {
  const r = new Reader(bytes)
  r.version(LEDGER_VERSION, 'transaction')
  const ledger = r.raw(32, 'the ledger id')
  const sender = peerText(r.bytes(64, 'the sender'), 'the sender')
  const time = r.varint('the transaction time')
  const kind = r.u8('the transaction kind')
  let body: TxBody
  switch (kind) {
    case TxKind.POOL: {
      const name = r.string(LedgerLimits.name, 'the pool name')
      const service = r.string(LedgerLimits.name, 'the service')
      const credit = r.varint('the credit')
      if (!NAME.test(name)) {
        throw new DecodeError('a pool name is 1 to 64 of a-z, 0-9 and -')
      }
      if (!NAME.test(service)) {
        throw new DecodeError('a service name is 1 to 64 of a-z, 0-9 and -')
      }
      body = { kind: 'pool', name, service, creditSat: BigInt(credit), quantity: r.varint('the quantity'), ttlMs: r.varint('the ttl'), perRequester: r.varint('the codes per requester') }
      break
    }
    case TxKind.REQUEST:
      body = { kind: 'request', pool: r.raw(32, 'the pool id') }
      break
    case TxKind.TRANSFER:
      body = { kind: 'transfer', code: r.raw(32, 'the code'), to: peerText(r.bytes(64, 'the recipient'), 'the recipient') }
      break
    case TxKind.REDEEM:
      body = { kind: 'redeem', code: r.raw(32, 'the code'), authorization: r.bytes(64, 'the owner\'s authorization') }
      break
    case TxKind.VOTE: {
      const add = r.u8('the vote')
      if (add > 1) {
        throw new DecodeError('a vote is 1 (add) or 0 (remove)')
      }
      body = { kind: 'vote', add: add === 1, candidate: peerText(r.bytes(64, 'the candidate'), 'the candidate'), evidence: r.bytes(LedgerLimits.evidence, 'the evidence') }
      break
    }
    case TxKind.CHECKPOINT: {
      const height = r.varint('the checkpoint height')
      const stateRoot = r.raw(32, 'the state root')
      const btcTxid = r.string(64, 'the bitcoin txid')
      if (!TXID.test(btcTxid)) {
        throw new DecodeError('the bitcoin txid is 64 hex digits')
      }
      body = { kind: 'checkpoint', height, stateRoot, btcTxid }
      break
    }
    default:
      throw new DecodeError(`unknown transaction kind ${kind}`)
  }
  r.end('the transaction')
  return { ledger, sender, time, body }
}

/** signed-tx = bytes tx || bytes signature */
export function signTx (tx: Tx, signer: CredentialSigner): SignedTx {
  const encoded = encodeTx(tx)
  const signature = signer.sign(withDomain(TX_DOMAIN, encoded))
  const bytes = new Writer().bytes(encoded).bytes(signature).finish()
  return { tx, encoded, signature, id: sha256(encoded), bytes }
}

/** Decode and verify a signed transaction; throws DecodeError or InvalidSignatureError */
export function openTx (bytes: Uint8Array, verify = true): SignedTx {
  if (bytes.byteLength > LedgerLimits.txBytes) {
    throw new DecodeError(`a transaction is at most ${LedgerLimits.txBytes} bytes`)
  }
  const r = new Reader(bytes)
  const encoded = r.bytes(LedgerLimits.txBytes, 'the transaction')
  const signature = r.bytes(64, 'the transaction signature')
  r.end('the signed transaction')
  const tx = decodeTx(encoded)
  if (verify) {
    verifySignedBy(tx.sender, signature, withDomain(TX_DOMAIN, encoded))
  }
  return { tx, encoded, signature, id: sha256(encoded), bytes: Uint8Array.from(bytes) }
}

/** Check the signature of a transaction opened without checking it; throws when it fails */
export function verifyTx (stx: SignedTx): void {
  verifySignedBy(stx.tx.sender, stx.signature, withDomain(TX_DOMAIN, stx.encoded))
}

/**
 * What a code's owner signs so that one member cloud may redeem the code:
 * the code is public on the ledger, so holding it proves nothing; this
 * signature does, and it names the redeemer, so no other cloud can use it.
 */
export function redeemSigning (ledger: Uint8Array, code: Uint8Array, redeemer: string): Uint8Array {
  return withDomain(REDEEM_DOMAIN, new Writer().raw(ledger).raw(code).bytes(peerBytes(redeemer)).finish())
}

export function signRedeemAuthorization (ledger: Uint8Array, code: Uint8Array, redeemer: string, owner: CredentialSigner): Uint8Array {
  return owner.sign(redeemSigning(ledger, code, redeemer))
}

/**
 * An authorization as people and the `redeem` method pass it: its 64 bytes
 * in standard base64 with padding (88 characters), and only that spelling.
 * Undefined for anything else.
 */
export function authorizationFromBase64 (text: string | undefined): Uint8Array | undefined {
  try {
    return text == null ? undefined : base64Signature(text, 'an authorization')
  } catch {
    return undefined
  }
}

export function verifyRedeemAuthorization (ledger: Uint8Array, code: Uint8Array, redeemer: string, owner: string, authorization: Uint8Array): boolean {
  try {
    verifySignedBy(owner, authorization, redeemSigning(ledger, code, redeemer))
    return true
  } catch {
    return false
  }
}

/**
 * A candidate validator's statement (the seed's notary evidence): its own
 * signature over the ledger id and a statement of who runs it, so a vote
 * can only add an identity whose key agreed to serve.
 */
export function encodeEvidence (ledger: Uint8Array, candidate: string, statement: string, signer: CredentialSigner): Uint8Array {
  const body = new Writer().raw(ledger).bytes(peerBytes(candidate)).string(statement).finish()
  return new Writer().bytes(body).bytes(signer.sign(withDomain(EVIDENCE_DOMAIN, body))).finish()
}

export function openEvidence (ledger: Uint8Array, candidate: string, evidence: Uint8Array): string {
  const r = new Reader(evidence)
  const body = r.bytes(LedgerLimits.evidence, 'the statement')
  const signature = r.bytes(64, 'the statement signature')
  r.end('the evidence')
  const b = new Reader(body)
  const l = b.raw(32, 'the ledger id')
  const c = peerText(b.bytes(64, 'the candidate'), 'the candidate')
  const statement = b.string(LedgerLimits.evidence, 'the statement')
  b.end('the statement')
  if (hex(l) !== hex(ledger) || c !== candidate) {
    throw new DecodeError('the evidence is for another ledger or candidate')
  }
  verifySignedBy(candidate, signature, withDomain(EVIDENCE_DOMAIN, body))
  return statement
}

// ---------------------------------------------------------------- blocks

export interface BlockHeader {
  ledger: Uint8Array
  height: number
  round: number
  /** the proposer's clock, ms: transactions' TTLs and codes' expiry are measured against it */
  time: number
  prev: Uint8Array
  proposer: string
  /** SHA-256 over the concatenated transaction ids */
  txRoot: Uint8Array
  /** the state after this block: sha256(previous app hash || each transaction's id and outcome) */
  appHash: Uint8Array
}

export interface Block {
  header: BlockHeader
  txs: SignedTx[]
  /** sha256(encoded header) */
  hash: Uint8Array
}

export function encodeHeader (h: BlockHeader): Uint8Array {
  return new Writer().u8(LEDGER_VERSION).raw(h.ledger).varint(h.height).varint(h.round).varint(h.time).raw(h.prev).bytes(peerBytes(h.proposer)).raw(h.txRoot).raw(h.appHash).finish()
}

function readHeader (r: Reader): BlockHeader {
  r.version(LEDGER_VERSION, 'block')
  return { ledger: r.raw(32, 'the ledger id'), height: r.varint('the height'), round: r.varint('the round'), time: r.varint('the block time'), prev: r.raw(32, 'the previous block'), proposer: peerText(r.bytes(64, 'the proposer'), 'the proposer'), txRoot: r.raw(32, 'the transaction root'), appHash: r.raw(32, 'the app hash') }
}

export function txRootOf (txs: SignedTx[]): Uint8Array {
  return sha256(...txs.map(t => t.id))
}

/** block = bytes header || varint n || n x bytes signed-tx */
export function encodeBlock (b: Block): Uint8Array {
  const w = new Writer().bytes(encodeHeader(b.header)).varint(b.txs.length)
  for (const t of b.txs) {
    w.bytes(t.bytes)
  }
  return w.finish()
}

/**
 * Decode a block. Transaction signatures are checked unless `verified`
 * says which ids were checked already (the mempool's): verifying a
 * thousand signatures twice is the slowest thing a validator does.
 */
export function decodeBlock (bytes: Uint8Array, verified?: (id: string) => boolean): Block {
  const r = new Reader(bytes)
  const headerBytes = r.bytes(1024, 'the block header')
  const header = readHeader(new Reader(headerBytes))
  const n = r.count(LedgerLimits.txsPerBlock, 'the transactions')
  const txs: SignedTx[] = []
  for (let i = 0; i < n; i++) {
    const raw = r.bytes(LedgerLimits.txBytes + 80, 'a transaction')
    const unchecked = openTx(raw, false)
    if (verified?.(hex(unchecked.id)) !== true) {
      verifyTx(unchecked)
    }
    txs.push(unchecked)
  }
  r.end('the block')
  if (hex(txRootOf(txs)) !== hex(header.txRoot)) {
    throw new DecodeError('the block\'s transactions do not match its transaction root')
  }
  return { header, txs, hash: sha256(encodeHeader(header)) }
}

// ---------------------------------------------------------------- consensus

export const VoteType = { PREVOTE: 1, PRECOMMIT: 2 } as const
export type VoteTypeName = 'prevote' | 'precommit'

export interface Vote {
  type: VoteTypeName
  height: number
  round: number
  /** the block voted for; empty for nil (no block this round) */
  block: Uint8Array
  voter: string
  signature: Uint8Array
}

function voteSigning (ledger: Uint8Array, v: Omit<Vote, 'signature' | 'voter'>): Uint8Array {
  return withDomain(VOTE_DOMAIN, new Writer().raw(ledger).u8(VoteType[v.type === 'prevote' ? 'PREVOTE' : 'PRECOMMIT']).varint(v.height).varint(v.round).bytes(v.block).finish())
}

export function signVote (ledger: Uint8Array, v: Omit<Vote, 'signature'>, signer: CredentialSigner): Vote {
  return { ...v, signature: signer.sign(voteSigning(ledger, v)) }
}

export function verifyVote (ledger: Uint8Array, v: Vote): void {
  verifySignedBy(v.voter, v.signature, voteSigning(ledger, v))
}

function writeVote (w: Writer, v: Vote): Writer {
  return w.u8(v.type === 'prevote' ? VoteType.PREVOTE : VoteType.PRECOMMIT).varint(v.height).varint(v.round).bytes(v.block).bytes(peerBytes(v.voter)).bytes(v.signature)
}

function readVote (r: Reader): Vote {
  const t = r.u8('the vote type')
  if (t !== VoteType.PREVOTE && t !== VoteType.PRECOMMIT) {
    throw new DecodeError(`unknown vote type ${t}`)
  }
  const height = r.varint('the height')
  const round = r.varint('the round')
  const block = r.bytes(32, 'the block voted for')
  if (block.byteLength !== 0 && block.byteLength !== 32) {
    throw new DecodeError('a vote names a 32-byte block hash or none')
  }
  return { type: t === VoteType.PREVOTE ? 'prevote' : 'precommit', height, round, block, voter: peerText(r.bytes(64, 'the voter'), 'the voter'), signature: r.bytes(64, 'the vote signature') }
}

export interface Proposal {
  height: number
  round: number
  /** the round in which this block was last prevoted by more than two thirds (Tendermint's valid round), -1 for none */
  validRound: number
  block: Block
  /** the block's bytes as they travel */
  blockBytes: Uint8Array
  proposer: string
  signature: Uint8Array
}

function proposalSigning (ledger: Uint8Array, height: number, round: number, validRound: number, blockHash: Uint8Array): Uint8Array {
  return withDomain(PROPOSAL_DOMAIN, new Writer().raw(ledger).varint(height).varint(round).varint(validRound + 1).raw(blockHash).finish())
}

export function signProposal (ledger: Uint8Array, p: Omit<Proposal, 'signature'>, signer: CredentialSigner): Proposal {
  return { ...p, signature: signer.sign(proposalSigning(ledger, p.height, p.round, p.validRound, p.block.hash)) }
}

/** The commit certificate: more than two thirds of the validators' precommits for one block in one round */
export interface Commit {
  round: number
  votes: Array<{ voter: string, signature: Uint8Array }>
}

export type ConsensusMessage =
  | { type: 'proposal', proposal: Proposal }
  | { type: 'vote', vote: Vote }
  /** a final block with its certificate, for every node to apply */
  | { type: 'commit', block: Block, blockBytes: Uint8Array, commit: Commit }

const MessageType = { PROPOSAL: 1, VOTE: 2, COMMIT: 3 } as const

export function encodeCommit (c: Commit): Uint8Array {
  const w = new Writer().varint(c.round).varint(c.votes.length)
  for (const v of c.votes) {
    w.bytes(peerBytes(v.voter)).bytes(v.signature)
  }
  return w.finish()
}

export function decodeCommit (bytes: Uint8Array): Commit {
  const r = new Reader(bytes)
  const c = readCommit(r)
  r.end('the commit')
  return c
}

function readCommit (r: Reader): Commit {
  const round = r.varint('the commit round')
  const n = r.count(LedgerLimits.validators, 'the commit votes')
  const votes: Commit['votes'] = []
  for (let i = 0; i < n; i++) {
    votes.push({ voter: peerText(r.bytes(64, 'a committer'), 'a committer'), signature: r.bytes(64, 'a commit signature') })
  }
  return { round, votes }
}

export function encodeMessage (m: ConsensusMessage): Uint8Array {
  const w = new Writer()
  switch (m.type) {
    case 'proposal':
      return w.u8(MessageType.PROPOSAL).varint(m.proposal.height).varint(m.proposal.round).varint(m.proposal.validRound + 1).bytes(m.proposal.blockBytes).bytes(peerBytes(m.proposal.proposer)).bytes(m.proposal.signature).finish()
    case 'vote':
      return writeVote(w.u8(MessageType.VOTE), m.vote).finish()
    case 'commit':
      return w.u8(MessageType.COMMIT).bytes(m.blockBytes).bytes(encodeCommit(m.commit)).finish()
  }
}

/** Decode a consensus message; signatures are the consensus engine's to check (it knows the validators) */
export function decodeMessage (bytes: Uint8Array, verified?: (id: string) => boolean): ConsensusMessage {
  const r = new Reader(bytes)
  const type = r.u8('the message type')
  switch (type) {
    case MessageType.PROPOSAL: {
      const height = r.varint('the height')
      const round = r.varint('the round')
      const validRound = r.varint('the valid round') - 1
      const blockBytes = r.bytes(LedgerLimits.blockBytes, 'the block')
      const proposer = peerText(r.bytes(64, 'the proposer'), 'the proposer')
      const signature = r.bytes(64, 'the proposal signature')
      r.end('the proposal')
      return { type: 'proposal', proposal: { height, round, validRound, block: decodeBlock(blockBytes, verified), blockBytes, proposer, signature } }
    }
    case MessageType.VOTE: {
      const vote = readVote(r)
      r.end('the vote')
      return { type: 'vote', vote }
    }
    case MessageType.COMMIT: {
      const blockBytes = r.bytes(LedgerLimits.blockBytes, 'the block')
      const commit = decodeCommit(r.bytes(64 * 1024, 'the commit'))
      r.end('the commit message')
      return { type: 'commit', block: decodeBlock(blockBytes, verified), blockBytes, commit }
    }
    default:
      throw new DecodeError(`unknown consensus message type ${type}`)
  }
}

/**
 * The height a consensus message is for, read without decoding its block:
 * a node throws out stale proposals and final blocks it holds already
 * before paying for a thousand transactions' decoding. Throws when the
 * bytes are too short to say.
 */
export function messageHeight (bytes: Uint8Array): number {
  const r = new Reader(bytes)
  const type = r.u8('the message type')
  switch (type) {
    case MessageType.PROPOSAL:
      return r.varint('the height')
    case MessageType.VOTE:
      r.u8('the vote type')
      return r.varint('the height')
    case MessageType.COMMIT: {
      r.varint('the block length')
      r.varint('the header length')
      r.version(LEDGER_VERSION, 'block')
      r.raw(32, 'the ledger id')
      return r.varint('the height')
    }
    default:
      throw new DecodeError(`unknown consensus message type ${type}`)
  }
}

export function verifyProposal (ledger: Uint8Array, p: Proposal): void {
  verifySignedBy(p.proposer, p.signature, proposalSigning(ledger, p.height, p.round, p.validRound, p.block.hash))
}

/**
 * Check a commit certificate against the validators of its height: more
 * than two thirds of them, each once, each signature a precommit for this
 * block at this height and round. Throws naming what is wrong.
 */
export function verifyCommit (ledger: Uint8Array, block: Block, commit: Commit, validators: string[]): void {
  const seen = new Set<string>()
  for (const v of commit.votes) {
    if (!validators.includes(v.voter)) {
      throw new DecodeError(`the commit of block ${block.header.height} is signed by ${v.voter}, not a validator`)
    }
    if (seen.has(v.voter)) {
      throw new DecodeError(`the commit of block ${block.header.height} counts ${v.voter} twice`)
    }
    seen.add(v.voter)
    verifyVote(ledger, { type: 'precommit', height: block.header.height, round: commit.round, block: block.hash, voter: v.voter, signature: v.signature })
  }
  if (seen.size <= (validators.length * 2) / 3) {
    throw new DecodeError(`the commit of block ${block.header.height} has ${seen.size} of ${validators.length} validators, not more than two thirds`)
  }
}

/** How many votes are more than two thirds of n validators */
export function quorum (n: number): number {
  return Math.floor((2 * n) / 3) + 1
}

/** How many votes are a majority of n validators: what adds or removes one */
export function majority (n: number): number {
  return Math.floor(n / 2) + 1
}
