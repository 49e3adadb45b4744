import { readFile } from 'node:fs/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { decodeGenesis, encodeGenesis, LedgerLimits, type Genesis } from './encoding.ts'
import { GenesisError } from './errors.ts'

/**
 * The genesis file: the JSON an operator is handed to join a ledger
 * (README, "Cloud Ledger"). Its fields, once checked, are the Genesis of
 * PROTOCOL.md section 8e, whose hash is the ledger's id, so every rule here
 * is checked before a node starts rather than found out at its first block.
 */

/** Read and check a genesis file (JSON) */
export async function loadGenesis (path: string): Promise<Genesis> {
  let raw: any
  try {
    raw = JSON.parse(await readFile(path, 'utf8'))
  } catch (err: any) {
    throw new GenesisError(`cannot read the ledger genesis ${path}: ${err.message}`)
  }
  return parseGenesis(raw, path)
}

/** Check a parsed genesis file, filling in the defaults of the optional fields; `where` names it in the errors */
export function parseGenesis (raw: any, where = 'the genesis'): Genesis {
  const int = (key: string, min: number, def?: number): number => {
    const v = raw?.[key] ?? def
    if (!Number.isSafeInteger(v) || v < min) {
      throw new GenesisError(`${where}: "${key}" must be a whole number, at least ${min}`)
    }
    return v
  }
  if (typeof raw?.chain !== 'string' || raw.chain.length === 0) {
    throw new GenesisError(`${where}: "chain" names the ledger, e.g. "opencloud-testnet"`)
  }
  if (!Array.isArray(raw.validators) || raw.validators.length === 0) {
    throw new GenesisError(`${where}: "validators" lists the first validators' PeerIds`)
  }
  for (const v of raw.validators) {
    try {
      peerIdFromString(v)
    } catch {
      throw new GenesisError(`${where}: validator "${String(v)}" is not a PeerId`)
    }
  }
  if (new Set(raw.validators).size !== raw.validators.length) {
    throw new GenesisError(`${where}: a validator is listed twice`)
  }
  const g: Genesis = {
    chain: raw.chain,
    time: int('time', 0),
    validators: raw.validators,
    slotMs: int('slotMs', 100, 1000),
    checkpointEvery: int('checkpointEvery', 1, 100),
    maxTxsPerBlock: int('maxTxsPerBlock', 1, 5000),
    maxRequestsPerSlot: int('maxRequestsPerSlot', 1, 10),
    txTtlMs: int('txTtlMs', 10_000, 600_000)
  }
  if (g.maxTxsPerBlock > LedgerLimits.txsPerBlock) {
    throw new GenesisError(`${where}: "maxTxsPerBlock" is at most ${LedgerLimits.txsPerBlock}`)
  }
  // the bytes the ledger id is the hash of, made and read back here: a
  // genesis that another implementation could not decode (a chain name
  // over 128 bytes, more than 256 validators) fails before the node starts
  try {
    decodeGenesis(encodeGenesis(g))
  } catch (err: any) {
    throw new GenesisError(`${where}: ${err.message}`)
  }
  return g
}
