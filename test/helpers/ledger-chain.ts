import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openCloudSigner, type CredentialSigner } from '../../src/protocols/rpc/credentials.ts'
import { encodeBlock, encodeHeader, ledgerIdOf, sha256, signVote, txRootOf, type Block, type Commit, type Genesis } from '../../src/ledger/encoding.ts'
import { LedgerState } from '../../src/ledger/state.ts'

export interface Chain {
  genesis: Genesis
  id: Uint8Array
  /** the one validator, and its signer */
  validator: string
  signer: CredentialSigner
  /** blocks 1 to n, each with its encoding and a commit its validator signed */
  blocks: Array<{ block: Block, blockBytes: Uint8Array, commit: Commit }>
}

/**
 * A ledger of one validator and `n` empty blocks that follow its rules,
 * made without any node: for the ledger's parts tested alone (the block
 * store, sync). `seed` makes another validator, hence another ledger.
 */
export async function emptyChain (n: number, seed = 0x61): Promise<Chain> {
  const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(seed))
  const signer = openCloudSigner(key)
  const validator = peerIdFromPrivateKey(key).toString()
  const genesis: Genesis = { chain: `chain-${seed}`, time: 1767225600000, validators: [validator], slotMs: 1000, checkpointEvery: 1000, maxTxsPerBlock: 100, maxRequestsPerSlot: 10, txTtlMs: 600_000 }
  const id = ledgerIdOf(genesis)
  const state = new LedgerState(genesis, id)
  const blocks: Chain['blocks'] = []
  for (let height = 1; height <= n; height++) {
    const time = genesis.time + height * 1000
    const dryRun = state.dryRun({ txs: [], header: { time, height } })
    const header = { ledger: id, height, round: 0, time, prev: state.lastHash, proposer: validator, txRoot: txRootOf([]), appHash: dryRun.appHash }
    const block: Block = { header, txs: [], hash: sha256(encodeHeader(header)) }
    const vote = signVote(id, { type: 'precommit', height, round: 0, block: block.hash, voter: validator }, signer)
    blocks.push({ block, blockBytes: encodeBlock(block), commit: { round: 0, votes: [{ voter: validator, signature: vote.signature }] } })
    state.apply(block, dryRun)
  }
  return { genesis, id, validator, signer, blocks }
}
