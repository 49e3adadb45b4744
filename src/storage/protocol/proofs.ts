import { DecodeError, Reader, Writer } from '../../protocols/codec.ts'

/**
 * The answer to `storage.prove` (PROTOCOL.md section 8d, "Methods"): the
 * leaves a challenge picked, each with its Merkle audit path, in the form
 * both the host that writes it and the renter that checks it agree on.
 */
export interface LeafProof {
  index: number
  leaf: Uint8Array
  path: Uint8Array[]
}

/** proofs = varint count || (varint index || bytes leaf || varint n || n x 32-byte hash)* */
export function encodeProofs (proofs: LeafProof[]): Uint8Array {
  const w = new Writer().varint(proofs.length)
  for (const p of proofs) {
    w.varint(p.index).bytes(p.leaf).varint(p.path.length)
    for (const hash of p.path) {
      w.raw(hash)
    }
  }
  return w.finish()
}

export function decodeProofs (bytes: Uint8Array): LeafProof[] {
  const r = new Reader(bytes)
  const count = r.varint('the proof count')
  if (count > 64) {
    throw new DecodeError('at most 64 proofs')
  }
  const proofs = []
  for (let i = 0; i < count; i++) {
    const index = r.varint('the leaf index')
    const leaf = r.bytes(4096, 'the leaf')
    const n = r.varint('the path length')
    if (n > 64) {
      throw new DecodeError('a Merkle path is at most 64 hashes')
    }
    const path: Uint8Array[] = []
    for (let j = 0; j < n; j++) {
      path.push(r.raw(32, 'a path hash'))
    }
    proofs.push({ index, leaf, path })
  }
  r.end('the proofs')
  return proofs
}
