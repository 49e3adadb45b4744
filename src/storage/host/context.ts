import type { CredentialSigner } from '../../protocols/rpc/credentials.ts'
import type { ContractBook } from './contract-book.ts'
import type { ShardStore } from './shard-store.ts'
import type { TermsCheck } from './terms.ts'

/**
 * What the handlers (handlers/<method>.ts) share of the host: each takes
 * the part it needs, so a test hands it no more than that
 */
export interface HostContext {
  /** this host's PeerId */
  peerId: string
  /** signs terms, revisions and ratings as this host */
  signer: CredentialSigner
  book: ContractBook
  store: ShardStore
  terms: TermsCheck
  /** a reputation record of a renter when a contract ends */
  recordRenter?: (renter: string, outcome: 'satisfactory' | 'unsatisfactory', event: string) => void
}
