import { Units } from '../../protocols/units.ts'
import type { Service } from '../interface.ts'

export const SHA256_SERVICE = 'sha256'
const MIB = 1024 * 1024

export interface Sha256ServiceInit {
  /** satoshis per MiB hashed, default 0 (free) */
  price?: bigint
}

/**
 * The first application service: `hash` answers the 32-byte SHA-256 of the
 * request body. The body streams through, so a 100 MiB body costs the server
 * a few frames of memory.
 *
 * The RPC layer checks every body byte against the SHA-256 the caller signed
 * and fails the read on a mismatch, so once the body has been read that
 * digest is the answer; hashing a second time would double the server's work.
 */
export function sha256Service (init: Sha256ServiceInit = {}): Service {
  return {
    name: SHA256_SERVICE,
    version: '1.0.0',
    description: 'SHA-256 of the request body',
    methods: {
      hash: {
        description: 'the SHA-256 digest of the body, as 32 raw bytes',
        unit: Units.MIB,
        units: ({ bodyLength }) => Math.max(1, Math.ceil(bodyLength / MIB)),
        price: init.price ?? 0n,
        handle: async ({ body, signal }) => {
          for await (const _chunk of body) {
            signal.throwIfAborted()
          }
          return { body: Uint8Array.from(body.sha256) }
        }
      }
    }
  }
}
